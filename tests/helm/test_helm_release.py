"""lakehouse_helm_release against a real control plane (tests/controlplane.py), loopback only.

Each test installs its own release of a tiny chart written to tmp_path, so the tests do not
depend on each other's order.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from ansible.module_utils import basic
from conftest import ModuleExit
from controlplane import wait_for
from kubernetes import client, config

MODULE = "lakehouse_helm_release"
NS = "helm-release-test"

CHART_YAML = """\
apiVersion: v2
name: tiny
version: {version}
appVersion: "1.0"
"""
VALUES_YAML = """\
replicas: 2
greeting: hello
"""
TEMPLATES = {
    "configmap.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Values.configName | default (printf "%s-config" .Release.Name) }}
data:
  greeting: {{ .Values.greeting | quote }}
""",
    "service.yaml": """\
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  selector:
    app: {{ .Release.Name }}
  ports:
    - port: 80
""",
    "deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels:
    helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels:
      app: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app: {{ .Release.Name }}
      annotations:
        checksum/greeting: {{ .Values.greeting | sha256sum }}
    spec:
      containers:
        - name: app
          image: example.invalid/tiny:1  # kwok never pulls it
""",
    # A hook, so hook manifests take part in the comparison too.
    "hook.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-hook
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-delete-policy: before-hook-creation
data:
  greeting: {{ .Values.greeting | quote }}
""",
}


def write_chart(directory: Path, version: str = "0.1.0", templates: dict[str, str] | None = None) -> Path:
    (directory / "templates").mkdir(parents=True, exist_ok=True)
    (directory / "Chart.yaml").write_text(CHART_YAML.format(version=version))
    (directory / "values.yaml").write_text(VALUES_YAML)
    for name, text in (templates or TEMPLATES).items():
        (directory / "templates" / name).write_text(text)
    return directory


@pytest.fixture(scope="module", autouse=True)
def helm_env(cp):
    """helm found on PATH (the module's default lookup), its state kept out of $HOME, and no
    KUBECONFIG: the module must pass the kubeconfig it was given."""
    with pytest.MonkeyPatch.context() as patch:
        for key in ("PATH", "HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            patch.setenv(key, cp.env[key])
        patch.delenv("KUBECONFIG", raising=False)
        yield


@pytest.fixture(scope="module")
def api(cp):
    api_client = config.new_client_from_config(config_file=str(cp.kubeconfig))
    # The caller creates the namespace (the module never does), here with a label as a role would.
    client.CoreV1Api(api_client).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=NS, labels={"lakehouse.test/owner": "helm-tests"}))
    )
    yield api_client
    api_client.close()


@pytest.fixture
def release(cp, api, run_module, tmp_path, request):
    """release(**overrides) runs the module for this test's own release; .name, .chart, .args."""

    class Release:
        name = request.node.name.removeprefix("test_").replace("_", "-")[:40].rstrip("-")
        chart = write_chart(tmp_path / "tiny")

        def args(self, **overrides):
            return {"name": self.name, "namespace": NS, "chart": str(self.chart), "kubeconfig": str(cp.kubeconfig)} | (
                overrides
            )

        def __call__(self, check_mode=False, **overrides):
            return run_module(MODULE, self.args(**overrides), check_mode=check_mode)

    return Release()


