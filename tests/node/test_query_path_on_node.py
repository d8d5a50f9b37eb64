"""The whole query path as Helm releases on the real node, from the sandbox's variables.

One inventory host stands for the node's cluster and belongs to every service group. `lakehouse
up` builds each service's image from the artifact table, imports it into the node's containerd,
stores the rendered config in ConfigMaps and Secrets and installs the generic chart; the pods
really run, under the restricted Pod Security Standard. Then `verify` runs the same checks as on
metal (pyiceberg writes, Trino reads, and back; every refusal; Prometheus, a release too, scrapes
every metrics endpoint by its cluster name, both workers' pods among them, and those with
credentials refuse an anonymous scrape), every release's `helm test`
reaches its Services from a consumer's pod, a second `up` changes nothing,
`--check --diff` shows a changed value and changes nothing, a worker pod deleted during a query
loop drains without a failed query. The orchestrator runs in the same namespace: Airflow's pod (its
TLS front, API server, scheduler, DAG processor and StatsD exporter in one pod, on loopback as on a
host) starts the sample job as a pod of its own that writes through Trino, and `verify` triggers it
through the API and reads the rows back. Last, switching `iceberg_catalog_type` to `jdbc` and
`orchestrator_type` to `dagster` verifies green again: Airflow's release and pod are gone, and the
same job runs as a Kubernetes Job. Before that, the backup CronJob runs once, the database's
release and volume are lost, and `up` restores it from the backup. The controller finds the
Services by name through a block in /etc/hosts that the engine writes (lakehouse_k8s_hosts_file),
removed at the end.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from controlplane import wait_for
from kubernetes import client
from sites import (
    REPO,
    ROUND_TRIP,
    VOLUME_SIZE,
    Site,
    forget_cluster_names,
    helm_revisions,
    node_site,
    passed,
    recap,
    refused_anonymously,
    round_trip,
    scraped,
)

from lakehouse_cli import clients

pytestmark = pytest.mark.node

CLUSTER = "cluster-1.node.lakehouse.test"
NAMESPACE = "lakehouse"
SITE = "nodelake"
SERVICES = ("minio", "postgresql", "nessie", "trino", "prometheus", "airflow")
QUERY_PATH = ("object_storage", "catalog_db", "iceberg_catalog", "query_coordinator", "query_workers")
GROUPS = (*QUERY_PATH, "observability", "orchestrator")
SAMPLE_JOB = "orchestrator sample job run and read back"


@pytest.fixture(scope="module")
def site(tmp_path_factory, node, node_api):
    """The sandbox's variables on an inventory whose one host is the node's cluster."""
    root = tmp_path_factory.mktemp("lakehouse-on-node")
    # Pods connect from addresses that change; the releases' NetworkPolicies say which pods may.
    # Two workers: one drains while the other keeps serving.
    everywhere = {"postgresql_client_networks": ["all"], "trino_worker_replicas": 2}
    yield node_site(root, node, SITE, NAMESPACE, {group: [CLUSTER] for group in GROUPS}, cluster_vars=everywhere)
    forget_cluster_names(SITE)
    client.CoreV1Api(node_api).delete_namespace(NAMESPACE)


@pytest.fixture(scope="module")
def up(site):
    result = site.lakehouse("up", "-e", "iceberg_catalog_type=rest")
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return result


def test_every_service_runs_in_pods_admitted_under_restricted(up, node, node_api):
    core = client.CoreV1Api(node_api)
    labels = core.read_namespace(NAMESPACE).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # The services' pods (a job's pod, started by the orchestrator, is not a release's).
    pods = core.list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/part-of=lakehouse").items
    running = {p.metadata.labels["app.kubernetes.io/name"] for p in pods if p.status.phase == "Running"}
    assert running >= set(SERVICES), {p.metadata.name: p.status.phase for p in pods}
    (orchestrator,) = [p for p in pods if p.metadata.labels["app.kubernetes.io/name"] == "airflow"]
    names = [c.name for c in orchestrator.spec.containers]
    assert names == ["airflow", "api-server", "scheduler", "dag-processor", "statsd-exporter"], names
    for pod in pods:
        for container in pod.spec.containers:
            assert container.security_context.read_only_root_filesystem is True, pod.metadata.name
            assert container.image.startswith(f"lakehouse/{pod.metadata.labels['app.kubernetes.io/name']}:")
            assert "@sha256:" in container.image
    refused = [e.message for e in core.list_namespaced_event(NAMESPACE).items if "PodSecurity" in (e.message or "")]
    assert not refused, refused


def test_contracts_name_services_by_their_cluster_dns_names(up, site):
    state = Path(site.env["LAKEHOUSE_STATE_DIR"]) / "contracts" / CLUSTER
    urls = {path.stem: json.loads(path.read_text())["url"] for path in state.glob("*.json")}
    suffix = f".{NAMESPACE}.svc.cluster.local"
    assert urls["object_storage"] == f"https://minio{suffix}:9000"
    assert urls["catalog"] == f"https://nessie{suffix}:19120/iceberg/main"
    assert urls["query"] == f"https://trino{suffix}:8443"
    assert urls["catalog_db"].startswith(f"postgresql://postgresql{suffix}:5432")
    assert urls["observability"] == f"https://prometheus{suffix}:9090"
    assert urls["orchestrator"] == f"https://airflow{suffix}:8080"


def test_verify_rest_catalog_pyiceberg_and_trino_both_ways(up, site):
    verified = site.verify()
    assert round_trip(verified) == ROUND_TRIP
    # Airflow started the sample job's pod, which wrote the day's rows through Trino.
    assert passed(verified, SAMPLE_JOB), verified
    # Prometheus in its pod scrapes every metrics endpoint by its cluster name, both workers' pods
    # among them, and each is up.
    suffix = f".{NAMESPACE}.svc.cluster.local"
    workers = {f"https://trino-worker-{i}.trino-worker-pods{suffix}:8443/metrics" for i in range(2)}
    expected = {
        f"https://minio{suffix}:9000/minio/v2/metrics/cluster", f"https://postgresql-exporter{suffix}:9187/metrics",
        f"https://nessie{suffix}:19121/q/metrics", f"https://trino{suffix}:8443/metrics",
        f"https://prometheus{suffix}:9090/metrics", f"https://airflow{suffix}:8080/metrics", *workers,
    }  # fmt: skip
    up = scraped(verified)
    assert set(up) == expected, verified
    assert all(": up, scraped in " in said for said in up.values()), up
    # Every one refuses an anonymous scrape, Nessie's through the front in its pod too.
    assert set(refused_anonymously(verified)) == expected, verified


def test_helm_test_of_every_release_reaches_its_services_as_a_consumer(up, node):
    for release in SERVICES:
        done = subprocess.run(
            ["helm", "test", release, "-n", NAMESPACE, "--logs", "--timeout", "2m"],
            env=node.env, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert re.search(r"Phase:\s+Succeeded", done.stdout), done.stdout
        probed = re.findall(r"^ok +(\S+):", done.stdout, re.MULTILINE)
        assert probed and all(f".{NAMESPACE}.svc.cluster.local:" in url for url in probed), done.stdout


def test_second_up_changes_nothing_and_makes_no_revision(up, site, node):
    before = helm_revisions(node.env, NAMESPACE)
    result = site.playbook("playbooks/site.yml", "-e", "iceberg_catalog_type=rest")
    assert result.returncode == 0, result.stdout[-4000:]
    assert recap(result.stdout, CLUSTER)["changed"] == 0, result.stdout[-6000:]
    assert helm_revisions(node.env, NAMESPACE) == before


def test_check_diff_of_a_changed_value_shows_it_and_changes_nothing(up, site, node):
    before = helm_revisions(node.env, NAMESPACE)
    result = site.playbook(
        "playbooks/site.yml", "--check", "--diff", "-e", "iceberg_catalog_type=rest", "-e", "minio_region=eu-west-3"
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert recap(result.stdout, CLUSTER)["changed"] >= 1
    assert "MINIO_SITE_REGION" not in result.stdout, "a secret file's content must not be shown"
    assert "checksum" in result.stdout, "the diff shows the release's changed config checksum"
    assert helm_revisions(node.env, NAMESPACE) == before


# A million rows, spread over the workers (sequence() makes at most 10,000 at a time).
LOOP_QUERY = "SELECT count(*) FROM UNNEST(sequence(1, 10000)) AS a (x) CROSS JOIN UNNEST(sequence(1, 100)) AS b (y)"


def test_a_deleted_worker_pod_drains_and_no_query_fails(up, site, node_api):
    core = client.CoreV1Api(node_api)
    selector = "app.kubernetes.io/component=worker"
    worker, _ = core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
    failures, answered, stop = [], [], threading.Event()
    active_workers = "SELECT count(*) FROM system.runtime.nodes WHERE coordinator = false AND state = 'active'"

    def loop():
        deadline = time.monotonic() + 300
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                answered.append(site.trino(LOOP_QUERY))
            except Exception as err:  # noqa: BLE001 (every failure counts)
                failures.append(repr(err))

    def replaced() -> bool:
        pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
        return worker.metadata.uid not in {p.metadata.uid for p in pods} and site.trino(active_workers) == [(2,)]

    with clients.ca_bundle_env([site.query_contract().ca]):
        thread = threading.Thread(target=loop)
        thread.start()
        try:
            wait_for("queries answered before the deletion", lambda: len(answered) >= 2 or failures, timeout=120)
            core.delete_namespaced_pod(worker.metadata.name, NAMESPACE)
            # The preStop drain asks Trino for a graceful shutdown: the terminating pod's log says so.
            wait_for(
                "the worker's graceful shutdown", lambda: "Shutdown requested" in pod_log(core, worker), timeout=120
            )
            wait_for("a new worker registered", replaced, timeout=300, interval=2)
            count = len(answered)
            wait_for(
                "queries answered after the new worker", lambda: len(answered) >= count + 2 or failures, timeout=120
            )
        finally:
            stop.set()
            thread.join(timeout=120)
    assert not failures, failures


def pod_log(core, pod) -> str:
    """The log of this very pod (its StatefulSet recreates one of the same name), or "" once gone."""
    try:
        if core.read_namespaced_pod(pod.metadata.name, NAMESPACE).metadata.uid != pod.metadata.uid:
            return ""
        return core.read_namespaced_pod_log(pod.metadata.name, NAMESPACE, tail_lines=200)
    except client.ApiException as err:
        if err.status in (400, 404):  # not started yet, or gone
            return ""
        raise


def test_the_catalog_database_is_backed_up_by_its_cronjob_and_restored_when_its_volume_is_lost(
    up, site, node, node_api
):
    # A table; then the backup CronJob (the schedule of a metal host's timer) run now. The
    # database's release and volume are then lost, and `up` with postgresql_restore_from installs
    # it anew and restores it in a Job made from the CronJob's pod: the table reads as before.
    batch, core = client.BatchV1Api(node_api), client.CoreV1Api(node_api)
    content = "SELECT count(*), checksum(id), checksum(name) FROM lakehouse.restore_check.orders"
    with clients.ca_bundle_env([site.query_contract().ca]):
        site.trino("CREATE SCHEMA IF NOT EXISTS lakehouse.restore_check")
        site.trino("CREATE TABLE lakehouse.restore_check.orders AS SELECT x AS id,"
                          " format('order %d', x * 7) AS name FROM UNNEST(sequence(1, 1000)) AS t(x)")  # fmt: skip
        before = site.trino(content)
    cron = batch.read_namespaced_cron_job("postgresql-backup", NAMESPACE)
    assert (cron.spec.schedule, cron.spec.time_zone, cron.spec.concurrency_policy) == ("@daily", "Etc/UTC", "Forbid")
    batch.create_namespaced_job(
        NAMESPACE,
        client.V1Job(metadata=client.V1ObjectMeta(name="postgresql-backup-now"), spec=cron.spec.job_template.spec),
    )
    backup = json.loads(job_output(batch, core, "postgresql-backup-now"))
    # Every database of the catalog database contract, uploaded with its manifest.
    assert set(backup["databases"]) == {"nessie", "iceberg_catalog", "airflow", "dagster"}, backup
    assert backup["databases"]["nessie"]["relations"] > 0, backup

    subprocess.run(["helm", "uninstall", "postgresql", "-n", NAMESPACE, "--wait"], env=node.env, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    core.delete_namespaced_persistent_volume_claim("data-postgresql-0", NAMESPACE)
    node.volumes(1, VOLUME_SIZE, prefix=SITE)  # where the new database's claim binds
    began = time.monotonic()
    result = site.lakehouse("up", "-e", "postgresql_restore_from=latest")
    seconds = time.monotonic() - began
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    restored = json.loads(job_output(batch, core, "postgresql-restore"))
    assert "nessie" in restored["restored"] and restored["backup"] == backup["backup"], restored
    assert f"Backup {backup['backup']}: restored " in result.stdout, result.stdout[-3000:]  # said after the summary

    def read_back():
        # The catalog's pod, unchanged, reconnects to the new database on its own.
        try:
            return site.trino(content)
        except Exception:  # noqa: BLE001 (until the catalog answers again; bounded below)
            return None

    with clients.ca_bundle_env([site.query_contract().ca]):
        after = wait_for("the table read through the catalog again", read_back, timeout=300, interval=5)
    print(f"catalog database restored on the cluster in {seconds:.0f} s (the whole `up`): {after[0][0]} rows")
    assert after == before


def job_output(batch, core, name: str) -> str:
    """The last line a Job's pod printed, once the Job has succeeded (its log when it failed)."""

    def ended():
        status = batch.read_namespaced_job_status(name, NAMESPACE).status
        return "succeeded" if status.succeeded else "failed" if status.failed else None

    outcome = wait_for(f"the Job {name} to end", ended, timeout=300, interval=2)
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={name}").items
    last = max(pods, key=lambda pod: pod.metadata.creation_timestamp)  # a failed run's pods are kept
    # Unparsed: the client would turn a JSON line into a Python repr.
    log = core.read_namespaced_pod_log(last.metadata.name, NAMESPACE, _preload_content=False).data.decode()
    assert outcome == "succeeded", log[-3000:]
    return log.strip().splitlines()[-1]


