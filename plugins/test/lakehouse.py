"""Jinja tests shared by the lakehouse roles (the rules themselves: module_utils/lakehouse_names.py)."""

from __future__ import annotations

import os
import sys

# Ansible puts no controller-side shared code on the path: the repository root holds module_utils/.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.append(REPO)
from module_utils.lakehouse_names import is_dns_name, is_ip_literal, is_network_cidr  # noqa: E402


class TestModule:
    def tests(self):
        return {"lakehouse_ip": is_ip_literal, "lakehouse_cidr": is_network_cidr, "lakehouse_dns_name": is_dns_name}
