"""Filters shared by the lakehouse roles."""

from __future__ import annotations

import hashlib

# Trino's password file takes PBKDF2 (HMAC-SHA1, what Trino 476 verifies with) as
# <iterations>:<salt hex>:<hash hex>.
PBKDF2_ITERATIONS = 100_000


def artifact_path(name: str, table: dict, root: str) -> str:
    """Install path of an artifact on a host: <root>/<name>/<version>/<filename>, or for an
    archive the directory it unpacks to, <root>/<name>/<version>/<unpack.root>.

    Versioned paths let an upgrade install beside the running version and switch a link.
    """
    entry = table[name]
    leaf = (entry.get("unpack") or {}).get("root") or entry["filename"]
    return f"{root}/{name}/{entry['version']}/{leaf}"


def trino_password_hash(password: str, salt: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A Trino password-file hash, reproducible from a stored salt so a second run changes nothing."""
    salt_bytes = salt.encode()
    digest = hashlib.pbkdf2_hmac("sha1", password.encode(), salt_bytes, iterations, dklen=32)
    return f"{iterations}:{salt_bytes.hex()}:{digest.hex()}"


class FilterModule:
    def filters(self):
        return {"lakehouse_artifact_path": artifact_path, "lakehouse_trino_password_hash": trino_password_hash}
