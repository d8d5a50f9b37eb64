"""`lakehouse status`/`verify` for the query path (catalog_db, catalog, query, query_worker), no stack needed.

Contracts are written in the shapes the roles publish; servers are loopback stand-ins (a closed port,
a TLS server that requires a client certificate, a server that answers a fixed status).
"""

from __future__ import annotations

import http.server
import os
import ssl
import sys
import threading
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from minio_server import free_port, write_tls_files  # noqa: E402

from lakehouse_cli import LakehouseError, clients, probe  # noqa: E402
from lakehouse_cli.checks import CHECKS, VerifyContext, check, checks_for, run_checks  # noqa: E402
from lakehouse_cli.contracts import Contract  # noqa: E402
from module_utils import lakehouse_contract  # noqa: E402

HOST = "metal-1.sandbox.lakehouse.test"
CA = "/nowhere/pki/ca.crt"


def contract(data: dict, host: str = HOST) -> Contract:
    return Contract(host=host, service=data["service"], path=Path(f"/state/{data['service']}.json"), data=data)


def endpoint(name: str, url: str) -> dict:
    parts = urlsplit(url)
    return {"name": name, "url": url, "scheme": parts.scheme, "host": parts.hostname, "port": parts.port}


def catalog_db(host: str = HOST, port=5432, ca: str = CA) -> dict:
    url = f"postgresql://{host}:{port}/"
    return {
        "schema_version": 1,
        "service": "catalog_db",
        "implementation": "postgresql",
        "version": "15",
        "url": url,
        "endpoints": [endpoint("postgresql", url)],
        "sslmode": "verify-full",
        "tls": {"ca_ref": ca},
        "health": {"readiness": {"tcp": {"host": host, "port": port, "protocol": "postgresql"}}},
        "databases": ["nessie", "iceberg_catalog"],
        "credentials": {
            "admin": {
                "user": "postgres",
                "secret_ref": "lakehouse_secret:postgresql/postgres_password",
                "kind": "password",
            },
            "nessie": {"user": "nessie", "secret_ref": "lakehouse_secret:postgresql/users/nessie", "kind": "password"},
            "iceberg": {
                "user": "iceberg",
                "secret_ref": "lakehouse_secret:postgresql/users/iceberg",
                "kind": "password",
            },
        },
    }


OBJECT_STORAGE = {
    "endpoint": f"https://{HOST}:9000",
    "region": "us-east-1",
    "path_style": True,
    "credentials": {
        "user": "lakehouse-app",
        "secret_ref": "lakehouse_secret:minio/users/lakehouse-app",
        "kind": "s3_secret_key",
    },
}


def rest_catalog(uri: str = f"https://{HOST}:19120/iceberg/main", ca: str = CA) -> dict:
    management = f"https://{HOST}:19121"
    return {
        "schema_version": 1,
        "service": "catalog",
        "type": "rest",
        "implementation": "nessie",
        "name": "lakehouse",
        "url": uri,
        "endpoints": [endpoint("rest", uri), endpoint("management", management)],
        "warehouse": "s3://warehouse/",
        "health": {"readiness": {"url": f"{management}/q/health/ready"}},
        "metrics": [{"component": "nessie", "url": f"{management}/q/metrics", "auth": "none"}],
        "tls": {"ca_ref": ca},
        "rest": {"uri": uri, "warehouse": "warehouse", "auth": "bearer"},
        "credentials": {
            "client": {
                "user": "lakehouse-clients",
                "secret_ref": "lakehouse_secret:nessie/client_token",
                "kind": "bearer_token",
            }
        },
        "object_storage": OBJECT_STORAGE,
    }


