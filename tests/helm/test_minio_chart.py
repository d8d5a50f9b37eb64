"""The MinIO chart (helm/minio) against a real control plane on loopback (tests/controlplane.py).

Lint and the values schema, the rendered manifests (image pinned by digest, the systemd unit's
command, arguments, environment and config paths, the config checksum, name lengths), and an
install into a namespace that enforces the restricted Pod Security Standard: PodSecurity admits
the pod, kwok makes it Ready, the Service carries the contract port names, and the release's
values hold no secret.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml
from controlplane import REPO, ControlPlane, wait_for
from kubernetes import client
from kubernetes.client.rest import ApiException

CHART = REPO / "helm" / "minio"
RELEASE = "minio"
NS = "lakehouse-minio"
CONFIG_NAME = "minio-config"
STORAGE_CLASS = "manual"
# The files of the MinIO service descriptor (roles/minio/vars/main.yml), as the engine passes them.
FILES = [
    {"path": "minio.env", "secret": True},
    {"path": "certs/public.crt", "secret": False},
    {"path": "certs/private.key", "secret": True},
    {"path": "certs/CAs/lakehouse-ca.crt", "secret": False},
]
# What the systemd unit runs; the chart must run the same.
ARGS = [
    "server",
    "--address",
    ":9000",
    "--console-address",
    ":9001",
    "--certs-dir",
    "/etc/minio/certs",
    "/var/lib/minio/data",
]
ENV = {"MINIO_CONFIG_ENV_FILE": "/etc/minio/minio.env"}
REQUIRED = {"config": {"secretName": CONFIG_NAME, "configMapName": CONFIG_NAME}}
SCHEMA_ERROR = "values don't meet the specifications of the schema"


def key_of(path: str) -> str:
    """The key of a config file in the Secret or ConfigMap."""
    return path.replace("/", "__")


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def core(api):
    return client.CoreV1Api(api)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("minio-chart")


class Helm:
    """helm from the control plane's bin dir, with its state in the control plane's temp dir."""

    def __init__(self, cp: ControlPlane, workdir: Path):
        self.cp = cp
        self.workdir = workdir
        self._files = 0

    def values(self, data: dict) -> str:
        self._files += 1
        path = self.workdir / f"values-{self._files}.yaml"
        path.write_text(yaml.safe_dump(data))
        return str(path)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            ["helm", *args], check=False, env=self.cp.env, capture_output=True, text=True, timeout=300
        )
        if check:
            assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    def template(self, *values: dict, release: str = RELEASE, extra: tuple[str, ...] = ()) -> list[dict]:
        files = [arg for data in values for arg in ("--values", self.values(data))]
        out = self.run("template", release, str(CHART), "--namespace", NS, *files, *extra).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module")
def helm(cp, workdir):
    return Helm(cp, workdir)


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]


def minio_container(docs: list[dict]) -> dict:
    (sts,) = by_kind(docs, "StatefulSet")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    return container


# -- lint and schema ------------------------------------------------------------------------------


def test_lint_strict_is_clean(helm):
    done = helm.run("lint", str(CHART), "--strict", "--values", helm.values(REQUIRED))
    assert "0 chart(s) failed" in done.stdout
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (("--set", "replicaCount=2"), "additional properties 'replicaCount' not allowed"),
        (("--set", "config.secretName=null"), "at '/config': missing property 'secretName'"),
        (("--set", "config.secretName="), "at '/config/secretName': minLength"),
        (("--set-string", "ports.s3=nine-thousand"), "at '/ports/s3': got string, want integer"),
        (("--set", "ports.console=true"), "at '/ports/console': got boolean, want integer"),
        (("--set", "image.digest=latest"), "at '/image/digest'"),
        (("--set", "persistence.unknown=1"), "additional properties 'unknown' not allowed"),
        (("--set", "config.files[0].path=../escape", "--set", "config.files[0].secret=true"), "/config/files/0"),
    ],
    ids=[
        "unknown-key",
        "missing-secret-name",
        "empty-secret-name",
        "port-string",
        "port-bool",
        "digest",
        "nested-unknown",
        "path-escape",
    ],
)
def test_schema_rejects_bad_values(helm, override, message):
    done = helm.run("template", RELEASE, str(CHART), "--values", helm.values(REQUIRED), *override, check=False)
    assert done.returncode != 0, done.stdout
    assert SCHEMA_ERROR in done.stderr
    assert message in done.stderr, done.stderr


def test_the_config_names_are_required(helm):
    done = helm.run("template", RELEASE, str(CHART), check=False)
    assert done.returncode != 0
    assert "at '/config/secretName': minLength" in done.stderr
    assert "at '/config/configMapName': minLength" in done.stderr


# -- rendering ------------------------------------------------------------------------------------


def test_image_is_rendered_as_repository_tag_at_digest(helm):
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["image"]
    container = minio_container(helm.template(REQUIRED))
    assert container["image"] == f"{defaults['repository']}:{defaults['tag']}@{defaults['digest']}"
    assert container["imagePullPolicy"] == "IfNotPresent"

    # The engine passes the lakehouse_images entry: repository, tag, digest (no pull policy).
    pin = {"repository": "registry.example.org/minio", "tag": "RELEASE.X", "digest": "sha256:" + "ab" * 32}
    container = minio_container(helm.template(REQUIRED, {"image": pin}))
    assert container["image"] == f"registry.example.org/minio:RELEASE.X@sha256:{'ab' * 32}"
    assert container["imagePullPolicy"] == "IfNotPresent"


def test_defaults_run_what_the_systemd_unit_runs(helm):
    container = minio_container(helm.template(REQUIRED))
    assert container["command"] == ["minio"]
    assert container["args"] == ARGS
    assert container["env"] == [{"name": name, "value": value} for name, value in ENV.items()]


def test_command_args_and_env_are_exactly_the_values(helm):
    values = {
        "command": ["minio"],
        "args": ["server", "--address", ":9100", "--certs-dir", "/etc/minio/certs", "/data/a", "/data/b"],
        "env": {"MINIO_CONFIG_ENV_FILE": "/etc/minio/minio.env", "MINIO_BROWSER": "off", "A_FIRST": "1"},
    }
    container = minio_container(helm.template(REQUIRED, values))
    assert container["command"] == values["command"]
    assert container["args"] == values["args"]
    assert {e["name"]: e["value"] for e in container["env"]} == values["env"]
    assert all(set(e) == {"name", "value"} for e in container["env"])  # plain values, no valueFrom


def test_config_files_are_mounted_at_their_paths(helm):
    docs = helm.template(REQUIRED, {"config": {"files": FILES}})
    pod = by_kind(docs, "StatefulSet")[0]["spec"]["template"]["spec"]
    (mount,) = [m for m in minio_container(docs)["volumeMounts"] if m["name"] == "config"]
    assert mount == {"name": "config", "mountPath": "/etc/minio", "readOnly": True}
    (volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
    sources = {next(iter(src)): src[next(iter(src))] for src in volume["projected"]["sources"]}
    assert sources["secret"]["name"] == CONFIG_NAME and sources["configMap"]["name"] == CONFIG_NAME
    for kind, secret in (("secret", True), ("configMap", False)):
        expected = [{"key": key_of(f["path"]), "path": f["path"]} for f in FILES if f["secret"] is secret]
        assert sources[kind]["items"] == expected, kind
    # The data directory and a writable /tmp on a read-only root filesystem.
    mounts = {m["mountPath"]: m["name"] for m in minio_container(docs)["volumeMounts"]}
    assert mounts["/var/lib/minio/data"] == "data" and mounts["/tmp"] == "tmp"


def test_checksum_annotation_follows_config_checksum(helm):
    def annotation(checksum: str) -> str:
        docs = helm.template(REQUIRED, {"config": {"checksum": checksum}})
        return by_kind(docs, "StatefulSet")[0]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    first, second = hashlib.sha256(b"one").hexdigest(), hashlib.sha256(b"two").hexdigest()
    assert annotation(first) == first
    assert annotation(second) == second


def test_service_is_the_fullname_with_contract_ports(helm):
    (service,) = by_kind(helm.template(REQUIRED), "Service")
    assert service["metadata"]["name"] == "minio"
    assert service["spec"]["type"] == "ClusterIP"
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"s3": (9000, "s3"), "console": (9001, "console")}


def test_names_of_a_long_release_fit_63_characters(helm):
    release = ("lakehouse-object-storage-" * 3)[:53].rstrip("-")  # helm's longest release name
    docs = helm.template(REQUIRED, {"nameOverride": "minio-object-storage"}, release=release)
    names = {doc["kind"]: doc["metadata"]["name"] for doc in docs}
    assert set(names) == {"Service", "StatefulSet", "Pod"}
    for kind, name in names.items():
        assert len(name) <= 63 and not name.endswith("-"), (kind, name)
    # The controller labels revisions <statefulset>-<hash of up to 10>: the name keeps room for it.
    assert len(names["StatefulSet"]) <= 52
    for doc in docs:
        for value in doc["metadata"]["labels"].values():
            assert len(value) <= 63 and not value.endswith("-"), value


def test_test_hook_checks_readiness_over_https_with_the_ca(helm):
    (hook,) = by_kind(helm.template(REQUIRED), "Pod")
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = hook["spec"]["containers"]
    assert container["args"][-1] == f"https://minio.{NS}.svc.cluster.local:9000/minio/health/ready"
    assert container["args"][container["args"].index("--cacert") + 1] == "/etc/minio/certs/CAs/lakehouse-ca.crt"
    (volume,) = hook["spec"]["volumes"]
    assert volume["configMap"]["name"] == CONFIG_NAME
    assert volume["configMap"]["items"] == [
        {"key": "certs__CAs__lakehouse-ca.crt", "path": "certs/CAs/lakehouse-ca.crt"}
    ]
    # It must not be an endpoint of the Service.
    assert "app.kubernetes.io/name" not in hook["metadata"]["labels"]


# -- install into a restricted namespace -----------------------------------------------------------


@pytest.fixture(scope="module")
def secret_files():
    """Distinctive contents, so their absence from the release can be asserted."""
    token = secrets.token_hex(16)
    return {
        "minio.env": f"MINIO_ROOT_USER=root-{token[:8]}\nMINIO_ROOT_PASSWORD=pw-{token}\n",
        "certs__private.key": f"not-a-real-key-{secrets.token_hex(24)}\n",
    }


@pytest.fixture(scope="module")
def public_files():
    return {
        "certs__public.crt": f"public-certificate-{secrets.token_hex(8)}\n",
        "certs__CAs__lakehouse-ca.crt": f"lakehouse-ca-{secrets.token_hex(8)}\n",
    }


def release_values(checksum: str) -> dict:
    """What the engine passes: names, file list, checksum; plus the test's storage class."""
    return {
        "config": {"secretName": CONFIG_NAME, "configMapName": CONFIG_NAME, "files": FILES, "checksum": checksum},
        "persistence": {"storageClassName": STORAGE_CLASS},
    }


