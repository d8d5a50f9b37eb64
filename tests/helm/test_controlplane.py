"""Smoke test of the test control plane (tests/controlplane.py): the API server, controllers,
scheduler, kwok's fake nodes and helm work together against loopback only."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from controlplane import wait_for
from kubernetes import client

NS = "default"


def test_version_is_the_pinned_release(cp, api):
    assert client.VersionApi(api).get_code().git_version == cp.versions["K8S_VERSION"]


def test_anonymous_requests_are_refused(cp):
    for path in ("/version", "/api/v1/namespaces/kube-system/secrets"):
        status, _ = cp.request("GET", path, authenticated=False)
        assert status in (401, 403), path


def test_deployment_pods_become_ready_on_kwok_nodes(cp, api):
    labels = {"app": "smoke"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="smoke"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                # kwok never pulls the image; any name does.
                spec=client.V1PodSpec(containers=[client.V1Container(name="pause", image="registry.k8s.io/pause")]),
            ),
        ),
    )
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(NS, deployment)
    wait_for("2 ready replicas", lambda: apps.read_namespaced_deployment("smoke", NS).status.ready_replicas == 2)

    pods = core.list_namespaced_pod(NS, label_selector="app=smoke").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec.node_name in cp.nodes
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"


def test_static_persistent_volume_binds(api):
    core = client.CoreV1Api(api)
    core.create_persistent_volume(
        client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name="smoke-pv"),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": "1Gi"},
                access_modes=["ReadWriteOnce"],
                storage_class_name="manual",
                host_path=client.V1HostPathVolumeSource(path="/tmp/smoke-pv"),
            ),
        )
    )
    core.create_namespaced_persistent_volume_claim(
        NS,
        client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(name="smoke-pvc"),
            spec=client.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteOnce"],
                storage_class_name="manual",
                resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
            ),
        ),
    )
    claim = wait_for(
        "PVC bound",
        lambda: (c := core.read_namespaced_persistent_volume_claim("smoke-pvc", NS)).status.phase == "Bound" and c,
    )
    assert claim.spec.volume_name == "smoke-pv"


def helm(cp, *args: str, cwd: Path | None = None) -> str:
    cmd = ["helm", *args]
    done = subprocess.run(cmd, check=False, env=cp.env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_helm_installs_a_chart(cp, tmp_path):
    assert helm(cp, "version", "--short").startswith(cp.versions["HELM_VERSION"])
    helm(cp, "create", "tiny", cwd=tmp_path)
    # --wait: the chart's Deployment must become Ready on the kwok nodes before helm reports success.
    helm(cp, "install", "tiny", str(tmp_path / "tiny"), "--namespace", NS, "--wait", "--timeout", "3m")
    status = json.loads(helm(cp, "status", "tiny", "--namespace", NS, "--output", "json"))
    assert status["info"]["status"] == "deployed"
