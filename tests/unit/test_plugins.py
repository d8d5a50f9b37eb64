"""The lookup, filter and test plugins shared by the roles."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleLookupError
from conftest import REPO, load_source

secret_plugin = load_source("plugins/lookup/lakehouse_secret.py")
test_plugin = load_source("plugins/test/lakehouse.py")
filter_plugin = load_source("plugins/filter/lakehouse.py")
preflight_plugin = load_source("plugins/filter/lakehouse_preflight.py")


def test_secret_is_generated_once_with_private_modes(tmp_path):
    first = secret_plugin.read_or_create(str(tmp_path), "minio/root_password", 40)
    second = secret_plugin.read_or_create(str(tmp_path), "minio/root_password", 40)
    assert first == second
    assert len(first) == 40 and first.isalnum()
    assert stat.S_IMODE((tmp_path / "minio" / "root_password").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "minio").stat().st_mode) == 0o700


def test_secrets_differ_between_paths(tmp_path):
    assert secret_plugin.read_or_create(str(tmp_path), "a/x", 32) != secret_plugin.read_or_create(
        str(tmp_path), "a/y", 32
    )


def test_empty_secret_file_is_an_error_not_a_blank_password(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("")
    with pytest.raises(AnsibleLookupError, match="empty"):
        secret_plugin.read_or_create(str(tmp_path), "a/x", 32)


def ansible_lookup(term: str, store: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Evaluate lookup('lakehouse_secret', term) through Ansible itself, with the project's ansible.cfg."""
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible"),
            "localhost",
            "-c",
            "local",
            "-i",
            "localhost,",
            "-m",
            "ansible.builtin.debug",
            "-a",
            f"msg={{{{ lookup('lakehouse_secret', '{term}') }}}}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "LAKEHOUSE_SECRETS_DIR": str(store), **(env or {})},
    )


def test_template_lookup_renders_as_the_core_one_and_changes_no_variable(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "t.j2").write_text(
        "{# a comment #}\na={{ a }}\n{% for x in items %}\nitem {{ x }} {{ extra }}\n{% endfor %}\n"
        "path={{ template_path | basename }}\n"
    )
    render = "lookup('{}', 't.j2', template_vars={{'extra': 'E'}})"
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {"a": 1, "items": ["x", "y"], "expected": "a=1\nitem x E\nitem y E\npath=t.j2\n"},
        "tasks": [
            {
                "ansible.builtin.assert": {"that": ["ours == expected", "ours == core", "extra is not defined"]},
                "vars": {
                    "core": "{{ " + render.format("ansible.builtin.template") + " }}",
                    "ours": "{{ " + render.format("lakehouse_template") + " }}",
                },
            }
        ],
    }
    (tmp_path / "render.yml").write_text(yaml.safe_dump([play]))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", "render.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok=1" in result.stdout and "failed=0" in result.stdout


def test_lookup_generates_into_the_configured_store(tmp_path):
    result = ansible_lookup("minio/root_password", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "minio" / "root_password").read_text().strip() in result.stdout


