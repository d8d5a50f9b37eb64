// lakehouse-probe checks endpoints from a client's side: the program of a release's `helm test`
// Pod, which runs in the release's own image (every lakehouse image holds it) and reaches each
// component through its Service, as the component's consumers do.
//
//	lakehouse-probe [-ca FILE] [-timeout 5s] TARGET...
//
// A TARGET is https://host:port/path (a GET over TLS verified against the CA for that host name,
// answered with 200), http://host:port/path (a GET answered with 200) or tcp://host:port (a
// connection accepted). Each target is tried once, within the timeout; one line per target is
// printed, and the exit status is 1 when any target failed.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() {
	caFile := flag.String("ca", "", "PEM file of the CA that signs the servers' certificates")
	timeout := flag.Duration("timeout", 5*time.Second, "time allowed per target")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: lakehouse-probe [-ca FILE] [-timeout 5s] TARGET...")
		os.Exit(2)
	}
	client, err := newClient(*caFile, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lakehouse-probe:", err)
		os.Exit(2)
	}
	failed := 0
	for _, target := range flag.Args() {
		if detail, err := check(client, target, *timeout); err != nil {
			failed++
			fmt.Printf("FAIL %s: %v\n", target, err)
		} else {
			fmt.Printf("ok   %s: %s\n", target, detail)
		}
	}
	if failed > 0 {
		os.Exit(1)
	}
}

func newClient(caFile string, timeout time.Duration) (*http.Client, error) {
	config := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
	}
	transport := &http.Transport{TLSClientConfig: config, Proxy: nil}
	// Redirects are answers of their own: a probe expects the endpoint itself to answer 200.
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &http.Client{Transport: transport, Timeout: timeout, CheckRedirect: noRedirect}, nil
}

func check(client *http.Client, target string, timeout time.Duration) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "tcp":
		conn, err := net.DialTimeout("tcp", u.Host, timeout)
		if err != nil {
			return "", err
		}
		conn.Close()
		return "connection accepted", nil
	case "http", "https":
		response, err := client.Get(target)
		if err != nil {
			return "", err
		}
		defer response.Body.Close()
		io.Copy(io.Discard, io.LimitReader(response.Body, 1<<20))
		if response.StatusCode != http.StatusOK {
			return "", fmt.Errorf("answered %s", response.Status)
		}
		return response.Status, nil
	}
	return "", fmt.Errorf("unknown scheme %q (https, http or tcp)", u.Scheme)
}
