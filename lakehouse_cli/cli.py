"""lakehouse up | verify | status | down: the project's playbooks and checks behind one command.

    lakehouse up      [-i INVENTORY] [--limit PATTERN] [-e VARS]... [--check] [-v]
    lakehouse verify  [-i INVENTORY] [--limit PATTERN] [-e VARS]... [-v]
    lakehouse status  [-i INVENTORY] [--limit PATTERN] [-e VARS]... [-v]
    lakehouse down    [-i INVENTORY] [-e VARS]... [--check] [-v]
    lakehouse provision -i ENVIRONMENT [--destroy] [-e VARS]... [--check] [-v]
    lakehouse drift   [-i INVENTORY] [--limit PATTERN] [-e VARS]... [-v]
    lakehouse render  [-i INVENTORY] [-o DIR] [--limit PATTERN] [-e VARS]... [-v]

Each playbook run prints the equivalent plain `ansible-playbook` command first. Exit code 0 on
success; otherwise one line `lakehouse: <reason>` on stderr (and for `drift`, exit code 2 when a
host differs from what the repository and the inventory say).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from lakehouse_cli import LakehouseError, checks, contracts, inventory, monitoring, probe
from lakehouse_cli.env import parse_extra_vars
from lakehouse_cli.playbook import Invocation, run_or_raise
from lakehouse_cli.progress import Progress
from lakehouse_cli.table import render

DEFAULT_INVENTORY = "inventories/sandbox"
SANDBOX_PLAYBOOK = "playbooks/sandbox.yml"
SITE_PLAYBOOK = "playbooks/site.yml"
PROVISION_PLAYBOOK = "playbooks/provision.yml"
DRIFT_EXIT = 2  # as diff(1): differences found, which is not a failure of the command
PROVISION_INPUTS = "provision.yml"  # in an environment's inventory directory


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-i", "--inventory", default=DEFAULT_INVENTORY, help=f"inventory path (default: {DEFAULT_INVENTORY})"
    )
    common.add_argument("--limit", metavar="PATTERN", help="only these hosts (an Ansible host pattern)")
    common.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        metavar="VARS",
        help="extra variables as for ansible-playbook: key=value, YAML/JSON or @file (repeatable)",
    )
    common.add_argument(
        "-v", "--verbose", action="count", default=0, help="show Ansible's own output (-vv and more: Ansible's -v...)"
    )
    changes = argparse.ArgumentParser(add_help=False)
    changes.add_argument("--check", action="store_true", help="check mode: report what would change, change nothing")

    parser = argparse.ArgumentParser(
        prog="lakehouse",
        description="Bring the lakehouse up, verify it, show its status, or remove the sandbox.",
        epilog="Everything here is plain Ansible: the equivalent ansible-playbook command is printed before each run.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "up",
        parents=[common, changes],
        help="create the sandbox hosts (sandbox inventory) and apply playbooks/site.yml",
        description="Run playbooks/sandbox.yml when the inventory has sandbox hosts, then playbooks/site.yml; "
        "then show the published services and their health.",
    )
    commands.add_parser(
        "verify",
        parents=[common],
        help="check every published contract end to end",
        description="Run the checks of every published contract. Every service: readiness. Object storage: "
        "anonymous and default credentials refused, an authenticated put/get/delete round trip. Catalog database "
        "(PostgreSQL): anonymous, default credentials and plain-text connections refused, an authenticated "
        "SELECT 1 over TLS. Catalog: anonymous access refused (REST: no bearer token, and a token signed by "
        "an untrusted key; JDBC: as the catalog database, and default credentials). Query (Trino): anonymous "
        "and default credentials refused, "
        "every worker registered, and an Iceberg round trip: pyiceberg writes a table that Trino reads, Trino "
        "adds a row that pyiceberg reads back, then the table is dropped.",
    )
    commands.add_parser(
        "status",
        parents=[common],
        help="show the published services and their health",
        description="Read the published contracts and probe each one once (5 s, trusting the contract's CA): "
        "its readiness URL over HTTPS, or for PostgreSQL a login over TLS that the server must answer.",
    )
    commands.add_parser(
        "down",
        parents=[common, changes],
        help="remove the sandbox hosts (secrets, contracts and the artifact cache are kept)",
        description="Run playbooks/sandbox.yml with -e sandbox_state=absent.",
    )
    provision = commands.add_parser(
        "provision",
        parents=[common, changes],
        help="apply an environment's OpenTofu configuration and write its inventory",
        description="Run playbooks/provision.yml with the environment's provision.yml (its inventory directory, "
        "given with -i): apply the terraform/ configuration it names, with state in S3 (a lakehouse's own MinIO), "
        "and write hosts.yml from the configuration's provisioning contract. `lakehouse up -i ENVIRONMENT` then "
        "uses that inventory as is. With --destroy, destroy what the configuration made and remove hosts.yml.",
    )
    provision.add_argument("--destroy", action="store_true", help="destroy what the configuration made")
    commands.add_parser(
        "drift",
        parents=[common],
        help="show what differs from what the repository and the inventory say, on every host",
        description="Run playbooks/site.yml in check mode with --diff and list every task that would change "
        "something (files, units, packages, Helm releases, Kubernetes objects, buckets, policies, users), by host. "
        f"Exit code {DRIFT_EXIT} when anything differs; `lakehouse up` repairs it.",
    )
    render = commands.add_parser(
        "render",
        parents=[common],
        help="write the cluster hosts' releases as a GitOps tree for Flux",
        description="Run playbooks/site.yml for the inventory's cluster hosts with lakehouse_render: the Helm engine "
        "writes each release into the GitOps tree (lakehouse_gitops_dir, or --output) as Flux objects (ConfigMaps "
        "and a HelmRelease of the generic chart with the values it would apply), creates the Secrets on the cluster "
        "(never in the tree) and builds the images, and stops there. Commit and push the tree; once Flux has "
        "applied it, `lakehouse up` with the same lakehouse_gitops_dir waits for the services and does the rest.",
    )
    render.add_argument(
        "-o", "--output", metavar="DIR", help="the GitOps tree (default: the inventory's lakehouse_gitops_dir)"
    )
    return parser


def absolute_file_ref(value: str) -> str:
    """`@file` extra vars relative to the caller's directory (playbooks run in the repository)."""
    if value.startswith("@") and not Path(value[1:]).expanduser().is_absolute():
        candidate = Path.cwd() / value[1:]
        if candidate.exists():
            return "@" + str(candidate.resolve())
    return value


