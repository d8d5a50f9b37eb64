"""plugins/filter/lakehouse_monitoring.py: Prometheus scrape files generated from contracts, checked
by the real `promtool check config` (the artifact built from the pinned Prometheus module)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("lakehouse_monitoring", REPO / "plugins/filter/lakehouse_monitoring.py")
monitoring = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(monitoring)

SECRETS = "/etc/lakehouse-prometheus/secrets"
CA = "/etc/lakehouse-prometheus/ca.crt"
ADMIN = {"user": "admin", "secret_ref": "lakehouse_secret:trino/users/admin", "kind": "password"}
MINIO = {
    "user": "lakehouse-metrics",
    "secret_ref": "lakehouse_secret:minio/users/lakehouse-metrics",
    "kind": "access_key",
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
    assert job["static_configs"][0]["targets"] == [
        "trino.lakehouse.svc.cluster.local:8443",
        "trino-worker-0.trino-worker-pods.lakehouse.svc.cluster.local:8443",
        "trino-worker-1.trino-worker-pods.lakehouse.svc.cluster.local:8443",
    ]
    assert job["metrics_path"] == "/metrics"


def test_credentials_are_referenced_as_files_never_inlined():
    (trino,) = monitoring.scrape_config(query(), "cluster-1", CA, SECRETS)["scrape_configs"]
    assert trino["basic_auth"] == {"username": "admin", "password_file": f"{SECRETS}/trino_users_admin"}
    (minio,) = monitoring.scrape_config(object_storage(), "store-1", CA, SECRETS)["scrape_configs"]
    assert minio["authorization"] == {"type": "Bearer", "credentials_file": f"{SECRETS}/minio_users_lakehouse-metrics"}
    assert monitoring.scrape_credentials(object_storage(), SECRETS) == [
        {"path": f"{SECRETS}/minio_users_lakehouse-metrics", "secret_ref": MINIO["secret_ref"], "auth": "bearer"}
    ]
    assert monitoring.scrape_credentials(catalog(), SECRETS) == []


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
    files = []
    for contract, host in ((query(), "cluster-1"), (object_storage(), "store-1"), (catalog(), "catalog-1")):
        for credential in monitoring.scrape_credentials(contract, str(secrets)):
            Path(credential["path"]).write_text("not-a-real-secret\n")
        scrape = tmp_path / f"{contract['service']}.yml"
        scrape.write_text(
            yaml.safe_dump(monitoring.scrape_config(contract, host, str(tmp_path / "ca.crt"), str(secrets)))
        )
        files.append(str(scrape))
    main = tmp_path / "prometheus.yml"
    main.write_text(yaml.safe_dump({"global": {"scrape_interval": "30s"}, "scrape_config_files": files}))
    done = subprocess.run(
        [str(artifact("promtool")), "check", "config", str(main)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
    assert "not-a-real-secret" not in json.dumps([Path(f).read_text() for f in files])
    # The check is real: a credential file that is missing fails it.
    next(secrets.iterdir()).unlink()
    missing = subprocess.run(
        [str(artifact("promtool")), "check", "config", str(main)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode != 0, missing.stdout + missing.stderr
