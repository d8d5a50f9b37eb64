"""Prometheus scrape configuration from the published contracts.

Every contract names its metrics endpoints (`metrics`: component, url, auth, credentials), so the
scrape configuration is generated, never written by hand: one file per contract (Prometheus's
`scrape_config_files`), one job per endpoint, the target by the DNS name the contract publishes.
A query contract's `workers` are scraped at the same path and port as its coordinator
(module_utils/lakehouse_contract.py's metrics_targets, which `lakehouse verify` reads too).

Secrets never enter a scrape file: basic-auth passwords and bearer tokens are referenced as files
(`password_file`, `credentials_file`) that the monitoring role writes beside it, named by
`credential_file(secret_ref)`; TLS is verified against the contract's CA. What such a file holds
is `credential_files`: the password, the token, or for MinIO a token signed by the user's key.

`web_config` is the TLS and basic-auth config of Prometheus and the exporters; the bcrypt salt of
each password is derived from the password and user, so the same secret renders the same file and
a second converge changes nothing.

`service_monitors` renders the same contracts' metrics, for a cluster host, as Prometheus Operator
ServiceMonitors (one per contract): each endpoint keeps only the Service its contract names (a
relabeling on the Service's name), at the same port, path and scheme, with the same labels, TLS
verified for the published name, and credentials from one Secret (`service_monitor_secret`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import posixpath
import re
import sys
from urllib.parse import urlsplit

import bcrypt
import yaml
from ansible.errors import AnsibleFilterError
from cryptography import x509

# Ansible puts no controller-side shared code on the path: the repository root holds module_utils/.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.append(REPO)
from module_utils import lakehouse_contract, lakehouse_jwt  # noqa: E402

SCHEMES = {"http", "https"}
# bcrypt's cost: exporter-toolkit checks the hash of every scrape's password (it caches the
# result), so the cost stays moderate.
BCRYPT_ROUNDS = 10
BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# MinIO's metrics token (what `mc admin prometheus generate` mints): HS512, signed with the
# user's secret key, the access key as subject; valid until 2100-01-01, like mc's 100 years.
MINIO_TOKEN_ISSUER = "prometheus"  # noqa: S105 (a claim, not a password)
MINIO_TOKEN_EXPIRES = 4102444800


def _yaml(data, **options) -> str:
    """YAML text of `data`, which may hold Ansible's own string and mapping types."""
    return yaml.safe_dump(lakehouse_contract.plain(data), **options)