def jdbc_catalog() -> dict:
    url = f"postgresql://{HOST}:5432/iceberg_catalog"
    return {
        "schema_version": 1,
        "service": "catalog",
        "type": "jdbc",
        "implementation": "postgresql",
        "name": "lakehouse",
        "url": url,
        "endpoints": [endpoint("jdbc", url)],
        "warehouse": "s3://warehouse/jdbc",
        "health": {"readiness": {"tcp": {"host": HOST, "port": 5432, "protocol": "postgresql"}}},
        "tls": {"ca_ref": CA},
        "jdbc": {"host": HOST, "port": 5432, "database": "iceberg_catalog", "sslmode": "verify-full"},
        "credentials": {
            "client": {"user": "iceberg", "secret_ref": "lakehouse_secret:postgresql/users/iceberg", "kind": "password"}
        },
        "object_storage": OBJECT_STORAGE,
    }


ADMIN = {"user": "admin", "secret_ref": "lakehouse_secret:trino/users/admin", "kind": "password"}


def query(url: str = f"https://{HOST}:8443", ca: str = CA) -> dict:
    return {
        "schema_version": 1,
        "service": "query",
        "implementation": "trino",
        "url": url,
        "endpoints": [endpoint("https", url)],
        "health": {"readiness": {"url": f"{url}/v1/info"}},
        "metrics": [{"component": "coordinator", "url": f"{url}/metrics", "auth": "basic", "credentials": ADMIN}],
        "tls": {"ca_ref": ca},
        "credentials": {"admin": ADMIN},
        "catalog": "lakehouse",
        "catalog_type": "rest",
        "workers": ["metal-2.sandbox.lakehouse.test"],
    }


def query_worker() -> dict:
    url = "https://metal-2.sandbox.lakehouse.test:8443"
    return {
        "schema_version": 1,
        "service": "query_worker",
        "implementation": "trino",
        "url": url,
        "endpoints": [endpoint("https", url)],
        "health": {"readiness": {"url": f"{url}/v1/info"}},
        "tls": {"ca_ref": CA},
        "coordinator": f"https://{HOST}:8443",
    }


def applicable(item: Contract) -> list[str]:
    return [c.name for c in checks_for(item.service) if c.when(item)]


def run_one(item: Contract, name: str, ctx: VerifyContext | None = None) -> list:
    """The outcomes of one check (exceptions propagate)."""
    [chosen] = [c for c in checks_for(item.service) if c.name == name and c.when(item)]
    return list(chosen.run(item, ctx or VerifyContext()))


# --- contracts --------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [catalog_db, rest_catalog, jdbc_catalog, query, query_worker])
def test_the_contracts_here_have_the_published_shapes(build):
    data = build()
    lakehouse_contract.check(data, data["service"])


def test_the_postgresql_server_of_a_contract():
    assert contract(catalog_db()).postgresql == (HOST, 5432)
    assert contract(catalog_db(port="5433")).postgresql == (HOST, 5433)  # as a template may render it
    assert contract(jdbc_catalog()).postgresql == (HOST, 5432)
    for other in (rest_catalog(), query(), query_worker()):
        assert contract(other).postgresql is None


def test_a_missing_field_is_named():
    item = contract(jdbc_catalog())
    assert item.require("jdbc.database") == "iceberg_catalog"
    assert item.credential("client")["secret_ref"] == "lakehouse_secret:postgresql/users/iceberg"
    with pytest.raises(LakehouseError, match="the catalog contract of .* has no credentials.admin"):
        item.credential("admin")
    with pytest.raises(LakehouseError, match="the catalog contract of .* has no rest.uri"):
        item.require("rest.uri")


# --- health -----------------------------------------------------------------------------------


@pytest.fixture
def probes(monkeypatch, tmp_path):
    """Record which probe health() chooses; the CA exists."""
    calls = []
    monkeypatch.setattr(probe, "_http_health", lambda url, ca: calls.append(("http", url)) or (True, "healthy"))
    monkeypatch.setattr(
        probe, "_postgresql_health", lambda host, port, ca: calls.append(("postgresql", host, port)) or (True, "ready")
    )
    ca = tmp_path / "ca.crt"
    ca.write_text("not parsed here\n")
    return calls, str(ca)


