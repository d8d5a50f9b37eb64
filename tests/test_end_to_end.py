"""End to end: `lakehouse up` and `verify` on a sandbox host, with each Iceberg catalog type.

A copy of inventories/sandbox under another host and network name (so it never touches a sandbox
brought up by `make up`) is brought up with `iceberg_catalog_type: rest`, verified (pyiceberg
writes, Trino reads, Trino inserts, pyiceberg reads, plus every refusal check), converged again
(zero changed tasks), switched to `jdbc` by that one variable and verified again. The secret store
and state directory live in the test's temporary directory; the host is removed at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lakehouse_cli import checks, contracts  # noqa: E402

HOST = "e2e-1.sandbox.lakehouse.test"
NETWORK = "lakehouse-e2e"

pytestmark = pytest.mark.molecule  # same tier: Docker and the test host image


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """The inventory and environment of a one-host sandbox; removed after the module."""
    root = tmp_path_factory.mktemp("e2e")
    inventory = root / "inventory"
    shutil.copytree(REPO / "inventories" / "sandbox", inventory)
    hosts = inventory / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("metal-1.sandbox.lakehouse.test", HOST))
    with (inventory / "group_vars" / "all" / "main.yml").open("a") as extra:
        extra.write(f"sandbox_network: {NETWORK}\n")
    env = {
        **os.environ,
        "LAKEHOUSE_SECRETS_DIR": str(root / "secrets"),
        "LAKEHOUSE_STATE_DIR": str(root / "state"),
        "ANSIBLE_NOCOLOR": "1",
    }
    env = {k: v for k, v in env.items() if not k.startswith("LAKEHOUSE_SECRET_")}
    yield inventory, env
    lakehouse("down", inventory, env)


def lakehouse(command: str, inventory: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lakehouse_cli", command, "-i", str(inventory), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


def up(sandbox, catalog_type: str) -> str:
    inventory, env = sandbox
    result = lakehouse("up", inventory, env, "-e", f"iceberg_catalog_type={catalog_type}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def verify(sandbox) -> list[checks.CheckResult]:
    _, env = sandbox
    found = contracts.find_contracts(Path(env["LAKEHOUSE_STATE_DIR"]), [HOST], site="sandbox")
    results = checks.run_checks(found, checks.VerifyContext(env=env, contracts=found))
    failed = [r for r in results if not r.ok]
    assert not failed, "\n".join(f"{r.check} at {r.endpoint}: {r.detail}" for r in failed)
    return results


def round_trip(results: list[checks.CheckResult]) -> list[str]:
    return [r.detail for r in results if r.check == "query Iceberg round trip"]


def test_up_brings_the_query_path_up_with_the_rest_catalog(sandbox):
    output = up(sandbox, "rest")
    for service in ("object_storage", "catalog_db", "catalog", "query"):
        row = next((line for line in output.splitlines() if line.startswith(service + " ")), "")
        assert HOST in row and ("healthy" in row or "ready" in row), f"{service}: {row!r}\n{output[-3000:]}"


def test_verify_rest_catalog_pyiceberg_and_trino_both_ways(sandbox):
    results = verify(sandbox)
    assert round_trip(results) == ["pyiceberg → trino: 3 rows equal", "trino → pyiceberg: 4 rows equal"]
    refusals = {r.check for r in results if r.ok and ("refused" in r.check)}
    assert {
        "object_storage anonymous access refused",
        "object_storage default credentials refused",
        "catalog_db anonymous access refused",
        "catalog_db default credentials refused",
        "catalog_db plain-text connection refused",
        "catalog anonymous access refused",
        "catalog forged token refused",
        "query anonymous access refused",
        "query default credentials refused",
    } <= refusals


def test_second_up_changes_nothing(sandbox):
    output = up(sandbox, "rest")
    site = re.search(r"site\.yml: done, \d+ tasks, hosts ok=\d+ changed=(\d+)", output)
    assert site, output[-3000:]
    assert site.group(1) == "0", f"a second up changed hosts:\n{output[-3000:]}"


def test_switching_only_the_catalog_type_to_jdbc_verifies_green(sandbox):
    up(sandbox, "jdbc")
    results = verify(sandbox)
    assert round_trip(results) == ["pyiceberg → trino: 3 rows equal", "trino → pyiceberg: 4 rows equal"]
    catalog = next(r for r in results if r.check == "catalog readiness")
    assert catalog.endpoint.startswith("postgresql://") and catalog.endpoint.endswith("/iceberg_catalog")
