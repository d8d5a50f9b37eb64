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
    The contract that host's role will publish in this run, C(__lakehouse_planned[<term>]), as the site
    preflight (C(playbooks/preflight.yml)) planned it, so every layer's checks run before the first change.
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
    description: Inventory group of the publishing hosts; defaults to the service name (C(all) with O(every)).
    type: str
  every:
    description:
      - Return, for each term, every contract of that service that a host of O(group) published, as a
        list of C({host, contract}) (empty when none did), rather than the first one. A monitoring
        role uses it to scrape every service of an inventory.
    type: bool
    default: false
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

- name: List the hosts that publish a query engine
  ansible.builtin.debug:
    msg: "{{ lookup('lakehouse_contract', 'query', every=true) | map(attribute='host') }}"
"""

RETURN = r"""
_raw:
  description: One contract (a dict) per term; with O(every), one list of C({host, contract}) per term.
  type: list
  elements: raw
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
        every = self.get_option("every")
        for service in terms:
            group = self.get_option("group") or ("all" if every else service)
            if every:
                found.append(
                    [
                        {"host": host, "contract": self._checked(service, contract, source)}
                        for host, contract, source in self._published(service, group, variables)
                    ]
                )
                continue
            contract, source = self._find(service, group, variables)
            if contract is None:
                raise AnsibleLookupError(
                    f"lakehouse_contract: no {service} contract; run the play of the {group!r} group first,"
                    f" or declare an external service as lakehouse_contracts.{service}"
                )
            found.append(self._checked(service, contract, source))
        return found

    @staticmethod
    def _checked(service, contract, source):
        problem = lakehouse_contract.problem(contract, service)
        if problem is not None:
            raise AnsibleLookupError(f"lakehouse_contract: the {service} contract of {source} is invalid: {problem}")
        return contract

    def _find(self, service, group, variables):
        """(contract, where it came from), or (None, None)."""
        external = self._templar.template(variables.get("lakehouse_contracts") or {})
        if service in external:
            return external[service], f"the inventory (lakehouse_contracts.{service})"
        # A host's fact from this run first, then what a host plans to publish, then the file of any host.
        for sources in (("fact",), ("planned",), ("file",)):
            for _host, contract, source in self._published(service, group, variables, sources):
                return contract, source
        return None, None

    def _published(self, service, group, variables, sources=("fact", "planned", "file")):
        """(host, contract, where it came from) for each host of `group` that published one: its
        fact when it ran in this run, else the contract the site preflight planned for it, else the
        file it wrote on the controller."""
        hostvars = variables.get("hostvars", {})
        state_dir = self.get_option("state_dir")
        state_dir = os.path.expanduser(self._templar.template(state_dir)) if state_dir else None
        for host in variables.get("groups", {}).get(group, []):
            facts = hostvars.get(host, {})
            fact = (facts.get("lakehouse_published") or {}).get(service)
            if fact and "fact" in sources:
                yield host, self._templar.template(fact), f"{host} (its lakehouse_published fact)"
                continue
            planned = (facts.get("__lakehouse_planned") or {}).get(service)
            if planned and not fact and "planned" in sources:
                yield host, self._templar.template(planned), f"{host} (the contract the site preflight planned)"
                continue
            if fact or planned or "file" not in sources or not state_dir:
                continue
            path = os.path.join(state_dir, "contracts", host, f"{service}.json")
            if os.path.exists(path):
                try:
                    with open(path, encoding="utf-8") as handle:
                        yield host, json.load(handle), f"{host} ({path})"
                except (OSError, ValueError) as err:
                    raise AnsibleLookupError(f"lakehouse_contract: unreadable {path}: {err}") from err
