"""images/probe (lakehouse-probe), the program of every release's `helm test`, as built into the
artifact cache, against HTTP(S) servers on loopback: an endpoint passes only when it answers 200
over TLS verified for its name; a refused connection, another status or an unknown CA fails."""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import threading

import pytest
from minio_server import write_tls_files


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the http.server hook)
        status = 200 if self.path == "/ready" else 401
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_):
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """https://localhost:<port>: /ready answers 200, any other path 401."""
    root = tmp_path_factory.mktemp("probe")
    ca = write_tls_files(root / "server" / "certs")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(root / "server" / "certs" / "public.crt", root / "server" / "certs" / "private.key")
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    other_ca = write_tls_files(root / "other" / "certs")  # another CA, beside its own server files
    yield {"url": f"https://localhost:{httpd.server_port}", "ca": ca, "other_ca": other_ca, "root": root}
    httpd.shutdown()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def probe(artifact):
    def run(*args) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(artifact("lakehouse_probe")), "-timeout=3s", *map(str, args)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    return run


def test_a_ready_https_endpoint_and_an_open_port_pass(probe, server):
    port = server["url"].rsplit(":", 1)[1]
    done = probe(f"-ca={server['ca']}", f"{server['url']}/ready", f"tcp://localhost:{port}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f"ok   {server['url']}/ready: 200 OK",
        f"ok   tcp://localhost:{port}: connection accepted",
    ]


@pytest.mark.parametrize(
    ("target", "ca", "message"),
    [
        ("{url}/admin", "ca", "answered 401 Unauthorized"),
        ("{url}/ready", "other_ca", "certificate signed by unknown authority"),
        ("tcp://127.0.0.1:{closed}", "ca", "connection refused"),
        ("ftp://localhost/", "ca", 'unknown scheme "ftp"'),
    ],
    ids=["status", "unknown-ca", "closed-port", "scheme"],
)
def test_a_failing_target_fails_the_probe_and_names_it(probe, server, target, ca, message):
    target = target.format(url=server["url"], closed=closed_port())
    port = server["url"].rsplit(":", 1)[1]
    done = probe(f"-ca={server[ca]}", f"tcp://localhost:{port}", target)
    assert done.returncode == 1, done.stdout
    assert done.stdout.splitlines()[0].startswith("ok   ")  # the other targets are still probed
    failed = done.stdout.splitlines()[1]
    assert failed.startswith(f"FAIL {target}: ") and message in failed, done.stdout


def test_bad_usage_is_refused(probe, server, tmp_path):
    assert probe().returncode == 2
    empty = tmp_path / "empty.crt"
    empty.write_text("")
    done = probe(f"-ca={empty}", f"{server['url']}/ready")
    assert done.returncode == 2 and "holds no PEM certificate" in done.stderr
