"""The site preflight (playbooks/preflight.yml): every layer's checks, for every host, before the
first change of a run.

The sandbox's own variables are spread over two hosts that are the controller itself (connection
local): the object storage on one, everything else on the other. A bad value on either host stops
`playbooks/site.yml` in its first play, with a message naming the variable and zero changed tasks on
both hosts, so no layer converges on input that another layer refuses. The secret store and state
directory live in the test's temporary directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sites import REPO, recap

STORAGE = "storage-1.preflight.lakehouse.test"
QUERY = "query-1.preflight.lakehouse.test"


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    """The sandbox's group_vars over two local hosts."""
    root = tmp_path_factory.mktemp("preflight")
    (root / "group_vars").symlink_to(REPO / "inventories" / "sandbox" / "group_vars")
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    groups = {
        "object_storage": [STORAGE],
        "catalog_db": [QUERY],
        "iceberg_catalog": [QUERY],
        "query_coordinator": [QUERY],
        "observability": [QUERY],
    }
    children = {group: {"hosts": {host: {} for host in hosts}} for group, hosts in groups.items()}
    (root / "hosts.yml").write_text(json.dumps({"all": {"vars": local, "children": children}}))
    return root


def run(inventory, playbook: str, *extra_vars: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, str]:
    arguments = [arg for value in extra_vars for arg in ("-e", value)]
    result = subprocess.run(
        [str(os.path.join(os.path.dirname(sys.executable), "ansible-playbook")), "-i", str(inventory / "hosts.yml"),
         playbook, *arguments],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "LAKEHOUSE_SECRETS_DIR": str(inventory / "secrets"),
             "LAKEHOUSE_STATE_DIR": str(inventory / "state"), **(env or {})},
    )  # fmt: skip
    return result, result.stdout + result.stderr


def test_the_sandbox_variables_pass_the_site_preflight_without_a_change(inventory):
    result, output = run(inventory, "playbooks/preflight.yml")
    assert result.returncode == 0, output[-4000:]
    for host in (STORAGE, QUERY):
        assert recap(output, host)["changed"] == 0, output[-3000:]
    assert not (inventory / "state").exists(), "the preflight publishes no contract"


# Each bad value, on the host it concerns, and what the message must say.
BAD_VALUES = [
    pytest.param("trino_port=9090", "port 9090 is taken by each of prometheus_port, trino_port", id="port-taken"),
    pytest.param(
        "iceberg_catalog_port=5432",
        "port 5432 is taken by each of iceberg_catalog_port, postgresql_port",
        id="catalog-on-postgresql-port",
    ),
    pytest.param("minio_s3_port=70000", "minio_s3_port: '70000' is not a port number from 1 to 65535", id="port-range"),
    pytest.param("postgresql_port=many", "postgresql_port", id="non-numeric-port"),
    pytest.param("trino_port=0", "trino_port: '0' is not a port number", id="port-zero"),
    pytest.param("minio_server_name=192.0.2.10", "minio_server_name: 192.0.2.10 is an IP literal", id="ip-literal"),
    pytest.param(
        "trino_server_name=query_1", "trino_server_name: 'query_1' is not a valid DNS name", id="bad-dns-name"
    ),
    pytest.param("iceberg_catalog_type=nessie", "value of iceberg_catalog_type must be one of", id="unknown-catalog"),
    pytest.param("lakehouse_delivery=docker", "lakehouse_delivery", id="unknown-delivery"),
    pytest.param(
        "lakehouse_render=true lakehouse_gitops_dir=/srv/gitops",
        "lakehouse_render: storage-1.preflight.lakehouse.test is a metal host",
        id="render-a-metal-host",
    ),
    pytest.param(
        "lakehouse_gitops_dir=gitops", "lakehouse_gitops_dir: gitops is not an absolute path", id="gitops-dir"
    ),
    pytest.param("iceberg_catalog_heap_size=lots", "iceberg_catalog_heap_size must be a heap size", id="bad-size"),
    pytest.param("minio_root_user=minioadmin", "well-known default", id="default-user"),
    pytest.param('{"prometheus_extra_names": ["[2001:db8::9]"]}', "IP literals are not allowed", id="ipv6-san"),
    pytest.param(
        f'{{"minio_pool_hosts": ["{STORAGE}"]}}', "minio_pool_hosts lists the metal hosts of one", id="pool-of-one"
    ),
    # ServiceMonitors describe a cluster's Services to a Prometheus Operator: a metal host has none.
    pytest.param(
        '{"prometheus_service_monitors": true}', "prometheus_service_monitors describes", id="monitors-on-metal"
    ),
]


@pytest.mark.parametrize(("extra_vars", "message"), BAD_VALUES)
def test_a_bad_value_stops_the_whole_run_before_its_first_change(inventory, extra_vars, message):
    result, output = run(inventory, "playbooks/site.yml", extra_vars)
    assert result.returncode != 0
    assert message in output, output[-4000:]
    for host in (STORAGE, QUERY):
        assert recap(output, host)["changed"] == 0, output[-3000:]
    assert "PLAY [Object storage]" not in output, "a layer ran after the preflight failed"
    assert not (inventory / "state").exists() and not (inventory / "secrets" / "pki").exists()


def test_a_default_password_in_the_environment_is_refused_and_never_printed(inventory):
    result, output = run(
        inventory, "playbooks/site.yml", env={"LAKEHOUSE_SECRET_POSTGRESQL_POSTGRES_PASSWORD": "postgres"}
    )
    assert result.returncode != 0 and "well-known default" in output, output[-3000:]
    assert "'postgres'" not in output
    assert recap(output, STORAGE)["changed"] == 0 and recap(output, QUERY)["changed"] == 0
