"""One bounded attempt (5 s, never retried) at a published endpoint, trusting only the contract's CA:
an HTTPS request, a PostgreSQL login over TLS (verify-full), or a bare TLS handshake that must be refused."""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import struct
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from lakehouse_cli.contracts import Contract

TIMEOUT = 5.0
# A readiness URL may answer slowly on a loaded host (Airflow's health asks its database and its
# scheduler's heartbeat): its answer is awaited longer than a connection.
HEALTH_TIMEOUT = 20.0
# The role the status probe logs in as: it need not exist, the server refuses it after TLS either way.
PROBE_USER = "lakehouse_probe"
# A libpq password file that cannot exist, so a login without a password stays without one (~/.pgpass).
NO_PASSFILE = "/dev/null/none"
# How a PostgreSQL server that answered refuses a login: it wants (other) credentials, or no
# pg_hba.conf rule admits the client (e.g. "hostnossl ... reject" for a plain-text connection).
REFUSALS = {
    "no password supplied": "password",
    "password authentication failed": "password",
    "pg_hba.conf": "pg_hba",
}
LIBPQ_PREFIX = re.compile(r"^connection to server at .*?, port \d+ failed: (FATAL:\s+)?")
TLS_REFUSALS = ("alert", "EOF occurred in violation of protocol", "Connection reset by peer")
SSL_NOISE = re.compile(r"^\[SSL: \w+\] | \(_ssl\.c:\d+\)$")  # around OpenSSL's own words


@dataclass(frozen=True)
class Reply:
    status: int | None  # None: no HTTP answer at all
    detail: str  # the reason phrase, an S3 error code, or why there was no answer


def context(ca: Path | None) -> ssl.SSLContext:
    if ca is None:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=str(ca))


def request(
    url: str,
    ca: Path | None,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = TIMEOUT,
) -> Reply:
    if not url.startswith(("https://", "http://")):
        return Reply(None, f"not an HTTP URL: {url}")
    try:
        tls = context(ca) if url.startswith("https://") else None
    except (OSError, ssl.SSLError) as err:
        return Reply(None, f"CA {ca} unusable: {getattr(err, 'strerror', None) or err}")
    req = urllib.request.Request(url, data=body, headers=dict(headers or {}), method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=tls) as response:  # noqa: S310 (checked above)
            return Reply(response.status, response.reason or "")
    except urllib.error.HTTPError as err:
        text = err.read(4096).decode("utf-8", "replace")
        return Reply(err.code, _s3_code(text) or err.reason or "")
    except urllib.error.URLError as err:
        return Reply(None, SSL_NOISE.sub("", str(err.reason)))
    except (OSError, ValueError) as err:
        return Reply(None, SSL_NOISE.sub("", str(err)) or type(err).__name__)


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The Authorization header of HTTP basic auth."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def get_json(url: str, ca: Path | None, headers: Mapping[str, str] | None = None) -> tuple[Reply, dict | None]:
    """One GET of a JSON document: (the reply, the document, or None when there is none)."""
    if not url.startswith(("https://", "http://")):
        return Reply(None, f"not an HTTP URL: {url}"), None
    try:
        tls = context(ca) if url.startswith("https://") else None
        req = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 (https or http only)
        with urllib.request.urlopen(req, timeout=TIMEOUT, context=tls) as response:  # noqa: S310
            return Reply(response.status, response.reason or ""), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return Reply(err.code, err.reason or ""), None
    except (urllib.error.URLError, OSError, ValueError) as err:
        return Reply(None, SSL_NOISE.sub("", str(getattr(err, "reason", err)))), None


def _s3_code(body: str) -> str:
    start, end = body.find("<Code>"), body.find("</Code>")
    return body[start + len("<Code>") : end] if 0 <= start < end else ""


def tls_refused(reply: Reply) -> bool:
    """The server ended the connection in the TLS handshake, e.g. because the client sent no certificate.

    Its alert can be lost: in TLS 1.3 the client sends its request before the server has checked
    the (missing) certificate, and closing on that unread request resets the connection.
    """
    return reply.status is None and any(sign in reply.detail for sign in TLS_REFUSALS)


def postgresql_connect(
    host: str,
    port: int,
    ca: Path | None,
    user: str,
    password: str = "",
    sslmode: str = "verify-full",
    dbname: str = "postgres",
):
    """A psycopg2 connection; raises psycopg2.Error. An empty password sends none (not even PGPASSWORD's)."""
    return psycopg2.connect(
        host=host,
        port=port,
        dbname=dbname,
        user=user,
        password=password,
        passfile=NO_PASSFILE,
        sslmode=sslmode,
        sslrootcert=str(ca) if ca else None,
        connect_timeout=int(TIMEOUT),
        application_name="lakehouse",
    )


def postgresql_refusal(err: psycopg2.Error) -> str | None:
    """'password' or 'pg_hba' when the server answered and refused the login; None when it did not answer."""
    text = str(err)
    return next((kind for marker, kind in REFUSALS.items() if marker in text), None)


def postgresql_reason(err: psycopg2.Error) -> str:
    """libpq's reason on one line, for the last address tried, without the "connection to server" prefix."""
    lines = str(err).splitlines()
    attempts = [line for line in lines if line.startswith("connection to server")] or lines
    return LIBPQ_PREFIX.sub("", attempts[-1] if attempts else "").strip() or type(err).__name__


