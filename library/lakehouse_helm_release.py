#!/usr/bin/python

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lakehouse_helm_release
short_description: Make a Helm release match a local chart directory and a values dict
description:
  - Installs, upgrades or uninstalls a Helm release by driving the C(helm) command line (Helm 3).
  - Idempotent. The desired release is rendered with C(helm upgrade --install --dry-run=server)
    and compared with the release stored in the cluster (chart name, version and appVersion,
    user-supplied values, manifest and hook manifests). A new revision is made only when one of
    them differs, or when the latest revision is not in the V(deployed) status (V(failed),
    V(pending-install), ...).
  - Values are written to a temporary file readable by the owner only and deleted afterwards;
    they never appear on a command line. Upgrades always pass C(--reset-values), so the release
    holds exactly O(values) and nothing left over from an earlier revision.
  - Values are stored by Helm in the release, shown in diffs and readable by anyone allowed to
    run C(helm get values). They must not be secrets, by design; credentials belong in
    Kubernetes Secrets that the chart references by name.
  - The namespace must exist. The module never passes C(--create-namespace); the caller creates
    the namespace, so it can carry labels (Pod Security, network policy selectors, ...).
  - Charts whose output changes from one render to the next (C(randAlphaNum), C(now), C(genCA),
    C(.Release.Revision), C(.Release.IsInstall)) are reported as changed on every run.
options:
  name:
    description:
      - Name of the release.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the release. It must exist.
    type: str
    required: true
  chart:
    description:
      - Path to a local chart directory (the one holding C(Chart.yaml)).
      - Chart dependencies must already be in its C(charts/) directory (C(helm dependency build)).
      - Required with O(state=present).
    type: path
  values:
    description:
      - User-supplied values, merged by Helm over the chart's C(values.yaml).
      - Not secrets, see the description.
    type: dict
    default: {}
  kubeconfig:
    description:
      - Path to the kubeconfig file. When omitted Helm uses E(KUBECONFIG) or C(~/.kube/config).
    type: path
  context:
    description:
      - Kubeconfig context to use. When omitted, the kubeconfig's current context.
    type: str
  state:
    description:
      - V(present) installs or upgrades the release, V(absent) uninstalls it.
    type: str
    choices: [present, absent]
    default: present
  wait:
    description:
      - Wait until the rollout is complete (Deployments and StatefulSets Ready, Services and
        PersistentVolumeClaims usable) before reporting success; on uninstall, wait until the
        resources are gone, their pods too (C(--cascade foreground)), so that a service taken
        away has stopped before the next task runs. Helm's C(--wait).
    type: bool
    default: true
  timeout:
    description:
      - Time Helm waits for the rollout and for each hook, as a Go duration (V(90s), V(5m), V(1h)).
    type: str
    default: 5m
  helm_binary:
    description:
      - Name or path of the C(helm) executable. A bare name is looked up on E(PATH), then in
        the system binary directories and C(/usr/local/bin).
    type: str
    default: helm
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode).
    support: full
notes:
  - In the diff, the data of Secret resources rendered by the chart is replaced by C(<redacted>).
requirements:
  - helm 3 (the command line)
author: Lakehouse bootstrap maintainers
"""

EXAMPLES = r"""
- name: Deploy the catalog chart
  lakehouse_helm_release:
    name: catalog
    namespace: lakehouse
    chart: /opt/lakehouse/helm/catalog
    kubeconfig: /etc/lakehouse/kubeconfig
    values:
      replicas: 2
      database:
        host: postgres.lakehouse.svc
        # The password is in a Secret created beforehand; the chart mounts it by name.
        passwordSecret: catalog-db
    timeout: 10m

- name: Remove the release
  lakehouse_helm_release:
    name: catalog
    namespace: lakehouse
    kubeconfig: /etc/lakehouse/kubeconfig
    state: absent
"""

RETURN = r"""
revision:
  description:
    - Revision of the release after the run, 0 when there is none.
    - In check mode nothing is applied, so this is the revision in the cluster now.
  returned: always
  type: int
  sample: 3
status:
  description:
    - Helm status of the release after the run (V(deployed), V(failed), ...), or V(absent).
    - In check mode, the status in the cluster now.
  returned: always
  type: str
  sample: deployed
