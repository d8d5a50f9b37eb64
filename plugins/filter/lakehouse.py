"""Filters shared by the lakehouse roles."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys

import yaml
from cryptography.hazmat.primitives import serialization

# Ansible puts no controller-side shared code on the path: the repository root holds module_utils/.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.append(REPO)
from module_utils import lakehouse_jwt  # noqa: E402
from module_utils.lakehouse_files import artifact_path  # noqa: E402

# Trino's password file takes PBKDF2 (HMAC-SHA1, what Trino 476 verifies with) as
# <iterations>:<salt hex>:<hash hex>.
PBKDF2_ITERATIONS = 100_000


def endpoint_name(workload: str, endpoint: dict) -> str:
    """The DNS name a service is published under: the host's own name on a metal host, the
    Service's name <workload>.<namespace>.svc.<cluster domain> on a cluster host."""
    if endpoint["delivery"] == "helm":
        return f"{workload}.{endpoint['namespace']}.svc.{endpoint['cluster_domain']}"
    return endpoint["host_name"]


def cluster_aliases(workload: str, endpoint: dict) -> list[str]:
    """The shorter names a pod may use for the same Service (for its certificate); none on metal."""
    if endpoint["delivery"] != "helm":
        return []
    namespace = endpoint["namespace"]
    return [workload, f"{workload}.{namespace}", f"{workload}.{namespace}.svc"]


def pod_names(workload: str, endpoint: dict, count: int | None = None) -> list[str]:
    """The DNS names a StatefulSet gives its pods (<workload>-<i>.<workload>-pods.<namespace>.svc.<domain>,
    through its headless Service): the first `count`, or without a count the wildcard that names
    them all (for a certificate); none on metal."""
    if endpoint["delivery"] != "helm":
        return []
    domain = f"{workload}-pods.{endpoint['namespace']}.svc.{endpoint['cluster_domain']}"
    if count is None:
        return [f"*.{domain}"]
    return [f"{workload}-{index}.{domain}" for index in range(int(count))]


def trino_password_hash(password: str, salt: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A Trino password-file hash, reproducible from a stored salt so a second run changes nothing."""
    salt_bytes = salt.encode()
    digest = hashlib.pbkdf2_hmac("sha1", password.encode(), salt_bytes, iterations, dklen=32)
    return f"{iterations}:{salt_bytes.hex()}:{digest.hex()}"


def jwt_rs256(claims: dict, private_key_pem: str) -> str:
    """A JSON Web Token signed with RS256, the same on every run (nothing changes on a second run)."""
    return lakehouse_jwt.rs256(claims, private_key_pem)


def public_key_der_b64(private_key_pem: str) -> str:
    """The public half of a PEM private key, as base64 DER (SubjectPublicKeyInfo), e.g. for an
    OIDC server's local token verification."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def fernet_key(secret: str) -> str:
    """A Fernet key (Airflow's fernet_key: urlsafe base64 of 32 bytes) derived from a stored
    secret, so it is the same on every run and never has to be stored in its own format."""
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()).decode()


def ssha(password: str, salt: str) -> str:
    """An htpasswd entry's hash in the salted SHA-1 scheme nginx reads ({SSHA}), from a stored salt so
    a second run writes the same file. Enough for the generated 40-character passwords, and needs no
    crypt library on the controller."""
    digest = hashlib.sha1(password.encode() + salt.encode()).digest()  # noqa: S324 (nginx's {SSHA} scheme)
    return "{SSHA}" + base64.b64encode(digest + salt.encode()).decode()


def pod_problems(pods: list[dict]) -> list[dict]:
    """Why each pod that is not Ready is not: [{pod, reason, started}], `reason` from what Kubernetes
    says of it (a waiting or failed container, an unschedulable or unready pod), `started` true when
    one of its containers has run (so it has log lines)."""
    problems = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        status = pod.get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        if conditions.get("Ready", {}).get("status") == "True":
            continue
        containers = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
        reasons = []
        for container in containers:
            for when, state in (("now", container.get("state") or {}), ("last", container.get("lastState") or {})):
                for kind in ("waiting", "terminated"):
                    detail = state.get(kind)
                    if detail and (when == "now" or kind == "terminated") and detail.get("reason") != "Completed":
                        text = " ".join(str(detail.get(key) or "") for key in ("reason", "message")).strip()
                        exit_code = f" (exit {detail['exitCode']})" if "exitCode" in detail else ""
                        reasons.append(f"{container['name']} {'last ' if when == 'last' else ''}{text}{exit_code}")
        scheduled = conditions.get("PodScheduled", {})
        if scheduled.get("status") == "False":
            reasons.append(f"{scheduled.get('reason', 'not scheduled')}: {scheduled.get('message', '')}".strip(": "))
        if not reasons:
            ready = conditions.get("Ready", {})
            reasons.append(f"{status.get('phase', 'Unknown')}, not ready {ready.get('message') or ''}".strip())
        started = any(
            "running" in (c.get("state") or {}) or "terminated" in (c.get("state") or {}) or c.get("lastState")
            for c in containers
        )
        problems.append({"pod": pod["metadata"]["name"], "reason": "; ".join(reasons), "started": started})
    return problems


