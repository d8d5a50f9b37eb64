"""Every inventory parses, names its hosts by DNS name and gives each a known delivery; every
provisioned environment (an inventory whose hosts.yml `lakehouse provision` writes) names an
OpenTofu configuration of terraform/ and inputs it can take."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ENVIRONMENTS = sorted(p for p in (REPO / "inventories").iterdir() if (p / "provision.yml").is_file())
INVENTORIES = sorted(p for p in (REPO / "inventories").iterdir() if p.is_dir() and p not in ENVIRONMENTS)


@pytest.mark.parametrize("inventory", INVENTORIES, ids=lambda p: p.name)
def test_inventory_parses_with_dns_names_and_known_deliveries(inventory):
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inventory), "--list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data = json.loads(listed.stdout)
    hostvars = data["_meta"]["hostvars"]
    assert hostvars, f"{inventory.name} has no hosts"
    assert data["object_storage"]["hosts"], f"{inventory.name} places no object storage"
    for host, variables in hostvars.items():
        assert "." in host, f"{host}: inventory hosts are DNS names"
        assert variables.get("lakehouse_site"), f"{host}: no lakehouse_site"
        assert variables.get("lakehouse_delivery", "systemd") in ("systemd", "helm"), host
        if variables.get("lakehouse_delivery") == "helm":
            assert variables["ansible_connection"] == "local", f"{host}: a cluster host runs on the controller"
            assert variables.get("lakehouse_k8s_kubeconfig"), f"{host}: a cluster host needs a kubeconfig"


@pytest.mark.parametrize("environment", ENVIRONMENTS, ids=lambda p: p.name)
def test_environment_names_a_configuration_and_inputs_it_takes(environment):
    inputs = yaml.safe_load((environment / "provision.yml").read_text())
    config = REPO / inputs["provision_config"]
    assert (config / "versions.tf").is_file(), f"{config} is not a configuration of terraform/"
    declared = set(re.findall(r'^variable "(\w+)"', (config / "variables.tf").read_text(), re.M))
    given = set(inputs["provision_variables"]) | {"state"}  # the role passes the state backend
    assert given <= declared, f"{environment.name} gives {sorted(given - declared)}, not variables of {config.name}"
    assert {"bucket", "key", "endpoint"} <= set(inputs["provision_backend"])
    groups = [g for spec in inputs["provision_variables"].get("metal_hosts", {}).values() for g in spec]
    assert "object_storage" in groups, f"{environment.name} places no object storage"
    assert not (environment / "hosts.yml").exists() or "lakehouse provision" in (environment / "hosts.yml").read_text()


def deliveries_of(inventory: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lakehouse_cli.inventory", "deliveries", inventory],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("inventory", "deliveries"),
    [("sandbox", "systemd"), ("sandbox-k8s", "helm"), ("sample-mixed", "helm\nsystemd")],
)
def test_setup_learns_which_deliveries_an_inventory_needs(inventory, deliveries):
    """scripts/setup.sh builds the Kubernetes tooling only when a host is delivered by Helm."""
    done = deliveries_of(f"inventories/{inventory}")
    assert done.returncode == 0 and done.stdout.strip() == deliveries, done.stderr


def test_setup_refuses_an_unknown_inventory_clearly():
    done = deliveries_of("inventories/none")
    assert done.returncode == 1 and "inventory inventories/none not found" in done.stderr
