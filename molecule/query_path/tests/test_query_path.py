"""The query path across four hosts that know each other only by name, checked as its users would.

store-1 runs the object storage and the catalog database (with its metrics exporter), catalog-1
the Iceberg REST catalog, coordinator-1 and worker-1 the Trino cluster, and coordinator-1 also
Prometheus, which scrapes every one of them; every host runs the node exporter. Controller-side
checks use only the published contracts and the secret store; the `lakehouse verify` checks run
as the command runs them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from trino.auth import BasicAuthentication
from trino.dbapi import connect

sys.path.insert(0, os.environ["MOLECULE_PROJECT_DIRECTORY"])
from lakehouse_cli import checks, contracts  # noqa: E402
from lakehouse_cli.contracts import resolve_secret  # noqa: E402

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
SECRETS = EPHEMERAL / "secrets"
STATE = EPHEMERAL / "state"
DOMAIN = "molecule.lakehouse.test"
STORE, CATALOG, COORDINATOR, WORKER = (f"{name}-1.{DOMAIN}" for name in ("store", "catalog", "coordinator", "worker"))
UNITS = (
    "lakehouse-minio", "lakehouse-postgresql", "lakehouse-postgresql-exporter", "lakehouse-nessie",
    "lakehouse-nessie-front", "lakehouse-trino", "lakehouse-trino-worker", "lakehouse-prometheus",
    "lakehouse-node-exporter",
)  # fmt: skip
RUNS = {
    STORE: {"lakehouse-minio", "lakehouse-postgresql", "lakehouse-postgresql-exporter", "lakehouse-node-exporter"},
    CATALOG: {"lakehouse-nessie", "lakehouse-nessie-front", "lakehouse-node-exporter"},
    COORDINATOR: {"lakehouse-trino", "lakehouse-prometheus", "lakehouse-node-exporter"},
    WORKER: {"lakehouse-trino-worker", "lakehouse-node-exporter"},
}
# Checks that must be among those `lakehouse verify` runs here, one per layer boundary at least.
EXPECTED_CHECKS = {
    "object_storage put/get/delete round trip",
    "catalog_db authenticated round trip",
    "catalog anonymous access refused",  # the REST catalog requires a bearer token
    "query workers registered",
    "query Iceberg round trip",
    "query_worker readiness",
    "query metrics refuse an anonymous scrape",  # the coordinator's and the worker's
    "observability every published metrics endpoint scraped and up",
}
IPV4 = r"([0-9]{1,3}\.){3}[0-9]{1,3}"


def node_id(inventory_hostname: str) -> str:
    """Trino's node.id for a host, as roles/trino/templates/node.properties.j2 renders it."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in inventory_hostname)


@pytest.fixture(scope="module")
def query():
    # checked against its schema as read; the coordinator's host also publishes observability and host
    [found] = [c for c in contracts.find_contracts(STATE, hosts=[COORDINATOR]) if c.service == "query"]
    return found.data


def test_every_layer_published_its_contract_on_its_own_host():
    published = {(c.host, c.service) for c in contracts.find_contracts(STATE)}
    assert published == {
        (STORE, "object_storage"),
        (STORE, "catalog_db"),
        (CATALOG, "catalog"),
        (COORDINATOR, "query"),
        (COORDINATOR, "observability"),
        (WORKER, "query_worker"),
        *((name, "host") for name in (STORE, CATALOG, COORDINATOR, WORKER)),
    }


def test_the_worker_registered_with_the_coordinator(query, monkeypatch):
    # requests lets these variables override an explicit `verify`: trust the lakehouse CA alone.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(name, query["tls"]["ca_ref"])
    admin = query["credentials"]["admin"]
    user, password = admin["user"], resolve_secret(admin["secret_ref"], SECRETS)
    [endpoint] = query["endpoints"]
    with connect(
        host=endpoint["host"],
        port=endpoint["port"],
        user=user,
        auth=BasicAuthentication(user, password),
        http_scheme="https",
        verify=query["tls"]["ca_ref"],
    ) as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT node_id, coordinator, state FROM system.runtime.nodes")
        nodes = sorted(tuple(row) for row in cursor.fetchall())
    assert nodes == sorted([(node_id(COORDINATOR), True, "active"), (node_id(WORKER), False, "active")])
    assert query["workers"] == [WORKER]


