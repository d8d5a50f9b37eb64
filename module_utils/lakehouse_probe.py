"""Readiness probes as the modules on a metal host try them: a URL, a TCP port or a command."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import urllib.request

PROBE_TIMEOUT = 5  # seconds per try: whoever calls retries, bounded

# The argument spec of one probe, shared by every module that takes probes.
PROBE_OPTIONS = {
    "name": {"type": "str", "required": True},
    "url": {"type": "str"},
    "match": {"type": "str", "default": ""},
    "ca_path": {"type": "path"},
    "host": {"type": "str"},
    "port": {"type": "int"},
    "command": {"type": "list", "elements": "str"},
}


def probe_answers(probe: dict) -> bool:
    """One try: the URL answers 200 with a body matching `match`, the port accepts, or the command exits 0."""
    try:
        if probe["url"]:
            context = ssl.create_default_context(cafile=probe["ca_path"]) if probe["url"].startswith("https") else None
            with urllib.request.urlopen(probe["url"], timeout=PROBE_TIMEOUT, context=context) as response:  # noqa: S310
                body = response.read(1 << 20).decode(errors="replace")
                return response.status == 200 and re.search(probe["match"], body) is not None
        if probe["port"]:
            with socket.create_connection((probe["host"], probe["port"]), timeout=PROBE_TIMEOUT):
                return True
        if probe["command"]:
            return subprocess.run(probe["command"], capture_output=True, timeout=PROBE_TIMEOUT * 2).returncode == 0
    except (OSError, ValueError, subprocess.SubprocessError):
        return False
    return False
