"""A mixed inventory in one run: object storage and PostgreSQL on a metal host (a systemd test
host), the Iceberg catalog and Trino as Helm releases on the real node, contracts flowing between
them by DNS name.

The pods reach the metal host by its name as a site's pods would: the cluster DNS serves the names
of the machine's hosts file (where the sandbox publishes its hosts) and the pod network may open
connections to Docker's networks; PostgreSQL admits the pod network (an address range, the only
place an address appears). The controller reaches both sides by name. `lakehouse up`, `verify`
with the REST catalog, `status` across both deliveries, and a second run with no change on either
host. (The switch to the JDBC catalog is proven on each delivery alone: the all-cluster site of
test_query_path_on_node.py and the end-to-end test.)
"""

from __future__ import annotations

import pytest
import yaml
from kubernetes import client
from sites import ROUND_TRIP, forget_cluster_names, node_site, recap, round_trip

pytestmark = pytest.mark.node

SITE = "mixed"
METAL = "store-1.mixed.lakehouse.test"
CLUSTER = "cluster-1.mixed.lakehouse.test"
GROUPS = {
    "object_storage": [METAL],
    "catalog_db": [METAL],
    "iceberg_catalog": [CLUSTER],
    "query_coordinator": [CLUSTER],
    "query_workers": [CLUSTER],
}


@pytest.fixture(scope="module")
def site(tmp_path_factory, node, node_api):
    root = tmp_path_factory.mktemp("mixed")
    mixed = node_site(root, node, SITE, "lakehouse-mixed", GROUPS, metal=[METAL])
    # The metal PostgreSQL admits its own network (read from facts) and the cluster's pods.
    catalog_db = mixed.inventory / "group_vars" / "all" / "catalog_db.yml"
    settings = yaml.safe_load(catalog_db.read_text())
    settings["postgresql_client_networks"].append(node.pod_cidr)
    catalog_db.write_text(yaml.safe_dump(settings))
    yield mixed
    mixed.lakehouse("down")
    forget_cluster_names(SITE)
    client.CoreV1Api(node_api).delete_namespace("lakehouse-mixed")


@pytest.fixture(scope="module")
def up(site):
    result = site.lakehouse("up", "-e", "iceberg_catalog_type=rest")
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return result


WHERE = {
    "object_storage": [METAL, "systemd"],
    "catalog_db": [METAL, "systemd"],
    "catalog": [CLUSTER, "helm"],
    "query": [CLUSTER, "helm"],
}


def service_rows(output: str) -> dict[str, list[str]]:
    """The service table the lakehouse command prints: service -> [host, delivery, endpoint, health...]."""
    return {fields[0]: fields[1:] for fields in map(str.split, output.splitlines()) if fields and fields[0] in WHERE}


def test_each_layer_runs_where_the_inventory_says(up, site):
    rows = service_rows(up.stdout)
    assert {service: row[:2] for service, row in rows.items()} == WHERE, up.stdout[-3000:]


def test_verify_rest_catalog_across_the_deliveries(up, site):
    assert round_trip(site.verify()) == ROUND_TRIP


def test_second_run_changes_nothing_on_either_host(up, site):
    result = site.playbook("playbooks/site.yml", "-e", "iceberg_catalog_type=rest")
    assert result.returncode == 0, result.stdout[-4000:]
    assert recap(result.stdout, METAL)["changed"] == 0, result.stdout[-6000:]
    assert recap(result.stdout, CLUSTER)["changed"] == 0, result.stdout[-6000:]


def test_status_reads_both_deliveries(up, site):
    result = site.lakehouse("status")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = service_rows(result.stdout)
    assert {service: row[:2] for service, row in rows.items()} == WHERE, result.stdout
    health = {service: " ".join(row[3:]) for service, row in rows.items()}
    assert all(h == "healthy" or h.startswith("ready") for h in health.values()), health