class Session:
    """One command: its arguments, the inventory (read once), where output goes."""

    def __init__(self, args: argparse.Namespace, out: TextIO):
        self.args = args
        self.out = out
        self.source = inventory.resolve_source(args.inventory)
        self._overrides: dict | None = None

    @functools.cached_property
    def inventory(self) -> inventory.Inventory:
        return inventory.load(self.source, self.args.limit)

    @property
    def overrides(self) -> dict:
        if self._overrides is None:
            self._overrides = parse_extra_vars(self.args.extra_vars)
        return self._overrides

    def invocation(self, playbook: str, extra: tuple[str, ...] = (), **settings) -> Invocation:
        """The run of `playbook` this command's arguments ask for; `settings` replace fields of it."""
        asked = Invocation(
            playbook=playbook,
            inventory=self.source,
            limit=self.args.limit,
            extra_vars=(*(absolute_file_ref(value) for value in self.args.extra_vars), *extra),
            check=getattr(self.args, "check", False),
            verbosity=max(0, self.args.verbose - 1),
        )
        return dataclasses.replace(asked, **settings)

    def progress(self) -> Progress:
        return Progress.for_stream(self.out, verbose=self.args.verbose > 0)

    def contracts(self, hosts: list[str] | None = None) -> list[contracts.Contract]:
        """The contracts `hosts` (default: the inventory's, limited) published, from their site state directories."""
        by_dir: dict[Path, tuple[str, list[str]]] = {}
        for host in self.inventory.hosts if hosts is None else hosts:
            site = self.inventory.site(host, self.overrides)
            _, listed = by_dir.setdefault(contracts.state_dir(site), (site, []))
            listed.append(host)
        found = []
        for directory, (site, listed) in by_dir.items():
            found += contracts.find_contracts(directory, listed, site=site)
        if not found:
            where = ", ".join(str(d / "contracts") for d in by_dir) or "(no host)"
            raise LakehouseError(
                f"no published contract for the hosts of {self.args.inventory} in {where}; run: lakehouse up"
            )
        return found

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()


