#!/usr/bin/python
"""Restart a service's units on a host and wait, bounded, until it is ready again: one step of a rolling restart."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lakehouse_unit_restart
short_description: Restart systemd units and wait, bounded, until their readiness probes answer
description:
  - Restarts the units in one C(systemctl restart) (each runs its own stop first, for example a Trino
    worker's graceful drain), then tries every readiness probe until all answer or the timeout passes.
  - Returns only once the host serves again, so a task throttled to one host at a time restarts a
    component across its hosts one after another, each ready before the next stops - a rolling
    restart. Fails, naming the probes that never answered, when the host is not ready in time, and
    at once when a unit has failed for good (systemd gave up restarting it).
  - Refuses to restart, and changes nothing, while one of O(peers) does not answer - the same
    component on another host - so a roll stops at the host whose restart failed.
author: Lakehouse bootstrap maintainers
extends_documentation_fragment: [lakehouse_probes]
options:
  units:
    description: The systemd units to restart.
    type: list
    elements: str
    required: true
  peers:
    description: Probes of the same component on the other hosts (the same keys as O(probes)), each tried once.
    type: list
    elements: dict
    default: []
  timeout:
    description: Seconds the probes may take, after the restart, to all answer.
    type: int
    default: 300
  delay:
    description: Seconds between two tries of the probes that have not answered yet.
    type: int
    default: 2
attributes:
  check_mode:
    support: full
    description: Reports the restart it would make and makes none.
"""

EXAMPLES = r"""
- name: Restart the Trino worker, one host at a time, each ready before the next
  lakehouse_unit_restart:
    units: [lakehouse-trino-worker.service]
    probes:
      - {name: worker, command: [/usr/bin/python3, /etc/lakehouse-trino/node.py, ready]}
    timeout: 300
  throttle: 1
"""

RETURN = r"""
seconds:
  description: Seconds from the restart until every probe answered.
  returned: success
  type: float
probes_failed:
  description: The names of the probes (or peers) that did not answer.
  returned: failure
  type: list
  elements: str
refused:
  description: Whether the restart was refused because a peer did not answer (nothing was restarted).
  returned: failure
  type: bool
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.lakehouse_probe import PROBE_OPTIONS, probe_answers


def units_failed(module: AnsibleModule, units: list[str]) -> list[str]:
    """The units systemd has given up on (their start limit reached)."""
    _, out, _ = module.run_command(["systemctl", "show", "--property=ActiveState", "--value", *units])
    return [unit for unit, state in zip(units, out.split(), strict=False) if state == "failed"]


def main():
    module = AnsibleModule(
        argument_spec={
            "units": {"type": "list", "elements": "str", "required": True},
            "probes": {"type": "list", "elements": "dict", "default": [], "options": PROBE_OPTIONS},
            "peers": {"type": "list", "elements": "dict", "default": [], "options": PROBE_OPTIONS},
            "timeout": {"type": "int", "default": 300},
            "delay": {"type": "int", "default": 2},
        },
        supports_check_mode=True,
    )
    p = module.params
    if module.check_mode or not p["units"]:
        module.exit_json(changed=bool(p["units"]))
    if down := [peer["name"] for peer in p["peers"] if not probe_answers(peer)]:
        msg = f"not restarted while {', '.join(down)} does not answer (a roll stops at a host whose restart failed)"
        module.fail_json(msg=msg, refused=True, probes_failed=down)
    rc, _, err = module.run_command(["systemctl", "restart", *p["units"]])
    if rc != 0:
        module.fail_json(msg=f"systemctl restart {' '.join(p['units'])} failed: {err.strip()}", rc=rc)
    start = time.monotonic()
    waiting = list(p["probes"])
    while True:
        waiting = [probe for probe in waiting if not probe_answers(probe)]
        seconds = round(time.monotonic() - start, 1)
        if not waiting:
            module.exit_json(changed=True, seconds=seconds)
        names = [probe["name"] for probe in waiting]
        if failed := units_failed(module, p["units"]):
            module.fail_json(msg=f"{', '.join(failed)} failed {seconds} s after the restart", probes_failed=names)
        if seconds >= p["timeout"]:
            module.fail_json(msg=f"not ready {seconds} s after the restart: {', '.join(names)}", probes_failed=names)
        time.sleep(p["delay"])


if __name__ == "__main__":
    main()