def helm(cp, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["helm", *args, "-n", NS], env=cp.env, capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, f"helm {' '.join(args)}: {done.stderr}"
    return done


def history(cp, name: str) -> list[dict]:
    return json.loads(helm(cp, "history", name, "-o", "json").stdout)


def stored_values(cp, name: str):
    return json.loads(helm(cp, "get", "values", name, "-o", "json").stdout)


def configmap_greeting(api, name: str) -> str:
    return client.CoreV1Api(api).read_namespaced_config_map(f"{name}-config", NS).data["greeting"]


def test_first_install_is_revision_1_with_ready_pods(cp, api, release):
    result = release(values={"greeting": "hi"})

    assert result["changed"] is True
    assert (result["revision"], result["status"], result["chart"]) == (1, "deployed", "tiny-0.1.0")
    stored = json.loads(helm(cp, "status", release.name, "-o", "json").stdout)
    assert result["manifest_sha256"] == hashlib.sha256(stored["manifest"].encode()).hexdigest()
    assert "(absent)" in result["diff"]["before_header"] and result["diff"]["before"] == ""
    assert "greeting: hi" in result["diff"]["after"]
    # wait=true: helm returned only once the rollout was done, so kwok's pods are Ready already.
    apps = client.AppsV1Api(api)
    wait_for("2 ready replicas", lambda: apps.read_namespaced_deployment(release.name, NS).status.ready_replicas == 2)
    assert configmap_greeting(api, release.name) == "hi"


def test_second_run_is_unchanged(cp, release):
    # Values of every YAML type: they go through a file, helm's parser and its storage and back.
    values = {
        "greeting": "hi",
        "replicas": 1,
        "extra": {"ratio": 0.5, "flag": True, "empty": None, "list": [1, "two", {"three": 3}], "text": "1.0"},
        "yesString": "yes",
    }
    assert release(values=values)["revision"] == 1

    again = release(values=values)

    assert again["changed"] is False
    assert (again["revision"], again["status"]) == (1, "deployed")
    assert again["diff"]["before"] == again["diff"]["after"]
    assert len(history(cp, release.name)) == 1


def test_check_mode_reports_a_value_change_without_applying_it(cp, api, release):
    release(values={"greeting": "hi"})

    result = release(check_mode=True, values={"greeting": "bonjour"})

    assert result["changed"] is True
    assert result["revision"] == 1
    before, after = result["diff"]["before"], result["diff"]["after"]
    assert "greeting: hi" in before and "greeting: bonjour" not in before
    assert "greeting: bonjour" in after and 'greeting: "bonjour"' in after  # values and manifest
    assert result["diff"]["before_header"].endswith("(revision 1)")
    assert [entry["revision"] for entry in history(cp, release.name)] == [1]
    assert configmap_greeting(api, release.name) == "hi"
    assert stored_values(cp, release.name) == {"greeting": "hi"}


def test_check_mode_on_a_missing_release_installs_nothing(cp, release):
    result = release(check_mode=True)

    assert result["changed"] is True
    assert (result["revision"], result["status"]) == (0, "absent")
    assert "release: not found" in helm(cp, "status", release.name, check=False).stderr


def test_changed_value_makes_exactly_revision_2(cp, api, release):
    release(values={"greeting": "hi"})

    result = release(values={"greeting": "bonjour"})

    assert result["changed"] is True
    assert (result["revision"], result["status"]) == (2, "deployed")
    assert [entry["revision"] for entry in history(cp, release.name)] == [1, 2]
    assert configmap_greeting(api, release.name) == "bonjour"
    assert release(values={"greeting": "bonjour"})["changed"] is False
    assert len(history(cp, release.name)) == 2


def test_template_change_alone_is_a_change(cp, release):
    release(values={"greeting": "hi"})
    service = release.chart / "templates" / "service.yaml"
    service.write_text(service.read_text().replace("port: 80", "port: 8080"))

    result = release(values={"greeting": "hi"})

    assert result["changed"] is True
    assert result["revision"] == 2
    assert "port: 80\n" in result["diff"]["before"] and "port: 8080" in result["diff"]["after"]


def test_chart_version_bump_alone_is_a_change(release):
    release()
    chart_yaml = release.chart / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace("version: 0.1.0", "version: 0.2.0"))

    result = release()

    assert result["changed"] is True
    assert (result["revision"], result["chart"]) == (2, "tiny-0.2.0")


def test_removed_values_are_reset_not_reused(cp, release):
    release(values={"greeting": "hi", "replicas": 1})

    # helm upgrade reuses the previous values when given none; the module must not let it.
    result = release(values={})

    assert result["changed"] is True
    assert stored_values(cp, release.name) is None
    assert release(values={})["changed"] is False