def status_table(session: Session, settle_seconds: float = 0) -> None:
    """The table of services and their health. With `settle_seconds` (after a converge), Prometheus
    is read again, bounded, while a metrics endpoint is down, not listed or not scraped yet: its
    last scrape may predate the restart the converge has just waited for, and a first start's
    targets appear with its first reload."""
    found = session.contracts()
    with ThreadPoolExecutor(max_workers=min(8, len(found))) as pool:
        health = list(pool.map(probe.health, found))
    deadline = time.monotonic() + settle_seconds
    scraped, unscraped, settling = scrape_health(found)
    while (unscraped or settling) and time.monotonic() < deadline:
        time.sleep(2)
        scraped, unscraped, settling = scrape_health(found)
    rows = [
        (c.service, c.host, session.inventory.delivery(c.host), c.url, text)
        + ((scraped.get(c.path, ""),) if scraped else ())
        for c, (_, text) in zip(found, health, strict=True)
    ]
    columns = ("service", "host", "delivery", "endpoint", "health", *(["metrics (Prometheus)"] if scraped else []))
    session.print(render(columns, rows))
    bad = [f"{c.service} on {c.host} ({text})" for c, (ok, text) in zip(found, health, strict=True) if not ok]
    if bad or unscraped:
        down = f", {len(unscraped)} metrics endpoints down" if unscraped else ""
        raise LakehouseError(f"{len(bad)} of {len(found)} services not healthy{down}: {'; '.join(bad + unscraped)}")


def scrape_health(found: list[contracts.Contract]) -> tuple[dict, list[str], int]:
    """What Prometheus says of each contract's metrics endpoints ({contract path: "n/m up"}), the
    endpoints it found down, and how many it does not list or has not scraped yet; nothing when
    the inventory has no Prometheus."""
    prometheus = next((c for c in found if c.service == "observability"), None)
    if prometheus is None:
        return {}, [], 0
    wanted = monitoring.expected(found)
    try:
        admin = prometheus.credential("admin")
        password = contracts.resolve_secret(admin["secret_ref"], contracts.secrets_dir(prometheus.site))
        active = monitoring.active_targets(prometheus, admin["user"], password)
    except LakehouseError as err:
        return {c.path: f"unknown: {err}" for c, _ in wanted.values()}, [str(err)], 0
    states = {url: monitoring.describe(contract, target, active) for url, (contract, target) in wanted.items()}
    column = {}
    for contract in found:
        mine = [states[url][0] for url, (c, _) in wanted.items() if c.path == contract.path]
        if mine:
            waiting = mine.count("pending") + mine.count("missing")
            column[contract.path] = f"{mine.count('up')}/{len(mine)} up" + (
                f", {waiting} not scraped yet" if waiting else ""
            )
    # Right after a start or reload Prometheus may not list, or not yet have scraped, a target:
    # no failure here (verify waits for every one); a target it found down is.
    settling = sum(1 for state, _ in states.values() if state in ("pending", "missing"))
    return column, [text for state, text in states.values() if state == "down"], settling


def cmd_up(session: Session) -> int:
    progress = session.progress()
    if session.inventory.is_sandbox:
        run_or_raise(session.invocation(SANDBOX_PLAYBOOK, limit=None), progress)
    run_or_raise(session.invocation(SITE_PLAYBOOK), progress)
    if session.args.check:
        session.print("check mode: nothing was changed; `lakehouse status` shows what runs now")
        return 0
    session.print()
    status_table(session, settle_seconds=checks.FIRST_SCRAPE_SECONDS)
    return 0


def cmd_status(session: Session) -> int:
    status_table(session)
    return 0


def cmd_verify(session: Session) -> int:
    # Checks see every contract of the inventory: the query's catalog may be on a host --limit left out.
    context = checks.VerifyContext(contracts=session.contracts(session.inventory.group_hosts("all")))
    results = checks.run_checks(session.contracts(), context)
    session.print(render(("check", "endpoint", "result"), [(r.check, r.endpoint, r.result) for r in results]))
    failed = [r for r in results if not r.ok]
    if failed:
        first = failed[0]
        raise LakehouseError(
            f"{len(failed)} of {len(results)} checks failed, first: {first.check} at {first.endpoint}: {first.detail}"
        )
    session.print(f"all {len(results)} checks passed")
    return 0


