"""Published contracts and the credentials they reference, read the way the roles write them.

contracts: $LAKEHOUSE_STATE_DIR or ~/.local/state/lakehouse/<site>, then contracts/<host>/<service>.json,
           each checked against its layer's schema (module_utils/lakehouse_contract.py)
secrets:   $LAKEHOUSE_SECRETS_DIR or ~/.local/share/lakehouse/<site>, then <path> of lakehouse_secret:<path>
           (LAKEHOUSE_SECRET_<PATH> in the environment takes precedence, as in the lookup plugin)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lakehouse_cli import LakehouseError
from module_utils import lakehouse_contract

REF_PREFIX = "lakehouse_secret:"
# The credential paths plugins/lookup/lakehouse_secret.py accepts (so none climbs out of the store).
SECRET_PATH = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$")


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def state_dir(site: str, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("LAKEHOUSE_STATE_DIR") or _home(env) / ".local" / "state" / "lakehouse" / site)


def secrets_dir(site: str, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("LAKEHOUSE_SECRETS_DIR") or _home(env) / ".local" / "share" / "lakehouse" / site)


@dataclass(frozen=True)
class Contract:
    host: str  # the inventory host that published it
    service: str  # object_storage, catalog, ...
    path: Path
    data: dict
    site: str = ""

    def require(self, dotted: str):
        """The value at a dotted path ("jdbc.database"); a one-line error naming it when it is missing."""
        value = self.data
        for key in dotted.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is None or value == "":
            raise LakehouseError(f"the {self.service} contract of {self.host} has no {dotted}")
        return value

    @property
    def url(self) -> str:
        return str(self.data.get("url", ""))

    def credential(self, role: str) -> dict:
        """The credential of `role` (admin, client, a user's name): {user or user_ref, secret_ref, kind}."""
        found = (self.data.get("credentials") or {}).get(role)
        if not found:
            raise LakehouseError(f"the {self.service} contract of {self.host} has no credentials.{role}")
        return found

    @property
    def readiness(self) -> dict:
        return (self.data.get("health") or {}).get("readiness") or {}

    @property
    def readiness_url(self) -> str | None:
        return self.readiness.get("url")

    @property
    def ca(self) -> Path | None:
        ref = (self.data.get("tls") or {}).get("ca_ref")
        return Path(ref).expanduser() if ref else None

    @property
    def postgresql(self) -> tuple[str, int] | None:
        """(host, port) of the PostgreSQL server its readiness is probed at: catalog_db, or a JDBC catalog's."""
        server = self.readiness.get("tcp") or {}
        if server.get("protocol") != "postgresql" or not server.get("host"):
            return None
        return str(server["host"]), int(server.get("port") or 5432)


def find_contracts(directory: Path, hosts: Iterable[str] | None = None, site: str = "") -> list[Contract]:
    """Every contract under directory/contracts/, or only those of `hosts`, sorted by host then service."""
    root = directory / "contracts"
    wanted = None if hosts is None else set(hosts)
    found = []
    for path in sorted(root.glob("*/*.json")):
        host = path.parent.name
        if wanted is not None and host not in wanted:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise LakehouseError(f"unreadable contract {path}: {err}") from err
        if (problem := lakehouse_contract.problem(data, path.stem)) is not None:
            raise LakehouseError(f"invalid contract {path}: {problem}")
        found.append(
            Contract(host=host, service=str(data.get("service") or path.stem), path=path, data=data, site=site)
        )
    return found


def env_name(path: str) -> str:
    """LAKEHOUSE_SECRET_<PATH>, as plugins/lookup/lakehouse_secret.py names it."""
    return "LAKEHOUSE_SECRET_" + re.sub(r"[/.-]", "_", path).upper()


def resolve_secret(ref: str, store: Path, env: Mapping[str, str] | None = None) -> str:
    """The value behind `lakehouse_secret:<path>`. Errors name the reference, never the value."""
    env = os.environ if env is None else env
    if not isinstance(ref, str) or not ref.startswith(REF_PREFIX):
        raise LakehouseError(f"unsupported credential reference {ref!r} (expected {REF_PREFIX}<path>)")
    path = ref.removeprefix(REF_PREFIX)
    if not SECRET_PATH.match(path):
        raise LakehouseError(f"invalid credential path in {ref!r}")
    if value := env.get(env_name(path)):
        return value
    file = store / path
    try:
        value = file.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise LakehouseError(f"credential {ref} not found in {store} ({err.strerror})") from err
    if not value:
        raise LakehouseError(f"credential {ref} is empty in {store}")
    return value