# -- one variable set, two deliveries ---------------------------------------------------------------

METAL = "metal-1.nodecompare.lakehouse.test"
METAL_NETWORK = "lakehouse-nodecompare"
# Where each service keeps its config files, the same on a host and in its pods.
CONFIG_DIRS = {
    "minio": "/etc/minio",
    "postgresql": "/etc/lakehouse-postgresql",
    "nessie": "/etc/lakehouse-nessie",
    "trino": "/etc/lakehouse-trino",
}
# A delivery's own identity: the server certificates name its endpoint; node.properties and the
# readiness and drain script (node.py) name the Trino node (a host by its name, a pod by the name
# its StatefulSet gives it).
OWN_NAMES = {"certs/public.crt", "certs/private.key", "certs/server.crt", "certs/server.key", "https.pem"}
OWN_NAMES |= {"node.properties", "node.py"}
# Variables the comparison sets on both deliveries: the metal sandbox reads its client network
# from facts, and the cluster runs its coordinator alone, as the single metal host does.
SHARED = {
    "postgresql_client_networks": ["all"],
    "trino_worker_replicas": 0,
    "trino_heap_size": "1G",  # the sandbox's 2G is for a host; the cluster's pods have 1G
    "iceberg_catalog_type": "rest",
}


def cluster_files(core, name: str) -> dict[str, str]:
    import base64

    files = {k.replace("__", "/"): v for k, v in (core.read_namespaced_config_map(name, NAMESPACE).data or {}).items()}
    secret = core.read_namespaced_secret(name, NAMESPACE).data or {}
    files |= {k.replace("__", "/"): base64.b64decode(v).decode() for k, v in secret.items()}
    return files


