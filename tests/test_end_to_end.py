"""End to end: an environment provisioned by OpenTofu, brought up, verified, changed, destroyed.

A copy of the environment inventories/local, as site `e2e` (so it never touches a sandbox brought
up by `make up`), is provisioned: `lakehouse provision` applies terraform/local with its state in
S3 (a MinIO of the artifact cache, over TLS on loopback) and writes the inventory of its contract.
That inventory is brought up as is with `iceberg_catalog_type: rest`, verified (pyiceberg writes,
Trino reads, Trino inserts, pyiceberg reads, plus every refusal check), converged again (zero
changed tasks), switched to `jdbc` by that one variable and verified again, and so on; the last
test destroys it. The secret store and state directory live in the test's temporary directory.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import urllib3
import yaml
from sites import REPO, ROUND_TRIP, Site, passed, refused_anonymously, round_trip, scraped

from lakehouse_cli import checks, orchestrator, probe

SITE = "e2e"
HOST = f"metal-1.{SITE}.lakehouse.test"  # terraform/local: <name>.<site>.<domain>
STATE_KEY = f"{SITE}/terraform.tfstate"
REFUSALS = (
    "object_storage anonymous access refused",
    "object_storage default credentials refused",
    "catalog_db anonymous access refused",
    "catalog_db default credentials refused",
    "catalog_db plain-text connection refused",
    "catalog anonymous access refused",
    "catalog forged token refused",
    "query anonymous access refused",
    "query default credentials refused",
    "orchestrator anonymous access refused",
    "orchestrator default credentials refused",
)

pytestmark = pytest.mark.molecule  # same tier: Docker and the test host image


@pytest.fixture(scope="module")
def site(state_store, tmp_path_factory):
    """The one-host environment, provisioned; destroyed after the module."""
    root = tmp_path_factory.mktemp("e2e")
    inventory = root / "inventory"
    shutil.copytree(REPO / "inventories" / "local", inventory)
    inputs = yaml.safe_load((inventory / "provision.yml").read_text())
    inputs["provision_variables"]["site"] = SITE
    inputs["provision_backend"] = state_store.backend(STATE_KEY)
    (inventory / "provision.yml").write_text(yaml.safe_dump(inputs))
    env = {
        **os.environ,
        "LAKEHOUSE_SECRETS_DIR": str(root / "secrets"),
        "LAKEHOUSE_STATE_DIR": str(root / "state"),
        "ANSIBLE_NOCOLOR": "1",
        **state_store.credentials,
    }
    env = {k: v for k, v in env.items() if not k.startswith("LAKEHOUSE_SECRET_")}
    environment = Site(inventory, env, [HOST], SITE)
    yield environment
    environment.lakehouse("provision", "--destroy")


def container_exists(name: str) -> bool:
    return subprocess.run(["docker", "inspect", name], capture_output=True, check=False).returncode == 0


def test_provision_writes_the_inventory_of_the_contract_and_keeps_its_state_in_object_storage(site, state_store):
    result = site.lakehouse("provision")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    written = yaml.safe_load((site.inventory / "hosts.yml").read_text())["all"]
    assert written["vars"] == {"lakehouse_site": SITE}
    assert written["hosts"][HOST]["ansible_connection"] == "docker"
    assert set(written["children"]["query_coordinator"]["hosts"]) == {HOST}
    assert written["children"]["query_workers"]["hosts"] == {}
    assert container_exists(HOST)
    state = state_store.state(STATE_KEY)
    assert [r["type"] for r in state["resources"]] == ["terraform_data"]
    again = site.lakehouse("provision")
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]


def up(site: Site, catalog_type: str, *extra: str) -> str:
    more = [arg for value in extra for arg in ("-e", value)]
    result = site.lakehouse("up", "-e", f"iceberg_catalog_type={catalog_type}", *more)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def not_ready_within(site: Site, seconds: float) -> list[str]:
    """The services of the site whose readiness probe still fails after `seconds` (polled, bounded)."""
    deadline = time.monotonic() + seconds
    while True:
        waiting = [contract.service for contract in site.contracts() if not probe.health(contract)[0]]
        if not waiting or time.monotonic() > deadline:
            return waiting
        time.sleep(1)


def test_up_brings_the_query_path_up_with_the_rest_catalog(site):
    output = up(site, "rest")
    for service in ("object_storage", "catalog_db", "catalog", "query", "orchestrator"):
        row = next((line for line in output.splitlines() if line.startswith(service + " ")), "")
        assert HOST in row and ("healthy" in row or "ready" in row), f"{service}: {row!r}\n{output[-3000:]}"


def test_verify_rest_catalog_pyiceberg_and_trino_both_ways(site):
    verified = site.verify()
    assert round_trip(verified) == ROUND_TRIP
    assert [check for check in REFUSALS if not passed(verified, check)] == [], verified


# Every metrics endpoint of the host: MinIO, PostgreSQL's exporter, Nessie, Trino, the host, Prometheus,
# Airflow (its StatsD exporter behind the orchestrator's TLS front).
METRICS = {9000: "/minio/v2/metrics/cluster", 9187: "/metrics", 19121: "/q/metrics", 8443: "/metrics",
           9100: "/metrics", 9090: "/metrics", 8080: "/metrics"}  # fmt: skip


def test_prometheus_scrapes_every_metrics_endpoint_and_those_with_credentials_refuse_anonymous_scrapes(site):
    verified = site.verify()
    expected = {f"https://{HOST}:{port}{path}" for port, path in METRICS.items()}
    assert set(scraped(verified)) == expected, verified
    # Every one, Nessie's through its front too.
    assert set(refused_anonymously(verified)) == expected, verified


# Every TLS endpoint of the host: MinIO, PostgreSQL and its exporter, Nessie's two, Trino, the host, Prometheus,
# the orchestrator.
TLS_ENDPOINTS = {f"https://{HOST}:{port}" for port in (9000, 9187, 19120, 19121, 8443, 9100, 9090, 8080)}
TLS_ENDPOINTS |= {f"postgresql://{HOST}:5432"}


def test_every_tls_endpoint_refuses_old_protocols_plain_http_and_clients_without_the_ca(site):
    verified = site.verify()
    for check, endpoints in [
        ("TLS 1.1 and below refused", TLS_ENDPOINTS),
        ("certificate refused without the lakehouse CA", TLS_ENDPOINTS),
        ("plain HTTP refused", {url for url in TLS_ENDPOINTS if url.startswith("https")}),
    ]:
        rows = re.findall(rf"^\S+ {re.escape(check)}\s+(\S+)\s+pass\b", verified, re.M)
        assert set(rows) == endpoints, (check, verified)


def test_units_are_hardened_and_come_back_after_kill_9_and_a_reboot(site):
    report = subprocess.run(
        [sys.executable, "scripts/reliability_report.py", "-i", str(site.inventory), "--kill", "lakehouse-minio",
         "--reboot"],
        cwd=REPO, env=site.env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert report.returncode == 0, report.stdout + report.stderr
    exposures = re.findall(rf"^(lakehouse-\S+)\s+{re.escape(HOST)}\s+([0-9.]+)\s+\w+\s+pass$", report.stdout, re.M)
    # MinIO, PostgreSQL and its exporter, Nessie and its front, Trino, Prometheus, the node exporter,
    # Airflow's five.
    assert len(exposures) == 13 and all(float(level) <= 2.0 for _, level in exposures), report.stdout
    assert re.search(rf"^lakehouse-minio\s+{re.escape(HOST)}\s+[0-9.]+ s\s+main process", report.stdout, re.M)
    rebooted = re.search(rf"^{re.escape(HOST)}\s+[0-9.]+ s\s+(.*)$", report.stdout, re.M)
    assert rebooted and len(rebooted.group(1).split(", ")) == 13, report.stdout


def test_second_up_changes_nothing(site):
    output = up(site, "rest")
    summary = re.search(r"site\.yml: done, \d+ tasks, hosts ok=\d+ changed=(\d+)", output)
    assert summary and summary.group(1) == "0", f"a second up changed hosts:\n{output[-3000:]}"


def drift(site: Site) -> tuple[int, str]:
    result = site.lakehouse("drift")
    return result.returncode, result.stdout + result.stderr


def minio_admin(site: Site):
    """MinIO's admin API as the root user, from the site's secret store."""
    from minio import MinioAdmin
    from minio.credentials import StaticProvider

    secrets = Path(site.env["LAKEHOUSE_SECRETS_DIR"])
    root = [(secrets / "minio" / name).read_text().strip() for name in ("root_user", "root_password")]
    return MinioAdmin(
        endpoint=f"{HOST}:9000",
        credentials=StaticProvider(*root),
        secure=True,
        http_client=urllib3.PoolManager(ca_certs=str(secrets / "pki" / "ca.crt")),
    )


def test_drift_reports_each_change_made_by_hand_and_up_repairs_them(site):
    # The site is as the last `up` left it (test_second_up_changes_nothing); the repaired site
    # reports no drift at the end.
    subprocess.run(["docker", "exec", HOST, "rm", "/etc/lakehouse-trino/jvm.config"], check=True)
    subprocess.run(
        ["docker", "exec", HOST, "sh", "-c", "echo '# edited by hand' >> /etc/systemd/system/lakehouse-nessie.service"],
        check=True,
    )
    admin = minio_admin(site)
    admin.detach_policy(["warehouse-readwrite"], user="lakehouse-app")
    admin.policy_remove("warehouse-readwrite")
    code, output = drift(site)
    assert code == 2, output[-3000:]
    rows = [line for line in output.splitlines() if line.startswith(HOST)]
    for differs in ("/etc/lakehouse-trino/jvm.config", "/etc/systemd/system/lakehouse-nessie.service"):
        assert any(differs in row for row in rows), (differs, output[-3000:])
    assert any("Manage policies" in row and "warehouse-readwrite" in row for row in rows), output[-3000:]
    assert "`lakehouse up` repairs them" in output
    up(site, "rest")
    code, output = drift(site)
    assert code == 0 and "no drift" in output, output[-3000:]


def test_check_mode_reports_a_new_object_storage_region_without_failing(site):
    result = site.lakehouse("up", "--check", "-e", "minio_region=eu-west-1")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert re.search(r"site\.yml: done, \d+ tasks, hosts ok=\d+ changed=1", output), output[-3000:]
    code, output = drift(site)
    assert code == 0, "check mode changed nothing"


@pytest.mark.parametrize(
    ("bad_value", "message"),
    [
        ("trino_port=9000", "port 9000 is taken by each of minio_s3_port, trino_port"),
        ("minio_s3_port=70000", "minio_s3_port: '70000' is not a port number from 1 to 65535"),
    ],
)
def test_a_bad_value_changes_nothing_and_the_site_keeps_serving(site, bad_value, message):
    result = site.lakehouse("up", "-e", bad_value)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output, output[-4000:]
    summary = re.search(r"site\.yml: FAILED, \d+ tasks, hosts ok=\d+ changed=(\d+)", output)
    assert summary and summary.group(1) == "0", output[-3000:]
    assert round_trip(site.verify()) == ROUND_TRIP


def test_a_change_that_keeps_a_service_from_starting_is_undone_and_reported(site):
    """A value no preflight can judge (a PostgreSQL setting PostgreSQL itself refuses at start):
    the engine puts the previous configuration back, restarts the service and fails with its log."""
    broken = '{"postgresql_extra_settings": {"max_connections": "lots"}}'
    result = site.lakehouse("up", "-e", broken)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-4000:]
    assert "postgresql did not become ready after this run's change; the previous files and links were put back" in (
        output
    ), output[-4000:]
    assert 'invalid value for parameter "max_connections": "lots"' in output, output[-4000:]
    # The wait ended at PostgreSQL's second exit, not at its readiness timeout.
    assert "lakehouse-postgresql.service failed or kept exiting" in output, output[-4000:]
    # PostgreSQL serves again; the catalog, which lost its connections meanwhile, reconnects.
    assert not_ready_within(site, 120) == []
    assert round_trip(site.verify()) == ROUND_TRIP
    # What was put back is what the next run finds: nothing to change.
    again = up(site, "rest")
    summary = re.search(r"site\.yml: done, \d+ tasks, hosts ok=\d+ changed=(\d+)", again)
    assert summary and summary.group(1) == "0", again[-3000:]


def test_switching_only_the_catalog_type_to_jdbc_verifies_green(site):
    up(site, "jdbc")
    verified = site.verify()
    assert round_trip(verified) == ROUND_TRIP
    catalog = passed(verified, "catalog readiness")
    assert catalog and re.match(r"postgresql://.*/iceberg_catalog$", catalog.group(1)), verified


# --- the orchestrator: the same job spec on Airflow, then on Dagster --------------------------------


def job_rows(site: Site, job: str, day: datetime.date) -> int:
    """Run `job` for `day` through the site's orchestrator (its API, as the orchestrator contract
    publishes it) and read back with Trino how many rows the day's partition holds."""
    ctx = checks.VerifyContext(env=site.env, contracts=site.contracts())
    orchestrator_contract = next(c for c in ctx.contracts if c.service == "orchestrator")
    admin = orchestrator_contract.credential("admin")
    password = ctx.secret(orchestrator_contract, admin["secret_ref"])
    orchestrator.run_job(orchestrator_contract, job, day, admin["user"], password, timeout=600)
    return checks.ingested_rows(ctx, day)


