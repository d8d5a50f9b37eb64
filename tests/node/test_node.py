"""The real node tier (tests/node.py): pods actually run, under the restricted Pod Security Standard.

Proves on one shared node: the node registers and is Ready; a restricted pod runs a process whose
logs and exec go through the API server to the kubelet; a Service answers on its ClusterIP and
its cluster DNS name from another pod; a memory limit kills a pod that exceeds it; claims with no
storage class bind to the node's static volumes and pods write to them. The first test starts and
stops a node of its own and compares the machine before and after.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid

import pytest
from controlplane import wait_for
from kubernetes import client, config
from kubernetes.stream import stream
from node import COMPARED_STATE, RealNode, busybox_rootfs, machine_state

pytestmark = pytest.mark.node

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def restricted_container(name: str, image: str, command: list[str], **extra) -> dict:
    """A container the restricted Pod Security Standard admits, as a non-root uid."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",  # imported, no registry to pull from
        "command": command,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        **extra,
    }


def pod(name: str, containers: list[dict], labels: dict | None = None, **spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {
            "containers": containers,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "fsGroup": 65534},
            "terminationGracePeriodSeconds": 1,
            "enableServiceLinks": False,
            **spec,
        },
    }


def pod_logs(core: client.CoreV1Api, ns: str, name: str) -> str:
    # Unparsed: the client's own decoding turns some log text into the repr of bytes.
    return core.read_namespaced_pod_log(name, ns, _preload_content=False).data.decode(errors="replace")


def phase(core: client.CoreV1Api, ns: str, name: str) -> str:
    return core.read_namespaced_pod(name, ns).status.phase


def ready(core: client.CoreV1Api, ns: str, name: str) -> bool:
    conditions = core.read_namespaced_pod(name, ns).status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def finished(core: client.CoreV1Api, ns: str, name: str):
    """The pod's phase once it is Succeeded or Failed, else None."""
    current = phase(core, ns, name)
    return current if current in ("Succeeded", "Failed") else None


@pytest.fixture(scope="module")
def core(node_api):
    return client.CoreV1Api(node_api)


@pytest.fixture(scope="module")
def ns(core):
    """A namespace that enforces the restricted Pod Security Standard; deleted afterwards."""
    name = f"node-test-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name, "labels": RESTRICTED}})
    wait_for("default ServiceAccount", lambda: core.list_namespaced_service_account(name).items, timeout=30)
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def web(core, ns, node):
    """busybox httpd serving a ConfigMap, as uid 65534, behind a Service on port 80."""
    core.create_namespaced_config_map(
        ns, {"metadata": {"name": "www"}, "data": {"index.html": "hello from the node\n"}}
    )
    container = restricted_container(
        "httpd",
        node.busybox_image,
        ["/bin/sh", "-c", 'echo "serving as uid $(id -u)"; exec httpd -f -vv -p 8080 -h /www'],
        ports=[{"containerPort": 8080, "name": "http"}],
        readinessProbe={"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1},
        volumeMounts=[{"name": "www", "mountPath": "/www", "readOnly": True}],
        resources={"limits": {"memory": "32Mi", "cpu": "100m"}},
    )
    started = time.monotonic()
    core.create_namespaced_pod(ns, pod("web", [container], volumes=[{"name": "www", "configMap": {"name": "www"}}]))
    wait_for("web pod Ready", lambda: ready(core, ns, "web"), timeout=60, interval=0.2)
    print(f"web pod Ready in {time.monotonic() - started:.1f}s")
    core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
        },
    )
    return "web"


def run_to_completion(core, ns: str, name: str, image: str, script: str, timeout: float = 90, **container) -> str:
    """Run `script` in a restricted busybox pod to its end; returns its logs, fails if it failed."""
    volumes = container.pop("volumes", None)
    spec = restricted_container(name, image, ["/bin/sh", "-c", script], **container)
    body = pod(name, [spec], restartPolicy="Never", **({"volumes": volumes} if volumes else {}))
    core.create_namespaced_pod(ns, body)
    result = wait_for(f"pod {name} finished", lambda: finished(core, ns, name), timeout=timeout)
    logs = pod_logs(core, ns, name)
    assert result == "Succeeded", logs
    return logs