def as_on_metal(text: str) -> str:
    """A cluster's file with its endpoint names replaced by the metal host's name."""
    suffix = rf"\.{NAMESPACE}\.svc\.cluster\.local"
    return re.sub(rf"\b(trino-0\.trino-pods|minio|postgresql|nessie|trino){suffix}\b", METAL, text)


# Where a log goes is the delivery's: a pod's stdout or stderr, a host's journal or files (neither
# nginx nor PostgreSQL's log collector can open a host's stdout, the journal's socket).
LOG_PLACES = re.compile(
    r"^\s*(access_log|log_directory|log_filename|log_rotation_age|log_truncate_on_rotation)\b.*\n", re.M
)


def comparable(text: str) -> str:
    return LOG_PLACES.sub("", text)


@pytest.fixture(scope="module")
def metal(site):
    """The same inventory variables and secret store on one metal sandbox host running everything."""
    inventory = site.inventory.parent / "metal-inventory"
    shutil.copytree(site.inventory / "group_vars", inventory / "group_vars")
    (inventory / "group_vars" / "clusters.yml").unlink()
    shutil.copy(REPO / "inventories" / "sandbox" / "group_vars" / "sandbox.yml", inventory / "group_vars")
    main = inventory / "group_vars" / "all" / "main.yml"
    main.write_text(re.sub(r"(?m)^sandbox_network: .*$", f"sandbox_network: {METAL_NETWORK}", main.read_text()))
    # The query path's services, whose files are compared (Prometheus's scrape files name each host).
    hosts = {"all": {"children": {group: {"hosts": {METAL: None}} for group in ("sandbox", *QUERY_PATH)}}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    env = {**site.env, "LAKEHOUSE_STATE_DIR": str(site.inventory.parent / "metal-state")}
    host = Site(inventory, env, [METAL], site.name)
    created = host.playbook("playbooks/sandbox.yml")
    assert created.returncode == 0, created.stdout[-3000:]
    try:
        yield host
    finally:
        host.playbook("playbooks/sandbox.yml", "-e", "sandbox_state=absent")


def test_one_variable_set_renders_identical_files_on_both_deliveries(up, site, metal, node_api):
    shared = ("-e", json.dumps(SHARED))
    # The two deliveries converge side by side: they share nothing but the variables.
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(each.playbook, "playbooks/site.yml", *shared) for each in (site, metal)]
    on_cluster, on_metal = (run.result() for run in runs)
    assert on_cluster.returncode == 0, on_cluster.stdout[-4000:]
    assert on_metal.returncode == 0, on_metal.stdout[-4000:]
    core = client.CoreV1Api(node_api)
    compared = []
    for service, directory in CONFIG_DIRS.items():
        for path, content in sorted(cluster_files(core, f"{service}-config").items()):
            if path in OWN_NAMES:
                continue
            host = subprocess.run(
                ["docker", "exec", METAL, "cat", f"{directory}/{path}"], capture_output=True, text=True, check=True
            ).stdout
            assert comparable(as_on_metal(content)) == comparable(host), (
                f"{service}: {path} differs between the deliveries"
            )
            compared.append(f"{service}:{path}")
    # Every service's configuration took part: its main file at least.
    for expected in ("minio:minio.env", "postgresql:postgresql.conf", "nessie:application.properties",
                     "trino:config.properties", "trino:catalog/lakehouse.properties"):  # fmt: skip
        assert expected in compared, compared


