"""Prometheus scrape configuration from the published contracts.

Every contract names its metrics endpoints (`metrics`: component, url, auth, credentials), so the
scrape configuration is generated, never written by hand: one file per contract (Prometheus's
`scrape_config_files`), one job per endpoint, the target by the DNS name the contract publishes.
A query contract's `workers` are scraped at the same path and port as its coordinator.

Secrets never enter a scrape file: basic-auth passwords and bearer tokens are referenced as files
(`password_file`, `credentials_file`) that the monitoring role writes beside it, named by
`credential_file(secret_ref)`; TLS is verified against the contract's CA.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ansible.errors import AnsibleFilterError

SCHEMES = {"http", "https"}


def credential_file(secret_ref: str, directory: str) -> str:
    """Where the monitoring role keeps the secret a reference names: one file per reference."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", secret_ref.split(":", 1)[-1]).strip("_.")
    return f"{directory}/{name}"


def _target(url: str, where: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname or not parts.port:
        raise AnsibleFilterError(f"{where}: metrics url {url} needs http(s)://host:port/path")
    return parts.scheme, f"{parts.hostname}:{parts.port}", parts.path or "/metrics"


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
    for metric in contract.get("metrics") or []:
        where = f"contract {service} of {host}, component {metric['component']}"
        scheme, target, path = _target(metric["url"], where)
        targets = [target]
        if service == "query":  # each worker serves its metrics where the coordinator does
            port = target.rsplit(":", 1)[1]
            targets += [f"{worker}:{port}" for worker in contract.get("workers") or []]
        job = {
            "job_name": f"{service}-{metric['component']}-{host}",
            "scrape_interval": interval,
            "scheme": scheme,
            "metrics_path": path,
            "static_configs": [
                {
                    "targets": targets,
                    "labels": {
                        "service": service,
                        "component": metric["component"],
                        "implementation": contract.get("implementation", ""),
                        "lakehouse_host": host,
                    },
                }
            ],
        }
        if scheme == "https":
            job["tls_config"] = {"ca_file": ca_file, "min_version": "TLS12"}
        job.update(_auth(metric, where, secrets_dir))
        jobs.append(job)
    return {"scrape_configs": jobs}


def scrape_credentials(contract: dict, secrets_dir: str) -> list[dict]:
    """The credential files a contract's scrape file refers to: [{path, secret_ref, auth}]."""
    files = {}
    for metric in contract.get("metrics") or []:
        credentials = metric.get("credentials") or {}
        if metric["auth"] != "none" and credentials.get("secret_ref"):
            path = credential_file(credentials["secret_ref"], secrets_dir)
            files[path] = {"path": path, "secret_ref": credentials["secret_ref"], "auth": metric["auth"]}
    return sorted(files.values(), key=lambda f: f["path"])


class FilterModule:
    def filters(self):
        return {
            "lakehouse_scrape_config": scrape_config,
            "lakehouse_scrape_credentials": scrape_credentials,
        }
