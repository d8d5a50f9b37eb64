"""The provisioning contract (terraform/README.md) and the inventory it becomes.

Every module of terraform/ outputs `lakehouse`, one shape whatever the provider:

    contract: lakehouse.provisioning/v1
    site: <DNS label>
    hosts: {<DNS name>: {groups: [<service group>...], vars: {<connection and delivery variable>: <string>}}}
    kubernetes: null | {api_server, ca_certificate, namespace, service_account}
    object_storage: {endpoint: <https URL> | null}
    state: {backend, bucket, key, endpoint}

`provisioning_inventory` checks that shape and returns the inventory (the content of hosts.yml)
that `lakehouse up` uses as is.
"""

from __future__ import annotations

import os
import sys

from ansible.errors import AnsibleFilterError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.append(REPO)
from module_utils.lakehouse_names import is_dns_name, is_ip_literal  # noqa: E402

CONTRACT = "lakehouse.provisioning/v1"
SERVICE_GROUPS = (
    "object_storage",
    "catalog_db",
    "iceberg_catalog",
    "query_coordinator",
    "query_workers",
    "orchestrator",
    "observability",
)
KEYS = {"contract", "site", "hosts", "kubernetes", "object_storage", "state"}


def contract_problems(contract) -> list[str]:
    """What is wrong with a module's `lakehouse` output, one sentence per problem."""
    if not isinstance(contract, dict):
        return [f"the lakehouse output is a {type(contract).__name__}, not an object"]
    problems = []
    if contract.get("contract") != CONTRACT:
        problems.append(f"contract is {contract.get('contract')!r}; this version of the project reads {CONTRACT}")
    missing = KEYS - set(contract)
    if missing:
        problems.append(f"the lakehouse output lacks {', '.join(sorted(missing))}")
    hosts = contract.get("hosts")
    if not isinstance(hosts, dict) or not hosts:
        problems.append("hosts is empty: the configuration provisions no host")
        hosts = {}
    for host, spec in hosts.items():
        if is_ip_literal(host) or not is_dns_name(host):
            problems.append(f"hosts: {host} is not a DNS name (hosts are named, never addressed)")
        groups = (spec or {}).get("groups") or []
        unknown = sorted(set(groups) - set(SERVICE_GROUPS))
        if unknown:
            known = ", ".join(SERVICE_GROUPS)
            problems.append(f"hosts.{host}.groups: {', '.join(unknown)} not a service group ({known})")
        for name, value in ((spec or {}).get("vars") or {}).items():
            if not isinstance(value, str):
                problems.append(f"hosts.{host}.vars.{name}: a {type(value).__name__}, not a string")
            elif is_ip_literal(value):
                problems.append(f"hosts.{host}.vars.{name}: {value} is an IP literal; name the host by DNS")
    return problems


def provisioning_inventory(contract) -> dict:
    """The inventory of a provisioning contract: every host with its variables, each service group
    with its hosts (an empty group too: plays name every service group), and lakehouse_site for
    all. Raises with every problem of the contract."""
    problems = contract_problems(contract)
    if problems:
        raise AnsibleFilterError("the provisioning contract is not valid: " + "; ".join(problems))
    hosts = contract["hosts"]
    children = {
        group: {"hosts": {host: None for host in sorted(hosts) if group in hosts[host]["groups"]}}
        for group in SERVICE_GROUPS
    }
    return {
        "all": {
            "vars": {"lakehouse_site": contract["site"]},
            "hosts": {host: dict(sorted((hosts[host].get("vars") or {}).items())) for host in sorted(hosts)},
            "children": children,
        }
    }


class FilterModule:
    def filters(self):
        return {
            "lakehouse_provisioning_inventory": provisioning_inventory,
            "lakehouse_provisioning_problems": contract_problems,
        }
