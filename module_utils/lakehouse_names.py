"""What the lakehouse accepts as a host name, an address range and a port (controller side)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens, 63 characters
# each, 253 in all; a trailing dot (the root) is allowed.
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


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


def is_dns_name(value) -> bool:
    """True when value is a host name that DNS can hold (and not an IP literal)."""
    text = str(value).strip().removesuffix(".")
    if not text or len(text) > 253 or is_ip_literal(text):
        return False
    return all(_LABEL.match(label) for label in text.split("."))


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


def port_number(value) -> int | None:
    """The port value names (an integer, or its decimal text), or None unless it is 1 to 65535."""
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if 0 < number < 65536 else None