chart:
  description:
    - Chart of the release as name-version. With O(state=present) the chart of the desired
      release, with O(state=absent) the chart of the release found (null when none).
  returned: always
  type: str
  sample: catalog-0.3.1
manifest_sha256:
  description:
    - SHA-256 of the desired release's manifest as Helm stores it (hooks excluded).
  returned: when O(state=present)
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
"""

import hashlib
import json
import os
import tempfile

import yaml
from ansible.module_utils.basic import AnsibleModule

STDERR_TAIL_LINES = 15
# Statuses of a release that no longer exists for our purposes (uninstalled with --keep-history).
GONE = ("uninstalled", "uninstalling")


class Helm:
    """The helm command line with the connection flags of this run."""

    def __init__(self, module):
        self.module = module
        params = module.params
        self.binary = find_helm(module, params["helm_binary"])
        self.scope = ["--namespace", params["namespace"]]
        if params["kubeconfig"]:
            self.scope += ["--kubeconfig", params["kubeconfig"]]
        if params["context"]:
            self.scope += ["--kube-context", params["context"]]

    def run(self, args, what, allow_missing=False):
        """Run helm; stdout on success, None for a missing release if allowed, else fail the module."""
        rc, out, err = self.module.run_command([self.binary, *args, *self.scope])
        if rc == 0:
            return out
        if allow_missing and "release: not found" in err:
            return None
        tail = "\n".join(err.strip().splitlines()[-STDERR_TAIL_LINES:])
        if "Kubernetes cluster unreachable" in err:
            what = f"{what}: the Kubernetes API server is unreachable (check kubeconfig and context)"
        elif f'namespaces "{self.module.params["namespace"]}" not found' in err:
            what = f"{what}: namespace {self.module.params['namespace']} does not exist; create it first"
        self.module.fail_json(msg=f"{what} failed: {tail}", rc=rc)

    def version(self):
        return self.run(["version", "--short"], "helm version").strip()


def find_helm(module, name):
    if os.sep in name:
        if os.path.isfile(name) and os.access(name, os.X_OK):
            return name
        module.fail_json(msg=f"helm binary {name} does not exist or is not executable")
    path = module.get_bin_path(name, opt_dirs=["/usr/local/bin"])
    if not path:
        module.fail_json(
            msg=f"helm binary {name!r} not found on PATH nor in /usr/local/bin; install Helm 3 or set helm_binary"
        )
    return path


def release_view(release, chart, app_version):
    """What decides whether a release must change: chart, values, manifest and hooks."""
    hooks = sorted((hook.get("path", ""), hook.get("manifest", "")) for hook in release.get("hooks") or [])
    return {
        "chart": chart,
        "app_version": app_version or "",
        # Helm omits an empty config from its JSON.
        "values": release.get("config") or {},
        "manifest": release.get("manifest", ""),
        "hooks": hooks,
    }


def deployed(helm, name):
    """The latest stored revision as (view, revision, status), or None when there is no release."""
    out = helm.run(["status", name, "--output", "json"], f"reading release {name}", allow_missing=True)
    if out is None:
        return None
    release = json.loads(out)
    status = release["info"]["status"]
    if status in GONE:
        return None
    # helm status leaves the chart out of its JSON; get metadata reads the same (latest) revision.
    meta = json.loads(helm.run(["get", "metadata", name, "--output", "json"], f"reading release {name}"))
    view = release_view(release, f"{meta['chart']}-{meta['version']}", meta.get("appVersion"))
    return view, release["version"], status


def desired(helm, name, upgrade_args):
    """The release as an upgrade would make it, rendered by helm against the cluster."""
    out = helm.run(["upgrade", *upgrade_args, "--dry-run=server", "--output", "json"], f"rendering release {name}")
    release = json.loads(out)
    meta = release["chart"]["metadata"]
    return release_view(release, f"{meta['name']}-{meta['version']}", meta.get("appVersion"))


def redact_secrets(manifest):
    """The manifest with Secret data hidden: a diff ends up in logs, a chart may render credentials."""
    documents = []
    # Split on the document markers, the first one included: helm starts every document with one.
    for document in ("\n" + manifest).split("\n---"):
        try:
            parsed = yaml.safe_load(document)
        except yaml.YAMLError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("kind") == "Secret":
            for field in ("data", "stringData"):
                if isinstance(parsed.get(field), dict):
                    parsed[field] = dict.fromkeys(parsed[field], "<redacted>")
            lines = [line for line in document.splitlines() if line.startswith("# Source:")]
            lines.append(yaml.safe_dump(parsed, sort_keys=False).rstrip("\n"))
            document = "\n" + "\n".join(lines) + ("\n" if document.endswith("\n") else "")
        documents.append(document)
    return "\n---".join(documents)[1:]


def diff_text(view):
    if view is None:
        return ""
    values = yaml.safe_dump(view["values"], default_flow_style=False, sort_keys=True) if view["values"] else "{}\n"
    hooks = "".join(f"---\n# Source: {path} (hook)\n{manifest.strip()}\n" for path, manifest in view["hooks"])
    app = f" (appVersion {view['app_version']})" if view["app_version"] else ""
    manifest = redact_secrets(view["manifest"] + hooks)
    return f"# chart: {view['chart']}{app}\n# values:\n{values}# manifest:\n{manifest}"


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "namespace": {"type": "str", "required": True},
            "chart": {"type": "path"},
            "values": {"type": "dict", "default": {}},
            "kubeconfig": {"type": "path"},
            "context": {"type": "str"},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            "wait": {"type": "bool", "default": True},
            "timeout": {"type": "str", "default": "5m"},
            "helm_binary": {"type": "str", "default": "helm"},
        },
        required_if=[("state", "present", ["chart"])],
        supports_check_mode=True,
    )
    params = module.params
    name, namespace, state = params["name"], params["namespace"], params["state"]

    if state == "present":
        chart = params["chart"]
        if not os.path.isdir(chart):
            module.fail_json(msg=f"chart directory {chart} does not exist")
        if not os.path.isfile(os.path.join(chart, "Chart.yaml")):
            module.fail_json(msg=f"{chart} is not a Helm chart directory: it has no Chart.yaml")
    if params["kubeconfig"] and not os.path.isfile(params["kubeconfig"]):
        module.fail_json(msg=f"kubeconfig {params['kubeconfig']} does not exist")

    helm = Helm(module)
    version = helm.version()
    if not version.startswith("v3."):
        module.fail_json(msg=f"{helm.binary} is Helm {version}; this module drives Helm 3")

    found = deployed(helm, name)
    before, revision, status = found if found else (None, 0, "absent")
    wait = ["--wait", "--timeout", params["timeout"]] if params["wait"] else ["--timeout", params["timeout"]]
    result = {"changed": False, "revision": revision, "status": status}

    if state == "absent":
        after = None
        result["chart"] = before["chart"] if before else None
        result["changed"] = before is not None
        if result["changed"] and not module.check_mode:
            # Foreground: the release is gone when its pods are, not only its workloads.
            helm.run(["uninstall", name, "--cascade", "foreground", *wait], f"uninstalling release {name}")
            result.update(revision=0, status="absent")
    else:
        # Always a file: a values dict on the command line would show in the process list.
        fd, values_file = tempfile.mkstemp(prefix="helm-values-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(params["values"], handle)
            # --reset-values: without it helm reuses the previous values when given none (values: {}).
            upgrade = ["--install", name, params["chart"], "--values", values_file, "--reset-values"]
            after = desired(helm, name, upgrade)
            result["chart"] = after["chart"]
            result["manifest_sha256"] = sha256(after["manifest"])
            result["changed"] = before != after or status != "deployed"
            if result["changed"] and not module.check_mode:
                helm.run(["upgrade", *upgrade, *wait], f"installing or upgrading release {name}")
                _, result["revision"], result["status"] = deployed(helm, name)
        finally:
            os.unlink(values_file)

    if module._diff:
        release = f"helm release {namespace}/{name}"
        result["diff"] = {
            "before": diff_text(before),
            "after": diff_text(after),
            "before_header": f"{release} (revision {revision})" if before else f"{release} (absent)",
            "after_header": f"{release} (desired)" if after else f"{release} (absent)",
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