def test_helm_holds_only_the_values_passed_and_never_sees_them_on_a_command_line(cp, release, monkeypatch):
    values = {"greeting": "from-a-file", "replicas": 1}
    seen = []
    original = basic.AnsibleModule.run_command

    def spy(self, args, *rest, **kwargs):
        if "--values" in args:
            path = Path(args[args.index("--values") + 1])
            seen.append((stat.S_IMODE(path.stat().st_mode), json.loads(path.read_text()), path))
        assert not any("from-a-file" in str(arg) for arg in args), args
        return original(self, args, *rest, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", spy)

    release(values=values)

    assert seen and all(mode == 0o600 and content == values for mode, content, _ in seen)
    assert not any(path.exists() for _, _, path in seen)
    assert stored_values(cp, release.name) == values


def test_failed_release_is_a_change_until_deployed(cp, release):
    # An invalid object name passes the dry run but is refused by the API server on create.
    with pytest.raises(ModuleExit) as failed:
        release(values={"configName": "Not_Valid"})
    assert "Not_Valid" in failed.value.result["msg"] and "is invalid" in failed.value.result["msg"]
    assert history(cp, release.name)[-1]["status"] == "failed"

    assert release(check_mode=True, values={"configName": "Not_Valid"})["changed"] is True
    fixed = release(values={})

    assert fixed["changed"] is True
    assert (fixed["revision"], fixed["status"]) == (2, "deployed")


def test_absent_uninstalls_then_is_unchanged(cp, api, release):
    release()

    check = release(check_mode=True, state="absent")
    assert check["changed"] is True
    assert check["diff"]["after"] == "" and "tiny-0.1.0" in check["diff"]["before"]
    assert history(cp, release.name)[-1]["status"] == "deployed"

    removed = release(state="absent")
    assert removed["changed"] is True
    assert (removed["revision"], removed["status"], removed["chart"]) == (0, "absent", "tiny-0.1.0")
    assert "release: not found" in helm(cp, "status", release.name, check=False).stderr
    assert (
        not client.AppsV1Api(api).list_namespaced_deployment(NS, field_selector=f"metadata.name={release.name}").items
    )

    again = release(state="absent")
    assert again["changed"] is False
    assert (again["revision"], again["status"]) == (0, "absent")


def test_secret_data_is_redacted_in_the_diff(release):
    secret = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}\nstringData:\n  token: not-for-logs\n"
    )
    (release.chart / "templates" / "secret.yaml").write_text(secret)

    result = release()

    assert "kind: Secret" in result["diff"]["after"]
    assert "token: <redacted>" in result["diff"]["after"]
    assert "not-for-logs" not in result["diff"]["after"]
    assert release()["changed"] is False


def test_missing_chart_directory_fails_clearly(release, tmp_path):
    with pytest.raises(ModuleExit) as failed:
        release(chart=str(tmp_path / "no-such-chart"))
    assert failed.value.result["msg"] == f"chart directory {tmp_path / 'no-such-chart'} does not exist"

    with pytest.raises(ModuleExit) as failed:
        release(chart=str(tmp_path))
    assert "no Chart.yaml" in failed.value.result["msg"]


def test_missing_helm_binary_fails_clearly(release):
    with pytest.raises(ModuleExit) as failed:
        release(helm_binary="helm-not-installed")
    assert "helm binary 'helm-not-installed' not found" in failed.value.result["msg"]


def test_unreachable_api_server_fails_clearly(cp, release, tmp_path):
    kubeconfig = json.loads(cp.kubeconfig.read_text())
    with socket.socket() as bound:  # bound, never listening: nothing answers, no one else takes it
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        kubeconfig["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
        path = tmp_path / "unreachable.kubeconfig"
        path.write_text(json.dumps(kubeconfig))
        path.chmod(0o600)
        with pytest.raises(ModuleExit) as failed:
            release(kubeconfig=str(path))
    assert "Kubernetes API server is unreachable" in failed.value.result["msg"]
    assert "connection refused" in failed.value.result["msg"]


def test_kubeconfig_context_is_used(release):
    assert release(context="lakehouse-test")["status"] == "deployed"

    with pytest.raises(ModuleExit) as failed:
        release(context="no-such-context")
    assert 'context "no-such-context" does not exist' in failed.value.result["msg"]


def test_missing_namespace_fails_clearly(release):
    with pytest.raises(ModuleExit) as failed:
        release(namespace="no-such-namespace")
    assert "namespace no-such-namespace does not exist" in failed.value.result["msg"]


def test_module_file_is_executable():
    path = Path(__file__).resolve().parents[2] / "library" / f"{MODULE}.py"
    assert os.access(path, os.X_OK)
    assert path.read_text().startswith("#!/usr/bin/python\n")