def health(contract: Contract) -> tuple[bool, str]:
    """(healthy, text for the table) by the contract's readiness probe: a URL over HTTPS, a login at
    a PostgreSQL server, a TCP connection; a command runs on the service's host, not from here."""
    ca = contract.ca
    if ca is not None and not ca.is_file():
        return False, f"unknown (CA {ca} missing)"
    readiness = contract.readiness
    if contract.readiness_url:
        return _http_health(contract.readiness_url, ca)
    if contract.postgresql:
        return _postgresql_health(*contract.postgresql, ca)
    if tcp := readiness.get("tcp"):
        return _tcp_health(str(tcp["host"]), int(tcp["port"]))
    if readiness.get("command"):
        return False, "unknown (its readiness is a command on the service's host)"
    return False, "unknown (no readiness probe)"


def _http_health(url: str, ca: Path | None) -> tuple[bool, str]:
    reply = request(url, ca, timeout=HEALTH_TIMEOUT)
    if reply.status == 200:
        return True, "healthy"
    if reply.status is None:
        return False, f"unreachable ({reply.detail})"
    return False, f"unhealthy ({reply.status} {reply.detail})".rstrip()


def _tcp_health(host: str, port: int) -> tuple[bool, str]:
    try:
        socket.create_connection((host, port), timeout=TIMEOUT).close()
    except OSError as err:
        return False, f"unreachable ({err.strerror or type(err).__name__})"
    return True, "accepts connections"


def _postgresql_health(host: str, port: int, ca: Path | None) -> tuple[bool, str]:
    # Refusing a password-less login after the TLS handshake is what a healthy, locked server does.
    try:
        postgresql_connect(host, port, ca, PROBE_USER).close()
    except psycopg2.Error as err:
        if kind := postgresql_refusal(err):
            return True, "ready (auth required)" if kind == "password" else "ready (pg_hba.conf refuses this client)"
        return False, f"unreachable ({postgresql_reason(err)})"
    return True, "healthy"


# --- TLS refusals: what a client without the lakehouse CA, or offering an old protocol, gets ---------

# PostgreSQL's SSLRequest: a connection starts in plain text and asks the server to switch to TLS.
POSTGRESQL_SSL_REQUEST = struct.pack("!II", 8, 80877103)
OLD_TLS = ("TLSv1", "TLSv1_1")


def handshake(host: str, port: int, tls: ssl.SSLContext, postgresql: bool = False) -> str | None:
    """One TLS handshake (after PostgreSQL's SSLRequest for a PostgreSQL server): None when it
    succeeds, else OpenSSL's reason (e.g. TLSV1_ALERT_PROTOCOL_VERSION, CERTIFICATE_VERIFY_FAILED)."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
            if postgresql:
                raw.sendall(POSTGRESQL_SSL_REQUEST)
                if raw.recv(1) != b"S":
                    return "the server offers no TLS"
            with tls.wrap_socket(raw, server_hostname=host):
                return None
    except ssl.SSLError as err:
        return err.reason or SSL_NOISE.sub("", str(err))
    except OSError as err:
        return err.strerror or type(err).__name__


def old_tls_refused(host: str, port: int, postgresql: bool = False) -> tuple[bool, str]:
    """Whether the server refuses, with its protocol-version alert, a client offering only TLS 1.0,
    then only TLS 1.1 (the client is let to offer them: OpenSSL's security level 0)."""
    for name in OLD_TLS:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE  # the version is tested, not the certificate
        tls.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():  # the very versions under test are deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            tls.minimum_version = tls.maximum_version = getattr(ssl.TLSVersion, name)
        reason = handshake(host, port, tls, postgresql)
        if reason is None:
            return False, f"ACCEPTED {name.replace('_', '.')}"
        if reason != "TLSV1_ALERT_PROTOCOL_VERSION":
            return False, f"{name.replace('_', '.')}: no protocol-version alert ({reason})"
    return True, "TLS 1.0 and 1.1 refused (protocol version alert)"


def untrusted_without_ca(host: str, port: int, postgresql: bool = False) -> tuple[bool, str]:
    """Whether a client that trusts only the system's public CAs refuses the server's certificate."""
    reason = handshake(host, port, ssl.create_default_context(), postgresql)
    if reason is None:
        return False, "ACCEPTED by the system's CAs"
    return reason == "CERTIFICATE_VERIFY_FAILED", reason


def plain_http_refused(host: str, port: int, postgresql: bool = False) -> tuple[bool, str]:
    """Whether an HTTP request in plain text gets no success: a 4xx, a TLS alert or a closed connection
    (a PostgreSQL server's plain text is refused by its pg_hba.conf; the catalog_db checks see to that)."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
            raw.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            answer = raw.recv(64)
    except OSError as err:
        return True, f"connection ended ({err.strerror or type(err).__name__})"
    if not answer:
        return True, "connection closed"
    if not answer.startswith(b"HTTP/"):
        return True, "answered in TLS, not HTTP"
    status = answer.split(b" ", 2)[1].decode(errors="replace") if answer.count(b" ") >= 1 else "?"
    return not status.startswith(("1", "2", "3")), f"HTTP {status} in plain text"
