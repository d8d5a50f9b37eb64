"""The query path across six hosts that know each other only by name, checked as its users would.

store-1 runs the object storage, db-1 the catalog database (with its metrics exporter and its
backup timer), catalog-1 the Iceberg REST catalog, coordinator-1, worker-1 and worker-2 the Trino
cluster, and coordinator-1 also Prometheus, which scrapes every one of them; every host runs the
node exporter. Controller-side checks use only the published contracts and the secret store; the
`lakehouse verify` checks run as the command runs them. A change of the workers' settings
restarts them one at a time under a query loop that must see no failure. Last, db-1 is lost and
the catalog database is restored from its backup onto catalog-1, every table readable as before.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from trino.auth import BasicAuthentication
from trino.dbapi import connect

sys.path.insert(0, os.environ["MOLECULE_PROJECT_DIRECTORY"])
from lakehouse_cli import checks, contracts, load  # noqa: E402
from lakehouse_cli.contracts import resolve_secret  # noqa: E402

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
INVENTORY = Path(os.environ["MOLECULE_INVENTORY_FILE"])
SECRETS = EPHEMERAL / "secrets"
STATE = EPHEMERAL / "state"
DOMAIN = "molecule.lakehouse.test"
STORE, DB, CATALOG, COORDINATOR, WORKER = (
    f"{name}-1.{DOMAIN}" for name in ("store", "db", "catalog", "coordinator", "worker")
)
WORKER_2 = f"worker-2.{DOMAIN}"
WORKERS = (WORKER, WORKER_2)
UNITS = (
    "lakehouse-minio", "lakehouse-postgresql", "lakehouse-postgresql-exporter", "lakehouse-nessie",
    "lakehouse-nessie-front", "lakehouse-trino", "lakehouse-trino-worker", "lakehouse-prometheus",
    "lakehouse-node-exporter",
)  # fmt: skip
RUNS = {
    STORE: {"lakehouse-minio", "lakehouse-node-exporter"},
    DB: {"lakehouse-postgresql", "lakehouse-postgresql-exporter", "lakehouse-node-exporter"},
    CATALOG: {"lakehouse-nessie", "lakehouse-nessie-front", "lakehouse-node-exporter"},
    COORDINATOR: {"lakehouse-trino", "lakehouse-prometheus", "lakehouse-node-exporter"},
    WORKER: {"lakehouse-trino-worker", "lakehouse-node-exporter"},
    WORKER_2: {"lakehouse-trino-worker", "lakehouse-node-exporter"},
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
BOUND_SECONDS = 300  # every wait on a host's state below
CA_ON_HOSTS = "/usr/local/share/ca-certificates/lakehouse-molecule-ca.crt"  # the delivery's delivery_ca_path


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
        (DB, "catalog_db"),
        (CATALOG, "catalog"),
        (COORDINATOR, "query"),
        (COORDINATOR, "observability"),
        *((name, "query_worker") for name in WORKERS),
        *((name, "host") for name in RUNS),
    }


def sql(query: dict, monkeypatch, *statements: str) -> list[tuple]:
    """Each statement through the coordinator as its administrator; the last one's rows."""
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
        for statement in statements:
            cursor.execute(statement)
            rows = [tuple(row) for row in cursor.fetchall()]
    return rows


def test_the_worker_registered_with_the_coordinator(query, monkeypatch):
    nodes = sorted(sql(query, monkeypatch, "SELECT node_id, coordinator, state FROM system.runtime.nodes"))
    assert nodes == sorted([(node_id(COORDINATOR), True, "active"), *((node_id(w), False, "active") for w in WORKERS)])
    assert query["workers"] == list(WORKERS)


def test_lakehouse_verify_passes_across_the_hosts():
    found = contracts.find_contracts(STATE)
    results = checks.run_checks(found, checks.VerifyContext(contracts=found))
    report = "\n".join(f"{r.check} {r.endpoint}: {r.result}" for r in results)
    print(report)
    missing = EXPECTED_CHECKS - {r.check for r in results}
    assert not missing, f"checks not run: {missing}\n{report}"
    assert all(r.ok for r in results), report
    scraped = {r.endpoint for r in results if r.check.startswith("observability every")}
    # Every service and host across the six hosts, the workers on their own hosts among them.
    assert f"https://{WORKER_2}:8443/metrics" in scraped and f"https://{DB}:9187/metrics" in scraped, report
    assert len(scraped) == 13, report  # MinIO, PostgreSQL, Nessie, 3 Trino nodes, Prometheus, 6 hosts
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


@pytest.mark.parametrize("name", (COORDINATOR, *WORKERS))
def test_trino_nodes_reach_each_other_by_name(name):
    node = on_host(name, "cat", "/etc/lakehouse-trino/node.properties").splitlines()
    assert f"node.internal-address={name}" in node
    assert f"node.id={node_id(name)}" in node
    config = on_host(name, "cat", "/etc/lakehouse-trino/config.properties").splitlines()
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


