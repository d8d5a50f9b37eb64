"""An upgrade from the previous pinned version of each service to the current one keeps every
Iceberg table readable, with identical contents.

One systemd test host runs the query path (MinIO, PostgreSQL, Nessie, Trino) from the sandbox's
variables, as site `upgrade`. `lakehouse up` first installs the previous pins (tests/upgrade_from.yml:
the artifact table with Trino's and Nessie's N-1 entries); tables are written through both
engines: Trino's, with a second snapshot and deleted rows, and verify's round trip through
pyiceberg. `lakehouse up` with the current pins then upgrades in place: each new version is
installed beside the old one and its link switched, and the service restarted, health-gated. Every
table's row count and content checksum are equal before and after, the running processes are the
new versions, and verify passes on them.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest
import yaml
from sites import REPO, ROUND_TRIP, metal_site, round_trip

from lakehouse_cli import clients

SITE = "upgrade"
HOST = f"metal-1.{SITE}.lakehouse.test"
GROUPS = {
    "object_storage": [HOST],
    "catalog_db": [HOST],
    "iceberg_catalog": [HOST],
    "query_coordinator": [HOST],
    "query_workers": [],
}
CURRENT = yaml.safe_load((REPO / "roles/lakehouse/defaults/main/artifacts.yml").read_text())["lakehouse_artifacts"]
PREVIOUS = yaml.safe_load((REPO / "tests/upgrade_from.yml").read_text())
# Where each upgraded service shows the version it runs: the versioned directory on Trino's JVM
# class path; Nessie's start lines in its journal.
SHOWN_VERSION = {
    "trino_server": (
        "tr '\\0' ' ' < /proc/$(systemctl show -P MainPID lakehouse-trino.service)/cmdline",
        r"/trino_server/([^/]+)/",
    ),
    "nessie_server": ("journalctl -u lakehouse-nessie.service -o cat --no-pager", r"Nessie (\S+) on JVM"),
}
RUNS = tuple(SHOWN_VERSION)

pytestmark = pytest.mark.molecule  # same tier: Docker and the test host image


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp(SITE)
    upgrade = metal_site(root, SITE, GROUPS)
    yield upgrade
    upgrade.lakehouse("down")


@pytest.fixture(scope="module")
def previous_pins(site) -> str:
    """An extra-vars file: the whole artifact table, with the previous pins in place of the current."""
    path = site.inventory.parent / "previous.yml"
    path.write_text(yaml.safe_dump({"lakehouse_artifacts": {**CURRENT, **PREVIOUS}}))
    return f"@{path}"


def up(site, *extra: str) -> str:
    result = site.lakehouse("up", "-e", "iceberg_catalog_type=rest", *(arg for value in extra for arg in ("-e", value)))
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return result.stdout


def running_versions() -> dict[str, str]:
    """The version each upgraded service runs, as the running service shows it (a hardened unit's
    /proc/<pid>/fd is closed even to root)."""
    versions = {}
    for artifact, (script, pattern) in SHOWN_VERSION.items():
        shown = subprocess.run(
            ["docker", "exec", HOST, "sh", "-c", script], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        found = re.findall(pattern, shown)
        assert found, f"no running version of {artifact} in {shown[-2000:]!r}"
        versions[artifact] = found[-1]  # the latest start's
    return versions


def contents(site) -> dict[str, tuple]:
    """Every data table of the catalog: its row count and a checksum of each column (order-independent)."""
    columns = {}
    for schema, table, column in site.trino(
        "SELECT table_schema, table_name, column_name FROM lakehouse.information_schema.columns "
        # Not the catalog's metadata schemas (Trino 476 lists its Iceberg tables in one of them).
        "WHERE table_schema NOT IN ('information_schema', 'system') "
        "ORDER BY table_schema, table_name, ordinal_position"
    ):
        columns.setdefault(f'"{schema}"."{table}"', []).append(f'checksum("{column}")')
    # Names as the catalog itself lists them.
    return {
        table: tuple(site.trino(f"SELECT count(*), {', '.join(sums)} FROM lakehouse.{table}")[0])  # noqa: S608
        for table, sums in columns.items()
    }


@pytest.fixture(scope="module")
def written(site, previous_pins) -> dict[str, tuple]:
    """The site on the previous pins, with its tables written; their contents."""
    up(site, previous_pins)
    assert running_versions() == {name: str(PREVIOUS[name]["version"]) for name in RUNS}
    # pyiceberg writes and Trino reads, then the other way round, on the previous versions.
    assert round_trip(site.verify()) == ROUND_TRIP
    with clients.ca_bundle_env([site.query_contract().ca]):
        site.trino("CREATE SCHEMA IF NOT EXISTS lakehouse.upgrade_check")
        site.trino(
            "CREATE TABLE lakehouse.upgrade_check.orders WITH (partitioning = ARRAY['month(ordered)']) AS "
            "SELECT x AS id, format('order %d', x * 7) AS name, x * 1.5e0 AS amount, "
            "date_add('day', x % 90, DATE '2026-01-01') AS ordered FROM UNNEST(sequence(1, 5000)) AS t(x)"
        )
        # A second snapshot, and position deletes: an upgraded reader must merge them too.
        site.trino(
            "INSERT INTO lakehouse.upgrade_check.orders SELECT x, 'late', 0e0, DATE '2026-06-30' "
            "FROM UNNEST(sequence(5001, 5100)) AS t(x)"
        )
        site.trino("DELETE FROM lakehouse.upgrade_check.orders WHERE id % 10 = 0")
        found = contents(site)
    assert found['"upgrade_check"."orders"'][0] == 4590, found
    return found


def test_an_upgrade_to_the_current_pins_keeps_every_table_with_identical_contents(site, written):
    began = time.monotonic()
    up(site)
    seconds = time.monotonic() - began
    assert running_versions() == {name: str(CURRENT[name]["version"]) for name in RUNS}
    with clients.ca_bundle_env([site.query_contract().ca]):
        after = contents(site)
    print(f"upgrade of {', '.join(RUNS)} to the current pins: {seconds:.0f} s (the whole `up`); {after}")
    assert after == written
    assert round_trip(site.verify()) == ROUND_TRIP
