"""The service model (plugins/filter/lakehouse_service.py): normalizing a descriptor once, placing
its components on hosts, and turning it into the generic chart's values and config objects."""

from __future__ import annotations

import base64
import copy
import socket
import subprocess
import sys

import pytest
from ansible.errors import AnsibleFilterError
from conftest import REPO
from service_examples import IMAGE, PLATFORM, UID, backup_job, minio, model, orchestrator, trino


def test_defaults_are_applied_once_and_programs_resolved_by_artifact():
    service = model.normalize(minio())
    (component,) = service["components"]
    assert component["executable"] == "/usr/local/bin/minio"
    assert component["unit"] == "lakehouse-minio.service" and component["workload"] == "minio"
    assert component["ports"] == [
        {"name": "s3", "port": 9000, "tls": True, "exposed": True, "metrics_path": None},
        {"name": "console", "port": 9001, "tls": True, "exposed": False, "metrics_path": None},
    ]
    assert component["health"]["readiness"] == {
        "port": "s3", "path": "/minio/health/ready", "match": None, "command": None, "scheme": "https", "number": 9000,
    }  # fmt: skip
    # The liveness probe defaults to the readiness probe, without its body match.
    assert component["health"]["liveness"]["path"] == "/minio/health/ready"
    assert component["health"]["wait_seconds"] == 120
    assert component["stop"] == {"command": [], "timeout": 120}
    assert component["reload"] == {"signal": None}
    assert component["rolling"] is False  # restarted on every host of a change at once
    assert component["start_together"] is False  # a cluster starts its replicas one after another
    assert component["volumes"] == [{"name": "data", "path": "/var/lib/minio/data", "size": "1Gi", "storage_class": ""}]
    assert service["memory_deny_write_execute"] is True and service["success_exit_status"] == []
    assert service["image"] == "minio"


def test_normalizing_a_normalized_input_is_stable():
    descriptor = minio()
    before = copy.deepcopy(descriptor)
    assert model.normalize(descriptor) == model.normalize(descriptor)
    assert descriptor == before, "the role's descriptor must not be changed in place"


def test_a_java_service_gets_its_runtime_trust_store_and_unit_allowances():
    service = model.normalize(trino(), PLATFORM)
    assert {"name": "java_runtime", "dest": PLATFORM["java_home"]} in service["artifacts"]
    coordinator, worker = service["components"]
    assert coordinator["executable"] == "/usr/local/lib/lakehouse/trino/bin/launcher"
    assert coordinator["env"]["JAVA_HOME"] == PLATFORM["java_home"]
    assert (
        "-Djavax.net.ssl.trustStore=/var/lib/lakehouse-trino/truststore.p12" in coordinator["env"]["JAVA_TOOL_OPTIONS"]
    )
    assert coordinator["pre_start"] == [
        [PLATFORM["truststore_builder"], "/var/lib/lakehouse-trino/truststore.p12", "/etc/lakehouse-trino/ca.crt"]
    ]
    assert service["memory_deny_write_execute"] is False
    assert service["address_families"] == ["AF_NETLINK"] and service["success_exit_status"] == [143]
    assert worker["unit"] == "lakehouse-trino-worker.service" and worker["workload"] == "trino-worker"