def test_lookup_prefers_the_environment(tmp_path):
    result = ansible_lookup("minio/root_user", tmp_path, {"LAKEHOUSE_SECRET_MINIO_ROOT_USER": "from-env-user"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "from-env-user" in result.stdout
    assert not (tmp_path / "minio").exists(), "an injected secret must not be written to the store"


def test_lookup_takes_a_contract_reference_for_the_same_path(tmp_path):
    stored = ansible_lookup("minio/users/app", tmp_path)
    referenced = ansible_lookup("lakehouse_secret:minio/users/app", tmp_path)
    assert stored.returncode == 0 and referenced.returncode == 0, referenced.stdout + referenced.stderr
    value = (tmp_path / "minio" / "users" / "app").read_text().strip()
    assert value in stored.stdout and value in referenced.stdout
    assert os.listdir(tmp_path) == ["minio"]


def test_lookup_rejects_path_traversal(tmp_path):
    result = ansible_lookup("../outside", tmp_path)
    assert result.returncode != 0
    assert "invalid credential path" in result.stdout + result.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.5", True),
        ("10.0.0.5:9000", True),
        ("https://192.168.1.20:9000/bucket", True),
        ("[2001:db8::1]", True),
        ("https://[2001:db8::1]:9000", True),
        ("2001:db8::1", True),
        ("minio.storage.svc.cluster.local", False),
        ("https://trino.company.internal:8443", False),
        ("metal-1.sandbox.lakehouse.test:9000", False),
        ("", False),
    ],
)
def test_ip_literal_detection(value, expected):
    assert test_plugin.is_ip_literal(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.0/8", True),
        ("192.0.2.0/24", True),
        ("2001:db8::/32", True),
        ("10.0.0.5", False),  # a single host, not a range
        ("10.0.0.5/32", False),
        ("2001:db8::1/128", False),
        ("10.0.0.5/24", False),  # host bits set
        ("10.0.0.0/33", False),
        ("db.example.test/24", False),
        ("", False),
    ],
)
def test_cidr_detection(value, expected):
    assert test_plugin.is_network_cidr(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("metal-1.sandbox.lakehouse.test", True),
        ("minio", True),
        ("trino.company.internal.", True),  # the root's trailing dot
        ("query_1.lakehouse.test", False),  # an underscore
        ("-minio.lakehouse.test", False),
        ("a" * 64 + ".test", False),  # a label longer than 63
        ("192.0.2.10", False),
        ("", False),
    ],
)
def test_dns_name_detection(value, expected):
    assert test_plugin.is_dns_name(value) is expected


def test_input_problems_name_each_variable_at_fault(tmp_path):
    cert = tmp_path / "tls.crt"
    cert.write_text("x")
    problems = preflight_plugin.input_problems(
        {
            "names": {"minio_server_name": "192.0.2.1", "minio_extra_names": ["ok.lakehouse.test", "bad_name"]},
            "ports": {"minio_s3_port": 70000, "minio_console_port": "9001", "trino_port": True},
            "tls_files": {"minio_tls_cert_path": str(cert), "minio_tls_key_path": ""},
            "schedules": {"postgresql_backup_schedule": "0 3 1 * 1", "other_schedule": "@daily"},
        }
    )
    assert problems == [
        "minio_server_name: 192.0.2.1 is an IP literal; IP literals are not allowed in contracts or certificates,"
        " name the host by DNS",
        "minio_extra_names: 'bad_name' is not a valid DNS name (labels of letters, digits, hyphens)",
        "minio_s3_port: '70000' is not a port number from 1 to 65535",
        "trino_port: 'True' is not a port number from 1 to 65535",
        "postgresql_backup_schedule: schedule: '0 3 1 * 1': restrict the day of month or the weekday, not both",
        "user-supplied TLS needs minio_tls_cert_path, minio_tls_key_path; unset: minio_tls_key_path",
    ]
    assert preflight_plugin.input_problems({"names": {"x": "ok.lakehouse.test"}, "ports": {"p": "443"}}) == []


def test_port_clashes_are_reported_per_host():
    clashes = preflight_plugin.port_clashes(
        {
            "metal-1.lakehouse.test": {"minio_s3_port": 9000, "trino_port": "9000", "prometheus_port": 9090},
            "metal-2.lakehouse.test": {"minio_s3_port": 9000, "postgresql_port": "many"},
        }
    )
    assert clashes == ["metal-1.lakehouse.test: port 9000 is taken by each of minio_s3_port, trino_port"]


def test_artifact_path_is_versioned():
    table = {"minio": {"version": "v1", "filename": "minio"}}
    assert (
        filter_plugin.artifact_path("minio", table, "/usr/local/lib/lakehouse")
        == "/usr/local/lib/lakehouse/minio/v1/minio"
    )


