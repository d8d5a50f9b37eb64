"""One set of MinIO variables, two deliveries: a systemd test host and a Kubernetes API server.

The inventory holds a metal host (a systemd container) and a cluster host (the test control
cp) in the same `object_storage` group, with the MinIO variables set once for the group.
The test converges both, compares what each delivery received, and then exercises the Helm
path's idempotence, check mode and upgrade behaviour.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from controlplane import static_volume
from kubernetes import client

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
METAL = "metal-1.crossdelivery.lakehouse.test"
CLUSTER = "cluster-1.crossdelivery.lakehouse.test"
NETWORK = "lakehouse-crossdelivery"
NAMESPACE = "lakehouse"

KWOK_IMAGE = {"repository": "lakehouse/minio", "tag": "kwok", "digest": "sha256:" + "0" * 64}
LARGER = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "3Gi"}}
MINIO_VARIABLES = {
    "minio_buckets": [{"name": "warehouse", "versioning": "enabled"}],
    "minio_region": "eu-central-1",
    "minio_volume_size": "1Gi",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory, cp, api):
    """Inventory with both hosts; the metal host is created for the test and removed after."""
    directory = tmp_path_factory.mktemp("crossdelivery")
    inventory = {
        "all": {
            "vars": {"lakehouse_site": "crossdelivery"},
            "children": {
                "sandbox": {
                    "hosts": {METAL: None},
                    "vars": {
                        "ansible_connection": "docker",
                        "ansible_python_interpreter": "/usr/bin/python3",
                    },
                },
                "clusters": {
                    "hosts": {CLUSTER: None},
                    "vars": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": sys.executable,
                        "lakehouse_delivery": "helm",
                        "lakehouse_k8s_kubeconfig": str(cp.kubeconfig),
                        "lakehouse_k8s_namespace": NAMESPACE,
                        # kwok simulates the pods: there is no S3 endpoint to manage buckets through,
                        # and no runtime to import an image into (the real node tier builds and runs it).
                        "minio_manage_resources": False,
                        "lakehouse_images": {"minio": KWOK_IMAGE},
                    },
                },
                "object_storage": {"hosts": {METAL: None, CLUSTER: None}, "vars": MINIO_VARIABLES},
            },
        }
    }
    (directory / "hosts.yml").write_text(yaml.safe_dump(inventory))
    # A static volume for the data claim of the MinIO StatefulSet.
    static_volume(api, "crossdelivery-minio-data", "/var/lib/crossdelivery-minio")
    env = {
        **os.environ,
        **cp.env,  # helm on PATH
        "LAKEHOUSE_SECRETS_DIR": str(directory / "secrets"),
        "LAKEHOUSE_STATE_DIR": str(directory / "state"),
        "ANSIBLE_NOCOLOR": "1",
    }

    def playbook(name: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", str(directory / "hosts.yml"), f"playbooks/{name}", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )

    created = playbook("sandbox.yml", "-e", f"sandbox_network={NETWORK}")
    assert created.returncode == 0, created.stdout[-3000:]
    try:
        yield {"playbook": playbook, "secrets": directory / "secrets", "inventory": directory / "hosts.yml", "env": env}
    finally:
        playbook("sandbox.yml", "-e", f"sandbox_network={NETWORK}", "-e", "sandbox_state=absent")


def recap(output: str, host: str) -> dict[str, int]:
    match = re.search(rf"{re.escape(host)}\s+:\s+(.*)", output)
    assert match, output[-3000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def helm(cp, *args: str) -> str:
    return subprocess.run(
        [str(Path(cp.bin_dir) / "helm"), *args, "-n", NAMESPACE],
        env=cp.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout


def release_revision(cp) -> int:
    return json.loads(helm(cp, "status", "minio", "-o", "json"))["version"]


def pod_template(api) -> client.V1PodTemplateSpec:
    return client.AppsV1Api(api).read_namespaced_stateful_set("minio", NAMESPACE).spec.template


def host_file(path: str) -> str:
    return subprocess.run(["docker", "exec", METAL, "cat", path], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def converged(site):
    result = site["playbook"]("object_storage.yml")
    assert result.returncode == 0, result.stdout[-5000:]
    return result


def test_both_deliveries_receive_identical_configuration(converged, api):
    secret = client.CoreV1Api(api).read_namespaced_secret("minio-config", NAMESPACE).data
    configmap = client.CoreV1Api(api).read_namespaced_config_map("minio-config", NAMESPACE).data
    on_cluster = {key.replace("__", "/"): base64.b64decode(value).decode() for key, value in secret.items()}
    on_cluster |= {key.replace("__", "/"): value for key, value in configmap.items()}
    assert sorted(on_cluster) == ["certs/CAs/lakehouse-ca.crt", "certs/private.key", "certs/public.crt", "minio.env"]

    # The service's configuration is byte for byte the same; only the certificate differs,
    # since it names each delivery's own endpoint.
    assert host_file("/etc/minio/minio.env") == on_cluster["minio.env"]
    assert "MINIO_SITE_REGION=eu-central-1" in on_cluster["minio.env"]
    assert host_file("/etc/minio/certs/CAs/lakehouse-ca.crt") == on_cluster["certs/CAs/lakehouse-ca.crt"]
    assert host_file("/etc/minio/certs/public.crt") != on_cluster["certs/public.crt"]

    # The same program arguments and environment.
    unit = host_file("/etc/systemd/system/lakehouse-minio.service")
    exec_start = shlex.split(re.search(r"^ExecStart=(.*)$", unit, re.M).group(1))
    unit_env = dict(line.split("=", 1) for line in re.findall(r'^Environment="(.*)"$', unit, re.M))
    container = pod_template(api).spec.containers[0]
    assert exec_start[1:] == container.args
    assert unit_env == {item.name: item.value for item in container.env}


def test_contracts_name_each_endpoint_by_dns(converged, site):
    state = site["secrets"].parent / "state" / "contracts"
    metal = json.loads((state / METAL / "object_storage.json").read_text())
    cluster = json.loads((state / CLUSTER / "object_storage.json").read_text())
    assert metal["url"] == f"https://{METAL}:9000"
    assert cluster["url"] == f"https://minio.{NAMESPACE}.svc.cluster.local:9000"


def test_release_is_ready_and_values_hold_no_secret(converged, cp, api, site):
    status = client.AppsV1Api(api).read_namespaced_stateful_set("minio", NAMESPACE).status
    assert status.ready_replicas == 1
    values = helm(cp, "get", "values", "minio", "--all", "-o", "json")
    for secret_file in (site["secrets"] / "minio").iterdir():
        if secret_file.is_file():
            assert secret_file.read_text().strip() not in values
    private_key = (site["secrets"] / "pki" / "certs").glob("minio-cluster-*.key")
    for key in private_key:
        assert "PRIVATE KEY" not in values and key.read_text().splitlines()[1] not in values


def test_second_converge_changes_nothing(converged, site, cp):
    revision = release_revision(cp)
    result = site["playbook"]("object_storage.yml")
    assert result.returncode == 0, result.stdout[-5000:]
    assert recap(result.stdout, METAL)["changed"] == 0
    assert recap(result.stdout, CLUSTER)["changed"] == 0
    assert release_revision(cp) == revision


def test_check_mode_reports_the_diff_and_changes_nothing(converged, site, cp, api):
    revision = release_revision(cp)
    secret_before = client.CoreV1Api(api).read_namespaced_secret("minio-config", NAMESPACE).data
    result = site["playbook"](
        "object_storage.yml", "--limit", CLUSTER, "--check", "--diff", "-e", json.dumps({"minio_resources": LARGER})
    )
    assert result.returncode == 0, result.stdout[-5000:]
    assert recap(result.stdout, CLUSTER)["changed"] >= 1
    assert "memory: 3Gi" in result.stdout, "the diff must show the changed value"
    assert release_revision(cp) == revision
    assert client.CoreV1Api(api).read_namespaced_secret("minio-config", NAMESPACE).data == secret_before


def test_changed_variable_gives_one_revision_and_a_new_checksum(converged, site, cp, api):
    revision = release_revision(cp)
    checksum = pod_template(api).metadata.annotations["checksum/config"]
    result = site["playbook"]("object_storage.yml", "--limit", CLUSTER, "-e", "minio_region=eu-west-1")
    assert result.returncode == 0, result.stdout[-5000:]
    assert release_revision(cp) == revision + 1
    assert pod_template(api).metadata.annotations["checksum/config"] != checksum
    secret = client.CoreV1Api(api).read_namespaced_secret("minio-config", NAMESPACE).data
    assert "MINIO_SITE_REGION=eu-west-1" in base64.b64decode(secret["minio.env"]).decode()


def test_a_release_that_cannot_become_ready_is_rolled_back_and_says_why(converged, site, cp, api):
    """A value no preflight can judge (a CPU request no node can give), with a changed config file:
    the run fails naming the pod and why it is not ready, not with Helm's timeout alone, and puts
    the previous release back (its config objects as they were, the release rolled back, the pod of
    the failed revision replaced: a StatefulSet keeps it otherwise), which serves again and is what
    the next run finds."""
    core = client.CoreV1Api(api)
    secret_before = core.read_namespaced_secret("minio-config", NAMESPACE).data
    template_before = pod_template(api).metadata.annotations["checksum/config"]
    revision = release_revision(cp)
    impossible = {
        "minio_resources": {"requests": {"cpu": "1000", "memory": "512Mi"}},
        "minio_health_retries": 5,
        "minio_region": "eu-north-1",
    }
    result = site["playbook"]("object_storage.yml", "--limit", CLUSTER, "-e", json.dumps(impossible))
    assert result.returncode != 0
    said = " ".join(result.stdout.split())
    reason = r"The release minio did not become ready .*Pod minio-0: Unschedulable: .*Insufficient cpu"
    assert re.search(reason, said), result.stdout[-5000:]
    rolled_back = f"It was rolled back to revision {revision}, with its config objects as they were: the previous"
    assert rolled_back in said, result.stdout[-5000:]
    assert core.read_namespaced_secret("minio-config", NAMESPACE).data == secret_before
    assert pod_template(api).metadata.annotations["checksum/config"] == template_before
    status = client.AppsV1Api(api).read_namespaced_stateful_set("minio", NAMESPACE).status
    assert status.ready_replicas == 1 and status.current_revision == status.update_revision
    # The failed revision and the rollback are two more; what was put back is what the next run finds.
    assert release_revision(cp) == revision + 2
    healed = site["playbook"]("object_storage.yml", "--limit", CLUSTER, "-e", "minio_region=eu-west-1")
    assert healed.returncode == 0, healed.stdout[-5000:]
    assert recap(healed.stdout, CLUSTER)["changed"] == 0, healed.stdout[-5000:]
    assert release_revision(cp) == revision + 2


def test_drift_reports_a_helm_value_changed_by_hand_and_a_converge_repairs_it(converged, site, cp, tmp_path):
    current = ("--limit", CLUSTER, "-e", "minio_region=eu-west-1")  # what the tests above converged

    def drift() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lakehouse_cli", "drift", "-i", str(site["inventory"]), *current],
            cwd=REPO, env=site["env"], capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip

    clean = drift()
    assert clean.returncode == 0 and "no drift" in clean.stdout, clean.stdout[-3000:] + clean.stderr
    values = json.loads(helm(cp, "get", "values", "minio", "-o", "json"))
    values["clusterDomain"] = "by-hand.example"
    (tmp_path / "values.json").write_text(json.dumps(values))
    helm(cp, "upgrade", "minio", str(REPO / "helm" / "lakehouse-service"), "-f", str(tmp_path / "values.json"))
    drifted = drift()
    assert drifted.returncode == 2, drifted.stdout[-3000:] + drifted.stderr
    rows = [line for line in drifted.stdout.splitlines() if line.startswith(CLUSTER)]
    assert len(rows) == 1 and "Install or upgrade the release of minio" in rows[0], drifted.stdout[-3000:]
    healed = site["playbook"]("object_storage.yml", *current)
    assert healed.returncode == 0, healed.stdout[-5000:]
    repaired = drift()
    assert repaired.returncode == 0, repaired.stdout[-3000:]
