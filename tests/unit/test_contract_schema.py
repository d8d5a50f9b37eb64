"""The contract schemas (roles/lakehouse/files/contracts/) and their one validator
(module_utils/lakehouse_contract.py), as the publishing role, the contract lookup and the CLI use it."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from module_utils import lakehouse_contract  # noqa: E402

URL = "https://minio-1.lakehouse.test:9000"
ADMIN = {"user_ref": "lakehouse_secret:minio/root_user", "secret_ref": "lakehouse_secret:minio/root_password"}
VALID = {
    "schema_version": 1,
    "service": "object_storage",
    "implementation": "minio",
    "url": URL,
    "endpoints": [lakehouse_contract.endpoint(URL, "s3")],
    "health": {"readiness": {"url": f"{URL}/minio/health/ready"}},
    "metrics": [
        {
            "component": "minio",
            "url": f"{URL}/metrics",
            "auth": "bearer",
            "credentials": ADMIN | {"kind": "s3_secret_key"},
        }
    ],
    "tls": {"ca_ref": "/controller/pki/ca.crt"},
    "credentials": {"admin": ADMIN | {"kind": "s3_secret_key"}}
    | lakehouse_contract.credentials(["app"], "lakehouse_secret:minio/users/", "s3_secret_key"),
    "region": "us-east-1",
    "path_style": True,
    "buckets": ["warehouse"],
}


def changed(path: str, value=None, delete: bool = False) -> dict:
    data = copy.deepcopy(VALID)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = data
    for part in parents:
        node = node[part]
    if delete:
        del node[last]
    else:
        node[last] = value
    return data


def test_every_layer_has_a_schema_and_the_example_is_valid():
    assert lakehouse_contract.layers() == [
        "catalog", "catalog_db", "host", "object_storage", "observability", "orchestrator", "query", "query_worker",
    ]  # fmt: skip
    assert lakehouse_contract.problem(VALID, "object_storage") is None
    assert VALID["endpoints"] == [
        {"name": "s3", "url": URL, "scheme": "https", "host": "minio-1.lakehouse.test", "port": 9000}
    ]
    assert lakehouse_contract.endpoint("https://s3.example.test", "s3")["port"] == 443


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(changed("schema_version", delete=True), "schema_version: is required", id="no-version"),
        pytest.param(changed("schema_version", True), "schema_version: must be 1 (got True)", id="bool-version"),
        pytest.param(
            changed("endpoints.0.host", "192.0.2.9"),
            "endpoints[0].host: must be a DNS name (an IP literal is refused) (got '192.0.2.9')",
            id="ipv4-host",
        ),
        pytest.param(
            changed("endpoints.0.host", "2001:db8::9"),
            "endpoints[0].host: must be a DNS name (an IP literal is refused) (got '2001:db8::9')",
            id="ipv6-host",
        ),
        pytest.param(
            changed("health.readiness.url", "https://[2001:db8::9]:9000/ready"),
            "health.readiness.url: must be a URL whose host is a DNS name (an IP literal is refused)"
            " (got 'https://[2001:db8::9]:9000/ready')",
            id="ipv6-url",
        ),
        pytest.param(
            changed("credentials.app.secret_ref", "s3cr3t-literal"),
            "credentials.app.secret_ref: must be a reference to the secret store, lakehouse_secret:<path>"
            " (a literal secret is refused)",
            id="literal-secret",
        ),
        pytest.param(
            changed("credentials.app.kind", "access_token"),
            "credentials.app.kind: must be one of password, s3_secret_key, bearer_token (got 'access_token')",
            id="unknown-kind",
        ),
        pytest.param(
            changed("credentials.app.user_ref", "lakehouse_secret:minio/x"),
            "credentials.app: a credential names its user once: user or user_ref, not both",
            id="user-twice",
        ),
        pytest.param(
            changed("metrics.0.credentials", delete=True), "metrics[0].credentials: is required", id="no-cred"
        ),
        pytest.param(
            changed("endpoints.0.port", 9001), "endpoints[0].url: has port 9000, the endpoint says 9001", id="port"
        ),
        pytest.param(changed("url", f"{URL}/x"), "url: must be endpoints[0].url, the primary endpoint's", id="url"),
        pytest.param(changed("bucket", ["x"]), "bucket: is not a field of this contract", id="unknown-field"),
        pytest.param(changed("service", "catalog"), "service: is 'catalog', expected 'object_storage'", id="layer"),
    ],
)
def test_a_contract_of_another_shape_is_refused_by_field(data, message):
    found = lakehouse_contract.problem(data, "object_storage")
    assert str(found) == message
    assert "s3cr3t" not in str(found)
    with pytest.raises(lakehouse_contract.ContractError, match=r"^" + message.split(":")[0].replace("[", r"\[")):
        lakehouse_contract.check(data, "object_storage")


def test_a_catalog_carries_only_the_section_of_its_type():
    catalog = {
        "schema_version": 1,
        "service": "catalog",
        "implementation": "hive-metastore",
        "url": "thrift://hms.lakehouse.test:9083",
        "endpoints": [lakehouse_contract.endpoint("thrift://hms.lakehouse.test:9083", "thrift")],
        "health": {"readiness": {"tcp": {"host": "hms.lakehouse.test", "port": 9083}}},
        "type": "hive",
        "name": "lakehouse",
        "warehouse": "s3://warehouse/hive",
        "hive": {"uri": "thrift://hms.lakehouse.test:9083"},
        "object_storage": {
            "endpoint": "https://s3.lakehouse.test",
            "region": "us-east-1",
            "path_style": True,
            "credentials": {"user": "app", "secret_ref": "lakehouse_secret:s3/users/app", "kind": "s3_secret_key"},
        },
    }
    assert lakehouse_contract.problem(catalog, "catalog") is None
    assert str(lakehouse_contract.problem(catalog | {"glue": {"region": "x", "catalog_id": ""}}, "catalog")) == (
        "glue: is the section of a glue catalog, not of a hive one"
    )
    assert str(lakehouse_contract.problem(catalog | {"type": "rest"}, "catalog")) == "rest: is required"
    metrics = {"component": "hms", "url": "https://hms.lakehouse.test/metrics", "auth": "none"}
    with_credentials = metrics | {"credentials": catalog["object_storage"]["credentials"]}
    assert lakehouse_contract.problem(catalog | {"metrics": [metrics]}, "catalog") is None
    assert str(lakehouse_contract.problem(catalog | {"metrics": [with_credentials]}, "catalog")) == (
        "metrics[0].credentials: is not needed when auth is none"
    )
    assert str(lakehouse_contract.problem(catalog, "lineage")).startswith(
        "service: no contract schema for the layer 'lineage'"
    )


def debug(inventory: Path, message: str, state: Path) -> subprocess.CompletedProcess:
    """`ansible localhost -m debug -a msg=<message>` with `inventory`, contracts under `state`."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "localhost", "-c", "local", "-i", str(inventory),
         "-m", "ansible.builtin.debug", "-a", f"msg={message}"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": str(Path(sys.executable).parent), "HOME": str(state), "LAKEHOUSE_STATE_DIR": str(state)},
    )  # fmt: skip


