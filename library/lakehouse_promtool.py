#!/usr/bin/python

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lakehouse_promtool
short_description: Check a whole Prometheus configuration with promtool before it is applied
description:
  - Lays out the given config files in a private temporary directory, as the host will hold them
    under O(config_dir) (every occurrence of O(config_dir) in their contents points into the
    temporary directory instead), and runs C(promtool check config) on O(config) (which checks its
    scrape config files and rule files too) and C(promtool check web-config) on O(web_config).
  - Changes nothing anywhere; fails with promtool's own words when a check fails. Runs in check
    mode too, so a proposed change is checked before it is reported.
options:
  promtool:
    description: Path of the promtool program.
    type: path
    required: true
  config_dir:
    description: The directory the files are written under on the host.
    type: str
    required: true
  files:
    description:
      - The config files, as the service descriptor lists them (C(path) relative to O(config_dir),
        C(content), C(secret)). Their contents never appear in the module's result.
    type: list
    elements: dict
    required: true
  config:
    description: The main configuration file, relative to O(config_dir).
    type: str
    default: prometheus.yml
  web_config:
    description: The web configuration file (TLS, basic auth), relative to O(config_dir); empty for none.
    type: str
    default: ""
author: Lakehouse bootstrap maintainers
"""

EXAMPLES = r"""
- name: Check the configuration with promtool
  lakehouse_promtool:
    promtool: /root/.cache/lakehouse/artifacts/promtool/v0.316.0/amd64/promtool
    config_dir: /etc/lakehouse-prometheus
    files: "{{ prometheus_service.files }}"
    web_config: web.yml
  delegate_to: localhost
"""

RETURN = r"""
checked:
  description: The promtool commands that passed, each as its argument list.
  returned: success
  type: list
  elements: list
"""

import os
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule


def lay_out(root: str, config_dir: str, files: list[dict]) -> None:
    for entry in files:
        path = os.path.normpath(os.path.join(root, entry["path"]))
        if not path.startswith(root + os.sep):
            raise ValueError(f"config file {entry['path']} is outside the config directory")
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
            handle.write(str(entry["content"]).replace(config_dir.rstrip("/"), root))


def main():
    module = AnsibleModule(
        argument_spec={
            "promtool": {"type": "path", "required": True},
            "config_dir": {"type": "str", "required": True},
            "files": {"type": "list", "elements": "dict", "required": True, "no_log": True},
            "config": {"type": "str", "default": "prometheus.yml"},
            "web_config": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    params = module.params
    checked = []
    with tempfile.TemporaryDirectory(prefix="lakehouse-promtool-") as root:
        try:
            lay_out(root, params["config_dir"], params["files"])
        except (ValueError, OSError) as err:
            module.fail_json(msg=str(err))
        commands = [[params["promtool"], "check", "config", "--lint=none", os.path.join(root, params["config"])]]
        if params["web_config"]:
            commands.append([params["promtool"], "check", "web-config", os.path.join(root, params["web_config"])])
        for argv in commands:
            run = subprocess.run(argv, capture_output=True, text=True, check=False)
            if run.returncode != 0:
                words = (run.stdout + run.stderr).replace(root, params["config_dir"].rstrip("/")).strip()
                module.fail_json(msg=f"promtool {' '.join(argv[1:3])} failed: {words}", rc=run.returncode)
            checked.append(["promtool", *argv[1:3], argv[-1].replace(root, params["config_dir"].rstrip("/"))])
    module.exit_json(changed=False, checked=checked)


if __name__ == "__main__":
    main()
