"""Filters shared by the lakehouse roles."""

from __future__ import annotations


def artifact_path(name: str, table: dict, root: str) -> str:
    """Install path of an artifact on a host: <root>/<name>/<version>/<filename>.

    Versioned paths let an upgrade install beside the running version and switch a link.
    """
    entry = table[name]
    return f"{root}/{name}/{entry['version']}/{entry['filename']}"


class FilterModule:
    def filters(self):
        return {"lakehouse_artifact_path": artifact_path}