def test_teardown_puts_the_machine_back():
    """A node of its own: with a pod running, the machine is visibly changed; after stop it is not."""
    if RealNode._active is not None:
        pytest.skip("the session's node is running (one node per machine)")
    before = machine_state()
    with RealNode() as own:
        api = config.new_client_from_config(config_file=str(own.kubeconfig))
        core = client.CoreV1Api(api)
        started = time.monotonic()
        body = pod(
            "sleeper",
            [{"name": "sleep", "image": own.busybox_image, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}],
        )
        core.create_namespaced_pod("default", body)
        wait_for("pod Ready", lambda: ready(core, "default", "sleeper"), timeout=60, interval=0.2)
        pod_ready = time.monotonic() - started
        during = machine_state()
        pss = own.pss_mib()
        api.close()
    after = machine_state()
    print(json.dumps({"startup": own.timings, "pod_ready": round(pod_ready, 2), "pss_mib": pss}, indent=1))
    print("sysctls restored:", own.restored_sysctls)
    # The snapshot sees what a node does, so an equal one after stop means it was undone.
    assert {"lh-node0", "lh-cni0"} <= set(during["links"])
    assert "ip kube-proxy" in during["nft_tables"]
    assert during["kubepods_cgroups"] and during["node_chains"] and during["mounts"]
    assert not own.teardown_errors
    changed = {key: (before[key], after[key]) for key in COMPARED_STATE if before[key] != after[key]}
    assert not changed


def test_node_registers_and_is_ready(node, core):
    item = core.read_node(node.node_name)
    conditions = {c.type: c.status for c in item.status.conditions}
    assert conditions["Ready"] == "True"
    assert item.status.node_info.kubelet_version == node.versions["K8S_VERSION"]
    assert item.status.node_info.container_runtime_version.startswith("containerd://1.6")
    assert {a.type: a.address for a in item.status.addresses}["InternalIP"] == node.node_ip
    # helm (on PATH in env) talks to it like to any cluster.
    subprocess.run(["helm", "list", "--all-namespaces"], env=node.env, check=True, capture_output=True)
    # The endpoint reconciler publishes the API server on the node IP for in-cluster clients.
    endpoints = core.read_namespaced_endpoints("kubernetes", "default")
    assert [a.ip for s in endpoints.subsets for a in s.addresses] == [node.node_ip]


def test_restricted_pod_runs_and_its_logs_and_exec_go_through_the_kubelet(core, ns, web):
    # Logs and exec are served by the kubelet, which checks the API server's client cert.
    logs = wait_for("httpd log line", lambda: pod_logs(core, ns, web), timeout=30)
    assert "serving as uid 65534" in logs
    status = stream(
        core.connect_get_namespaced_pod_exec,
        web,
        ns,
        command=["cat", "/proc/1/status"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Seccomp"].strip() == "2"  # filter mode: RuntimeDefault is really applied
    assert fields["CapEff"].strip() == "0000000000000000"
    assert fields["Uid"].split()[0] == "65534"


def test_service_answers_on_its_cluster_ip_and_dns_name_from_another_pod(node, core, ns, web):
    cluster_ip = core.read_namespaced_service(web, ns).spec.cluster_ip
    name = f"{web}.{ns}.svc.cluster.local"
    # kube-proxy programs the Service within a second or so: a bounded retry inside the pod.
    # (`timeout`, not wget's -T, which crashes Debian's static busybox.)
    script = f"""
for i in $(seq 30); do
  nslookup {name} >/tmp/dns 2>&1 && timeout 5 wget -q -O /tmp/ip http://{cluster_ip}/ \
    && timeout 5 wget -q -O /tmp/name http://{name}/ && break
  sleep 0.5
done
cat /tmp/dns /tmp/ip /tmp/name
timeout 5 wget -q -O - --no-check-certificate https://kubernetes.default.svc/version 2>&1 | head -3
"""
    logs = run_to_completion(
        core,
        ns,
        "client",
        node.busybox_image,
        script,
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}],
        volumes=[{"name": "tmp", "emptyDir": {}}],
    )
    assert f"Address: {cluster_ip}" in logs  # CoreDNS answered for the Service name
    assert logs.count("hello from the node") == 2  # by ClusterIP and by DNS name
    # The kubernetes Service reaches the API server's TLS listener; busybox's TLS client offers
    # only suites Go refuses, so the answer is a handshake alert from the peer (or a 401).
    assert "TLS error from peer" in logs or "401" in logs, logs


