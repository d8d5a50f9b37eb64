"""The generic service chart (helm/lakehouse-service) against a real control plane on loopback.

Values come from the service model (plugins/filter/lakehouse_service.py) applied to example
descriptors, exactly as the Helm engine computes them. Lint and the typed values schema; what the
manifests say (workload kind per component, the unit's program, arguments and environment, the
config mounted at its paths with a checksum per component, Services from exposed ports, probes
from health, preStop from stop, a PodDisruptionBudget and a default-deny NetworkPolicy); and an
install into a namespace that enforces the restricted Pod Security Standard, where kwok makes
the pods Ready. The real node tier (tests/node) runs the same chart's pods for real.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from controlplane import REPO, ControlPlane, static_volume, wait_for
from kubernetes import client
from kubernetes.client.rest import ApiException
from service_examples import IMAGE, PLATFORM, PROBE, UID, backup_job, minio, model, orchestrator, trino

CHART = REPO / "helm" / "lakehouse-service"
NS = "lakehouse-chart"
SCHEMA_ERROR = "values don't meet the specifications of the schema"
SECRET_TEXT = "MINIO_ROOT_PASSWORD=s3cr3t-value"  # in the example's minio.env


def values_of(descriptor: dict, exclusive: bool = False, probe: str = PROBE) -> dict:
    service = model.normalize(descriptor, PLATFORM)
    # The cluster stands in every group: it receives every component, each in pods of its own.
    groups = {group: ["cluster"] for c in service["components"] for group in c["placement"]["groups"]}
    components = model.placed(service, "cluster", groups, exclusive)
    return model.helm_values(service, components, IMAGE, "cluster.local", UID, probe)


class Helm:
    """helm from the control plane's bin dir, with its state in the control plane's temp dir."""

    def __init__(self, cp: ControlPlane, workdir: Path):
        self.cp, self.workdir, self._files = cp, workdir, 0

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

    def template(self, values: dict, *extra: str, release: str = "minio") -> list[dict]:
        out = self.run("template", release, str(CHART), "--namespace", NS, "--values", self.values(values), *extra)
        return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def helm(cp, tmp_path_factory):
    return Helm(cp, tmp_path_factory.mktemp("service-chart"))


def of_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


# -- lint and schema ------------------------------------------------------------------------------


def test_lint_strict_is_clean(helm):
    for descriptor in (minio(), trino(), orchestrator()):
        done = helm.run("lint", str(CHART), "--strict", "--values", helm.values(values_of(descriptor)))
        assert "0 chart(s) failed" in done.stdout
        assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (("--set", "replicaCount=2"), "additional properties 'replicaCount' not allowed"),
        (("--set", "image.digest=latest"), "at '/image/digest'"),
        (("--set-string", "components[0].ports[0].port=nine"), "at '/components/0/ports/0/port'"),
        (("--set", "components[0].config.dir=../etc"), "at '/components/0/config/dir'"),
        (("--set", "components[0].config.files[0].path=../escape"), "at '/components/0/config/files/0/path'"),
        (("--set", "components[0].workload=Not_A_Name"), "at '/components/0/workload'"),
        (("--set", "components[0].unknown=1"), "additional properties 'unknown' not allowed"),
        (("--set", "components[0].health.readiness.scheme=ftp"), "at '/components/0/health/readiness'"),
        (("--set", "tests.targets[0].scheme=ftp"), "at '/tests/targets/0/scheme'"),
    ],
    ids=[
        "unknown-key",
        "digest",
        "port-string",
        "dir-escape",
        "path-escape",
        "name",
        "nested-unknown",
        "probe",
        "test-scheme",
    ],
)
def test_schema_rejects_bad_values(helm, override, message):
    done = helm.run(
        "template", "minio", str(CHART), "--values", helm.values(values_of(minio())), *override, check=False
    )
    assert done.returncode != 0, done.stdout
    assert SCHEMA_ERROR in done.stderr
    assert message in done.stderr, done.stderr


# -- rendering ------------------------------------------------------------------------------------


def test_a_component_with_volumes_is_a_statefulset_running_the_units_program(helm):
    docs = helm.template(values_of(minio()))
    (sts,) = of_kind(docs, "StatefulSet").values()
    assert not of_kind(docs, "Deployment")
    (container,) = pod_spec(sts)["containers"]
    assert container["image"] == f"{IMAGE['repository']}:{IMAGE['tag']}@{IMAGE['digest']}"
    assert container["command"] == ["/usr/local/bin/minio"]
    assert container["args"] == ["server", "--address", ":9000", "/var/lib/minio/data"]
    assert container["env"] == [{"name": "MINIO_CONFIG_ENV_FILE", "value": "/etc/minio/minio.env"}]
    assert container["workingDir"] == "/var/lib/minio"
    probes = {kind: container[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe", "startupProbe")}
    assert probes["readinessProbe"] == {"path": "/minio/health/ready", "port": 9000, "scheme": "HTTPS"}
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] == 120
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/etc/minio": "config", "/tmp": "tmp", "/var/lib/minio": "home", "/var/lib/minio/data": "data"}
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data" and claim["spec"]["resources"]["requests"]["storage"] == "1Gi"


def test_replicas_that_start_together_are_started_at_once_each_with_its_claims(helm):
    # A distributed MinIO: none of its pods is ready before the others answer, so the StatefulSet
    # starts them all at once; each pod claims a volume per drive.
    single = of_kind(helm.template(values_of(minio())), "StatefulSet")["minio"]
    assert single["spec"]["podManagementPolicy"] == "OrderedReady"
    descriptor = minio()
    (component,) = descriptor["components"]
    drives = [{"name": "data", "path": "/var/lib/minio/data"}, {"name": "data-2", "path": "/var/lib/minio/data-2"}]
    component.update(replicas=4, start_together=True, volumes=drives)
    sts = of_kind(helm.template(values_of(descriptor)), "StatefulSet")["minio"]
    assert sts["spec"]["podManagementPolicy"] == "Parallel" and sts["spec"]["replicas"] == 4
    assert [claim["metadata"]["name"] for claim in sts["spec"]["volumeClaimTemplates"]] == ["data", "data-2"]
    (container,) = pod_spec(sts)["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/var/lib/minio/data"] == "data" and mounts["/var/lib/minio/data-2"] == "data-2"


def test_config_files_are_projected_at_their_paths_with_a_checksum(helm):
    values = values_of(minio())
    (sts,) = of_kind(helm.template(values), "StatefulSet").values()
    (volume,) = [v for v in pod_spec(sts)["volumes"] if v["name"] == "config"]
    sources = {next(iter(source)): next(iter(source.values())) for source in volume["projected"]["sources"]}
    assert sources["secret"] == {"name": "minio-config", "items": [{"key": "minio.env", "path": "minio.env"}]}
    assert sources["configMap"] == {
        "name": "minio-config",
        "items": [
            {"key": "certs__public.crt", "path": "certs/public.crt"},
            {"key": "certs__CAs__ca.crt", "path": "certs/CAs/ca.crt"},
        ],
    }
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations["checksum/config"] == values["components"][0]["config"]["checksum"]


def test_services_come_from_exposed_ports_and_statefulsets_get_pod_names(helm):
    services = of_kind(helm.template(values_of(minio())), "Service")
    assert set(services) == {"minio", "minio-pods"}
    assert [(p["name"], p["port"]) for p in services["minio"]["spec"]["ports"]] == [("s3", 9000)]
    assert services["minio-pods"]["spec"]["clusterIP"] == "None"
    assert {p["name"] for p in services["minio-pods"]["spec"]["ports"]} == {"s3", "console"}


def test_each_component_is_a_workload_of_its_own(helm):
    docs = helm.template(values_of(trino()), release="trino")
    deployments = of_kind(docs, "Deployment")
    assert set(deployments) == {"trino", "trino-worker"}
    coordinator, worker = (pod_spec(deployments[name]) for name in ("trino", "trino-worker"))
    # The worker drains as on metal (ExecStop), within the same grace period (TimeoutStopSec).
    assert worker["containers"][0]["lifecycle"]["preStop"]["exec"]["command"] == [
        "/usr/bin/python3",
        "/etc/lakehouse-trino/node.py",
        "drain",
    ]
    assert worker["terminationGracePeriodSeconds"] == 330
    assert "lifecycle" not in coordinator["containers"][0]
    # The trust store is built before the JVM starts, as ExecStartPre does on a host.
    (init,) = coordinator["initContainers"]
    assert init["command"][0] == PLATFORM["truststore_builder"]
    assert {e["name"] for e in init["env"]} >= {"JAVA_HOME"}
    assert set(of_kind(docs, "PodDisruptionBudget")) == {"trino", "trino-worker"}
    # Each component's pods have their own config objects.
    names = {spec["volumes"][0]["projected"]["sources"][0]["configMap"]["name"] for spec in (coordinator, worker)}
    assert names == {"trino-config", "trino-worker-config"}


def test_a_one_pod_service_runs_every_component_in_one_pod_as_on_one_host(helm):
    docs = helm.template(values_of(orchestrator()), release="airflow")
    (deployment,) = of_kind(docs, "Deployment").values()
    assert deployment["metadata"]["name"] == "airflow"
    spec = pod_spec(deployment)
    # The component named after the service first, each its own container with its own probes.
    assert [c["name"] for c in spec["containers"]] == ["airflow", "api-server", "scheduler"]
    front, server, scheduler = spec["containers"]
    assert front["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080, "scheme": "HTTPS"}
    # A sidecar's probe gates its start and restarts it; the pod serves while its front is ready.
    assert server["startupProbe"]["exec"]["command"][-1] == "api-server" and "readinessProbe" not in server
    assert server["args"] == ["-m", "airflow", "api-server"] and "env" not in front
    assert [p["name"] for p in scheduler["ports"]] == ["logs"]
    # The wait for the database they share runs once, before every container, with their environment.
    (init,) = spec["initContainers"]
    assert init["command"][-1] == "database" and init["env"][0]["name"] == "AIRFLOW_HOME"
    # One config object holds every component's files; every container mounts it and the home.
    (config,) = {source[kind]["name"] for source in spec["volumes"][0]["projected"]["sources"] for kind in source}
    assert config == "airflow-config"
    items = [i["path"] for s in spec["volumes"][0]["projected"]["sources"] for i in next(iter(s.values()))["items"]]
    assert sorted(items) == ["airflow.cfg", "ca.crt", "nginx.conf"]
    assert all({m["mountPath"] for m in c["volumeMounts"]} >= {"/etc/lakehouse-airflow", "/var/lib/lakehouse-airflow"}
               for c in spec["containers"])  # fmt: skip
    # The Service publishes the exposed port alone; the policy admits every port of the pod.
    (service,) = of_kind(docs, "Service").values()
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("https", 8080)]
    (policy,) = of_kind(docs, "NetworkPolicy").values()
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == ["https", "logs"]


def test_a_service_that_uses_the_api_gets_its_rules_and_the_pods_it_starts_none(helm):
    docs = helm.template(values_of(orchestrator()), release="airflow")
    spec = pod_spec(of_kind(docs, "Deployment")["airflow"])
    assert spec["serviceAccountName"] == "airflow" and spec["automountServiceAccountToken"] is True
    (role,) = of_kind(docs, "Role").values()
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["create", "get", "delete"]}
    ]
    (binding,) = of_kind(docs, "RoleBinding").values()
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "airflow", "namespace": NS}]
    accounts = of_kind(docs, "ServiceAccount")
    assert set(accounts) == {"airflow", "airflow-runs"}
    assert all(account["automountServiceAccountToken"] is False for account in accounts.values())
    # A service without rules has no account and mounts no token.
    docs = helm.template(values_of(minio()))
    assert not of_kind(docs, "ServiceAccount") and not of_kind(docs, "Role")
    assert pod_spec(of_kind(docs, "StatefulSet")["minio"])["automountServiceAccountToken"] is False


def test_network_policy_denies_by_default_and_admits_consumers(helm):
    trino_docs = helm.template(values_of(trino()), release="trino")
    (policy,) = of_kind(helm.template(values_of(minio())), "NetworkPolicy").values()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == ["s3", "console"]
    peers = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
    assert peers == [{"app.kubernetes.io/name": "minio"}, {"lakehouse/consumes-object_storage": "true"}]
    # Trino's pods carry the labels that MinIO's policy admits.
    labels = of_kind(trino_docs, "Deployment")["trino"]["spec"]["template"]["metadata"]["labels"]
    assert labels["lakehouse/consumes-object_storage"] == "true"


def test_helm_test_reaches_each_exposed_port_through_its_service_as_a_consumer(helm):
    (pod,) = of_kind(helm.template(values_of(minio())), "Pod").values()
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    # Labelled as a consumer, so the NetworkPolicy admits it; in the release's image, restricted.
    assert pod["metadata"]["labels"]["lakehouse/consumes-object_storage"] == "true"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == f"lakehouse/minio:1@{IMAGE['digest']}"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # The readiness path of the exposed S3 port, verified against the service's CA.
    assert container["command"] == [
        PROBE,
        "-ca=/etc/lakehouse-test/ca.crt",
        f"https://minio.{NS}.svc.cluster.local:9000/minio/health/ready",
    ]
    (volume,) = pod["spec"]["volumes"]
    assert volume["configMap"] == {"name": "minio-config", "items": [{"key": "certs__CAs__ca.crt", "path": "ca.crt"}]}
    # Trino: each component through its own Service; a port that is not exposed is not probed.
    descriptor = trino()
    (trino_pod,) = of_kind(helm.template(values_of(descriptor), release="trino"), "Pod").values()
    coordinator, worker = (f"https://{name}.{NS}.svc.cluster.local:8443/v1/info" for name in ("trino", "trino-worker"))
    assert trino_pod["spec"]["containers"][0]["command"][2:] == [coordinator, worker]
    descriptor["components"][1]["ports"] = [{"name": "https", "port": 8443, "exposed": False}]
    (trino_pod,) = of_kind(helm.template(values_of(descriptor), release="trino"), "Pod").values()
    assert trino_pod["spec"]["containers"][0]["command"][2:] == [coordinator]
    # An image without the probe (a pinned upstream image) has no test.
    assert not of_kind(helm.template(values_of(minio(), probe="")), "Pod")


def test_names_and_labels_are_valid(helm):
    for docs in (helm.template(values_of(minio())), helm.template(values_of(trino()), release="trino")):
        for doc in docs:
            name = doc["metadata"]["name"]
            assert len(name) <= 63 and not name.endswith("-"), name
            for value in doc["metadata"]["labels"].values():
                assert len(value) <= 63, value
            assert SECRET_TEXT not in json.dumps(doc)


# -- install into a restricted namespace -----------------------------------------------------------


@pytest.fixture(scope="module")
def core(api):
    return client.CoreV1Api(api)


@pytest.fixture(scope="module")
def installed(cp, api, core, helm):
    """Namespace, config objects and a static PV as the engine would leave them; then the release."""
    labels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn")}
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS, labels=labels)))
    wait_for("default ServiceAccount", lambda: core.list_namespaced_service_account(NS).items)
    service = model.normalize(minio())
    for obj in model.config_objects(service, service["components"]):
        meta = client.V1ObjectMeta(name=obj["name"])
        core.create_namespaced_secret(NS, client.V1Secret(metadata=meta, type="Opaque", data=obj["secret"]))
        core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta, data=obj["configmap"]))
    static_volume(api, "chart-minio-data", "/var/lib/lakehouse-test/minio", claim=(NS, "data-minio-0"))
    values = values_of(minio())
    done = helm.run(
        "install", "minio", str(CHART), "-n", NS, "--values", helm.values(values), "--wait", "--timeout", "3m"
    )
    return {"helm": done, "values": values}


def test_the_namespace_enforces_restricted(core, installed):
    """The control: a pod with no security context (fine under baseline) is refused here."""
    plain = client.V1Pod(
        metadata=client.V1ObjectMeta(name="plain"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="registry.k8s.io/pause")]),
    )
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(NS, plain, dry_run="All")
    assert refused.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in json.loads(refused.value.body)["message"]


def test_release_is_admitted_and_ready_with_its_volume(core, helm, installed):
    output = installed["helm"].stdout + installed["helm"].stderr
    assert "PodSecurity" not in output, output  # warn=restricted would have said so
    pod = wait_for(
        "minio-0 Ready",
        lambda: next(
            (p for p in [core.read_namespaced_pod("minio-0", NS)] if p.status.conditions and any(
                c.type == "Ready" and c.status == "True" for c in p.status.conditions)),
            None,
        ),
    )  # fmt: skip
    assert pod.metadata.annotations["checksum/config"] == installed["values"]["components"][0]["config"]["checksum"]
    claim = core.read_namespaced_persistent_volume_claim("data-minio-0", NS)
    assert claim.status.phase == "Bound" and claim.spec.volume_name == "chart-minio-data"


def test_release_values_and_manifest_hold_no_secret(helm, installed):
    secret = base64.b64encode((SECRET_TEXT + "\n").encode()).decode()
    for extra in ((), ("--all",)):
        text = helm.run("get", "values", "minio", "-n", NS, "-o", "json", *extra).stdout
        assert SECRET_TEXT not in text and secret not in text
    manifest = helm.run("get", "manifest", "minio", "-n", NS).stdout
    assert SECRET_TEXT not in manifest and secret not in manifest


def test_a_scheduled_job_is_a_cronjob_that_the_api_server_accepts(helm, api):
    descriptor = minio()
    descriptor["jobs"] = [backup_job()]
    docs = helm.template(values_of(descriptor))
    assert not of_kind(docs, "Job"), "a scheduled job is no one-off Job"
    cron = of_kind(docs, "CronJob")["minio-backup"]
    assert cron["spec"]["schedule"] == "30 2 * * 1-5" and cron["spec"]["timeZone"] == "Etc/UTC"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["/usr/local/bin/minio", "backup", "/etc/minio/backup.json"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # Its pod mounts the service's files and its own, by name; the contents stay in the objects.
    config = next(v for v in pod["volumes"] if v["name"] == "config")["projected"]["sources"]
    assert {s.get("secret", s.get("configMap"))["name"] for s in config} == {"minio-backup-config"}
    assert "s3cr3t-backup" not in yaml.safe_dump(docs)
    service = model.normalize(descriptor, PLATFORM)
    objects = {o["name"]: o for o in model.config_objects(service, service["components"])}
    assert set(objects["minio-backup-config"]["configmap"]) == {
        "certs__public.crt",
        "certs__CAs__ca.crt",
        "backup.json",
    }
    # The control plane's API server validates it as it would create it.
    cron["metadata"]["namespace"] = "default"
    client.BatchV1Api(api).create_namespaced_cron_job("default", cron, dry_run="All")