def unit_states(unit: str) -> tuple[str, str]:
    """(is-active, is-enabled) of a unit of the test host."""
    state = subprocess.run(
        ["docker", "exec", HOST, "systemctl", "is-active", unit], capture_output=True, text=True, check=False
    )
    enabled = subprocess.run(
        ["docker", "exec", HOST, "systemctl", "is-enabled", unit], capture_output=True, text=True, check=False
    )
    return state.stdout.strip(), enabled.stdout.strip()


def test_the_sample_job_runs_through_airflow_and_a_second_run_of_the_day_replaces_its_rows(site):
    day = datetime.date(2026, 3, 1)
    assert job_rows(site, "daily_ingest", day) == 1000
    assert job_rows(site, "daily_ingest", day) == 1000


def test_switching_only_the_orchestrator_to_dagster_stops_airflow_and_runs_the_same_job(site):
    output = up(site, "jdbc", "orchestrator_type=dagster")
    assert "orchestrator " in output and HOST in output, output[-3000:]
    for unit in ("lakehouse-airflow", "lakehouse-airflow-scheduler", "lakehouse-airflow-dag-processor"):
        assert unit_states(unit) == ("inactive", "disabled"), unit
    day = datetime.date(2026, 3, 2)
    assert job_rows(site, "daily_ingest", day) == 1000
    assert job_rows(site, "daily_ingest", day) == 1000
    again = up(site, "jdbc", "orchestrator_type=dagster")
    summary = re.search(r"site\.yml: done, \d+ tasks, hosts ok=\d+ changed=(\d+)", again)
    assert summary and summary.group(1) == "0", again[-3000:]
    verified = site.verify()
    assert passed(verified, "orchestrator sample job run and read back"), verified
    assert passed(verified, "orchestrator anonymous access refused"), verified


def test_destroy_removes_the_host_its_name_and_the_inventory(site, state_store):
    result = site.lakehouse("provision", "--destroy")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert not container_exists(HOST)
    assert HOST not in Path("/etc/hosts").read_text()
    assert not (site.inventory / "hosts.yml").exists()
    state = state_store.state(STATE_KEY)
    assert state["resources"] == []
