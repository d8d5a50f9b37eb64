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
"""

from __future__ import annotations

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
        }