def test_metal_hosts_run_one_trino_process_and_a_cluster_runs_both():
    service = model.normalize(trino(), PLATFORM)
    groups = {"query_coordinator": ["both", "c"], "query_workers": ["both", "w", "cluster"]}
    names = lambda host, exclusive=True: [c["name"] for c in model.placed(service, host, groups, exclusive)]  # noqa: E731
    assert names("c") == ["trino"]
    assert names("w") == ["worker"]
    assert names("both") == ["trino"], "a host that is coordinator and worker runs the coordinator only"
    assert names("both", exclusive=False) == ["trino", "worker"]
    assert names("elsewhere") == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("provides"), "needs `provides`"),
        (lambda d: d.update(colour="blue"), "unknown service key(s) colour"),
        (lambda d: d["components"][0].update(executable="/usr/bin/minio"), "unknown component key(s) executable"),
        (lambda d: d["components"][0].update(program={"artifact": "mc"}), "artifact mc is not among"),
        (lambda d: d["components"][0].update(program={"package": "minio", "path": "/x"}), "package minio is not"),
        (lambda d: d["components"][0].update(program={"artifact": "minio", "package": "x"}), "exactly one of"),
        (lambda d: d["components"][0]["ports"][0].update(port="70000"), "port s3: `70000` is not a port number"),
        (lambda d: d["components"][0]["ports"][1].update(port=9000), "names and numbers must be unique"),
        (lambda d: d["components"][0]["health"]["readiness"].update(port="web"), "probe port web is not one"),
        (lambda d: d["components"][0]["health"].update(readiness={"port": "s3", "path": "x"}), "starts with /"),
        (lambda d: d["components"][0]["health"].update(readiness={"port": "s3", "match": "ok"}), "no body to"),
        (lambda d: d["components"][0].update(reload={"signal": "KILL"}), "reload signal KILL is not one of"),
        (lambda d: d["files"][0].update(path="../etc/passwd"), "must be relative to the config directory"),
        (lambda d: d.update(components=[]), "at least one component"),
        (lambda d: d.update(jobs=[{"name": "init", "program": {"artifact": "minio"}}]), "needs `creates`"),
        (lambda d: d.update(name="MinIO"), "is not a lower-case name"),
        (lambda d: d["components"][0]["ports"][0].update(name="management-local"), "longer than 15 characters"),
        (
            lambda d: d.update(one_pod=True) or d["components"].append({**d["components"][0], "name": "front"}),
            "port names and numbers of a one_pod service's components must be unique",
        ),
        (lambda d: d.update(runtime="python"), "unknown runtime python"),
        (lambda d: d.update(one_pod=True) or d["components"][0].update(replicas=2), "one replica each"),
        (lambda d: d.update(kubernetes_rules=[{"resources": ["pods"]}]), "the kubernetes rule needs `verbs`"),
        (lambda d: d.update(kubernetes_rules=[{"resources": "pods", "verbs": ["get"]}]), "`resources` is a list"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_descriptors_are_refused_with_the_service_named(change, message):
    descriptor = minio()
    change(descriptor)
    with pytest.raises(AnsibleFilterError, match="service (minio|MinIO)") as refused:
        model.normalize(descriptor)
    assert message in str(refused.value)


def test_a_one_pod_component_is_probed_through_a_port_of_its_pod_and_only_then():
    descriptor = orchestrator()
    server = next(c for c in descriptor["components"] if c["name"] == "api-server")
    server["health"] = {"readiness": {"port": "https", "path": "/api/v2/monitor/health"}}
    probe = next(c for c in model.normalize(descriptor)["components"] if c["name"] == "api-server")["health"]
    assert probe["readiness"]["number"] == 8080 and probe["readiness"]["scheme"] == "https"
    # Components in pods of their own share no network: the port must be the component's own.
    descriptor["one_pod"] = False
    with pytest.raises(AnsibleFilterError, match="component api-server readiness: probe port https is not one of"):
        model.normalize(descriptor)


def test_a_java_service_needs_its_ca_file():
    descriptor = trino()
    descriptor["ca_file"] = "missing.crt"
    with pytest.raises(AnsibleFilterError, match="ca_file missing.crt is not one of its public files"):
        model.normalize(descriptor, PLATFORM)


def test_chart_values_carry_names_paths_and_checksums_never_content():
    service = model.normalize(minio())
    values = model.helm_values(service, service["components"], IMAGE, "cluster.local", UID)
    (component,) = values["components"]
    assert component["command"] == ["/usr/local/bin/minio"]
    assert component["args"] == ["server", "--address", ":9000", "/var/lib/minio/data"]
    assert component["config"]["name"] == "minio-config" and component["config"]["dir"] == "/etc/minio"
    assert component["config"]["files"] == [
        {"path": "minio.env", "secret": True},
        {"path": "certs/public.crt", "secret": False},
        {"path": "certs/CAs/ca.crt", "secret": False},
    ]
    assert values["provides"] == "object_storage" and values["image"] == IMAGE
    assert values["podSecurityContext"] == {"runAsUser": UID, "runAsGroup": UID, "fsGroup": UID}
    assert "s3cr3t-value" not in repr(values) and "CERT" not in repr(values)

    changed = minio()
    changed["files"][0]["content"] = "MINIO_ROOT_PASSWORD=another\n"
    other = model.helm_values(
        model.normalize(changed), model.normalize(changed)["components"], IMAGE, "cluster.local", UID
    )
    assert other["components"][0]["config"]["checksum"] != component["config"]["checksum"]


def test_config_objects_hold_each_components_files_by_key():
    service = model.normalize(trino(), PLATFORM)
    objects = {o["name"]: o for o in model.config_objects(service, service["components"])}
    assert set(objects) == {"trino-config", "trino-worker-config"}
    assert objects["trino-config"]["configmap"] == {"ca.crt": "CA\n"}
    assert objects["trino-worker-config"]["configmap"] == {"ca.crt": "CA\n", "node.py": "# node\n"}
    secret = model.config_objects(model.normalize(minio()), model.normalize(minio())["components"])[0]["secret"]
    assert base64.b64decode(secret["minio.env"]).decode() == "MINIO_ROOT_PASSWORD=s3cr3t-value\n"


def test_first_start_jobs_become_guarded_init_containers():
    descriptor = minio()
    descriptor["jobs"] = [
        {"name": "format", "program": {"artifact": "minio"}, "args": ["format"], "creates": "/var/lib/minio/.done"}
    ]
    service = model.normalize(descriptor)
    (component,) = model.helm_values(service, service["components"], IMAGE, "cluster.local", UID)["components"]
    (init,) = component["initContainers"]
    assert init["name"] == "format"
    assert init["command"] == ["/bin/sh", "-c", 'test -e "$0" || exec "$@"', "/var/lib/minio/.done",
                               "/usr/local/bin/minio", "format"]  # fmt: skip


def test_a_port_without_a_path_is_a_tcp_probe_on_either_delivery():
    descriptor = minio()
    descriptor["components"][0]["health"] = {"readiness": {"port": "s3"}}
    service = model.normalize(descriptor)
    (component,) = service["components"]
    assert component["health"]["readiness"]["scheme"] == "tcp"
    endpoint = {"delivery": "systemd"}
    (wait,) = model.readiness_waits(service, service["components"], endpoint)
    assert (wait["url"], wait["host"], wait["port"]) == (
        f"tcp://{service['server_name']}:9000",
        service["server_name"],
        9000,
    )
    (chart,) = model.helm_values(service, service["components"], IMAGE, "cluster.local", UID)["components"]
    assert chart["health"]["readiness"]["scheme"] == "tcp"


def test_a_one_pod_service_places_every_component_in_the_pod_named_after_it():
    service = model.normalize(orchestrator())
    assert {c["workload"] for c in service["components"]} == {"airflow"}
    # Each is still a unit of its own on a host.
    assert [c["unit"] for c in service["components"]] == [
        "lakehouse-airflow-api-server.service", "lakehouse-airflow.service", "lakehouse-airflow-scheduler.service",
    ]  # fmt: skip
    (objects,) = model.config_objects(service, service["components"])
    assert objects["name"] == "airflow-config" and set(objects["configmap"]) == {"ca.crt", "nginx.conf"}
    (pod,) = model.helm_values(service, service["components"], IMAGE, "cluster.local", UID)["components"]
    assert pod["name"] == "airflow" and [s["name"] for s in pod["sidecars"]] == ["api-server", "scheduler"]
    assert [i["name"] for i in pod["initContainers"]] == ["pre-start-0"]


def test_start_after_names_endpoints_with_valid_ports():
    needed = {"name": "catalog_db", "host": "db.lakehouse.test", "port": "5432"}
    service = model.normalize({**minio(), "start_after": [needed]})
    assert service["start_after"] == [{**needed, "port": 5432}]
    assert model.normalize(minio())["start_after"] == []
    with pytest.raises(AnsibleFilterError, match="start_after catalog_db"):
        model.normalize({**minio(), "start_after": [{**needed, "port": 70000}]})


def run_waiter(*argv: str) -> subprocess.CompletedProcess:
    waiter = REPO / "roles" / "delivery" / "files" / "wait-for-endpoints"
    return subprocess.run([sys.executable, str(waiter), *argv], capture_output=True, text=True, timeout=30, check=False)


def test_a_unit_waits_until_what_it_needs_accepts_connections():
    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]
        assert run_waiter("5", f"catalog_db=localhost:{port}").returncode == 0
    # Nothing listens there any more: the bounded wait gives up, naming what did not answer.
    refused = run_waiter("1", f"catalog_db=localhost:{port}")
    assert refused.returncode == 1
    assert f"gave up after 1 s waiting for catalog_db at localhost:{port}" in refused.stderr


