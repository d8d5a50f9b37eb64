"""Documentation shared by the modules that try readiness probes on a metal host."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  probes:
    description:
      - Readiness probes (module_utils/lakehouse_probe.py), each tried with a timeout of 5 seconds.
    type: list
    elements: dict
    default: []
    suboptions:
      name: {description: What the probe is for (reported back)., type: str, required: true}
      url: {description: An https or http URL that must answer 200., type: str}
      match: {description: Regular expression the URL's body must match., type: str, default: ""}
      ca_path: {description: CA bundle the URL's certificate must chain to., type: path}
      host: {description: Host of a TCP probe., type: str}
      port: {description: Port of a TCP probe., type: int}
      command: {description: Command that must exit 0., type: list, elements: str}
"""
