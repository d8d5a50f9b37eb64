"""Lookup plugin: the contract another layer published, which is all a consumer may know of it."""

from __future__ import annotations

DOCUMENTATION = r"""
name: lakehouse_contract
author: Lakehouse bootstrap maintainers
short_description: The published contract of a lakehouse layer (object storage, catalog database, catalog...)
description:
  - Returns, for each term (a service such as C(object_storage)), the contract that layer published,
    so consumers render their configuration from it and never from another role's variables.
  - Looked up in this order. An external service declared in the inventory, C(lakehouse_contracts[<term>])
    (for example a managed PostgreSQL or an S3 endpoint that no role installs). The fact
    C(lakehouse_published[<term>]) of the first host of O(group) that has it, when that host ran in this play.
    The JSON file that host's role wrote on the controller, C(<state dir>/contracts/<host>/<term>.json),
    so a run limited to consumers still finds it.
  - Every contract found is checked against its layer's schema
    (C(roles/lakehouse/files/contracts/<term>.schema.json)); a contract of another shape fails with the
    field at fault and where the contract came from.
  - Fails with the play or variable to provide when none is found.
options:
  _terms:
    description: Services whose contract is wanted.
    required: true
  group:
    description: Inventory group of the publishing hosts; defaults to the service name.
    type: str
  state_dir:
    description: Controller directory of published contracts.
    type: str
    vars:
      - name: lakehouse_state_dir
    env:
      - name: LAKEHOUSE_STATE_DIR
"""

EXAMPLES = r"""
- name: Render the catalog's S3 endpoint
  ansible.builtin.debug:
    msg: "{{ lookup('lakehouse_contract', 'object_storage').url }}"
"""

RETURN = r"""
_raw:
  description: One contract (a dict) per term.
  type: list
  elements: dict
"""

import json
import os
import sys

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

# Ansible puts no controller-side shared code on the path: the repository root holds module_utils/.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.append(REPO)
from module_utils import lakehouse_contract  # noqa: E402


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        variables = variables or {}
        found = []
        for service in terms:
            group = self.get_option("group") or service
            contract, source = self._find(service, group, variables)
            if contract is None:
                raise AnsibleLookupError(
                    f"lakehouse_contract: no {service} contract; run the play of the {group!r} group first,"
                    f" or declare an external service as lakehouse_contracts.{service}"
                )
            problem = lakehouse_contract.problem(contract, service)
            if problem is not None:
                raise AnsibleLookupError(
                    f"lakehouse_contract: the {service} contract of {source} is invalid: {problem}"
                )
            found.append(contract)
        return found

    def _find(self, service, group, variables):
        """(contract, where it came from), or (None, None)."""
        external = self._templar.template(variables.get("lakehouse_contracts") or {})
        if service in external:
            return external[service], f"the inventory (lakehouse_contracts.{service})"
        hosts = variables.get("groups", {}).get(group, [])
        hostvars = variables.get("hostvars", {})
        for host in hosts:
            fact = (hostvars.get(host, {}).get("lakehouse_published") or {}).get(service)
            if fact:
                return self._templar.template(fact), f"{host} (its lakehouse_published fact)"
        state_dir = self.get_option("state_dir")
        if not state_dir:
            return None, None
        state_dir = os.path.expanduser(self._templar.template(state_dir))
        for host in hosts:
            path = os.path.join(state_dir, "contracts", host, f"{service}.json")
            if os.path.exists(path):
                try:
                    with open(path, encoding="utf-8") as handle:
                        return json.load(handle), f"{host} ({path})"
                except (OSError, ValueError) as err:
                    raise AnsibleLookupError(f"lakehouse_contract: unreadable {path}: {err}") from err
        return None, None
