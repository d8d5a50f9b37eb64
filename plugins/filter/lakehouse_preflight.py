"""Filters of the preflight: the checks every service makes of its inputs, written once, and the
site-wide checks that no single role can make (roles/lakehouse/tasks/check.yml, playbooks/preflight.yml).

Every problem is a sentence that names the variable at fault, so an operator knows what to change.
"""

from __future__ import annotations

import os
import sys

from ansible.errors import AnsibleFilterError

# Ansible puts no controller-side shared code on the path: the repository root holds module_utils/.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.append(REPO)
from module_utils.lakehouse_jobs import JobSpecError, on_calendar  # noqa: E402
from module_utils.lakehouse_names import is_dns_name, is_ip_literal, port_number  # noqa: E402

CHECK_KEYS = {"names", "ports", "tls_files", "schedules"}


def input_problems(check: dict) -> list[str]:
    """The problems of one service's inputs. `check` holds, each by variable name:
    `names` (a DNS name or a list of them: never an IP literal), `ports` (numbers from 1 to 65535),
    `tls_files` (user-supplied certificate and key paths: none or all set, each present on the
    controller) and `schedules` (a cron or preset that both a systemd timer and a CronJob read)."""
    unknown = set(check) - CHECK_KEYS
    if unknown:
        raise AnsibleFilterError(
            f"lakehouse_input_problems: unknown keys {sorted(unknown)}; known: {sorted(CHECK_KEYS)}"
        )
    problems = []
    for variable, value in (check.get("names") or {}).items():
        for name in value if isinstance(value, list) else [value]:
            if is_ip_literal(name):
                problems.append(
                    f"{variable}: {name} is an IP literal; IP literals are not allowed in contracts or"
                    " certificates, name the host by DNS"
                )
            elif not is_dns_name(name):
                problems.append(f"{variable}: '{name}' is not a valid DNS name (labels of letters, digits, hyphens)")
    for variable, value in (check.get("ports") or {}).items():
        if port_number(value) is None:
            problems.append(f"{variable}: '{value}' is not a port number from 1 to 65535")
    for variable, value in (check.get("schedules") or {}).items():
        try:
            on_calendar(value, variable)
        except JobSpecError as error:
            problems.append(str(error))
    files = check.get("tls_files") or {}
    given = {variable: path for variable, path in files.items() if path}
    if given and len(given) != len(files):
        unset = ", ".join(sorted(set(files) - set(given)))
        problems.append(f"user-supplied TLS needs {', '.join(sorted(files))}; unset: {unset}")
    missing = [f"{variable} {path}" for variable, path in given.items() if not os.path.isfile(os.path.expanduser(path))]
    if missing:
        problems.append(f"user-supplied TLS files missing on the controller: {', '.join(missing)}")
    return problems


def port_clashes(claims_by_host: dict) -> list[str]:
    """The ports that two variables take on one host: `claims_by_host` maps each host (a metal one:
    on a cluster each service has its own address) to {variable: port}."""
    clashes = []
    for host, claims in sorted(claims_by_host.items()):
        takers: dict[int, list[str]] = {}
        for variable, value in claims.items():
            number = port_number(value)
            if number is not None:
                takers.setdefault(number, []).append(variable)
        for number, variables in sorted(takers.items()):
            if len(variables) > 1:
                clashes.append(f"{host}: port {number} is taken by each of {', '.join(sorted(variables))}")
    return clashes


class FilterModule:
    def filters(self):
        return {"lakehouse_input_problems": input_problems, "lakehouse_port_clashes": port_clashes}