def credential_file(secret_ref: str, directory: str) -> str:
    """Where the monitoring role keeps the secret a reference names: one file per reference."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", secret_ref.split(":", 1)[-1]).strip("_.")
    return f"{directory}/{name}"


def _check_url(url: str, where: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname or not parts.port:
        raise AnsibleFilterError(f"{where}: metrics url {url} needs http(s)://host:port/path")


def _auth(metric: dict, where: str, secrets_dir: str) -> dict:
    auth = metric["auth"]
    if auth == "none":
        return {}
    credentials = metric.get("credentials") or {}
    if not credentials.get("secret_ref"):
        raise AnsibleFilterError(f"{where}: {auth} auth needs credentials with a secret_ref")
    secret = credential_file(credentials["secret_ref"], secrets_dir)
    if auth == "basic":
        if not credentials.get("user"):
            raise AnsibleFilterError(f"{where}: basic auth needs the credentials' user")
        return {"basic_auth": {"username": credentials["user"], "password_file": secret}}
    if auth == "bearer":
        return {"authorization": {"type": "Bearer", "credentials_file": secret}}
    raise AnsibleFilterError(f"{where}: unknown metrics auth {auth} (none, basic, bearer)")


def scrape_config(contract: dict, host: str, ca_file: str, secrets_dir: str, interval: str = "30s") -> dict:
    """The scrape file of one published contract (the value of one `scrape_config_files` entry).

    `host` is the inventory host that published it; `ca_file` the CA on the Prometheus host that
    verifies the endpoints; `secrets_dir` where the role writes each credential's file.
    """
    service = contract["service"]
    jobs = []
    metrics = contract.get("metrics") or []
    wheres = [f"contract {service} of {host}, component {metric['component']}" for metric in metrics]
    for metric, where in zip(metrics, wheres, strict=True):
        _check_url(metric["url"], where)
    targets = lakehouse_contract.metrics_targets(contract)
    for index, (metric, where) in enumerate(zip(metrics, wheres, strict=True)):
        mine = [t for t in targets if t["metric"] == index]
        scheme = mine[0]["scheme"]
        labels = {"service": service, "implementation": contract.get("implementation", ""), "lakehouse_host": host}
        groups = []
        for component in dict.fromkeys(t["component"] for t in mine):
            addresses = [t["address"] for t in mine if t["component"] == component]
            groups.append({"targets": addresses, "labels": {**labels, "component": component}})
        job = {
            "job_name": f"{service}-{metric['component']}-{host}",
            "scrape_interval": interval,
            "scheme": scheme,
            "metrics_path": mine[0]["path"],
            "static_configs": groups,
        }
        if scheme == "https":
            job["tls_config"] = {"ca_file": ca_file, "min_version": "TLS12"}
        job.update(_auth(metric, where, secrets_dir))
        jobs.append(job)
    return {"scrape_configs": jobs}


def scrape_files(published: list[dict], ca_file: str, secrets_dir: str, interval: str = "30s") -> list[dict]:
    """The scrape files (config files relative to Prometheus's config directory) of the published
    contracts [{host, contract}]: scrape/<service>-<host>.yml for each that has metrics."""
    files = []
    for entry in published:
        config = scrape_config(entry["contract"], entry["host"], ca_file, secrets_dir, interval)
        if config["scrape_configs"]:
            path = f"scrape/{entry['contract']['service']}-{entry['host']}.yml"
            files.append({"path": path, "content": _yaml(config, sort_keys=True), "secret": False})
    return sorted(files, key=lambda f: f["path"])


def scrape_credentials(published: list[dict], secrets_dir: str) -> list[dict]:
    """The credential files the scrape files of `published` refer to: [{path, auth, credentials}],
    one per secret reference."""
    files = {}
    for entry in published:
        for metric in entry["contract"].get("metrics") or []:
            credentials = metric.get("credentials") or {}
            if metric["auth"] != "none" and credentials.get("secret_ref"):
                path = credential_file(credentials["secret_ref"], secrets_dir)
                files[path] = {"path": path, "auth": metric["auth"], "credentials": credentials}
    return sorted(files.values(), key=lambda f: f["path"])


def minio_metrics_token(secret_key: str, access_key: str) -> str:
    """The bearer token MinIO accepts for its metrics from the user `access_key`."""
    claims = {"exp": MINIO_TOKEN_EXPIRES, "sub": access_key, "iss": MINIO_TOKEN_ISSUER}
    return lakehouse_jwt.hs512(claims, secret_key)


def credential_files(entries: list[dict], secrets: list[str], config_dir: str) -> list[dict]:
    """The secret config files (relative to `config_dir`) of scrape credentials: `entries` from
    scrape_credentials, `secrets` the values their references resolve to, in the same order. A
    MinIO secret key becomes the bearer token it signs."""
    if len(entries) != len(secrets):
        raise AnsibleFilterError(f"{len(entries)} scrape credentials, {len(secrets)} secrets")
    files = []
    for entry, secret in zip(entries, secrets, strict=True):
        if entry["auth"] == "bearer" and entry["credentials"].get("kind") == "s3_secret_key":
            secret = minio_metrics_token(secret, entry["credentials"]["user"])
        path = posixpath.relpath(entry["path"], config_dir)
        files.append({"path": path, "content": f"{secret}\n", "secret": True})
    return files


def certificate_rules(certificates: dict) -> str:
    """A rule file recording when each certificate ({name: PEM}) expires, as
    lakehouse_certificate_expiry_timestamp_seconds{certificate=<name>}, for the expiry alert."""
    rules = []
    for name, pem in sorted(certificates.items()):
        expires = x509.load_pem_x509_certificate(pem.encode()).not_valid_after_utc.timestamp()
        rules.append(
            {
                "record": "lakehouse_certificate_expiry_timestamp_seconds",
                "expr": f"vector({int(expires)})",
                "labels": {"certificate": name},
            }
        )
    return _yaml({"groups": [{"name": "lakehouse-certificates", "rules": rules}]}, sort_keys=True)


def rule_files(paths: list[str], contents: list[str]) -> list[dict]:
    """Rule files of the user (controller paths and their contents) as config files rules/extra-<name>."""
    return [
        {"path": f"rules/extra-{posixpath.basename(path)}", "content": content, "secret": False}
        for path, content in zip(paths, contents, strict=True)
    ]


def web_password_hash(password: str, user: str) -> str:
    """The bcrypt hash of `password` for `user` in a Prometheus web config, the same every run."""
    digest = hashlib.sha256(f"lakehouse-web-config:{user}:{password}".encode()).digest()
    # 21 characters carry 126 bits; the 22nd holds bcrypt's last 2 bits and 4 zero bits.
    chars = [BCRYPT_ALPHABET[b % 64] for b in digest[:21]] + [BCRYPT_ALPHABET[(digest[21] % 4) * 16]]
    salt = f"$2b${BCRYPT_ROUNDS:02d}${''.join(chars)}".encode()
    return bcrypt.hashpw(password.encode(), salt).decode()


def web_config(cert_file: str, key_file: str, users: dict) -> str:
    """A Prometheus web config (Prometheus, the exporters): TLS 1.2 or later with the given
    certificate, and basic auth for `users` ({name: password}), stored as bcrypt hashes."""
    config = {
        "tls_server_config": {"cert_file": cert_file, "key_file": key_file, "min_version": "TLS12"},
        "basic_auth_users": {name: web_password_hash(password, name) for name, password in sorted(users.items())},
    }
    return _yaml(config, sort_keys=True)


# -- Prometheus Operator ------------------------------------------------------------------------

SERVICE_MONITOR_API = "monitoring.coreos.com/v1"
SERVICE_MONITOR_CA_KEY = "ca.crt"


def _service_of(address: str, namespace: str, cluster_domain: str, where: str) -> tuple[str, str]:
    """(Service name, host) of a target address published by a cluster host: a Service's name
    <service>.<namespace>.svc.<domain>, or a pod's name behind a headless one, <pod>.<service>...."""
    host = address.rsplit(":", 1)[0]
    suffix = f".{namespace}.svc.{cluster_domain}"
    if not host.endswith(suffix):
        raise AnsibleFilterError(f"{where}: {host} is not the name of a Service in {namespace} ({suffix})")
    return host[: -len(suffix)].split(".")[-1], host


def _monitor_name(service: str) -> str:
    return "lakehouse-" + service.replace("_", "-")


def service_monitors(
    published: list[dict],
    namespace: str,
    cluster_domain: str,
    secret: str,
    interval: str = "30s",
    labels: dict | None = None,
) -> list[dict]:
    """Prometheus Operator ServiceMonitors for the contracts a cluster host published ([{host,
    contract}], every target a Service of `namespace`): one per contract with metrics, named
    lakehouse-<service>, in `namespace`. The CA and credentials come from the Secret `secret`
    (service_monitor_secret); `labels` are added to each (an operator's serviceMonitorSelector)."""
    monitors = []
    for entry in published:
        contract, host = entry["contract"], entry["host"]
        service = contract["service"]
        metrics = contract.get("metrics") or []
        if not metrics:
            continue
        targets = lakehouse_contract.metrics_targets(contract)
        endpoints = []
        for index, metric in enumerate(metrics):
            where = f"contract {service} of {host}, component {metric['component']}"
            _check_url(metric["url"], where)
            auth = _monitor_auth(metric, where, secret)
            mine = [t for t in targets if t["metric"] == index]
            # One endpoint per Service the metric's targets name (a query contract's workers are
            # the pods behind their headless Service), in the order the contract names them.
            by_service: dict[tuple[str, str], list[str]] = {}
            for target in mine:
                name, dns = _service_of(target["address"], namespace, cluster_domain, where)
                by_service.setdefault((name, target["component"]), []).append(dns)
            for (name, component), hosts in by_service.items():
                target = next(t for t in mine if t["component"] == component)
                endpoint = {
                    "targetPort": int(target["address"].rsplit(":", 1)[1]),
                    "scheme": target["scheme"],
                    "path": target["path"],
                    "interval": interval,
                    "relabelings": [
                        {"sourceLabels": ["__meta_kubernetes_service_name"], "regex": name, "action": "keep"},
                        *(
                            {"targetLabel": label, "replacement": value, "action": "replace"}
                            for label, value in (
                                ("service", service),
                                ("implementation", contract.get("implementation", "")),
                                ("lakehouse_host", host),
                                ("component", component),
                            )
                        ),
                    ],
                }
                if target["scheme"] == "https":
                    # Pods of one Service share its certificate, which names each of them.
                    endpoint["tlsConfig"] = {
                        "ca": {"secret": {"name": secret, "key": SERVICE_MONITOR_CA_KEY}},
                        "serverName": hosts[0],
                    }
                endpoint.update(auth)
                endpoints.append(endpoint)
        monitors.append(
            {
                "apiVersion": SERVICE_MONITOR_API,
                "kind": "ServiceMonitor",
                "metadata": {
                    "name": _monitor_name(service),
                    "namespace": namespace,
                    "labels": {
                        **(labels or {}),
                        "app.kubernetes.io/part-of": "lakehouse",
                        "lakehouse/service": service,
                    },
                },
                "spec": {
                    "namespaceSelector": {"matchNames": [namespace]},
                    "selector": {"matchLabels": {"app.kubernetes.io/part-of": "lakehouse"}},
                    "endpoints": endpoints,
                },
            }
        )
    return sorted(monitors, key=lambda m: m["metadata"]["name"])


def _secret_key(secret_ref: str) -> str:
    """The key of a credential in the ServiceMonitors' Secret: its credential file's name."""
    return posixpath.basename(credential_file(secret_ref, "."))


def _monitor_auth(metric: dict, where: str, secret: str) -> dict:
    auth = _auth(metric, where, ".")  # checks the entry as a scrape file does
    if not auth:
        return {}
    key = _secret_key(metric["credentials"]["secret_ref"])
    if "basic_auth" in auth:
        return {
            "basicAuth": {
                "username": {"name": secret, "key": f"{key}.user"},
                "password": {"name": secret, "key": key},
            }
        }
    return {"authorization": {"type": "Bearer", "credentials": {"name": secret, "key": key}}}


def service_monitor_secret(entries: list[dict], files: list[dict], ca: str) -> dict:
    """The data (base64) of the Secret the ServiceMonitors refer to: the lakehouse CA, and for each
    scrape credential (`entries` from scrape_credentials, `files` their credential_files, in the
    same order) the password or token without its newline, and a basic-auth user's name."""
    if len(entries) != len(files):
        raise AnsibleFilterError(f"{len(entries)} scrape credentials, {len(files)} credential files")
    data = {SERVICE_MONITOR_CA_KEY: ca}
    for entry, file in zip(entries, files, strict=True):
        key = _secret_key(entry["credentials"]["secret_ref"])
        data[key] = file["content"].rstrip("\n")
        if entry["auth"] == "basic":
            data[f"{key}.user"] = entry["credentials"]["user"]
    return {key: base64.b64encode(value.encode()).decode() for key, value in sorted(data.items())}


class FilterModule:
    def filters(self):
        return {
            "lakehouse_scrape_config": scrape_config,
            "lakehouse_scrape_files": scrape_files,
            "lakehouse_credential_file": credential_file,
            "lakehouse_certificate_rules": certificate_rules,
            "lakehouse_rule_files": rule_files,
            "lakehouse_scrape_credentials": scrape_credentials,
            "lakehouse_scrape_credential_files": credential_files,
            "lakehouse_web_config": web_config,
            "lakehouse_service_monitors": service_monitors,
            "lakehouse_service_monitor_secret": service_monitor_secret,
        }