def test_the_lookup_refuses_a_published_file_of_another_shape(tmp_path):
    host = "minio-1.lakehouse.test"
    path = tmp_path / "contracts" / host / "object_storage.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(changed("credentials.admin.secret_ref", "s3cr3t-literal")))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"children": {"object_storage": {"hosts": {host: {}}}}}}))
    result = debug(inventory, "{{ lookup('lakehouse_contract', 'object_storage').url }}", tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        f"the object_storage contract of {host} ({path}) is invalid: credentials.admin.secret_ref: must be a reference"
        in " ".join(output.split())
    ), output
    assert "s3cr3t" not in output


def test_the_lookup_lists_every_host_that_published_a_layer(tmp_path):
    """`every=true` (what the prometheus role scrapes): one {host, contract} per publishing host of
    the inventory, from the files hosts wrote; a host that published nothing is left out."""
    hosts = ["minio-1.lakehouse.test", "minio-2.lakehouse.test", "quiet-1.lakehouse.test"]
    for index, host in enumerate(hosts[:2]):
        path = tmp_path / "contracts" / host / "object_storage.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(changed("region", f"region-{index}")))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {host: {} for host in hosts}}}))
    expression = "lookup('lakehouse_contract', 'object_storage', 'query', every=true)"
    result = debug(
        inventory, "{{ " + expression + " | map('map', attribute='host') | map('list') | to_json }}", tmp_path
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert json.dumps([hosts[:2], []]) in output, output


def test_the_publishing_filter_hands_a_valid_contract_over_and_refuses_another_shape():
    from ansible.errors import AnsibleFilterError
    from conftest import load_source

    checked_contract = load_source("plugins/filter/lakehouse_contract.py").checked_contract
    assert checked_contract(VALID, "object_storage", "minio-1") is VALID
    refused = (
        r"object_storage contract of minio-1 does not match .*/object_storage\.schema\.json: bucket: is not a field"
    )
    with pytest.raises(AnsibleFilterError, match=refused):
        checked_contract({**VALID, "bucket": ["x"]}, "object_storage", "minio-1")