def test_memory_limit_kills_a_pod_that_exceeds_it(node, core, ns):
    def hog(name: str, mib: int) -> None:
        # The shell holds `mib` MiB in a variable: memory its own writes touch. (A big read() into
        # one buffer instead fails with an error in the kernel's copy, before any OOM kill.)
        script = f'x="$(head -c {mib * 1048576} /dev/zero | tr "\\\\000" a)"; echo "${{#x}} bytes held"'
        spec = restricted_container(
            name, node.busybox_image, ["/bin/sh", "-c", script], resources={"limits": {"memory": "32Mi"}}
        )
        core.create_namespaced_pod(ns, pod(name, [spec], restartPolicy="Never"))

    hog("small", 4)  # fits: shows the limit, not the command, is what kills the other one
    hog("big", 64)
    assert wait_for("small pod finished", lambda: finished(core, ns, "small")) == "Succeeded"
    assert wait_for("big pod finished", lambda: finished(core, ns, "big")) == "Failed"
    assert pod_logs(core, ns, "small") == f"{4 * 1048576} bytes held\n"
    terminated = core.read_namespaced_pod("big", ns).status.container_statuses[0].state.terminated
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137), pod_logs(core, ns, "big")


def test_claims_without_a_storage_class_bind_to_static_volumes_and_pods_write(node, node_api, core, ns):
    prefix = f"{ns}-pv"
    (pv,) = node.volumes(1, "1Gi", prefix=prefix)
    container = restricted_container(
        "writer",
        node.busybox_image,
        ["/bin/sh", "-c", "echo written by $(id -u) > /data/proof && exec sleep 3600"],
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
    )
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "writer"},
        "spec": {
            "serviceName": "writer",
            "replicas": 1,
            "selector": {"matchLabels": {"app": "writer"}},
            "template": {"metadata": {"labels": {"app": "writer"}}, "spec": pod("writer", [container])["spec"]},
            # No storageClassName: with no default class the claim binds to a class-less volume;
            # the selector keeps it off volumes other tests on the shared node made.
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                        "selector": {"matchLabels": {"lakehouse.test/volumes": prefix}},
                    },
                }
            ],
        },
    }
    client.AppsV1Api(node_api).create_namespaced_stateful_set(ns, statefulset)
    wait_for("writer-0 Ready", lambda: ready(core, ns, "writer-0") if _exists(core, ns, "writer-0") else False)
    claim = core.read_namespaced_persistent_volume_claim("data-writer-0", ns)
    assert claim.status.phase == "Bound" and claim.spec.volume_name == pv
    host_path = core.read_persistent_volume(pv).spec.host_path.path
    proof = wait_for("file on the volume", lambda: _read(f"{host_path}/proof"), timeout=30)
    assert proof == "written by 65534\n"


def _exists(core, ns: str, name: str) -> bool:
    return any(p.metadata.name == name for p in core.list_namespaced_pod(ns).items)


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


@pytest.mark.skipif(shutil.which("docker") is None, reason="no Docker to make a docker-save archive with")
def test_docker_save_archives_import_and_run(node, core, ns, tmp_path):
    """`docker save` output imports as well as OCI archives do (charts' images may come that way)."""
    name = f"lakehouse.test/imported:{uuid.uuid4().hex[:8]}"
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    archive = tmp_path / "imported.docker.tar"
    tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], check=True, capture_output=True).stdout
    subprocess.run(["docker", "import", "-", name], input=tar, check=True, capture_output=True)
    try:
        subprocess.run(["docker", "save", "-o", str(archive), name], check=True, capture_output=True)
    finally:
        subprocess.run(["docker", "rmi", name], check=False, capture_output=True)
    imported = node.import_image(archive)
    assert [i["name"] for i in imported] == [name]
    assert name in {i["name"] for i in node.images()}
    logs = run_to_completion(core, ns, "imported", name, "echo from a docker archive")
    assert logs == "from a docker archive\n"