def test_lakehouse_verify_passes_across_the_hosts():
    found = contracts.find_contracts(STATE)
    results = checks.run_checks(found, checks.VerifyContext(contracts=found))
    report = "\n".join(f"{r.check} {r.endpoint}: {r.result}" for r in results)
    print(report)
    missing = EXPECTED_CHECKS - {r.check for r in results}
    assert not missing, f"checks not run: {missing}\n{report}"
    assert all(r.ok for r in results), report
    scraped = {r.endpoint for r in results if r.check.startswith("observability every")}
    # Every service and host across the four hosts, the worker on its own host among them.
    assert f"https://{WORKER}:8443/metrics" in scraped and f"https://{STORE}:9187/metrics" in scraped, report
    assert len(scraped) == 10, report  # MinIO, PostgreSQL, Nessie, 2 Trino nodes, Prometheus, 4 hosts
    round_trip = [r.endpoint for r in results if r.check == "query Iceberg round trip"]
    # pyiceberg -> Trino on the coordinator, then Trino -> pyiceberg through the catalog host.
    assert [urlsplit(url).hostname for url in round_trip] == [COORDINATOR, CATALOG], report


def test_each_host_runs_only_its_own_services(host):
    name = host.backend.get_hostname()
    for unit in UNITS:
        installed = host.file(f"/etc/systemd/system/{unit}.service").exists
        if unit in RUNS[name]:
            assert installed, f"{unit} is not installed on {name}"
            assert host.service(unit).is_running, f"{unit} is not running on {name}"
            assert host.service(unit).is_enabled, f"{unit} is not enabled on {name}"
        else:
            assert not installed, f"{unit} is installed on {name}"
            assert not host.service(unit).is_running, f"{unit} runs on {name}"


def test_trino_nodes_reach_each_other_by_name(host):
    name = host.backend.get_hostname()
    if name not in (COORDINATOR, WORKER):
        pytest.skip("no Trino node")
    node = host.file("/etc/lakehouse-trino/node.properties").content_string.splitlines()
    assert f"node.internal-address={name}" in node
    assert f"node.id={node_id(name)}" in node
    config = host.file("/etc/lakehouse-trino/config.properties").content_string.splitlines()
    assert f"discovery.uri=https://{COORDINATOR}:8443" in config
    assert f"coordinator={str(name == COORDINATOR).lower()}" in config


def test_rendered_config_names_hosts_not_addresses(host):
    # Every service's configuration and unit; pg_hba.conf holds address ranges by design (which
    # clients may connect), not endpoints.
    paths = "/etc/lakehouse-* /etc/minio /etc/systemd/system/lakehouse-*.service"
    files = host.run(f"find {paths} -type f ! -name pg_hba.conf 2>/dev/null")
    assert files.stdout.strip(), "no rendered configuration found"
    rendered = host.run(rf"grep -rnoE '{IPV4}' {paths} --exclude=pg_hba.conf 2>/dev/null")
    # Loopback names no host (a server behind its front on the same host), as tests/test_principles.py allows.
    found = [line for line in rendered.stdout.splitlines() if not line.endswith(":127.0.0.1")]
    assert found == [], f"IP literal in rendered config: {found}"


def test_the_worker_drains_on_stop(host):
    # Last: it stops the worker. systemd runs the unit's ExecStop, which asks Trino for a graceful
    # shutdown and waits until the worker has finished its tasks and exited on its own.
    if host.backend.get_hostname() != WORKER:
        pytest.skip("not a worker")
    since = host.run("date +%s").stdout.strip()
    assert host.run("systemctl stop lakehouse-trino-worker.service").rc == 0
    journal = host.run(f"journalctl -u lakehouse-trino-worker.service --since @{since} --no-pager -o cat").stdout
    assert "graceful shutdown requested" in journal, journal[-2000:]
    assert "Shutdown requested" in journal, journal[-2000:]  # Trino's own log line
    assert host.run("systemctl show -p Result --value lakehouse-trino-worker.service").stdout.strip() == "success"