@pytest.fixture(scope="module")
def installed(cp, core, helm, secret_files, public_files):
    """Namespace, Secret, ConfigMap and a static PV as the engine would leave them; then the release."""
    labels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn")}
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS, labels=labels)))
    wait_for("default ServiceAccount", lambda: core.list_namespaced_service_account(NS).items)
    core.create_namespaced_secret(
        NS,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=CONFIG_NAME),
            type="Opaque",
            data={k: base64.b64encode(v.encode()).decode() for k, v in secret_files.items()},
        ),
    )
    core.create_namespaced_config_map(
        NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=CONFIG_NAME), data=public_files)
    )
    core.create_persistent_volume(
        client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name="minio-data"),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": "10Gi"},
                access_modes=["ReadWriteOnce"],
                storage_class_name=STORAGE_CLASS,
                host_path=client.V1HostPathVolumeSource(path="/var/lib/lakehouse-test/minio"),
                claim_ref=client.V1ObjectReference(namespace=NS, name=f"data-{RELEASE}-0"),
            ),
        )
    )
    everything = "\n".join([*secret_files.values(), *public_files.values()])
    checksum = hashlib.sha256(everything.encode()).hexdigest()
    done = helm.run(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        NS,
        "--values",
        helm.values(release_values(checksum)),
        "--wait",
        "--timeout",
        "3m",
    )
    return {"helm": done, "checksum": checksum}