def cmd_down(session: Session) -> int:
    if not session.inventory.is_sandbox:
        raise LakehouseError(f"inventory {session.args.inventory} has no sandbox hosts; down removes only the sandbox")
    run_or_raise(session.invocation(SANDBOX_PLAYBOOK, extra=("sandbox_state=absent",), limit=None), session.progress())
    session.print("sandbox removed; the secret store, the published contracts and the artifact cache are kept")
    return 0


def cmd_provision(session: Session) -> int:
    environment = Path(session.source)
    inputs = environment / PROVISION_INPUTS
    if not inputs.is_file():
        raise LakehouseError(f"{session.args.inventory} has no {PROVISION_INPUTS}: it is not a provisioned environment")
    destroy = session.args.destroy
    extra = (f"@{inputs}", f"provision_inventory={environment}", *(["provision_state=absent"] if destroy else []))
    # The playbook runs on the controller alone: the environment's inventory is what it writes.
    run_or_raise(session.invocation(PROVISION_PLAYBOOK, extra, limit=None, inventory="localhost,"), session.progress())
    if session.args.check:
        session.print("check mode: nothing was changed")
    elif destroy:
        session.print(f"destroyed what {session.args.inventory} provisioned; its hosts.yml is removed")
    else:
        hosts = session.inventory.group_hosts("all")  # read now: the run has just written it
        session.print(f"{environment / 'hosts.yml'}: {_hosts(len(hosts))} ({', '.join(hosts)})")
        session.print(f"next: lakehouse up -i {session.args.inventory}")
    return 0


def _hosts(count: int) -> str:
    return f"{count} host{'' if count == 1 else 's'}"


def cmd_drift(session: Session) -> int:
    progress = session.progress()
    run_or_raise(session.invocation(SITE_PLAYBOOK, check=True, diff=True), progress)
    if not progress.changes:
        count = len(session.inventory.hosts)
        verb = "is" if count == 1 else "are"
        session.print(f"no drift: {_hosts(count)} {verb} as the repository and the inventory say")
        return 0
    rows = [(c.host, c.play, c.task, c.detail) for c in progress.changes]
    session.print(render(("host", "layer", "task", "differs"), rows))
    hosts = sorted({c.host for c in progress.changes})
    raise LakehouseError(
        f"{len(rows)} differences on {_hosts(len(hosts))} ({', '.join(hosts)}); `lakehouse up` repairs them",
        code=DRIFT_EXIT,
    )


def cmd_render(session: Session) -> int:
    clusters = [host for host in session.inventory.hosts if session.inventory.delivery(host) == "helm"]
    if not clusters:
        raise LakehouseError(f"no host of {session.args.inventory} is delivered by Helm: there is nothing to render")
    settings: dict = {"lakehouse_render": True}
    if session.args.output:
        settings["lakehouse_gitops_dir"] = str(Path(session.args.output).expanduser().resolve())
    progress = session.progress()
    if session.inventory.is_sandbox:
        run_or_raise(session.invocation(SANDBOX_PLAYBOOK, limit=None), progress)
    run_or_raise(session.invocation(SITE_PLAYBOOK, (json.dumps(settings),), limit=",".join(clusters)), progress)
    session.print(f"rendered the releases of {', '.join(clusters)}: commit and push the tree for Flux to apply")
    return 0


COMMANDS: dict[str, Callable[[Session], int]] = {
    "up": cmd_up,
    "verify": cmd_verify,
    "status": cmd_status,
    "down": cmd_down,
    "provision": cmd_provision,
    "render": cmd_render,
    "drift": cmd_drift,
}


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](Session(args, out))
    except LakehouseError as failure:
        out.flush()
        err.write(f"lakehouse: {failure}\n")
        return failure.code
    except KeyboardInterrupt:
        out.flush()
        err.write("lakehouse: interrupted\n")
        return 130
