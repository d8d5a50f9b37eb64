"""File helpers shared by the lakehouse modules and module_utils.

Modules import this as ``ansible.module_utils.lakehouse_files``; code outside Ansible first adds
this directory to ``ansible.module_utils.__path__`` (tests/conftest.py, scripts/image_lock.py).
"""

from __future__ import annotations

import hashlib

CHUNK = 1 << 20


def sha256_file(path: str) -> str:
    """The sha256 of a file's content, read in chunks (artifacts run to hundreds of megabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