def test_health_probes_by_contract_kind(probes):
    calls, ca = probes
    for data in (catalog_db(), jdbc_catalog(), rest_catalog(), query(), query_worker()):
        data["tls"]["ca_ref"] = ca
        assert probe.health(contract(data)) == (True, "healthy" if "url" in data["health"]["readiness"] else "ready")
    assert calls == [
        ("postgresql", HOST, 5432),
        ("postgresql", HOST, 5432),
        ("http", f"https://{HOST}:19121/q/health/ready"),
        ("http", f"https://{HOST}:8443/v1/info"),
        ("http", "https://metal-2.sandbox.lakehouse.test:8443/v1/info"),
    ]


def test_health_without_a_way_to_probe(probes):
    calls, ca = probes
    assert probe.health(contract(catalog_db(ca="/nowhere/ca.crt"))) == (False, "unknown (CA /nowhere/ca.crt missing)")
    no_probe = {"service": "catalog", "url": "x", "tls": {"ca_ref": ca}, "health": {}}
    assert probe.health(contract(no_probe)) == (False, "unknown (no readiness probe)")
    on_host = no_probe | {"health": {"readiness": {"command": ["pg_isready"]}}}
    assert probe.health(contract(on_host)) == (False, "unknown (its readiness is a command on the service's host)")
    assert calls == []


def test_tcp_readiness_is_a_connection(tmp_path):
    import socket

    with socket.create_server(("localhost", 0)) as server:
        port = server.getsockname()[1]
        glue = {"service": "catalog", "url": "x", "health": {"readiness": {"tcp": {"host": "localhost", "port": port}}}}
        assert probe.health(contract(glue)) == (True, "accepts connections")
    ok, text = probe.health(contract(glue))
    assert not ok and text.startswith("unreachable (")


