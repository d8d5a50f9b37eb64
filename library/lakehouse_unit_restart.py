#!/usr/bin/python
"""Restart a service's units on a host (or not) and wait, bounded, until it is ready: one step of a
rolling restart, and the systemd engine's wait after a start."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lakehouse_unit_restart
short_description: Restart systemd units and wait, bounded, until their readiness probes answer
description:
  - Restarts the units in one C(systemctl restart) (each runs its own stop first, for example a Trino
    worker's graceful drain), then tries every readiness probe until all answer or the timeout passes.
    With O(restart=false) it only waits, for units an earlier task started.
  - Returns only once the host serves again, so a task throttled to one host at a time restarts a
    component across its hosts one after another, each ready before the next stops - a rolling
    restart. Fails, naming the probes that never answered, when the host is not ready in time.
  - Fails early when a unit has failed for good (systemd gave up restarting it) or its process has
    exited twice while waited on (systemd restarting it each time). One exit may be passing; a
    second in a row is the change's fault, and the timeout would only add the start limit's delay.
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
  restart:
    description: Restart the units first; without, wait for units already started.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reports the restart it would make and makes none; a wait tries each probe once and reports.
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
  returned: failure, and a wait in check mode
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
from ansible.module_utils.lakehouse_systemd import show_units

CRASHES = 2  # exits of a unit's process, while waited on, that fail the wait at once


def restarts(module: AnsibleModule, units: list[str]) -> dict[str, int | None]:
    """Each unit's count of automatic restarts (systemd's NRestarts); None once systemd gave up
    restarting it (its start limit reached)."""
    # Where systemd cannot be asked, nothing is counted; the restart itself then says why.
    shown, _ = show_units(module, units, ["ActiveState", "NRestarts"])
    counts = {}
    for unit in units:
        props = shown.get(unit, {})
        counts[unit] = None if props.get("ActiveState") == "failed" else int(props.get("NRestarts") or 0)
    return counts


def units_crashing(module: AnsibleModule, before: dict[str, int | None]) -> list[str]:
    """The units failed for good, or whose process exited CRASHES times since `before`."""
    now = restarts(module, list(before))
    return [unit for unit, count in now.items() if count is None or count - (before[unit] or 0) >= CRASHES]


def main():
    module = AnsibleModule(
        argument_spec={
            "units": {"type": "list", "elements": "str", "required": True},
            "probes": {"type": "list", "elements": "dict", "default": [], "options": PROBE_OPTIONS},
            "peers": {"type": "list", "elements": "dict", "default": [], "options": PROBE_OPTIONS},
            "timeout": {"type": "int", "default": 300},
            "delay": {"type": "int", "default": 2},
            "restart": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    restart = p["restart"] and bool(p["units"])
    if module.check_mode:
        if restart:
            module.exit_json(changed=True)
        silent = [probe["name"] for probe in p["probes"] if not probe_answers(probe)]
        module.exit_json(changed=False, probes_failed=silent)
    if restart and (down := [peer["name"] for peer in p["peers"] if not probe_answers(peer)]):
        msg = f"not restarted while {', '.join(down)} does not answer (a roll stops at a host whose restart failed)"
        module.fail_json(msg=msg, refused=True, probes_failed=down)
    if restart:
        rc, _, err = module.run_command(["systemctl", "restart", *p["units"]])
        if rc != 0:
            module.fail_json(msg=f"systemctl restart {' '.join(p['units'])} failed: {err.strip()}", rc=rc)
    before = restarts(module, p["units"])  # an explicit restart keeps the count
    since = "the restart" if restart else "the wait began"
    start = time.monotonic()
    waiting = list(p["probes"])
    while True:
        waiting = [probe for probe in waiting if not probe_answers(probe)]
        seconds = round(time.monotonic() - start, 1)
        if not waiting:
            module.exit_json(changed=restart, seconds=seconds)
        names = [probe["name"] for probe in waiting]
        if crashing := units_crashing(module, before):
            msg = f"{', '.join(crashing)} failed or kept exiting, {seconds} s after {since}"
            module.fail_json(msg=msg, probes_failed=names)
        if seconds >= p["timeout"]:
            module.fail_json(msg=f"not ready {seconds} s after {since}: {', '.join(names)}", probes_failed=names)
        time.sleep(p["delay"])


if __name__ == "__main__":
    main()
