"""The provisioning contract of terraform/ and the inventory it becomes (plugins/filter/lakehouse_provision.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from conftest import load_source

REPO = Path(__file__).resolve().parents[2]
provision = load_source("plugins/filter/lakehouse_provision.py")

CONTRACT = {
    "contract": "lakehouse.provisioning/v1",
    "site": "lab",
    "hosts": {
        "metal-2.lab.example.internal": {"groups": ["query_workers"], "vars": {"ansible_user": "debian"}},
        "metal-1.lab.example.internal": {
            "groups": ["object_storage", "query_coordinator"],
            "vars": {"lakehouse_delivery": "systemd", "ansible_user": "debian"},
        },
    },
    "kubernetes": None,
    "object_storage": {"endpoint": "https://metal-1.lab.example.internal:9000"},
    "state": {"backend": "s3", "bucket": "tofu-state", "key": "lab", "endpoint": "https://s3.example.internal"},
}


def test_the_inventory_names_every_host_its_variables_and_every_service_group():
    inventory = provision.provisioning_inventory(CONTRACT)["all"]
    assert inventory["vars"] == {"lakehouse_site": "lab"}
    assert list(inventory["hosts"]) == ["metal-1.lab.example.internal", "metal-2.lab.example.internal"]
    first = inventory["hosts"]["metal-1.lab.example.internal"]
    assert first == {"ansible_user": "debian", "lakehouse_delivery": "systemd"}
    assert list(inventory["children"]) == list(provision.SERVICE_GROUPS)
    assert inventory["children"]["query_workers"]["hosts"] == {"metal-2.lab.example.internal": None}
    assert inventory["children"]["catalog_db"]["hosts"] == {}


def broken(**changes) -> dict:
    contract = copy.deepcopy(CONTRACT)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = contract
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return contract


@pytest.mark.parametrize(
    ("contract", "message"),
    [
        (broken(contract="lakehouse.provisioning/v0"), "this version of the project reads lakehouse.provisioning/v1"),
        (broken(state=None), "lacks state"),
        (broken(hosts={}), "provisions no host"),
        (broken(hosts={"192.0.2.10": {"groups": []}}), "192.0.2.10 is not a DNS name"),
        (
            broken(hosts__metal_3={"groups": ["warehouse"]}),
            "hosts.metal_3.groups: warehouse not a service group",
        ),
        (
            broken(**{"hosts__metal-2.lab.example.internal__vars": {"ansible_host": "192.0.2.11"}}),
            "ansible_host: 192.0.2.11 is an IP literal",
        ),
        (
            broken(**{"hosts__metal-2.lab.example.internal__vars": {"ansible_port": 22}}),
            "ansible_port: a int, not a string",
        ),
    ],
)
def test_a_broken_contract_is_refused_with_the_field_at_fault(contract, message):
    with pytest.raises(AnsibleFilterError, match="the provisioning contract is not valid") as refused:
        provision.provisioning_inventory(contract)
    assert message in str(refused.value)