def test_postgresql_on_a_closed_port_is_unhealthy_in_one_line(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("")  # never read: nothing answers
    ok, text = probe.health(contract(catalog_db("127.0.0.1", free_port(), str(ca))))
    assert (ok, text) == (False, "unreachable (Connection refused)")


@pytest.mark.parametrize(
    ("message", "kind", "reason"),
    [
        (
            'connection to server at "h" (127.0.0.1), port 5432 failed: fe_sendauth: no password supplied\n',
            "password",
            "fe_sendauth: no password supplied",
        ),
        (
            'connection to server at "h" (127.0.0.1), port 5432 failed: FATAL:  password authentication failed for '
            'user "postgres"\n',
            "password",
            'password authentication failed for user "postgres"',
        ),
        (
            'connection to server at "h" (127.0.0.1), port 5432 failed: FATAL:  pg_hba.conf rejects connection for '
            'host "127.0.0.1", user "postgres", database "postgres", no encryption\n',
            "pg_hba",
            'pg_hba.conf rejects connection for host "127.0.0.1", user "postgres", database "postgres", no encryption',
        ),
        (
            'connection to server at "h" (127.0.0.1), port 5432 failed: SSL error: certificate verify failed\n',
            None,
            "SSL error: certificate verify failed",
        ),
        (
            'connection to server at "h" (::1), port 5432 failed: Connection refused\n\tIs the server running on that '
            'host and accepting TCP/IP connections?\nconnection to server at "h" (127.0.0.1), port 5432 failed: '
            "timeout expired\n",
            None,
            "timeout expired",
        ),
    ],
)
def test_libpq_refusals_and_reasons(message, kind, reason):
    import psycopg2

    err = psycopg2.OperationalError(message)
    assert (probe.postgresql_refusal(err), probe.postgresql_reason(err)) == (kind, reason)


# --- registration -----------------------------------------------------------------------------


def test_each_service_has_its_checks():
    common = ["readiness"]
    tls = ["TLS 1.1 and below refused", "certificate refused without the lakehouse CA"]  # every TLS endpoint
    https = [*tls, "plain HTTP refused"]  # ... and plain HTTP for an HTTPS one
    assert applicable(contract(catalog_db())) == [
        *common,
        *tls,
        "anonymous access refused",
        "default credentials refused",
        "plain-text connection refused",
        "authenticated round trip",
    ]
    # for every contract whose metrics ask for credentials
    metrics = ["metrics refuse an anonymous scrape", "metrics refuse a wrong credential"]
    assert applicable(contract(rest_catalog())) == [*common, *https, "anonymous access refused", "forged token refused"]
    assert applicable(contract(jdbc_catalog())) == [
        *common,
        *tls,
        "anonymous access refused",
        "default credentials refused",
    ]
    assert applicable(contract(query())) == [
        *common,
        *metrics,
        *https,
        "anonymous access refused",
        "default credentials refused",
        "workers registered",
        "Iceberg round trip",
    ]
    assert applicable(contract(query_worker())) == [*common, *https]


def test_postgresql_checks_are_shared_by_catalog_db_and_the_jdbc_catalog():
    def runs(service: str, name: str):
        return {c.run for c in checks_for(service) if c.name == name}

    for name in ("anonymous access refused", "default credentials refused"):
        jdbc = {c.run for c in checks_for("catalog") if c.name == name and c.when(contract(jdbc_catalog()))}
        assert jdbc == runs("catalog_db", name)


# --- secrets stay out of results --------------------------------------------------------------


def test_secret_values_are_masked_in_what_checks_report(tmp_path, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_SECRET_TRINO_USERS_ADMIN", "pa ss/w@rd")
    ctx = VerifyContext(env=dict(os.environ))
    monkeypatch.setitem(CHECKS, "test_leaky", [])  # registered for this test only

    @check("test_leaky", "leak")
    def leak(contract, ctx):
        value = ctx.secret(contract, "lakehouse_secret:trino/users/admin")
        raise RuntimeError(f"postgresql://u:pa%20ss%2Fw%40rd@h/db failed\n with {value}")

    (_, result) = run_checks([contract({"service": "test_leaky", "url": "https://x"})], ctx)
    assert result.detail == "RuntimeError: postgresql://u:<hidden>@h/db failed with <hidden>"
    assert "pa ss" not in result.result


# --- CA trust for the Python clients ----------------------------------------------------------


def test_the_ca_bundle_is_set_for_the_block_only(tmp_path, monkeypatch):
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nlakehouse\n-----END CERTIFICATE-----")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    for name in ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)

    with pytest.raises(RuntimeError), clients.ca_bundle_env([ca, None, ca], tmp_path / "bundles") as bundle:
        assert {os.environ[name] for name in clients.CA_ENV} == {str(bundle)}
        assert bundle.parent == tmp_path / "bundles"
        assert bundle.read_text().count("lakehouse") == 1  # each CA once, after the system's
        assert bundle.read_text().endswith("-----END CERTIFICATE-----\n")
        raise RuntimeError("a failing check")

    assert dict(os.environ) == before
    assert bundle.exists()  # pyarrow's S3 client keeps using the first path it saw in a process


def test_iceberg_properties_for_both_catalog_types():
    values = {
        "lakehouse_secret:minio/users/lakehouse-app": "s3-secret",
        "lakehouse_secret:postgresql/users/iceberg": "p@ss:w/rd",
        "lakehouse_secret:nessie/client_token": "t0ken",
    }
    s3 = {
        "s3.endpoint": f"https://{HOST}:9000",
        "s3.region": "us-east-1",
        "s3.access-key-id": "lakehouse-app",
        "s3.secret-access-key": "s3-secret",
        "s3.force-virtual-addressing": "false",
    }

    jdbc = clients.iceberg_properties(contract(jdbc_catalog()), values.__getitem__)
    assert jdbc == {
        **s3,
        "type": "sql",
        "uri": f"postgresql+psycopg2://iceberg:p%40ss%3Aw%2Frd@{HOST}:5432/iceberg_catalog"
        "?sslmode=verify-full&sslrootcert=%2Fnowhere%2Fpki%2Fca.crt",
        "init_catalog_tables": "false",
        "warehouse": "s3://warehouse/jdbc",
    }

    rest = rest_catalog()
    assert clients.iceberg_properties(contract(rest), values.__getitem__) == {
        **s3,
        "token": "t0ken",  # credentials.client, a bearer token
        "type": "rest",
        "uri": rest["rest"]["uri"],
        "warehouse": "warehouse",
        "ssl": {"cabundle": CA},
    }
    rest["rest"]["auth"] = "none"
    assert "token" not in clients.iceberg_properties(contract(rest), values.__getitem__)


def test_the_round_trip_needs_the_catalog_named_by_the_query_contract():
    ctx = VerifyContext(contracts=[contract(query()), contract(rest_catalog() | {"name": "other"})])
    with pytest.raises(LakehouseError, match="no published catalog contract is named 'lakehouse'"):
        run_one(contract(query()), "Iceberg round trip", ctx)


# --- refusals over HTTPS, against loopback stand-ins ------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    certs = tmp_path_factory.mktemp("tls") / "certs"
    ca = write_tls_files(certs, "localhost")
    return ca, certs / "public.crt", certs / "private.key"


def serve(tls_files, status: int, client_certificate: bool):
    """An HTTPS server on localhost that answers every request with `status`."""
    ca, cert, key = tls_files

    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self):
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = reply

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    if client_certificate:
        tls.verify_mode = ssl.CERT_REQUIRED
        tls.load_verify_locations(ca)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"https://localhost:{server.server_address[1]}"


@pytest.mark.parametrize(
    ("status", "client_certificate", "ok", "detail"),
    [
        (200, True, True, "refused in the TLS handshake: "),  # then the alert, or a reset that lost it
        (401, False, True, "401 Unauthorized"),
        (200, False, False, "ACCEPTED (200 OK)"),
    ],
)
def test_rest_catalog_anonymous_access(tls_files, status, client_certificate, ok, detail):
    server, url = serve(tls_files, status, client_certificate)
    try:
        [result] = run_one(contract(rest_catalog(f"{url}/iceberg/main", str(tls_files[0]))), "anonymous access refused")
    finally:
        server.shutdown()
    assert (result.endpoint, result.ok) == (f"{url}/iceberg/main/v1/config", ok)
    assert result.detail.startswith(detail)


@pytest.mark.parametrize(("status", "ok"), [(401, True), (200, False)])
def test_trino_refuses_anonymous_and_default_credentials(tls_files, status, ok):
    server, url = serve(tls_files, status, client_certificate=False)
    try:
        item = contract(query(url, str(tls_files[0])))
        results = [*run_one(item, "anonymous access refused"), *run_one(item, "default credentials refused")]
    finally:
        server.shutdown()
    for result in results:
        assert (result.endpoint, result.ok) == (f"{url}/v1/statement", ok)


class Accepted:
    def close(self):
        pass


@pytest.mark.parametrize(
    ("answer", "ok", "detail"),
    [
        ("FATAL:  pg_hba.conf rejects connection for host, no encryption", True, "pg_hba.conf rejects"),
        ("fe_sendauth: no password supplied", False, "no password supplied (expected a pg_hba refusal)"),
        ("Connection refused", False, "Connection refused"),
        (None, False, "postgres is ACCEPTED"),
    ],
)
def test_a_plain_text_connection_must_be_refused_by_pg_hba(monkeypatch, answer, ok, detail):
    import psycopg2

    def connect(host, port, ca, user, password, sslmode):
        assert (host, port, user, password, sslmode) == (HOST, 5432, "postgres", "", "disable")
        if answer is None:
            return Accepted()
        raise psycopg2.OperationalError(f'connection to server at "{host}" (192.0.2.1), port 5432 failed: {answer}\n')

    monkeypatch.setattr(probe, "postgresql_connect", connect)
    [result] = run_one(contract(catalog_db()), "plain-text connection refused")
    assert (result.endpoint, result.ok) == (f"postgresql://postgres@{HOST}:5432?sslmode=disable", ok)
    assert detail in result.detail


def test_prometheus_targets_are_read_again_until_every_one_is_up(monkeypatch):
    """Right after a start a target may be down or missing; verify reads again, bounded, and
    fails only on what is still not up at the deadline."""
    from lakehouse_cli import checks, monitoring

    class Observability:
        def credential(self, role):
            return {"user": "admin", "secret_ref": "lakehouse_secret:prometheus/admin"}

    wanted = {"https://a:1/metrics": ({"name": "a"}, {}), "https://b:2/metrics": ({"name": "b"}, {})}
    readings = iter([{"a": "down", "b": "missing"}, {"a": "up", "b": "pending"}, {"a": "up", "b": "up"}])
    monkeypatch.setattr(monitoring, "expected", lambda contracts: wanted)
    monkeypatch.setattr(monitoring, "active_targets", lambda *args: next(readings))
    monkeypatch.setattr(monitoring, "describe", lambda published, target, active: (active[published["name"]], ""))
    monkeypatch.setattr(checks.time, "sleep", lambda seconds: None)
    ctx = VerifyContext(env={})
    monkeypatch.setattr(ctx, "secret", lambda contract, ref: "password")
    outcomes = list(checks.prometheus_targets_up(Observability(), ctx))
    assert [o.ok for o in outcomes] == [True, True]

    readings = iter([{"a": "up", "b": "down"}] * 1000)
    clock = iter(range(0, 10_000, 30))
    monkeypatch.setattr(checks.time, "monotonic", lambda: next(clock))
    outcomes = list(checks.prometheus_targets_up(Observability(), ctx))
    assert [o.ok for o in outcomes] == [True, False]


# --- TLS refusals: each check passes against a strict server and fails against a lax one ---------


def tls_server(tls_files, oldest: ssl.TLSVersion, plain: bool = False):
    """A server on localhost: HTTPS accepting TLS from `oldest` on, or plain HTTP; every answer 200."""
    _, cert, key = tls_files
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Ok", (http.server.BaseHTTPRequestHandler,), {
        "do_GET": lambda self: (self.send_response(200), self.send_header("Content-Length", "0"), self.end_headers()),
        "log_message": lambda self, *args: None,
    }))  # fmt: skip
    if not plain:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
        tls.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            tls.minimum_version = oldest
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def test_old_tls_is_refused_by_a_strict_server_and_reported_accepted_by_a_lax_one(tls_files):
    strict, strict_port = tls_server(tls_files, ssl.TLSVersion.TLSv1_2)
    lax, lax_port = tls_server(tls_files, ssl.TLSVersion.TLSv1)
    try:
        assert probe.old_tls_refused("localhost", strict_port) == (
            True,
            "TLS 1.0 and 1.1 refused (protocol version alert)",
        )
        ok, detail = probe.old_tls_refused("localhost", lax_port)
        assert not ok and detail.startswith("ACCEPTED TLSv1"), detail
    finally:
        strict.shutdown(), lax.shutdown()


def test_a_certificate_of_the_lakehouse_ca_is_refused_by_a_client_without_it(tls_files):
    server, port = tls_server(tls_files, ssl.TLSVersion.TLSv1_2)
    try:
        assert probe.untrusted_without_ca("localhost", port) == (True, "CERTIFICATE_VERIFY_FAILED")
        assert probe.handshake("localhost", port, ssl.create_default_context(cafile=str(tls_files[0]))) is None
    finally:
        server.shutdown()


def test_plain_http_is_refused_by_an_https_server_and_reported_accepted_by_a_plain_one(tls_files):
    https, https_port = tls_server(tls_files, ssl.TLSVersion.TLSv1_2)
    plain, plain_port = tls_server(tls_files, ssl.TLSVersion.TLSv1_2, plain=True)
    try:
        ok, detail = probe.plain_http_refused("localhost", https_port)
        assert ok, detail
        assert probe.plain_http_refused("localhost", plain_port) == (False, "HTTP 200 in plain text")
    finally:
        https.shutdown(), plain.shutdown()
