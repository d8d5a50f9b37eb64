"""Jinja tests shared by the lakehouse roles."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_ip_literal(value) -> bool:
    """True when value (a host name, host:port or URL) names its host by an IP address."""
    text = str(value).strip()
    host = urlsplit(text).hostname if "://" in text else text
    if not host:
        return False
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif host.count(":") == 1:  # host:port
        host = host.split(":", 1)[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_network_cidr(value) -> bool:
    """True when value is an address range in CIDR notation: a network address with a prefix
    length, without host bits set, wider than one host (a bare address, /32 or /128 is not)."""
    text = str(value).strip()
    if "/" not in text:
        return False
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        return False
    return network.num_addresses > 1


class TestModule:
    def tests(self):
        return {"lakehouse_ip": is_ip_literal, "lakehouse_cidr": is_network_cidr}
