"""Filters for contracts (module_utils/lakehouse_contract.py): build their endpoints and credentials
in the one shape every layer shares, and hand one over for publishing only once it matches its layer's schema."""

from __future__ import annotations

import os
import sys

from ansible.errors import AnsibleFilterError

# Ansible puts no controller-side shared code on the path: the repository root holds module_utils/.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.append(REPO)
from module_utils import lakehouse_contract  # noqa: E402


def checked_contract(contract, layer, host):
    """`contract`, the `layer` contract of `host`, as it is once it matches its layer's schema;
    refused, naming the schema and the first problem, when it does not (so no consumer reads a
    contract of another shape)."""
    found = lakehouse_contract.problem(contract, str(layer))
    if found is not None:
        schema = f"roles/lakehouse/files/contracts/{layer}.schema.json"
        raise AnsibleFilterError(f"The {layer} contract of {host} does not match {schema}: {found}")
    return contract


class FilterModule:
    def filters(self):
        return {
            "lakehouse_checked_contract": checked_contract,
            # "https://minio.example:9000" | lakehouse_endpoint('s3') -> {name, url, scheme, host, port}
            "lakehouse_endpoint": lakehouse_contract.endpoint,
            # ['app'] | lakehouse_credentials('lakehouse_secret:minio/users/', 's3_secret_key')
            "lakehouse_credentials": lakehouse_contract.credentials,
        }