def test_the_namespace_enforces_restricted(core, installed):
    """The control: a pod with no security context (fine under baseline) is refused in this namespace."""
    plain = client.V1Pod(
        metadata=client.V1ObjectMeta(name="plain"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="registry.k8s.io/pause")]),
    )
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(NS, plain, dry_run="All")
    assert refused.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in json.loads(refused.value.body)["message"]


def test_release_is_deployed_and_admitted_by_pod_security(core, helm, installed):
    status = json.loads(helm.run("status", RELEASE, "--namespace", NS, "--output", "json").stdout)
    assert status["info"]["status"] == "deployed"
    # warn=restricted: the API server would have warned about the StatefulSet's pod template.
    output = installed["helm"].stdout + installed["helm"].stderr
    assert "PodSecurity" not in output, output
    pod = core.read_namespaced_pod(f"{RELEASE}-0", NS)
    assert pod.metadata.annotations["checksum/config"] == installed["checksum"]
    refused = [
        e.message
        for e in core.list_namespaced_event(NS).items
        if e.reason == "FailedCreate" and "PodSecurity" in (e.message or "")
    ]
    assert not refused, refused


def test_pod_becomes_ready_with_its_volume(cp, core, installed):
    def ready():
        pod = core.read_namespaced_pod(f"{RELEASE}-0", NS)
        conditions = {c.type: c.status for c in pod.status.conditions or []}
        return conditions.get("Ready") == "True" and pod

    pod = wait_for("minio-0 Ready", ready)
    assert pod.spec.node_name in cp.nodes
    claim = core.read_namespaced_persistent_volume_claim(f"data-{RELEASE}-0", NS)
    assert claim.status.phase == "Bound" and claim.spec.volume_name == "minio-data"
    (container,) = pod.spec.containers
    assert container.args == ARGS
    assert container.security_context.read_only_root_filesystem is True


