"""PostgreSQL on a systemd test host, checked from the host itself and from the controller.

Clients use only the published catalog database contract and the secret store, as any consumer
would. psycopg2 is not in the controller's environment, so SQL sessions run with psql on the host
(over the network, by DNS name); the controller checks the TLS handshake itself.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import ssl
import struct
import sys
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest

sys.path.insert(0, os.environ["MOLECULE_PROJECT_DIRECTORY"])
from lakehouse_cli.contracts import resolve_secret  # noqa: E402
from module_utils import lakehouse_contract  # noqa: E402

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
SECRETS = EPHEMERAL / "secrets"
HOST = "pg-1.molecule.lakehouse.test"
HOST_CA = "/usr/local/share/ca-certificates/lakehouse-molecule-ca.crt"
UNIT = "lakehouse-postgresql.service"
EXPORTER_UNIT = "lakehouse-postgresql-exporter.service"


@pytest.fixture(scope="module")
def contract():
    data = json.loads((EPHEMERAL / "state" / "contracts" / HOST / "catalog_db.json").read_text())
    lakehouse_contract.check(data, "catalog_db")
    return data


def server(contract) -> dict:
    [endpoint] = contract["endpoints"]
    return endpoint


def secret(ref: str) -> str:
    """Resolve a credential reference as every consumer does (the lakehouse command's resolver)."""
    return resolve_secret(ref, SECRETS)


def psql(host, contract, user: str, password: str, sql: str, sslmode: str | None = None, database: str = "postgres"):
    env = {
        "PGSSLMODE": sslmode or contract["sslmode"],
        "PGSSLROOTCERT": HOST_CA,
        "PGPASSWORD": password,
        "PGCONNECT_TIMEOUT": "10",
    }
    assignments = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
    endpoint = server(contract)
    command = (
        f"{assignments} psql -X -w -tA -h {endpoint['host']} -p {endpoint['port']} -U {shlex.quote(user)} "
        f"-d {shlex.quote(database)} -c {shlex.quote(sql)}"
    )
    return host.run(command)


def admin_password(contract) -> str:
    admin = contract["credentials"]["admin"]
    assert (admin["user"], admin["kind"]) == ("postgres", "password")
    return secret(admin["secret_ref"])


def test_unit_is_active_and_enabled_and_debian_units_are_not(host):
    unit = host.service("lakehouse-postgresql")
    assert unit.is_running
    assert unit.is_enabled
    debian = host.service("postgresql")
    assert not debian.is_running
    assert not debian.is_enabled
    clusters = host.run("pg_lsclusters --no-header")
    assert clusters.stdout.strip() == "", "Debian must not create its own cluster"


def test_unit_passes_systemd_verification_and_is_hardened(host):
    verify = host.run(f"systemd-analyze verify /etc/systemd/system/{UNIT}")
    assert verify.rc == 0, verify.stderr
    score = host.check_output(f"systemd-analyze security {UNIT} --no-pager | tail -n 1")
    exposure = float(score.split(f"level for {UNIT}:")[1].split()[0])
    print(f"systemd-analyze security {UNIT}: {score}")
    assert exposure <= 2.5, score


def test_runs_as_postgres_from_its_own_data_dir(host):
    server = host.process.filter(comm="postgres")
    assert server, "no postgres process"
    assert all(process.user == "postgres" for process in server)
    assert host.file("/var/lib/lakehouse-postgresql/15/PG_VERSION").content_string.strip() == "15"
    assert host.file("/var/lib/lakehouse-postgresql/15").mode == 0o700


def test_secret_files_are_private(host):
    for path in ("/etc/lakehouse-postgresql/postgres.pw", "/etc/lakehouse-postgresql/certs/server.key"):
        secret_file = host.file(path)
        assert secret_file.user == "postgres"
        assert secret_file.mode == 0o600, path
    for path in ("/etc/lakehouse-postgresql/postgresql.conf", "/etc/lakehouse-postgresql/pg_hba.conf"):
        assert host.file(path).mode == 0o640, path


def test_port_listening(host, contract):
    assert host.socket(f"tcp://0.0.0.0:{server(contract)['port']}").is_listening


def test_tls_handshake_from_the_controller_verifies_the_dns_name(contract):
    context = ssl.create_default_context(cafile=contract["tls"]["ca_ref"])
    with socket.create_connection((server(contract)["host"], server(contract)["port"]), timeout=10) as raw:
        raw.sendall(struct.pack("!ii", 8, 80877103))  # SSLRequest
        assert raw.recv(1) == b"S", "the server must offer TLS"
        with context.wrap_socket(raw, server_hostname=server(contract)["host"]) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_verify_full_connection_with_the_generated_password(host, contract):
    result = psql(
        host, contract, "postgres", admin_password(contract), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    )
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "t"


def test_plain_connection_is_refused(host, contract):
    result = psql(host, contract, "postgres", admin_password(contract), "SELECT 1", sslmode="disable")
    assert result.rc != 0
    assert "no encryption" in result.stderr or "rejects connection" in result.stderr, result.stderr


def test_wrong_and_default_passwords_are_refused(host, contract):
    for password in ("postgres", "not-the-password"):
        result = psql(host, contract, "postgres", password, "SELECT 1")
        assert result.rc != 0
        assert "password authentication failed" in result.stderr, result.stderr


def test_the_server_logs_json_lines_each_connection_among_them(host, contract):
    # A refused login is logged as one JSON object per line, in the files of the host's log directory.
    psql(host, contract, "postgres", "not-the-password", "SELECT 1")
    lines = host.check_output("cat /var/log/lakehouse-postgresql/postgresql-*.json").splitlines()
    assert lines, "no JSON log"
    entries = [json.loads(line) for line in lines]
    assert any("ready to accept connections" in e.get("message", "") for e in entries), lines[-5:]
    assert any(e.get("error_severity") == "FATAL" and "password authentication failed" in e.get("message", "")
               for e in entries), lines[-5:]  # fmt: skip


def test_declared_databases_and_users(host, contract):
    assert sorted(contract["databases"]) == ["iceberg_catalog", "nessie"]
    assert sorted(contract["credentials"]) == ["admin", "iceberg", "nessie"]
    admin = admin_password(contract)
    owners = psql(
        host,
        contract,
        "postgres",
        admin,
        "SELECT datname || ':' || pg_get_userbyid(datdba) FROM pg_database ORDER BY 1",
    )
    assert owners.rc == 0, owners.stderr
    lines = owners.stdout.split()
    assert "iceberg_catalog:iceberg" in lines
    assert "nessie:nessie" in lines
    assert not any(line.startswith("scratch_gone:") for line in lines)
    roles = psql(host, contract, "postgres", admin, "SELECT rolname FROM pg_roles WHERE rolname = 'retired'")
    assert roles.stdout.strip() == ""
    # Each application user logs in over TLS with its generated password and may create tables.
    for user, database in (("nessie", "nessie"), ("iceberg", "iceberg_catalog")):
        password = secret(contract["credentials"][user]["secret_ref"])
        result = psql(
            host, contract, user, password, "CREATE TABLE probe (id int); DROP TABLE probe; SELECT 1", database=database
        )
        assert result.rc == 0, result.stderr
        assert result.stdout.strip().endswith("1")


def test_rendered_config_names_hosts_not_addresses(host):
    files = "/etc/lakehouse-postgresql/postgresql.conf /etc/systemd/system/lakehouse-postgresql.service"
    rendered = host.run(rf"grep -rhoE '([0-9]{{1,3}}\.){{3}}[0-9]{{1,3}}' {files}")
    assert rendered.stdout.strip() == "", f"IP literal in rendered config: {rendered.stdout}"


def scrape(contract, headers: dict) -> tuple[int, str]:
    (metric,) = contract["metrics"]
    tls = ssl.create_default_context(cafile=contract["tls"]["ca_ref"])
    request = urllib.request.Request(metric["url"], headers=headers)  # noqa: S310 (the contract's https URL)
    try:
        with urllib.request.urlopen(request, timeout=10, context=tls) as reply:  # noqa: S310
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, ""


def test_the_exporter_serves_the_servers_metrics_to_the_scraper_only(host, contract):
    assert host.service("lakehouse-postgresql-exporter").is_running
    assert not host.service("prometheus-postgres-exporter").is_running  # the package's own unit
    (metric,) = contract["metrics"]
    assert (metric["component"], metric["auth"]) == ("exporter", "basic")
    assert scrape(contract, {})[0] == 401
    wrong = b64encode(b"prometheus:not-the-password").decode()
    assert scrape(contract, {"Authorization": f"Basic {wrong}"})[0] == 401
    credentials = metric["credentials"]
    token = b64encode(f"{credentials['user']}:{secret(credentials['secret_ref'])}".encode()).decode()
    status, body = scrape(contract, {"Authorization": f"Basic {token}"})
    assert status == 200
    assert "\npg_up 1\n" in body, "the exporter could not log in to the server"


def test_the_exporter_unit_is_hardened(host):
    score = host.check_output(f"systemd-analyze security {EXPORTER_UNIT} --no-pager | tail -n 1")
    exposure = float(score.split(f"level for {EXPORTER_UNIT}:")[1].split()[0])
    print(f"systemd-analyze security {EXPORTER_UNIT}: {score}")
    assert exposure <= 2.5, score