def test_a_rolling_host_asks_the_other_hosts_instances_by_their_liveness_probes():
    descriptor = trino()
    worker = descriptor["components"][1]
    worker.update(rolling=True, health={**worker["health"], "liveness": {"port": "https", "path": "/v1/info"}})
    groups = {"query_coordinator": ["c"], "query_workers": ["w1", "w2"]}

    def placed_on(host):
        service = model.normalize({**copy.deepcopy(descriptor), "server_name": f"{host}.example.internal"}, PLATFORM)
        return {"__delivery": service, "__delivery_components": model.placed(service, host, groups)}

    hostvars = {host: placed_on(host) for host in ("c", "w1", "w2")} | {"elsewhere": {}}
    units = ["lakehouse-trino-worker.service"]
    assert model.peer_probes(["c", "w2", "elsewhere"], hostvars, units, "/ca.crt") == [
        {"name": "worker on w2", "url": "https://w2.example.internal:8443/v1/info", "ca_path": "/ca.crt"}
    ]
    # A TCP liveness probe (a port without a path) is asked as a connection.
    worker["health"]["liveness"] = {"port": "https"}
    hostvars["w2"] = placed_on("w2")
    assert model.peer_probes(["w2"], hostvars, iter(units), "/ca.crt") == [
        {"name": "worker on w2", "host": "w2.example.internal", "port": 8443}
    ]
    # Nothing rolls: no peer is asked.
    assert model.peer_probes(["w2"], hostvars, [], "/ca.crt") == []