def test_archive_path_is_the_unpacked_root():
    table = {"trino_server": {"version": "476", "filename": "t.tar.gz", "unpack": {"root": "trino-server-476"}}}
    assert (
        filter_plugin.artifact_path("trino_server", table, "/usr/local/lib/lakehouse")
        == "/usr/local/lib/lakehouse/trino_server/476/trino-server-476"
    )


def test_trino_password_hash_is_pbkdf2_and_reproducible():
    import hashlib

    encoded = filter_plugin.trino_password_hash("s3cret-value", "saltsaltsalt", iterations=1000)
    iterations, salt, digest = encoded.split(":")
    assert iterations == "1000" and bytes.fromhex(salt) == b"saltsaltsalt"
    assert bytes.fromhex(digest) == hashlib.pbkdf2_hmac("sha1", b"s3cret-value", b"saltsaltsalt", 1000, 32)
    assert encoded == filter_plugin.trino_password_hash("s3cret-value", "saltsaltsalt", iterations=1000)
    assert encoded != filter_plugin.trino_password_hash("s3cret-value", "othersalt000", iterations=1000)


def test_jwt_is_rs256_verifiable_and_reproducible():
    import base64
    import json

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    claims = {"iss": "lakehouse-test", "sub": "client", "exp": 4102444800}
    token = filter_plugin.jwt_rs256(claims, pem)
    assert token == filter_plugin.jwt_rs256(claims, pem)
    header, payload, signature = token.split(".")
    pad = lambda part: base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))  # noqa: E731
    assert json.loads(pad(header)) == {"alg": "RS256", "typ": "JWT"}
    assert json.loads(pad(payload)) == claims
    public = serialization.load_der_public_key(base64.b64decode(filter_plugin.public_key_der_b64(pem)))
    public.verify(pad(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())


def pod(name: str, conditions: dict, **status) -> dict:
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": k, **v} for k, v in conditions.items()], **status},
    }