def rollback_revision(history: list[dict]) -> int:
    """The revision a failed release goes back to (`helm history -o json`): the last one that was
    deployed before it (superseded since), or 0 when none was (a first install that failed)."""
    served = [entry["revision"] for entry in history if entry.get("status") in ("deployed", "superseded")]
    latest = max((entry["revision"] for entry in history), default=0)
    return max((revision for revision in served if revision < latest), default=0)


def workloads_ready(workloads: list[dict]) -> bool:
    """Whether every Deployment and StatefulSet has all its replicas ready at its current template."""
    for workload in workloads:
        spec, status = workload.get("spec") or {}, workload.get("status") or {}
        wanted = spec.get("replicas", 1)
        if status.get("readyReplicas", 0) != wanted or status.get("updatedReplicas", 0) != wanted:
            return False
        if status.get("observedGeneration", 0) < (workload.get("metadata") or {}).get("generation", 0):
            return False
    return True


def flux_state(releases: list[dict], values: dict) -> str:
    """Where a HelmRelease read from the cluster stands against the values of the tree: ready,
    or what it waits for."""
    if not releases:
        return "no HelmRelease on the cluster yet: commit and push the tree, or wait for Flux to apply it"
    release = releases[0]
    if json.loads(json.dumps(release.get("spec", {}).get("values") or {})) != json.loads(json.dumps(values)):
        return "the HelmRelease on the cluster has other values than the tree: push the tree, or wait for Flux"
    status = release.get("status") or {}
    if status.get("observedGeneration") != release["metadata"].get("generation"):
        return "Flux has not reconciled the HelmRelease's latest change yet"
    condition = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    if condition.get("status") == "True":
        return "ready"
    return f"not ready: {condition.get('reason', 'no Ready condition yet')}: {condition.get('message', '')}".strip(": ")


def flux_ready(releases: list[dict], values: dict) -> bool:
    return flux_state(releases, values) == "ready"


class _ManifestDumper(yaml.SafeDumper):
    """Multi-line strings (config files) as literal blocks: a tree in Git that diffs line by line."""


_ManifestDumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None),
)


def configmaps(config_objects: list[dict], namespace: str, labels: dict) -> list[dict]:
    """The ConfigMaps of a service's config objects (lakehouse_config_objects): the public files."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": o["name"], "namespace": namespace, "labels": labels},
            "data": o["configmap"],
        }
        for o in config_objects
    ]


def manifests(objects: list[dict]) -> str:
    """Kubernetes objects as one YAML stream, a `---` document each, keys sorted: the same objects
    are the same bytes."""
    plain = json.loads(json.dumps(objects))  # Ansible's own string types, as plain ones
    return "".join("---\n" + yaml.dump(o, Dumper=_ManifestDumper, sort_keys=True, width=1000) for o in plain)


class FilterModule:
    def filters(self):
        return {
            "lakehouse_rollback_revision": rollback_revision,
            "lakehouse_manifests": manifests,
            "lakehouse_flux_state": flux_state,
            "lakehouse_flux_ready": flux_ready,
            "lakehouse_configmaps": configmaps,
            "lakehouse_workloads_ready": workloads_ready,
            "lakehouse_artifact_path": artifact_path,
            "lakehouse_endpoint_name": endpoint_name,
            "lakehouse_cluster_aliases": cluster_aliases,
            "lakehouse_pod_names": pod_names,
            "lakehouse_trino_password_hash": trino_password_hash,
            "lakehouse_jwt_rs256": jwt_rs256,
            "lakehouse_public_key_der_b64": public_key_der_b64,
            "lakehouse_pod_problems": pod_problems,
            "lakehouse_fernet_key": fernet_key,
            "lakehouse_ssha": ssha,
        }
