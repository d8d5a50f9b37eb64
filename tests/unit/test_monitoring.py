"""plugins/filter/lakehouse_monitoring.py: Prometheus scrape files generated from contracts, checked
by the real `promtool check config` (the artifact built from the pinned Prometheus module)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import re
import subprocess
import time
from pathlib import Path

import bcrypt
import pytest
import yaml
from ansible.errors import AnsibleFilterError
from conftest import ModuleExit, load_source
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
monitoring = load_source("plugins/filter/lakehouse_monitoring.py")

SECRETS = "/etc/lakehouse-prometheus/secrets"  # the credentials directory in these tests
CA = "/etc/lakehouse-prometheus/ca.crt"
ADMIN = {"user": "admin", "secret_ref": "lakehouse_secret:trino/users/admin", "kind": "password"}
MINIO = {
    "user": "lakehouse-metrics",
    "secret_ref": "lakehouse_secret:minio/users/lakehouse-metrics",
    "kind": "s3_secret_key",
}


def query() -> dict:
    return {
        "schema_version": 1,
        "service": "query",
        "implementation": "trino",
        "url": "https://trino.lakehouse.svc.cluster.local:8443",
        "metrics": [{"component": "coordinator", "url": "https://trino.lakehouse.svc.cluster.local:8443/metrics",
                     "auth": "basic", "credentials": ADMIN}],
        "workers": ["trino-worker-0.trino-worker-pods.lakehouse.svc.cluster.local",
                    "trino-worker-1.trino-worker-pods.lakehouse.svc.cluster.local"],
    }  # fmt: skip


def object_storage() -> dict:
    return {
        "schema_version": 1,
        "service": "object_storage",
        "implementation": "minio",
        "metrics": [{"component": "minio", "url": "https://store-1.site.example:9000/minio/v2/metrics/cluster",
                     "auth": "bearer", "credentials": MINIO}],
    }  # fmt: skip


def catalog() -> dict:
    return {
        "schema_version": 1,
        "service": "catalog",
        "implementation": "nessie",
        "metrics": [{"component": "nessie", "url": "https://catalog-1.site.example:19121/q/metrics", "auth": "none"}],
    }


def test_each_metrics_endpoint_is_a_job_by_the_published_name_with_its_labels():
    (job,) = monitoring.scrape_config(catalog(), "catalog-1.site.example", CA, SECRETS)["scrape_configs"]
    assert job == {
        "job_name": "catalog-nessie-catalog-1.site.example",
        "scrape_interval": "30s",
        "scheme": "https",
        "metrics_path": "/q/metrics",
        "static_configs": [
            {
                "targets": ["catalog-1.site.example:19121"],
                "labels": {"service": "catalog", "component": "nessie", "implementation": "nessie",
                           "lakehouse_host": "catalog-1.site.example"},
            }
        ],
        "tls_config": {"ca_file": CA, "min_version": "TLS12"},
    }  # fmt: skip


def test_the_query_job_scrapes_every_worker_at_the_coordinators_port_and_path():
    (job,) = monitoring.scrape_config(query(), "cluster-1", CA, SECRETS)["scrape_configs"]
    coordinator, workers = job["static_configs"]
    assert coordinator["targets"] == ["trino.lakehouse.svc.cluster.local:8443"]
    assert coordinator["labels"]["component"] == "coordinator"
    assert workers["targets"] == [
        "trino-worker-0.trino-worker-pods.lakehouse.svc.cluster.local:8443",
        "trino-worker-1.trino-worker-pods.lakehouse.svc.cluster.local:8443",
    ]
    assert workers["labels"]["component"] == "worker"
    assert job["metrics_path"] == "/metrics"


def published() -> list[dict]:
    return [
        {"host": "cluster-1", "contract": query()},
        {"host": "store-1", "contract": object_storage()},
        {"host": "catalog-1", "contract": catalog()},
    ]


def test_credentials_are_referenced_as_files_never_inlined():
    (trino,) = monitoring.scrape_config(query(), "cluster-1", CA, SECRETS)["scrape_configs"]
    assert trino["basic_auth"] == {"username": "admin", "password_file": f"{SECRETS}/trino_users_admin"}
    (minio,) = monitoring.scrape_config(object_storage(), "store-1", CA, SECRETS)["scrape_configs"]
    assert minio["authorization"] == {"type": "Bearer", "credentials_file": f"{SECRETS}/minio_users_lakehouse-metrics"}
    assert monitoring.scrape_credentials(published(), SECRETS) == [
        {"path": f"{SECRETS}/minio_users_lakehouse-metrics", "auth": "bearer", "credentials": MINIO},
        {"path": f"{SECRETS}/trino_users_admin", "auth": "basic", "credentials": ADMIN},
    ]


def test_scrape_files_are_one_per_contract_with_metrics():
    worker = {"host": "w-1", "contract": {"service": "query_worker"}}
    files = monitoring.scrape_files([*published(), worker], CA, SECRETS)
    assert [f["path"] for f in files] == ["scrape/catalog-catalog-1.yml", "scrape/object_storage-store-1.yml",
                                          "scrape/query-cluster-1.yml"]  # fmt: skip
    assert not any(f["secret"] for f in files)
    assert yaml.safe_load(files[2]["content"]) == monitoring.scrape_config(query(), "cluster-1", CA, SECRETS)


def test_a_credential_file_holds_the_password_or_for_minio_a_token_its_key_signs():
    entries = monitoring.scrape_credentials(published(), SECRETS)
    secrets = ["minio-key", "trino-pw"]
    token_file, password_file = monitoring.credential_files(entries, secrets, "/etc/lakehouse-prometheus")
    assert password_file == {"path": "secrets/trino_users_admin", "content": "trino-pw\n", "secret": True}
    assert token_file["path"] == "secrets/minio_users_lakehouse-metrics" and token_file["secret"]
    header, claims, signature = token_file["content"].strip().split(".")

    def decode(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    assert json.loads(decode(header)) == {"alg": "HS512", "typ": "JWT"}
    assert json.loads(decode(claims)) == {"exp": 4102444800, "iss": "prometheus", "sub": "lakehouse-metrics"}
    expected = hmac.new(b"minio-key", f"{header}.{claims}".encode(), hashlib.sha512).digest()
    assert decode(signature) == expected
    assert monitoring.credential_files(entries, secrets, "/etc/lakehouse-prometheus")[0] == token_file


def test_web_config_hashes_each_password_with_bcrypt_the_same_way_every_run():
    users = {"prometheus": "s3cret-pw"}
    config = yaml.safe_load(monitoring.web_config("/etc/x/server.crt", "/etc/x/server.key", users))
    assert config["tls_server_config"] == {"cert_file": "/etc/x/server.crt", "key_file": "/etc/x/server.key",
                                           "min_version": "TLS12"}  # fmt: skip
    hashed = config["basic_auth_users"]["prometheus"]
    assert bcrypt.checkpw(b"s3cret-pw", hashed.encode())
    assert not bcrypt.checkpw(b"other", hashed.encode())
    assert monitoring.web_config("/etc/x/server.crt", "/etc/x/server.key", {"prometheus": "s3cret-pw"}) == \
        monitoring.web_config("/etc/x/server.crt", "/etc/x/server.key", {"prometheus": "s3cret-pw"})  # fmt: skip
    other = yaml.safe_load(monitoring.web_config("c", "k", {"prometheus": "another-pw"}))
    assert other["basic_auth_users"]["prometheus"] != hashed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": "ftp://host:21/metrics"}, "needs http(s)://host:port/path"),
        ({"url": "https://host/metrics"}, "needs http(s)://host:port/path"),
        (
            {"auth": "basic", "credentials": {"secret_ref": "lakehouse_secret:x"}},
            "basic auth needs the credentials' user",
        ),
        ({"auth": "bearer", "credentials": {}}, "bearer auth needs credentials with a secret_ref"),
        ({"auth": "digest", "credentials": ADMIN}, "unknown metrics auth digest"),
    ],
    ids=["scheme", "no-port", "basic-no-user", "bearer-no-ref", "unknown-auth"],
)
def test_a_malformed_metrics_entry_is_refused_naming_the_contract(change, message):
    contract = catalog()
    contract["metrics"][0].update(change)
    with pytest.raises(AnsibleFilterError, match="contract catalog of catalog-1, component nessie") as refused:
        monitoring.scrape_config(contract, "catalog-1", CA, SECRETS)
    assert message in str(refused.value)


def test_promtool_accepts_the_generated_files(artifact, tmp_path):
    """The files as Prometheus loads them: a main file listing one scrape file per contract."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (tmp_path / "ca.crt").write_text("")
    for credential in monitoring.scrape_credentials(published(), str(secrets)):
        Path(credential["path"]).write_text("not-a-real-secret\n")
    files = []
    for scrape in monitoring.scrape_files(published(), str(tmp_path / "ca.crt"), str(secrets)):
        path = tmp_path / scrape["path"]
        path.parent.mkdir(exist_ok=True)
        path.write_text(scrape["content"])
        files.append(str(path))
    main = tmp_path / "prometheus.yml"
    main.write_text(yaml.safe_dump({"scrape_config_files": [f"{tmp_path}/scrape/*.yml"]}))
    done = promtool(artifact, "check", "config", str(main))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
    assert "not-a-real-secret" not in json.dumps([Path(f).read_text() for f in files])
    # The check is real: a credential file that is missing fails it.
    next(secrets.iterdir()).unlink()
    missing = promtool(artifact, "check", "config", str(main))
    assert missing.returncode != 0, missing.stdout + missing.stderr


