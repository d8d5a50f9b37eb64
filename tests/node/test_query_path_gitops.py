"""GitOps on the real node: the query path rendered to Git, applied by Flux, verified.

(Named to run after test_node.py, whose teardown test needs the machine before the session's node.)

`lakehouse render` writes the releases of a cluster-only inventory (MinIO, PostgreSQL, Nessie,
Trino) into a Git work tree, creates their Secrets on the cluster and imports their images; the
tree is pushed to a Git server on loopback, and its sync objects applied: Flux's controllers (built
from pinned sources) install the HelmReleases, whose pods really run. `lakehouse up` with the same
lakehouse_gitops_dir installs nothing (each release stays at Flux's revision 1): it waits for Flux
to install each release of the tree, and manages the buckets and databases (which Nessie waits
for) and the contracts; then every HelmRelease is Ready and `verify` passes as after a plain `up`.
A second render is the same bytes; a value changed and pushed reaches the cluster.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from controlplane import wait_for
from flux import Flux, GitServer, conditions, ready
from kubernetes import client
from sites import ROUND_TRIP, forget_cluster_names, helm_revisions, node_site, passed, round_trip

pytestmark = pytest.mark.node

CLUSTER = "cluster-1.gitops.lakehouse.test"
NAMESPACE = "gitops"
SITE = "gitopslake"
GROUPS = ("object_storage", "catalog_db", "iceberg_catalog", "query_coordinator", "query_workers")
RELEASES = {"minio", "postgresql", "nessie", "trino"}
SYNC_SECONDS = 900  # the first sync pulls every chart and starts every pod on a 2-core node


def git(tree: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(tree), "-c", "user.name=lakehouse", "-c", "user.email=lakehouse@localhost", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


@pytest.fixture(scope="module")
def gitops(tmp_path_factory, node, node_api):
    root = tmp_path_factory.mktemp("gitops-on-node")
    with GitServer(root / "git") as server, Flux(node, root / "flux") as flux:
        tree = root / "tree"
        subprocess.run(["git", "clone", "-q", str(server.repository), str(tree)], check=True, timeout=60)
        cluster_vars = {
            "postgresql_client_networks": ["all"],
            "trino_worker_replicas": 1,
            "lakehouse_gitops_dir": str(tree),
            "lakehouse_gitops_repository": {"url": server.url, "branch": server.branch},
            "lakehouse_gitops_interval": "30s",
        }
        site = node_site(root, node, SITE, NAMESPACE, {g: [CLUSTER] for g in GROUPS}, cluster_vars=cluster_vars)
        try:
            yield {"site": site, "flux": flux, "tree": tree, "sync": tree / "clusters" / CLUSTER / "flux-system"}
        finally:
            # Flux takes its releases away (the Kustomization prunes them, helm-controller uninstalls)
            # while it still runs; then the namespace goes.
            for kustomization in flux.objects("Kustomization", "flux-system"):
                flux.delete("Kustomization", kustomization["metadata"]["name"], "flux-system")
            wait_for("Flux to remove its releases", lambda: not flux.objects("HelmRelease", NAMESPACE), timeout=300)
            forget_cluster_names(SITE)
            client.CoreV1Api(node_api).delete_namespace(NAMESPACE)


def render(site, *extra: str) -> str:
    result = site.lakehouse("render", *[arg for value in extra for arg in ("-e", value)])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    return output


def push(tree: Path, message: str) -> None:
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", message)
    git(tree, "push", "-q", "origin", "HEAD:main")


def releases_ready(flux, names=RELEASES) -> bool:
    found = {r["metadata"]["name"]: r for r in flux.objects("HelmRelease", NAMESPACE)}
    return set(found) == set(names) and all(ready(r) for r in found.values())


def wait_releases_ready(flux) -> None:
    try:
        wait_for("every HelmRelease Ready", lambda: releases_ready(flux), timeout=SYNC_SECONDS, interval=5)
    except BaseException:
        print(conditions(flux.objects("HelmRelease", NAMESPACE) + flux.objects("Kustomization", "flux-system")))
        print(flux.log_tail())
        raise


@pytest.fixture(scope="module")
def synced(gitops):
    site, flux, tree = gitops["site"], gitops["flux"], gitops["tree"]
    render(site)
    assert helm_revisions(site.env, NAMESPACE) == {}, "a render installs nothing: Flux does"
    push(tree, "lakehouse render")
    for document in yaml.safe_load_all((gitops["sync"] / "sync.yaml").read_text()):
        if document:
            flux.create(document)
    result = site.lakehouse("up")
    if result.returncode != 0:
        print(conditions(flux.objects("HelmRelease", NAMESPACE)), flux.log_tail(), sep="\n")
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return gitops


def test_flux_installs_the_rendered_tree_and_after_up_verify_passes_as_after_a_plain_up(synced):
    site = synced["site"]
    wait_releases_ready(synced["flux"])
    assert helm_revisions(site.env, NAMESPACE) == dict.fromkeys(RELEASES, 1), "under GitOps, up installs no release"
    verified = site.verify()
    assert round_trip(verified) == ROUND_TRIP, verified
    assert passed(verified, "object_storage anonymous access refused"), verified


def test_a_second_render_is_the_same_bytes_and_changes_nothing(synced):
    output = render(synced["site"])
    summary = re.search(r"site\.yml: done, \d+ tasks, hosts ok=\d+ changed=(\d+)", output)
    assert summary and summary.group(1) == "0", output[-3000:]
    assert git(synced["tree"], "status", "--porcelain") == ""


def test_a_value_changed_and_pushed_reaches_the_cluster(synced, node_api):
    # A PostgreSQL setting: its config object and its pod change, and no other service restarts.
    site, flux, tree = synced["site"], synced["flux"], synced["tree"]
    render(site, json.dumps({"postgresql_extra_settings": {"work_mem": "8MB"}}))
    assert "work_mem" in git(tree, "diff", "--", f"clusters/{CLUSTER}/{NAMESPACE}/postgresql.yaml")
    push(tree, "a PostgreSQL setting")
    flux.reconcile("GitRepository", "lakehouse", "flux-system")
    core, apps = client.CoreV1Api(node_api), client.AppsV1Api(node_api)

    def rolled() -> bool:
        files = core.read_namespaced_config_map("postgresql-config", NAMESPACE).data or {}
        status = apps.read_namespaced_stateful_set("postgresql", NAMESPACE).status
        return (
            "work_mem = '8MB'" in files.get("postgresql.conf", "")
            and status.ready_replicas == 1
            and (status.current_revision == status.update_revision)
        )

    wait_for(
        "the pushed change: PostgreSQL's new setting, its pod replaced and ready",
        rolled,
        timeout=SYNC_SECONDS,
        interval=5,
    )
    wait_releases_ready(flux)
    pushed = next(
        d for d in yaml.safe_load_all((tree / "clusters" / CLUSTER / NAMESPACE / "postgresql.yaml").read_text())
        if d and d["kind"] == "HelmRelease"
    )  # fmt: skip
    (applied,) = [r for r in flux.objects("HelmRelease", NAMESPACE) if r["metadata"]["name"] == "postgresql"]
    assert applied["spec"]["values"] == pushed["spec"]["values"]
