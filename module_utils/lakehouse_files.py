"""File helpers shared by the lakehouse modules and module_utils.

Modules import this as ``ansible.module_utils.lakehouse_files``; code outside Ansible first adds
this directory to ``ansible.module_utils.__path__`` (tests/conftest.py, scripts/image_lock.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import os

CHUNK = 1 << 20


def artifact_path(name: str, table: dict, root: str) -> str:
    """Install path of an artifact on a host (and in an image): <root>/<name>/<version>/<filename>,
    or for an archive the directory it unpacks to, <root>/<name>/<version>/<unpack.root>.

    Versioned paths let an upgrade install beside the running version and switch a link.
    """
    entry = table[name]
    leaf = (entry.get("unpack") or {}).get("root") or entry["filename"]
    return f"{root}/{name}/{entry['version']}/{leaf}"


def sha256_file(path: str) -> str:
    """The sha256 of a file's content, read in chunks (artifacts run to hundreds of megabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _record_path(path: str) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.sha256")


def sha256_recorded(path: str, record: bool = True) -> str:
    """The sha256 of a file, hashed once while it is unchanged.

    The digest is recorded beside the file (``.<name>.sha256``, with the file's size, modification
    time and inode) and read back while they still match, so verifying an unchanged artifact costs a
    stat instead of a pass over hundreds of megabytes. Any change to the file (a rewrite, a copy, a
    touch) makes it hashed again. With ``record`` false (check mode, a file outside a cache) nothing
    is written.
    """
    st = os.stat(path)
    stamp = f"{st.st_size} {st.st_mtime_ns} {st.st_ino}"
    record_path = _record_path(path)
    try:
        with open(record_path) as f:
            digest, recorded = f.read().split(" ", 1)
        if recorded.strip() == stamp:
            return digest
    except (OSError, ValueError):
        pass
    digest = sha256_file(path)
    if record:
        with contextlib.suppress(OSError):  # a read-only directory: hashed again next time
            temp = f"{record_path}.{os.getpid()}"
            with open(temp, "w") as f:
                f.write(f"{digest} {stamp}\n")
            os.replace(temp, record_path)
    return digest


def remove_recorded(path: str) -> None:
    """Remove a file and the sha256 recorded for it."""
    for victim in (path, _record_path(path)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(victim)
