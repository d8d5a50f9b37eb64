"""The inventory as Ansible sees it, from `ansible-inventory --list` of the project environment."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse_cli import REPO, LakehouseError
from lakehouse_cli.env import ansible_env, venv_bin

DEFAULT_SITE = "default"  # roles/lakehouse/defaults/main/site.yml
DEFAULT_DELIVERY = "systemd"
# The connection of a container host: its short name (Mitogen keeps it open) and its full one.
DOCKER_CONNECTIONS = ("docker", "community.docker.docker")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def resolve_source(source: str, cwd: Path | None = None) -> str:
    """An inventory path relative to the working directory, else to the repository; host lists as given."""
    for base in (cwd or Path.cwd(), REPO):
        candidate = (base / source).expanduser()
        if candidate.exists():
            return str(candidate.resolve())
    if "," in source:  # an inline host list, "host1,host2,"
        return source
    raise LakehouseError(f"inventory {source} not found")


@dataclass
class Inventory:
    source: str
    hostvars: dict[str, dict] = field(default_factory=dict)
    groups: dict[str, dict] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)  # after --limit, in inventory order

    def group_hosts(self, name: str, _seen: frozenset = frozenset()) -> list[str]:
        """Hosts of a group and of its children, recursively."""
        group = self.groups.get(name) or {}
        found = list(group.get("hosts", []))
        for child in group.get("children", []):
            if child not in _seen:
                found += [h for h in self.group_hosts(child, _seen | {name}) if h not in found]
        return found

    def var(self, host: str, name: str, default=None):
        return self.hostvars.get(host, {}).get(name, default)

    def site(self, host: str, overrides: dict | None = None) -> str:
        return str((overrides or {}).get("lakehouse_site") or self.var(host, "lakehouse_site", DEFAULT_SITE))

    def delivery(self, host: str) -> str:
        return str(self.var(host, "lakehouse_delivery", DEFAULT_DELIVERY))

    @property
    def containers(self) -> list[str]:
        """Hosts that are containers of this controller's Docker engine (sandbox or provisioned by
        terraform/local): reached through it, so measurable by the reports in scripts/."""
        return [h for h in self.group_hosts("all") if self.var(h, "ansible_connection") in DOCKER_CONNECTIONS]

    @property
    def is_sandbox(self) -> bool:
        """The inventory has sandbox hosts: containers or a local cluster, which playbooks/sandbox.yml manages."""
        return bool(self.group_hosts("sandbox") or self.group_hosts("local_clusters"))


def _ansible_inventory(source: str, limit: str | None) -> dict:
    command = [str(venv_bin() / "ansible-inventory"), "-i", source, "--list"]
    if limit:
        command += ["--limit", limit]
    try:
        done = subprocess.run(
            command, cwd=REPO, env=ansible_env(color=False), capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise LakehouseError(f"ansible-inventory failed: {err}") from err
    errors = [ANSI.sub("", line).strip() for line in done.stderr.splitlines() if "ERROR" in line]
    if done.returncode != 0:
        reason = errors[0] if errors else f"exit code {done.returncode}"
        raise LakehouseError(f"cannot read inventory {source}: {reason}")
    if "Unable to parse" in done.stderr:
        raise LakehouseError(f"cannot read inventory {source}: not an inventory Ansible can parse")
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError as err:
        raise LakehouseError(f"cannot read inventory {source}: ansible-inventory printed no JSON") from err


def load(source: str, limit: str | None = None) -> Inventory:
    listing = _ansible_inventory(source, None)
    inventory = Inventory(
        source=source,
        hostvars=listing.get("_meta", {}).get("hostvars", {}),
        groups={name: group for name, group in listing.items() if name != "_meta"},
    )
    inventory.hosts = inventory.group_hosts("all")
    if limit:
        limited = _ansible_inventory(source, limit)
        selected = {host for name, group in limited.items() if name != "_meta" for host in group.get("hosts", [])}
        inventory.hosts = [host for host in inventory.hosts if host in selected]
        if not inventory.hosts:
            raise LakehouseError(f"--limit {limit} matches no host of inventory {source}")
    return inventory


def main(argv: list[str]) -> int:
    """`python -m lakehouse_cli.inventory deliveries INVENTORY`: the deliveries its hosts use, one
    per line (scripts/setup.sh prepares only what they need)."""
    if len(argv) != 2 or argv[0] != "deliveries":
        print("usage: python -m lakehouse_cli.inventory deliveries INVENTORY", file=sys.stderr)
        return 2
    try:
        inventory = load(resolve_source(argv[1]))
    except LakehouseError as err:
        print(f"lakehouse: {err}", file=sys.stderr)
        return 1
    print("\n".join(sorted({inventory.delivery(host) for host in inventory.hosts})))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
