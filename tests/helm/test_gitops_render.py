"""`lakehouse render`: a cluster host's releases as a GitOps tree, on the test control plane.

The inventory holds one cluster host (the kwok control plane) running MinIO. It is converged once by
the Helm engine (the release installed directly), then rendered: the tree must hold the generic
chart, and for the release its ConfigMaps and a HelmRelease carrying exactly the values the engine
installed, while its Secrets are only on the cluster. A second render must be the same bytes and
change nothing. (Flux applying such a tree to pods that really run is the real node tier's test.)
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from controlplane import static_volume
from kubernetes import client

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CLUSTER = "cluster-1.gitops.lakehouse.test"
NAMESPACE = "gitops"
KWOK_IMAGE = {"repository": "lakehouse/minio", "tag": "kwok", "digest": "sha256:" + "1" * 64}


@pytest.fixture(scope="module")
def site(tmp_path_factory, cp, api):
    directory = tmp_path_factory.mktemp("gitops")
    cluster_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "lakehouse_delivery": "helm",
        "lakehouse_k8s_kubeconfig": str(cp.kubeconfig),
        "lakehouse_k8s_namespace": NAMESPACE,
        # kwok simulates the pods: no S3 endpoint to manage buckets through, no runtime for an image.
        "minio_manage_resources": False,
        "lakehouse_images": {"minio": KWOK_IMAGE},
        "minio_volume_size": "1Gi",
        "lakehouse_gitops_repository": {"url": "https://git.example.internal/lakehouse.git", "branch": "main"},
    }
    inventory = {
        "all": {
            "vars": {"lakehouse_site": "gitops"},
            "hosts": {CLUSTER: cluster_vars},
            "children": {"object_storage": {"hosts": {CLUSTER: None}}},
        }
    }
    (directory / "hosts.yml").write_text(yaml.safe_dump(inventory))
    static_volume(api, "gitops-minio-data", "/var/lib/gitops-minio")
    env_secrets = directory / "secrets"
    env = {
        **os.environ,
        **cp.env,
        "LAKEHOUSE_SECRETS_DIR": str(env_secrets),
        "LAKEHOUSE_STATE_DIR": str(directory / "state"),
        "ANSIBLE_NOCOLOR": "1",
    }

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(command), cwd=REPO, env=env, capture_output=True, text=True, timeout=1200, check=False
        )

    converged = run(str(BIN / "ansible-playbook"), "-i", str(directory / "hosts.yml"), "playbooks/object_storage.yml")
    assert converged.returncode == 0, converged.stdout[-5000:]
    return {
        "run": run,
        "inventory": directory / "hosts.yml",
        "tree": directory / "tree",
        "secrets": directory / "secrets",
    }


def render(site) -> subprocess.CompletedProcess:
    result = site["run"](
        sys.executable, "-m", "lakehouse_cli", "render", "-i", str(site["inventory"]), "-o", str(site["tree"])
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return result


def tree_digest(tree: Path) -> dict[str, str]:
    return {
        str(path.relative_to(tree)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(tree.rglob("*"))
        if path.is_file()
    }


def documents(path: Path) -> dict[str, dict]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(path.read_text()) if d}


@pytest.fixture(scope="module")
def rendered(site):
    return render(site)


def test_the_release_is_written_with_exactly_the_values_the_engine_installed(rendered, site, cp):
    release = site["tree"] / "clusters" / CLUSTER / NAMESPACE / "minio.yaml"
    objects = documents(release)
    helm_release = objects["HelmRelease/minio"]
    installed = subprocess.run(
        [str(Path(cp.bin_dir) / "helm"), "get", "values", "minio", "-n", NAMESPACE, "-o", "json"],
        env=cp.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert helm_release["spec"]["values"] == json.loads(installed.stdout)
    assert helm_release["spec"]["releaseName"] == "minio"
    assert helm_release["spec"]["chart"]["spec"]["chart"] == "./charts/lakehouse-service"


def test_the_configmaps_are_in_the_tree_and_the_secrets_only_on_the_cluster(rendered, site, api):
    core = client.CoreV1Api(api)
    objects = documents(site["tree"] / "clusters" / CLUSTER / NAMESPACE / "minio.yaml")
    on_cluster = {
        cm.metadata.name: cm.data
        for cm in core.list_namespaced_config_map(NAMESPACE, label_selector="app.kubernetes.io/name=minio").items
    }
    assert on_cluster and {f"ConfigMap/{name}" for name in on_cluster} | {"HelmRelease/minio"} == set(objects)
    for name, data in on_cluster.items():
        assert objects[f"ConfigMap/{name}"]["data"] == data
    assert core.list_namespaced_secret(NAMESPACE, label_selector="app.kubernetes.io/name=minio").items
    # Every credential and private key of the secret store stays out of the tree (certificates are public).
    tree_text = "\n".join(path.read_text(errors="replace") for path in site["tree"].rglob("*") if path.is_file())
    stored = [path for path in site["secrets"].rglob("*") if path.is_file() and path.suffix != ".crt"]
    assert stored
    for path in stored:
        assert path.read_text(errors="replace").strip() not in tree_text, (
            f"{path.name} of the secret store is in the tree"
        )


def test_the_tree_holds_the_chart_and_the_sync_objects(rendered, site):
    comparison = filecmp.dircmp(REPO / "helm" / "lakehouse-service", site["tree"] / "charts" / "lakehouse-service")
    assert not comparison.left_only and not comparison.right_only and not comparison.diff_files
    sync = documents(site["tree"] / "clusters" / CLUSTER / "flux-system" / "sync.yaml")
    assert sync["GitRepository/lakehouse"]["spec"]["url"] == "https://git.example.internal/lakehouse.git"
    assert sync["Kustomization/lakehouse-gitops"]["spec"]["path"] == f"./clusters/{CLUSTER}"


def test_a_second_render_is_the_same_bytes_and_changes_nothing(rendered, site):
    before = tree_digest(site["tree"])
    again = render(site)
    assert "changed=0" in again.stdout, again.stdout[-3000:]
    assert tree_digest(site["tree"]) == before
