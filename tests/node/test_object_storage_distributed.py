"""Distributed MinIO as one release on the real node, from the sandbox's object storage variables.

`minio_replicas: 2` and two `minio_data_dirs`: a StatefulSet of two pods that start together,
each with a claim per drive, erasure-coded across the four drives; each pod finds its peer by
the name the StatefulSet gives it, over TLS. `verify` passes as for a single server. Then a drive
is lost (its claim and its pod deleted): the pod comes back on an empty volume, every object
reads back whole, and MinIO heals the new drive by itself.
(Named to run after test_node.py, whose teardown test needs the machine before the session's node.)
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import urllib3
from controlplane import wait_for
from kubernetes import client
from minio import MinioAdmin
from minio.credentials import StaticProvider
from sites import forget_cluster_names, node_site, passed

from lakehouse_cli import checks
from lakehouse_cli.contracts import resolve_secret

pytestmark = pytest.mark.node

CLUSTER = "cluster-1.pool.lakehouse.test"
NAMESPACE = "pool"
SITE = "poollake"
DRIVES = ["/var/lib/minio/data", "/var/lib/minio/data-2"]
LOST = ("data-2-minio-1", "minio-1")  # the claim of the second drive of the second pod, and its pod
HEAL_SECONDS = 300


@pytest.fixture(scope="module")
def site(tmp_path_factory, node, node_api):
    root = tmp_path_factory.mktemp("pool-on-node")
    distributed = {
        "minio_replicas": 2,
        "minio_data_dirs": DRIVES,
        # The node's volumes are directories of one disk, which MinIO refuses as drives otherwise.
        "minio_extra_env": {"MINIO_CI_CD": "on"},
    }
    yield node_site(root, node, SITE, NAMESPACE, {"object_storage": [CLUSTER]}, cluster_vars=distributed)
    forget_cluster_names(SITE)
    client.CoreV1Api(node_api).delete_namespace(NAMESPACE)


@pytest.fixture(scope="module")
def up(site):
    result = site.lakehouse("up")
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return result


@pytest.fixture(scope="module")
def root_s3(site, up):
    """Clients of the deployment's S3 and admin APIs as its root user, through its Service."""
    (contract,) = [c for c in site.contracts() if c.service == "object_storage"]
    store = Path(site.env["LAKEHOUSE_SECRETS_DIR"])
    admin = contract.credential("admin")
    keys = [resolve_secret(admin[ref], store, env={}) for ref in ("user_ref", "secret_ref")]
    s3 = checks._minio(contract.url, contract.ca, contract.data.get("region"), *keys)
    http = urllib3.PoolManager(ca_certs=str(contract.ca))
    return s3, MinioAdmin(endpoint=urlsplit(contract.url).netloc, credentials=StaticProvider(*keys), http_client=http)


def drives(admin: MinioAdmin) -> list[dict]:
    return [drive for server in json.loads(admin.info())["servers"] for drive in server.get("drives", [])]


def test_two_pods_serve_one_deployment_across_four_drives(site, up, root_s3):
    _, admin = root_s3
    servers = json.loads(admin.info())["servers"]
    assert sorted(s["endpoint"].split(".")[0] for s in servers) == ["minio-0", "minio-1"], servers
    assert len(drives(admin)) == 4 and {d["state"] for d in drives(admin)} == {"ok"}, drives(admin)
    verified = site.verify()
    assert passed(verified, "object_storage put/get/delete round trip"), verified


def read_all(s3, keys) -> dict[str, bytes] | None:
    """Every object's content; None while the deployment does not answer (a member rejoining)."""
    try:
        return {key: s3.get_object("warehouse", key).read() for key in keys}
    except Exception:  # noqa: BLE001 (a timeout or a 503 while the peer rejoins; the caller bounds the wait)
        return None


def test_a_lost_drive_loses_no_object_and_heals(node, node_api, root_s3):
    s3, _ = root_s3
    objects = {f"heal/{i:02d}.bin": os.urandom(64 * 1024) for i in range(20)}
    for key, data in objects.items():
        s3.put_object("warehouse", key, io.BytesIO(data), len(data))
    core = client.CoreV1Api(node_api)
    claim, pod = LOST
    lost = core.read_namespaced_pod(pod, NAMESPACE).metadata.uid
    core.delete_namespaced_persistent_volume_claim(claim, NAMESPACE)  # released once its pod is gone
    core.delete_namespaced_pod(pod, NAMESPACE)
    lost_at = time.monotonic()

    def new_drive() -> Path | None:
        """The empty volume the pod's new claim is bound to, once the new pod is ready."""
        try:
            found = core.read_namespaced_persistent_volume_claim(claim, NAMESPACE)
            again = core.read_namespaced_pod(pod, NAMESPACE)
        except client.ApiException:
            return None
        ready = any(c.type == "Ready" and c.status == "True" for c in again.status.conditions or [])
        if (
            found.status.phase != "Bound"
            or found.metadata.deletion_timestamp
            or again.metadata.uid == lost
            or not ready
        ):
            return None
        return Path(core.read_persistent_volume(found.spec.volume_name).spec.host_path.path)

    drive = wait_for("the pod back on a new, empty volume", new_drive, timeout=HEAL_SECONDS, interval=2)
    # Erasure coding: every object reads back whole, whether or not the drive is healed yet.
    read = wait_for("every object read back", lambda: read_all(s3, objects), timeout=120, interval=2)
    assert read == objects
    healed = lambda: all((drive / "warehouse" / key / "xl.meta").exists() for key in objects)  # noqa: E731
    wait_for("MinIO to heal the new drive", healed, timeout=HEAL_SECONDS, interval=2)
    print(f"lost drive healed in {time.monotonic() - lost_at:.1f} s ({len(objects)} objects, none lost)")