def on_host(name: str, *argv: str, check: bool = True) -> str:
    """A command's output on a test host (its container); empty when it fails and check is off."""
    done = subprocess.run(["docker", "exec", name, *argv], capture_output=True, text=True, timeout=60, check=check)
    return done.stdout if done.returncode == 0 else ""


def unit_show(name: str, unit: str, *properties: str, check: bool = True) -> dict[str, str]:
    """Properties of a unit on a test host (timestamps: the kernel's monotonic clock, which the
    test hosts share with each other and with the controller); none while its systemd boots."""
    shown = on_host(name, "systemctl", "show", unit, *(f"--property={p}" for p in properties), check=check)
    return dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)


def docker(*argv: str) -> None:
    subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=180, check=True)


def worker_restarts(name: str) -> tuple[int, int]:
    """When a host's Trino worker last began to stop and last became active (microseconds)."""
    stop, start = "ActiveExitTimestampMonotonic", "ActiveEnterTimestampMonotonic"
    times = unit_show(name, "lakehouse-trino-worker.service", stop, start)
    return int(times[stop]), int(times[start])


def converge(playbook: str, *arguments: str, inventory: Path = INVENTORY.parent) -> subprocess.CompletedProcess:
    """A playbook of the project on this scenario's inventory (or another), as an operator runs it."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
         str(Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "playbooks" / playbook), *arguments],
        capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip


def converge_query(*arguments: str) -> subprocess.CompletedProcess:
    """The query layer's playbook on this scenario's inventory."""
    return converge("query.yml", *arguments)


def query_loop() -> load.QueryLoop:
    found = contracts.find_contracts(STATE)
    [query] = [c for c in found if c.service == "query"]
    return load.QueryLoop(query, checks.VerifyContext(contracts=found))


def test_workers_restart_one_at_a_time_under_a_query_loop():
    # A setting that only the workers read changes: the converge restarts one worker, waits until
    # it is ready, then the other, while the coordinator answers a query loop throughout.
    began = time.monotonic() * 1e6
    with query_loop() as loop:
        converge = converge_query("-e", "trino_shutdown_grace_seconds=11")
    print(f"rolling restart of {len(WORKERS)} workers: {loop.summary()}")
    assert converge.returncode == 0, converge.stdout[-4000:] + converge.stderr[-2000:]
    assert loop.failed == 0 and loop.answered >= 10, loop.summary()
    assert loop.fewest_active_workers >= 1, loop.summary()
    (first_stop, first_start), (second_stop, second_start) = sorted(worker_restarts(w) for w in WORKERS)
    assert began < first_stop < first_start < second_stop < second_start, "the workers did not restart one at a time"


def test_a_change_that_keeps_a_worker_from_starting_stops_the_roll():
    # Passes the preflight, but Trino refuses a node environment with a capital letter: the first
    # worker's restart fails and is put back, the second is not restarted, queries keep running.
    unit, started = "lakehouse-trino-worker.service", "ActiveEnterTimestampMonotonic"
    before = {worker: unit_show(worker, unit, started)[started] for worker in WORKERS}
    with query_loop() as loop:
        converge = converge_query("--limit", "query_workers", "-e", "trino_environment=Lakehouse")
    print(f"a broken change on {len(WORKERS)} rolling workers: {loop.summary()}")
    output = converge.stdout + converge.stderr  # Ansible reports a failed task on stderr
    assert converge.returncode != 0, output[-4000:]
    assert "the previous files and links were put back" in output, output[-4000:]
    assert "not restarted while worker on" in output, output[-4000:]
    assert "lakehouse-trino-worker.service failed or kept exiting" in output, output[-4000:]  # before its timeout
    assert loop.failed == 0, loop.summary()
    restarted = [worker for worker in WORKERS if unit_show(worker, unit, started)[started] != before[worker]]
    assert len(restarted) == 1, f"restarted: {restarted}"
    for worker in WORKERS:
        assert "node.environment=lakehouse" in on_host(worker, "cat", "/etc/lakehouse-trino/node.properties")
        assert on_host(worker, "systemctl", "is-active", unit).strip() == "active"


def test_the_catalog_starts_after_its_database_whatever_order_the_hosts_boot_in():
    # The database's host is down while the catalog's host boots: the catalog's units wait for the
    # database instead of failing their start, and the catalog is ready once the database is back.
    [catalog] = [c for c in contracts.find_contracts(STATE) if c.service == "catalog"]
    nessie = "lakehouse-nessie.service"
    docker("stop", "--time=60", DB)
    try:
        docker("restart", "--time=60", CATALOG)
        deadline = time.monotonic() + BOUND_SECONDS
        while unit_show(CATALOG, nessie, "SubState", check=False).get("SubState") != "start-pre":
            assert time.monotonic() < deadline, f"{nessie} never waited for its database"
            time.sleep(1)
    finally:
        docker("start", DB)
    # Asked on the catalog's host: the hosts may come back with each other's addresses, which
    # their DNS follows and the controller's hosts file does not.
    ready = ["curl", "-sf", "--cacert", CA_ON_HOSTS, catalog.readiness_url]
    deadline = time.monotonic() + BOUND_SECONDS
    while not on_host(CATALOG, *ready, check=False):
        assert time.monotonic() < deadline, f"the catalog was not ready {BOUND_SECONDS} s after its database's host"
        time.sleep(1)
    started = unit_show(CATALOG, nessie, "NRestarts", "ActiveEnterTimestampMonotonic")
    database = unit_show(DB, "lakehouse-postgresql.service", "ActiveEnterTimestampMonotonic")
    assert started["NRestarts"] == "0", "the catalog failed a start instead of waiting"
    assert int(started["ActiveEnterTimestampMonotonic"]) > int(database["ActiveEnterTimestampMonotonic"])
    journal = on_host(CATALOG, "journalctl", "-u", nessie, "-b", "--no-pager", "-o", "cat")
    assert f"waiting for catalog_db at {DB}:5432" in journal, journal[-2000:]


def row_counts(query: dict, monkeypatch) -> dict[str, int]:
    """Every table of the Iceberg catalog and its row count."""
    listed = sql(query, monkeypatch, "SELECT table_schema, table_name FROM lakehouse.information_schema.tables"
                                     " WHERE table_schema <> 'information_schema'")  # fmt: skip
    return {
        f"{schema}.{name}": sql(query, monkeypatch, f'SELECT count(*) FROM lakehouse."{schema}"."{name}"')[0][0]  # noqa: S608
        for schema, name in sorted(listed)
    }


def test_the_catalog_database_is_restored_onto_another_host_from_its_backup(query, monkeypatch, tmp_path):
    # A table, then a backup as the timer starts it. db-1 is then lost: the inventory places the
    # catalog database on catalog-1 (a host that never ran it) and `up` restores it there from the
    # backup; the catalog follows it, and the table reads as before.
    content = "SELECT count(*), checksum(id), checksum(name) FROM lakehouse.restore_check.orders"
    before = sql(query, monkeypatch, "CREATE SCHEMA IF NOT EXISTS lakehouse.restore_check",
                 "CREATE TABLE lakehouse.restore_check.orders AS SELECT x AS id, format('order %d', x * 7) AS name"
                 " FROM UNNEST(sequence(1, 1000)) AS t(x)", content)  # fmt: skip
    assert before[0][0] == 1000
    tables_before = row_counts(query, monkeypatch)
    on_host(DB, "systemctl", "start", "lakehouse-postgresql-backup.service")  # returns once it has run
    backups = on_host(DB, "runuser", "-u", "postgres", "--", "python3", "/etc/lakehouse-postgresql/backup.py",
                      "/etc/lakehouse-postgresql/backup.json", "list")  # fmt: skip
    assert len(json.loads(backups)["backups"]) == 1, backups
    docker("stop", "--time=60", DB)

    inventory = tmp_path / "inventory"
    shutil.copytree(INVENTORY.parent, inventory)
    groups = yaml.safe_load(INVENTORY.read_text())
    for group in groups.values():
        (group.get("hosts") or {}).pop(DB, None)
    groups["catalog_db"]["hosts"] = {CATALOG: {"ansible_connection": "docker"}}
    (inventory / INVENTORY.name).write_text(yaml.safe_dump(groups))
    began = time.monotonic()
    restored = converge("site.yml", "-e", "postgresql_restore_from=latest", inventory=inventory)
    seconds = time.monotonic() - began
    assert restored.returncode == 0, restored.stdout[-4000:] + restored.stderr[-2000:]
    assert "Restore the catalog database on the host from the backup latest" in restored.stdout
    after = sql(query, monkeypatch, content)
    tables_after = row_counts(query, monkeypatch)
    print(f"catalog database restored onto {CATALOG} in {seconds:.0f} s (the whole `up`): row counts {tables_after}")
    assert after == before
    assert tables_after == tables_before
    # Asked again, the restore leaves the filled databases as they are.
    again = on_host(CATALOG, "runuser", "-u", "postgres", "--", "python3", "/etc/lakehouse-postgresql/backup.py",
                    "/etc/lakehouse-postgresql/backup.json", "restore", "latest")  # fmt: skip
    assert json.loads(again)["restored"] == [] and "nessie" in json.loads(again)["kept"], again


def test_the_worker_drains_on_stop():
    # Last (plain tests run in file order, after those of each host): it stops a worker. systemd
    # runs the unit's ExecStop, which asks Trino for a graceful shutdown and waits until the
    # worker has finished its tasks and exited on its own.
    unit = "lakehouse-trino-worker.service"
    since = on_host(WORKER, "date", "+%s").strip()
    on_host(WORKER, "systemctl", "stop", unit)
    journal = on_host(WORKER, "journalctl", "-u", unit, f"--since=@{since}", "--no-pager", "-o", "cat")
    assert "graceful shutdown requested" in journal, journal[-2000:]
    assert "Shutdown requested" in journal, journal[-2000:]  # Trino's own log line
    assert unit_show(WORKER, unit, "Result")["Result"] == "success"
