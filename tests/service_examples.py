"""Example service descriptors for the service model's tests: plain helper module, not a conftest.

`model` is plugins/filter/lakehouse_service.py loaded as a module; `minio()` and `trino()` return
fresh descriptors in the shape the roles render (one component with a volume; a Java service
with a coordinator and workers).
"""

from __future__ import annotations

from conftest import load_source

model = load_source("plugins/filter/lakehouse_service.py")

PLATFORM = {
    "java_home": "/usr/local/lib/lakehouse/java",
    "truststore_builder": "/usr/local/bin/lakehouse-java-truststore",
}
UID = 10001
IMAGE = {"repository": "lakehouse/minio", "tag": "1", "digest": "sha256:" + "ab" * 32}
PROBE = "/usr/local/bin/lakehouse-probe"  # where every built image holds the `helm test` probe


def minio() -> dict:
    return {
        "name": "minio",
        "description": "MinIO object storage",
        "user": "minio",
        "home": "/var/lib/minio",
        "config_dir": "/etc/minio",
        "server_name": "store-1.example.internal",
        "provides": "object_storage",
        "artifacts": [{"name": "minio", "dest": "/usr/local/bin/minio"}],
        "files": [
            {"path": "minio.env", "content": "MINIO_ROOT_PASSWORD=s3cr3t-value\n", "secret": True},
            {"path": "certs/public.crt", "content": "CERT\n", "secret": False},
            {"path": "certs/CAs/ca.crt", "content": "CA\n", "secret": False},
        ],
        "ca_file": "certs/CAs/ca.crt",
        "components": [
            {
                "name": "minio",
                "program": {"artifact": "minio"},
                "args": ["server", "--address", ":9000", "/var/lib/minio/data"],
                "env": {"MINIO_CONFIG_ENV_FILE": "/etc/minio/minio.env"},
                "ports": [{"name": "s3", "port": "9000"}, {"name": "console", "port": 9001, "exposed": False}],
                "health": {"readiness": {"port": "s3", "path": "/minio/health/ready"}},
                "volumes": [{"name": "data", "path": "/var/lib/minio/data", "size": "1Gi"}],
            }
        ],
    }


def trino() -> dict:
    launcher = {"artifact": "trino_server", "path": "bin/launcher"}
    health = {"readiness": {"port": "https", "path": "/v1/info", "match": "ready"}}
    ports = [{"name": "https", "port": 8443, "metrics_path": "/metrics"}]
    return {
        "name": "trino",
        "description": "Trino",
        "user": "trino",
        "home": "/var/lib/lakehouse-trino",
        "config_dir": "/etc/lakehouse-trino",
        "server_name": "coordinator-1.example.internal",
        "provides": "query",
        "consumes": ["object_storage", "catalog"],
        "runtime": "java",
        "ca_file": "ca.crt",
        "artifacts": [{"name": "trino_server", "dest": "/usr/local/lib/lakehouse/trino"}],
        "files": [{"path": "ca.crt", "content": "CA\n"}],
        "components": [
            {"name": "trino", "program": launcher, "placement": {"groups": ["query_coordinator"]}, "ports": ports,
             "health": health},
            {"name": "worker", "program": launcher, "ports": ports, "health": health,
             "placement": {"groups": ["query_workers"], "not_with": ["trino"]},
             "files": [{"path": "node.py", "content": "# node\n"}],
             "stop": {"command": ["/usr/bin/python3", "/etc/lakehouse-trino/node.py", "drain"], "timeout": 330}},
        ],
    }  # fmt: skip


def orchestrator() -> dict:
    """A one_pod service: a server on loopback behind a TLS front (the component named after the
    service), a scheduler that starts pods through the Kubernetes API, both waiting for their
    database first."""
    python = {"package": "python3", "path": "/usr/bin/python3"}
    wait = ["/usr/bin/python3", "/etc/lakehouse-airflow/health.py", "database"]
    return {
        "name": "airflow",
        "description": "Apache Airflow",
        "user": "airflow",
        "home": "/var/lib/lakehouse-airflow",
        "config_dir": "/etc/lakehouse-airflow",
        "server_name": "orchestrator-1.example.internal",
        "provides": "orchestrator",
        "consumes": ["catalog_db", "query"],
        "packages": ["python3", "nginx-light"],
        "ca_file": "ca.crt",
        "one_pod": True,
        "kubernetes_rules": [{"resources": ["pods", "pods/log"], "verbs": ["create", "get", "delete"]}],
        "files": [{"path": "ca.crt", "content": "CA\n"}, {"path": "airflow.cfg", "content": "x\n", "secret": True}],
        "components": [
            {"name": "api-server", "program": python, "args": ["-m", "airflow", "api-server"], "pre_start": [wait],
             "env": {"AIRFLOW_HOME": "/var/lib/lakehouse-airflow"},
             "health": {"readiness": {"command": ["/usr/bin/python3", "health.py", "api-server"]}}},
            {"name": "airflow", "program": {"package": "nginx-light", "path": "/usr/sbin/nginx"},
             "ports": [{"name": "https", "port": 8080}],
             "health": {"readiness": {"port": "https", "path": "/healthz"}},
             "files": [{"path": "nginx.conf", "content": "daemon off;\n"}]},
            {"name": "scheduler", "program": python, "args": ["-m", "airflow", "scheduler"], "pre_start": [wait],
             "env": {"AIRFLOW_HOME": "/var/lib/lakehouse-airflow"},
             "ports": [{"name": "logs", "port": 8793, "tls": False, "exposed": False}],
             "health": {"readiness": {"command": ["/usr/bin/python3", "health.py", "scheduler"]}}},
        ],
    }  # fmt: skip


def backup_job(**overrides) -> dict:
    """A scheduled job of the MinIO example, with a public and a secret file of its own."""
    return {
        "name": "backup",
        "when": "scheduled",
        "schedule": "30 2 * * 1-5",
        "program": {"artifact": "minio"},
        "args": ["backup", "/etc/minio/backup.json"],
        "files": [
            {"path": "backup.json", "content": "{}\n"},
            {"path": "backup-credentials.json", "content": "s3cr3t-backup\n", "secret": True},
        ],
        **overrides,
    }