# Last: both switches in one run (each alone is shown on metal, tests/test_end_to_end.py), so that
# no other test here switches them back. The coordinator stays alone, as the comparison above left
# it: a StatefulSet of workers rolls one pod at a time, which the drain test has shown.
def test_switching_the_catalog_to_jdbc_and_the_orchestrator_to_dagster_verifies_green(up, site, node, node_api):
    switched = ("iceberg_catalog_type=jdbc", "orchestrator_type=dagster", "trino_worker_replicas=0")
    result = site.lakehouse("up", *[arg for value in switched for arg in ("-e", value)])
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    # Airflow is gone, its pod too, before Dagster started: one orchestrator schedules at a time.
    assert "airflow" not in helm_revisions(node.env, NAMESPACE) and "dagster" in helm_revisions(node.env, NAMESPACE)
    core = client.CoreV1Api(node_api)
    assert not core.list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/name=airflow").items
    verified = site.verify()
    assert round_trip(verified) == ROUND_TRIP
    # Dagster ran the same job spec as a Kubernetes Job, which wrote the day's rows through Trino.
    assert passed(verified, SAMPLE_JOB), verified
    # The run's pod ran as the account with no rights, mounting no token, admitted under restricted.
    jobs = client.BatchV1Api(node_api).list_namespaced_job(NAMESPACE).items
    labels = lambda job: {**(job.metadata.labels or {}), **(job.spec.template.metadata.labels or {})}  # noqa: E731
    runs = [j for j in jobs if labels(j).get("lakehouse.job") == "daily_ingest"]
    assert runs and all(j.status.succeeded == 1 for j in runs), [j.status for j in runs]
    assert {j.spec.template.spec.service_account_name for j in runs} == {"dagster-runs"}
    account = core.read_namespaced_service_account("dagster-runs", NAMESPACE)
    assert account.automount_service_account_token is False
