#!/usr/bin/python
"""What a service already has on a host, read in one call: the systemd engine acts only where it differs."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lakehouse_service_state
short_description: Read in one call a service's packages, user, artifacts, units and readiness on a host
description:
  - Reads, and never changes, what the systemd engine would otherwise ask one task at a time - which Debian
    packages are missing, whether the service user is as wanted, which installed artifacts are absent or do
    not match their pinned sha256, which paths exist, the state of each unit, and whether each readiness
    probe answers now. The engine then runs a package install, a user change, an artifact copy, a job, a
    start or a readiness wait only where this says it is needed, so a converge with nothing to do costs
    one round trip per service here instead of one per package, unit and probe.
  - An artifact is hashed once; its sha256 is recorded beside it with its size, modification time and inode
    and read back while they are unchanged, so a converge with nothing to do does not re-hash hundreds of
    megabytes.
author: Lakehouse bootstrap maintainers
extends_documentation_fragment: [lakehouse_probes]
options:
  packages:
    description: Debian package names that must be installed.
    type: list
    elements: str
    default: []
  user:
    description: The service's system user; compared with its home, its login shell and a locked password.
    type: dict
    suboptions:
      name: {description: User name., type: str, required: true}
      home: {description: Home directory., type: str, required: true}
      shell: {description: Login shell., type: str, default: /usr/sbin/nologin}
  artifacts:
    description: Installed artifacts with their pinned sha256.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path of the installed file., type: str, required: true}
      sha256: {description: Pinned sha256 (hex)., type: str, required: true}
  paths:
    description: Paths whose existence is reported (unpacked archives, the files a first-start job creates).
    type: list
    elements: str
    default: []
  units:
    description: systemd units whose state is reported.
    type: list
    elements: str
    default: []
  unit_patterns:
    description:
      - Shell patterns of unit file names in C(/etc/systemd/system) whose matches are reported (the timers a
        service has on the host, so that the engine removes those it no longer schedules).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: Reads only; nothing is recorded in check mode.
"""

EXAMPLES = r"""
- name: Read what the host already has of MinIO
  lakehouse_service_state:
    packages: []
    user: {name: minio, home: /var/lib/minio}
    artifacts:
      - {path: /usr/local/lib/lakehouse/minio/v1/minio, sha256: "{{ minio_sha256 }}"}
    units: [lakehouse-minio.service]
    probes:
      - {name: server, url: "https://minio.example.internal:9000/minio/health/ready", ca_path: /etc/ssl/certs/ca.crt}
  register: state
"""

RETURN = r"""
packages_missing:
  description: The packages of O(packages) that are not installed, in the order given.
  returned: always
  type: list
  elements: str
user_matches:
  description: Whether O(user) exists with its home, its shell and a locked password (true without O(user)).
  returned: always
  type: bool
artifacts_missing:
  description: The paths of O(artifacts) that are absent or do not match their sha256.
  returned: always
  type: list
  elements: str
paths_missing:
  description: The paths of O(paths) that do not exist.
  returned: always
  type: list
  elements: str
units:
  description: Per unit of O(units), C(loaded), C(enabled) and C(active) (booleans).
  returned: always
  type: dict
units_running:
  description: The units of O(units) that are loaded, enabled and active.
  returned: always
  type: list
  elements: str
unit_files:
  description: The unit file names in C(/etc/systemd/system) that match O(unit_patterns), sorted.
  returned: always
  type: list
  elements: str
probes_failed:
  description: The names of the probes of O(probes) that did not answer as wanted.
  returned: always
  type: list
  elements: str
"""

import fnmatch
import os
import pwd

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.lakehouse_files import sha256_recorded
from ansible.module_utils.lakehouse_probe import PROBE_OPTIONS, probe_answers
from ansible.module_utils.lakehouse_systemd import show_units


def packages_missing(module: AnsibleModule, names: list[str]) -> list[str]:
    if not names:
        return []
    rc, out, _ = module.run_command(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *names])
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return [name for name in names if name not in installed]


def user_matches(wanted: dict | None) -> bool:
    if not wanted:
        return True
    try:
        entry = pwd.getpwnam(wanted["name"])
    except KeyError:
        return False
    if (entry.pw_dir, entry.pw_shell) != (wanted["home"], wanted["shell"]):
        return False
    with open("/etc/shadow") as shadow:
        for line in shadow:
            name, _, rest = line.partition(":")
            if name == wanted["name"]:
                return rest.startswith("!")
    return False


def unit_states(module: AnsibleModule, units: list[str]) -> dict[str, dict]:
    shown, error = show_units(module, units, ["LoadState", "UnitFileState", "ActiveState"])
    if error:
        module.fail_json(msg=f"systemctl show failed: {error}")
    return {
        unit: {
            "loaded": props.get("LoadState") == "loaded",
            "enabled": props.get("UnitFileState") == "enabled",
            "active": props.get("ActiveState") == "active",
        }
        for unit, props in shown.items()
    }


def unit_files(patterns: list[str], directory: str = "/etc/systemd/system") -> list[str]:
    if not patterns:
        return []
    names = os.listdir(directory) if os.path.isdir(directory) else []
    return sorted(name for name in names if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns))


def main():
    module = AnsibleModule(
        argument_spec={
            "packages": {"type": "list", "elements": "str", "default": []},
            "user": {
                "type": "dict",
                "options": {
                    "name": {"type": "str", "required": True},
                    "home": {"type": "str", "required": True},
                    "shell": {"type": "str", "default": "/usr/sbin/nologin"},
                },
            },
            "artifacts": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {"path": {"type": "str", "required": True}, "sha256": {"type": "str", "required": True}},
            },
            "paths": {"type": "list", "elements": "str", "default": []},
            "units": {"type": "list", "elements": "str", "default": []},
            "unit_patterns": {"type": "list", "elements": "str", "default": []},
            "probes": {"type": "list", "elements": "dict", "default": [], "options": PROBE_OPTIONS},
        },
        supports_check_mode=True,
    )
    p = module.params
    record = not module.check_mode  # check mode writes nothing, not even a digest record
    units = unit_states(module, p["units"])
    module.exit_json(
        changed=False,
        packages_missing=packages_missing(module, p["packages"]),
        user_matches=user_matches(p["user"]),
        artifacts_missing=[
            a["path"]
            for a in p["artifacts"]
            if not os.path.isfile(a["path"]) or sha256_recorded(a["path"], record=record) != a["sha256"]
        ],
        paths_missing=[path for path in p["paths"] if not os.path.lexists(path)],
        units=units,
        units_running=[unit for unit, state in units.items() if all(state.values())],
        unit_files=unit_files(p["unit_patterns"]),
        probes_failed=[probe["name"] for probe in p["probes"] if not probe_answers(probe)],
    )


if __name__ == "__main__":
    main()