def test_a_rolling_component_is_live_by_a_port_other_hosts_can_ask():
    descriptor = trino()
    descriptor["components"][1].update(rolling=True, health={"readiness": {"command": ["/bin/true"]}})
    with pytest.raises(AnsibleFilterError, match="component worker: a rolling component's liveness probe is a port"):
        model.normalize(descriptor, PLATFORM)


def scheduled_minio(**job) -> dict:
    descriptor = minio()
    descriptor["jobs"] = [backup_job(**job)]
    return descriptor


TABLE = {"minio": {"version": "1", "filename": "minio", "sha256": {"amd64": "0" * 64}}}


def test_a_scheduled_job_runs_from_a_timer_of_the_same_schedule_on_a_host():
    service = model.normalize(scheduled_minio())
    (job,) = model.scheduled_jobs(service)
    assert (job["unit"], job["timer"], job["workload"]) == (
        "lakehouse-minio-backup.service", "lakehouse-minio-backup.timer", "minio-backup",
    )  # fmt: skip
    assert job["on_calendar"] == "Mon..Fri *-*-* 2:30:00 UTC" and job["oneshot"] is True
    assert all(c["oneshot"] is False for c in service["components"])
    units = [["[Unit]\n", "[Timer]\n"]]
    tree = model.host_tree(service, service["components"], TABLE,
                           "/usr/local/lib/lakehouse", "amd64", ["unit"], [], units)  # fmt: skip
    tags = {entry["path"]: entry["tag"] for entry in tree["files"] + tree["secrets"]}
    # Its own files restart no component; its unit and timer go together.
    assert tags["/etc/minio/backup.json"] == tags["/etc/minio/backup-credentials.json"] == "job"
    assert tags["/etc/systemd/system/lakehouse-minio-backup.timer"] == "timer:lakehouse-minio-backup.timer"
    assert tags["/etc/systemd/system/lakehouse-minio-backup.service"] == "timer:lakehouse-minio-backup.timer"
    assert tags["/etc/minio/minio.env"] == "config"
    secret = next(e for e in tree["secrets"] if e["path"].endswith("backup-credentials.json"))
    assert (secret["owner"], secret["mode"]) == ("minio", "0600")
    with pytest.raises(AnsibleFilterError, match="0 job units, 1 jobs"):
        model.host_tree(service, service["components"], TABLE,
                        "/usr/local/lib/lakehouse", "amd64", ["unit"], [])  # fmt: skip


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ({"when": "after"}, "a `schedule` (a cron or preset) is what makes a job scheduled"),
        ({"schedule": None}, "a `schedule` (a cron or preset) is what makes a job scheduled"),
        ({"schedule": "0 3 1 * 1"}, "restrict the day of month or the weekday, not both"),
        ({"schedule": "61 * * * *"}, "field '61' is not a numeric cron field"),
        ({"when": "before", "schedule": None, "creates": "/x"}, "reads the service's files only"),
        ({"when": "sometimes"}, "`when` is before (the first start), after (ready) or scheduled"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_scheduled_jobs_are_refused_with_the_job_named(job, message):
    with pytest.raises(AnsibleFilterError, match="service minio job backup") as refused:
        model.normalize(scheduled_minio(**job))
    assert message in str(refused.value)