def promtool(artifact, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(artifact("promtool")), *args], capture_output=True, text=True, timeout=60, check=False)


RULES = REPO / "roles/prometheus/files/lakehouse.rules.yml"


def test_the_shipped_alert_rules_pass_promtool_check_and_their_unit_tests(artifact):
    checked = promtool(artifact, "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool(artifact, "test", "rules", str(REPO / "tests/unit/prometheus_rules_test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout + tested.stderr


def test_every_shipped_alert_has_a_unit_test():
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((REPO / "tests/unit/prometheus_rules_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    assert alerts - tested == set()


def certificate(days: int) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minio")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_certificate_expiry_is_recorded_from_each_issued_certificate(artifact, tmp_path):
    rules = yaml.safe_load(monitoring.certificate_rules({"minio-1": certificate(10), "trino-1": certificate(400)}))
    (group,) = rules["groups"]
    assert [r["labels"]["certificate"] for r in group["rules"]] == ["minio-1", "trino-1"]
    expires = int(group["rules"][0]["expr"].removeprefix("vector(").removesuffix(")"))
    assert abs(expires - (time.time() + 10 * 86400)) < 120
    path = tmp_path / "certificates.yml"
    path.write_text(monitoring.certificate_rules({"minio-1": certificate(10)}))
    checked = promtool(artifact, "check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_module_checks_the_whole_configuration_before_anything_changes(artifact, run_module):
    config_dir = "/etc/lakehouse-prometheus"
    files = [
        {"path": "prometheus.yml", "content": yaml.safe_dump({"rule_files": [f"{config_dir}/rules/*.yml"],
                                                             "scrape_config_files": [f"{config_dir}/scrape/*.yml"]}),
         "secret": False},
        {"path": "rules/lakehouse.yml", "content": RULES.read_text(), "secret": False},
    ]  # fmt: skip
    args = {"promtool": str(artifact("promtool")), "config_dir": config_dir, "files": files}
    result = run_module("lakehouse_promtool", args, check_mode=True)
    assert result["changed"] is False
    assert ["promtool", "check", "config", f"{config_dir}/prometheus.yml"] in result["checked"]
    broken = [*files, {"path": "rules/broken.yml", "content": "groups: [{name: x, rules: [{alert: A, expr: 'up =='}]}]",
                       "secret": False}]  # fmt: skip
    with pytest.raises(ModuleExit) as refused:
        run_module("lakehouse_promtool", {**args, "files": broken})
    assert "promtool check config failed" in refused.value.result["msg"]
    assert f"{config_dir}/rules/broken.yml" in refused.value.result["msg"]


# -- Prometheus Operator ServiceMonitors, from the same contracts -----------------------------------

NAMESPACE, DOMAIN, MONITOR_SECRET = "lakehouse", "cluster.local", "prometheus-service-monitors"


def on_cluster(contract: dict, workload: str) -> dict:
    """A contract as a cluster host publishes it: its metrics URL names the workload's Service."""
    for metric in contract["metrics"]:
        metric["url"] = re.sub(r"//[^:/]+", f"//{workload}.{NAMESPACE}.svc.{DOMAIN}", metric["url"])
    return contract


def cluster_published() -> list[dict]:
    return [
        {"host": "cluster-1", "contract": query()},
        {"host": "cluster-1", "contract": on_cluster(object_storage(), "minio")},
        {"host": "cluster-1", "contract": on_cluster(catalog(), "nessie")},
        {"host": "cluster-1", "contract": {"service": "query_worker"}},  # no metrics of its own
    ]


def monitors() -> dict[str, dict]:
    rendered = monitoring.service_monitors(
        cluster_published(), NAMESPACE, DOMAIN, MONITOR_SECRET, "15s", {"release": "kube-prometheus-stack"}
    )
    return {m["metadata"]["name"]: m for m in rendered}


def test_a_service_monitor_per_contract_with_metrics_selects_the_lakehouse_services_of_its_namespace():
    rendered = monitors()
    assert sorted(rendered) == ["lakehouse-catalog", "lakehouse-object-storage", "lakehouse-query"]
    for name, monitor in rendered.items():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "ServiceMonitor"
        assert monitor["metadata"]["namespace"] == NAMESPACE
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack", name
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        assert monitor["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/part-of": "lakehouse"}}


def test_each_endpoint_keeps_the_service_its_contract_names_with_the_scrape_files_labels():
    (minio,) = monitors()["lakehouse-object-storage"]["spec"]["endpoints"]
    assert minio == {
        "targetPort": 9000,
        "scheme": "https",
        "path": "/minio/v2/metrics/cluster",
        "interval": "15s",
        "relabelings": [
            {"sourceLabels": ["__meta_kubernetes_service_name"], "regex": "minio", "action": "keep"},
            {"targetLabel": "service", "replacement": "object_storage", "action": "replace"},
            {"targetLabel": "implementation", "replacement": "minio", "action": "replace"},
            {"targetLabel": "lakehouse_host", "replacement": "cluster-1", "action": "replace"},
            {"targetLabel": "component", "replacement": "minio", "action": "replace"},
        ],
        "tlsConfig": {
            "ca": {"secret": {"name": MONITOR_SECRET, "key": "ca.crt"}},
            "serverName": f"minio.{NAMESPACE}.svc.{DOMAIN}",
        },
        "authorization": {
            "type": "Bearer", "credentials": {"name": MONITOR_SECRET, "key": "minio_users_lakehouse-metrics"},
        },
    }  # fmt: skip
    # The labels match those of the scrape file: the alert rules read the same series either way.
    (job,) = monitoring.scrape_config(on_cluster(object_storage(), "minio"), "cluster-1", CA, SECRETS)["scrape_configs"]
    labels = {r["targetLabel"]: r["replacement"] for r in minio["relabelings"] if r["action"] == "replace"}
    assert labels == job["static_configs"][0]["labels"]
    (nessie,) = monitors()["lakehouse-catalog"]["spec"]["endpoints"]
    assert "basicAuth" not in nessie and "authorization" not in nessie  # its contract says auth: none


def test_the_query_monitor_scrapes_the_coordinator_and_every_worker_pod_through_its_headless_service():
    coordinator, workers = monitors()["lakehouse-query"]["spec"]["endpoints"]
    keep = [r["regex"] for e in (coordinator, workers) for r in e["relabelings"] if r["action"] == "keep"]
    assert keep == ["trino", "trino-worker-pods"]
    assert [e["targetPort"] for e in (coordinator, workers)] == [8443, 8443]
    assert workers["tlsConfig"]["serverName"] == f"trino-worker-0.trino-worker-pods.{NAMESPACE}.svc.{DOMAIN}"
    component = [r["replacement"] for r in workers["relabelings"] if r.get("targetLabel") == "component"]
    assert component == ["worker"]
    for endpoint in (coordinator, workers):
        assert endpoint["basicAuth"] == {
            "username": {"name": MONITOR_SECRET, "key": "trino_users_admin.user"},
            "password": {"name": MONITOR_SECRET, "key": "trino_users_admin"},
        }


def test_the_service_monitors_secret_holds_the_ca_and_each_credential_never_a_monitor():
    entries = monitoring.scrape_credentials(cluster_published(), SECRETS)
    files = monitoring.credential_files(entries, ["minio-key", "trino-pw"], "/etc/lakehouse-prometheus")
    data = {
        k: base64.b64decode(v).decode()
        for k, v in monitoring.service_monitor_secret(entries, files, "CA PEM\n").items()
    }
    assert sorted(data) == ["ca.crt", "minio_users_lakehouse-metrics", "trino_users_admin", "trino_users_admin.user"]
    assert data["ca.crt"] == "CA PEM\n"
    assert data["trino_users_admin"] == "trino-pw" and data["trino_users_admin.user"] == "admin"
    assert data["minio_users_lakehouse-metrics"] == monitoring.minio_metrics_token("minio-key", "lakehouse-metrics")
    assert "trino-pw" not in json.dumps(monitors()) and "minio-key" not in json.dumps(monitors())
    # Every key a monitor names is in the Secret.
    named = set(re.findall(r"'key': '([^']+)'", str(monitors())))
    assert named <= set(data), named - set(data)


def test_a_target_outside_the_namespace_cannot_be_a_service_monitor():
    with pytest.raises(AnsibleFilterError, match=r"store-1.site.example is not the name of a Service in lakehouse"):
        monitoring.service_monitors(
            [{"host": "store-1", "contract": object_storage()}], NAMESPACE, DOMAIN, MONITOR_SECRET
        )