def test_service_has_the_contract_ports(core, installed):
    service = core.read_namespaced_service(RELEASE, NS)
    assert service.spec.type == "ClusterIP"
    assert {p.name: p.port for p in service.spec.ports} == {"s3": 9000, "console": 9001}


def test_release_values_hold_no_secret(helm, installed, secret_files):
    for extra in ((), ("--all",)):
        text = helm.run("get", "values", RELEASE, "--namespace", NS, "--output", "json", *extra).stdout
        values = json.loads(text)
        assert values["config"]["secretName"] == CONFIG_NAME

        def keys(node):
            if isinstance(node, dict):
                for key, value in node.items():
                    yield key
                    yield from keys(value)
            elif isinstance(node, list):
                for item in node:
                    yield from keys(item)

        assert not set(keys(values)) & set(secret_files), "a Secret key is a key of the values"
        for content in secret_files.values():
            for form in (content, content.strip(), base64.b64encode(content.encode()).decode()):
                assert form not in text
    manifest = helm.run("get", "manifest", RELEASE, "--namespace", NS).stdout
    for content in secret_files.values():
        assert content.strip() not in manifest


def test_test_hook_is_admitted_by_pod_security(core, helm, installed):
    """helm test would wait for kwok to finish the pod, which it never does; admission is the point."""
    values = json.loads(helm.run("get", "values", RELEASE, "--namespace", NS, "--output", "json").stdout)
    docs = helm.template(values, extra=("--show-only", "templates/tests/test-connection.yaml"))
    (hook,) = docs
    hook["metadata"].pop("namespace")
    created = core.create_namespaced_pod(NS, hook, dry_run="All")
    assert created.metadata.name == f"{RELEASE}-test-connection"


def test_config_change_rolls_the_pod(core, helm, installed):
    before = core.read_namespaced_pod(f"{RELEASE}-0", NS).metadata.uid
    checksum = hashlib.sha256(b"rotated").hexdigest()
    helm.run(
        "upgrade",
        RELEASE,
        str(CHART),
        "--namespace",
        NS,
        "--reuse-values",
        "--set",
        f"config.checksum={checksum}",
        "--wait",
        "--timeout",
        "3m",
    )

    def rolled():
        try:
            pod = core.read_namespaced_pod(f"{RELEASE}-0", NS)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        conditions = {c.type: c.status for c in pod.status.conditions or []}
        return pod.metadata.uid != before and conditions.get("Ready") == "True" and pod

    pod = wait_for("minio-0 recreated and Ready", rolled)
    assert pod.metadata.annotations["checksum/config"] == checksum