def test_pod_problems_say_why_each_pod_is_not_ready():
    ready = pod("minio-1", {"Ready": {"status": "True"}})
    crashing = pod(
        "postgresql-0",
        {"PodScheduled": {"status": "True"}, "Ready": {"status": "False"}},
        phase="Running",
        initContainerStatuses=[{"name": "initdb", "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}],
        containerStatuses=[
            {
                "name": "postgresql",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting"}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
            }
        ],
    )
    pending = pod(
        "prometheus-0",
        {"PodScheduled": {"status": "False", "reason": "Unschedulable", "message": "unbound PersistentVolumeClaims"}},
        phase="Pending",
    )
    starting = pod("trino-0", {"Ready": {"status": "False"}}, phase="Running",
                   containerStatuses=[{"name": "trino", "state": {"running": {}}}])  # fmt: skip
    assert filter_plugin.pod_problems([starting, pending, ready, crashing]) == [
        {
            "pod": "postgresql-0",
            "reason": "postgresql CrashLoopBackOff back-off 40s restarting; postgresql last Error (exit 1)",
            "started": True,
        },
        {"pod": "prometheus-0", "reason": "Unschedulable: unbound PersistentVolumeClaims", "started": False},
        {"pod": "trino-0", "reason": "Running, not ready", "started": True},
    ]


def test_a_failed_release_goes_back_to_the_last_revision_that_was_deployed():
    history = [
        {"revision": 1, "status": "superseded"},
        {"revision": 2, "status": "superseded"},
        {"revision": 3, "status": "failed"},
    ]
    assert filter_plugin.rollback_revision(history) == 2
    # A release rolled back before: its rollback revision is the one that served last.
    history += [{"revision": 4, "status": "superseded"}, {"revision": 5, "status": "failed"}]
    assert filter_plugin.rollback_revision(history) == 4
    # A first install that failed has nothing to go back to.
    assert filter_plugin.rollback_revision([{"revision": 1, "status": "failed"}]) == 0


def workload(replicas: int, generation: int = 2, observed: int = 2, **status) -> dict:
    return {"metadata": {"generation": generation}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, **status}}  # fmt: skip


def test_workloads_are_ready_when_every_replica_is_ready_at_the_current_template():
    ready = workload(2, readyReplicas=2, updatedReplicas=2)
    assert filter_plugin.workloads_ready([ready, workload(1, readyReplicas=1, updatedReplicas=1)])
    assert not filter_plugin.workloads_ready([ready, workload(1, readyReplicas=1, updatedReplicas=0)])
    assert not filter_plugin.workloads_ready([workload(1, readyReplicas=0, updatedReplicas=1)])
    # A status not yet about the current template says nothing.
    assert not filter_plugin.workloads_ready([workload(1, observed=1, readyReplicas=1, updatedReplicas=1)])
    assert filter_plugin.workloads_ready([workload(0)])


jobs_plugin = load_source("plugins/filter/lakehouse_jobs.py")


def test_fernet_key_is_a_reproducible_32_byte_urlsafe_key():
    from cryptography.fernet import Fernet

    key = filter_plugin.fernet_key("a stored secret")
    assert key == filter_plugin.fernet_key("a stored secret") != filter_plugin.fernet_key("another")
    assert Fernet(key).decrypt(Fernet(key).encrypt(b"x")) == b"x"


def test_ssha_is_the_salted_sha1_that_nginx_checks():
    import base64
    import hashlib

    entry = filter_plugin.ssha("password-123", "salt-16-chars-xx")
    assert entry == filter_plugin.ssha("password-123", "salt-16-chars-xx")
    raw = base64.b64decode(entry.removeprefix("{SSHA}"))
    digest, salt = raw[:20], raw[20:]
    assert salt == b"salt-16-chars-xx" and digest == hashlib.sha1(b"password-123" + salt).digest()  # noqa: S324


def test_an_image_is_named_by_digest_as_a_runtime_that_loaded_it_names_it():
    built = {"image": "docker.io/lakehouse/daily-ingest:1.0.0", "digest": "sha256:" + "a" * 64}
    assert jobs_plugin.image_by_digest(built) == "docker.io/lakehouse/daily-ingest@sha256:" + "a" * 64
    registry = {"image": "registry.example.test:5000/lakehouse/job", "digest": "sha256:" + "b" * 64}
    assert jobs_plugin.image_by_digest(registry) == "registry.example.test:5000/lakehouse/job@sha256:" + "b" * 64
    # A pushed image: as the registry names it.
    pushed = {**built, "pushed_reference": "registry.example.test:5000/team/daily-ingest:1.0.0@sha256:" + "a" * 64}
    assert jobs_plugin.image_by_digest(pushed) == "registry.example.test:5000/team/daily-ingest@sha256:" + "a" * 64


def test_job_files_are_one_dag_per_spec_or_one_dagster_code_location():
    spec = jobs_plugin.job_spec(str(REPO / "jobs" / "daily_ingest.yml"))
    context = {
        "target": "docker",
        "images": {"daily-ingest": "docker.io/lakehouse/daily-ingest@sha256:" + "c" * 64},
        "contracts": {"query": {"env": {"LAKEHOUSE_QUERY_URL": "https://trino.lakehouse.test:8443"}}},
        "docker": {"url": "unix:///run/lakehouse-jobs/podman.sock"},
    }
    airflow = jobs_plugin.job_files([spec], "airflow", context)
    assert [f["path"] for f in airflow] == ["jobs/daily_ingest.py"] and not airflow[0]["secret"]
    assert "user=f'{os.getuid()}:{os.getgid()}'" in airflow[0]["content"]
    dagster = jobs_plugin.job_files([spec], "dagster", context)
    assert [f["path"] for f in dagster] == ["jobs/definitions.py"]
    with pytest.raises(Exception, match="images"):
        jobs_plugin.job_files([spec], "airflow", context | {"images": {}})


# --- GitOps: the tree's YAML and Flux's state ---------------------------------------------------


def test_manifests_are_sorted_documents_with_config_files_as_literal_blocks():
    objects = [{"kind": "ConfigMap", "apiVersion": "v1", "data": {"a.conf": "x = 1\ny = 2\n", "one": "line"}}]
    text = filter_plugin.manifests(objects)
    assert text == "---\napiVersion: v1\ndata:\n  a.conf: |\n    x = 1\n    y = 2\n  one: line\nkind: ConfigMap\n"
    assert filter_plugin.manifests(objects) == text
    assert list(yaml.safe_load_all(text)) == objects


def test_configmaps_hold_the_public_files_only():
    config = [{"name": "minio-config", "configmap": {"a": "1"}, "secret": {"b": "c2VjcmV0"}}]
    (configmap,) = filter_plugin.configmaps(config, "ns", {"app": "minio"})
    assert configmap["data"] == {"a": "1"} and configmap["metadata"] == {"name": "minio-config", "namespace": "ns",
                                                                          "labels": {"app": "minio"}}  # fmt: skip


def flux_release(values: dict, generation: int = 2, observed: int = 2, ready: str = "True", message: str = "") -> dict:
    condition = {"type": "Ready", "status": ready, "reason": "InstallFailed" if ready != "True" else "Succeeded",
                 "message": message}  # fmt: skip
    return {
        "metadata": {"generation": generation},
        "spec": {"values": values},
        "status": {"observedGeneration": observed, "conditions": [condition]},
    }


@pytest.mark.parametrize(
    ("releases", "state"),
    [
        ([], "no HelmRelease on the cluster yet"),
        ([flux_release({"replicas": 1})], "has other values than the tree"),
        ([flux_release({"replicas": 2}, observed=1)], "has not reconciled"),
        ([flux_release({"replicas": 2}, ready="False", message="timed out")], "not ready: InstallFailed: timed out"),
        ([flux_release({"replicas": 2})], "ready"),
    ],
)
def test_flux_state_says_what_a_release_of_the_tree_waits_for(releases, state):
    said = filter_plugin.flux_state(releases, {"replicas": 2})
    assert said.startswith(state) or state in said
    assert filter_plugin.flux_ready(releases, {"replicas": 2}) == (state == "ready")


def test_a_play_with_an_asynchronous_task_is_told_apart():
    # Such a play runs with the plain linear strategy: its module imports can hang under Mitogen.
    from ansible.parsing.dataloader import DataLoader
    from ansible.playbook.play import Play
    from ansible.plugins.loader import init_plugin_loader
    from ansible.vars.manager import VariableManager

    init_plugin_loader()
    strategy = load_source("plugins/strategy/lakehouse_linear.py")
    loader = DataLoader()

    def play(tasks: list) -> Play:
        data = {"hosts": "localhost", "gather_facts": False, "tasks": tasks}
        return Play.load(data, loader=loader, variable_manager=VariableManager(loader=loader))

    command = {"ansible.builtin.command": "true"}
    assert strategy.has_async_task(play([{**command, "async": 60, "poll": 0}]))
    assert strategy.has_async_task(play([{"block": [command], "rescue": [{**command, "async": 5}]}]))
    assert not strategy.has_async_task(play([command, {"block": [command]}]))


def test_pod_names_are_a_statefulsets_on_a_cluster_and_none_on_metal():
    cluster = {"delivery": "helm", "namespace": "lake", "cluster_domain": "cluster.local"}
    assert filter_plugin.pod_names("trino-worker", cluster, "2") == [
        "trino-worker-0.trino-worker-pods.lake.svc.cluster.local",
        "trino-worker-1.trino-worker-pods.lake.svc.cluster.local",
    ]
    assert filter_plugin.pod_names("minio", cluster) == ["*.minio-pods.lake.svc.cluster.local"]
    assert filter_plugin.pod_names("minio", {**cluster, "delivery": "systemd"}, 3) == []
