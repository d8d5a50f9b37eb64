#!/usr/bin/env python3
"""What the lakehouse's metal hosts survive, measured on the hosts of an inventory that are containers.

    .venv/bin/python scripts/reliability_report.py [-i INVENTORY] [--kill [UNIT ...]] [--reboot] [--rolling]

1. the exposure of every lakehouse unit (`systemd-analyze security`: 0 is best, 10 worst; the
   lakehouse aims at 2.0 or less), one row per unit and host;
2. with --kill: for each unit named (all of them when none is), `kill -9` of its main process,
   then the seconds until systemd has restarted it and every endpoint the host publishes is ready
   again (each contract's readiness probe, as `lakehouse verify` reads it, and every metrics
   endpoint answering). Units are killed one at a time, each after the host is ready again;
3. with --reboot: each host restarted (its container: systemd boots it again), then the seconds
   until every endpoint it publishes is ready, and the order in which its units became active;
4. with --rolling: the query layer converged twice (playbooks/query.yml) under a query loop
   (lakehouse_cli/load.py), first with a setting only Trino's workers read changed
   (trino_shutdown_grace_seconds), then as the inventory says: each converge restarts the
   workers one host at a time. Per converge, its seconds, the queries answered and failed, and
   the fewest workers the coordinator listed as active at any moment.

The TLS refusals (old protocols, plain HTTP, clients without the lakehouse CA, wrong credentials)
are rows of `lakehouse verify`. Every wait is bounded (READY_SECONDS); exits non-zero when an
exposure is above MAX_EXPOSURE or a killed service does not come back.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lakehouse_cli import checks, contracts, load, monitoring, probe  # noqa: E402
from lakehouse_cli.cli import Session  # noqa: E402
from lakehouse_cli.playbook import run_or_raise  # noqa: E402
from lakehouse_cli.table import render  # noqa: E402

MAX_EXPOSURE = 2.0
READY_SECONDS = 300
POLL_SECONDS = 0.5
EXPOSURE = re.compile(r"Overall exposure level for \S+: ([0-9.]+) (\w+)")


def run_on_host(host: str, *argv: str) -> subprocess.CompletedProcess:
    """A command on a sandbox host (its container), bounded in time."""
    return subprocess.run(["docker", "exec", host, *argv], capture_output=True, text=True, timeout=60, check=False)


def on_host(host: str, *argv: str) -> str:
    """A command's output; the report stops when the command fails."""
    done = run_on_host(host, *argv)
    if done.returncode != 0:
        sys.exit(f"report: {' '.join(argv)} failed on {host}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def units(host: str, pattern: str = "lakehouse-*") -> list[str]:
    listed = on_host(host, "systemctl", "list-units", "--type=service", "--plain", "--no-legend", pattern)
    return sorted(line.split()[0] for line in listed.splitlines() if line.strip())


def exposure_table(hosts: list[str]) -> bool:
    rows, ok = [], True
    for host in hosts:
        for unit in units(host):
            found = EXPOSURE.search(on_host(host, "systemd-analyze", "security", "--no-pager", unit))
            level, verdict = (float(found.group(1)), found.group(2)) if found else (None, "unknown")
            passed = level is not None and level <= MAX_EXPOSURE
            ok &= passed
            rows.append(
                (unit, host, f"{level:.1f}" if level is not None else "-", verdict, "pass" if passed else "FAIL")
            )
    print(render(("unit", "host", "exposure", "systemd says", f"<= {MAX_EXPOSURE}"), rows))
    return ok


def main_pid(host: str, unit: str) -> str:
    return on_host(host, "systemctl", "show", "--property=MainPID", "--value", unit).strip()


def host_ready(published: list[contracts.Contract]) -> bool:
    """Every contract of the host passes its readiness probe and every metrics endpoint answers."""
    if not all(probe.health(contract)[0] for contract in published):
        return False
    return all(
        probe.request(url, contract.ca).status is not None
        for url, (contract, _) in monitoring.expected(published).items()
    )


def recovery(host: str, unit: str, published: list[contracts.Contract]) -> tuple[float | None, str]:
    """kill -9 of the unit's main process; the seconds until it runs again and the host is ready."""
    before = main_pid(host, unit)
    on_host(host, "systemctl", "kill", "--signal=KILL", "--kill-whom=main", unit)
    start = time.monotonic()
    while time.monotonic() - start < READY_SECONDS:
        pid = main_pid(host, unit)
        if pid not in ("0", before) and host_ready(published):
            return time.monotonic() - start, f"main process {before} -> {pid}"
        time.sleep(POLL_SECONDS)
    return None, f"not ready within {READY_SECONDS} s"


def reboot(host: str, published: list[contracts.Contract]) -> tuple[float | None, str]:
    """Restart the host; the seconds until it is ready, and its units in the order they became active."""
    subprocess.run(["docker", "restart", "--time=60", host], capture_output=True, text=True, timeout=120, check=True)
    start = time.monotonic()
    while time.monotonic() - start < READY_SECONDS:
        if host_ready(published):
            seconds = time.monotonic() - start
            active = {}
            for unit in units(host):
                stamp = on_host(host, "systemctl", "show", "--property=ActiveEnterTimestampMonotonic", "--value", unit)
                active[unit] = int(stamp.strip() or 0)
            order = ", ".join(
                unit.removeprefix("lakehouse-").removesuffix(".service") for unit in sorted(active, key=active.get)
            )
            return seconds, order
        time.sleep(POLL_SECONDS)
    return None, f"not ready within {READY_SECONDS} s"


def rolling(session: Session, found: list[contracts.Contract]) -> bool:
    """Two converges of the query layer under a query loop; a row each. True when no query failed."""
    [query] = [contract for contract in found if contract.service == "query"]
    rows, ok = [], True
    for change in ("trino_shutdown_grace_seconds=11", None):
        invocation = session.invocation("playbooks/query.yml", (change,) if change else ())
        start = time.monotonic()
        with load.QueryLoop(query, checks.VerifyContext(contracts=found)) as loop:
            run_or_raise(invocation, session.progress())
        seconds = time.monotonic() - start
        ok &= loop.failed == 0
        rows.append((change or "as the inventory says", f"{seconds:.1f} s", loop.answered, loop.failed,
                     loop.fewest_active_workers))  # fmt: skip
        if loop.failures:
            print(f"first failure: {loop.failures[0]}")
    print()
    print(render(("workers restarted after", "converge", "queries answered", "failed", "fewest active workers"), rows))
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="inventories/sandbox")
    parser.add_argument("--kill", nargs="*", metavar="UNIT", help="units to kill -9 (none named: every one)")
    parser.add_argument("--reboot", action="store_true", help="restart each host and time it until ready")
    parser.add_argument("--rolling", action="store_true", help="restart the Trino workers under a query loop")
    args = parser.parse_args()
    session = Session(argparse.Namespace(inventory=args.inventory, limit=None, extra_vars=[], verbose=0), sys.stdout)
    hosts = session.inventory.containers
    if not hosts:
        sys.exit(f"report: {args.inventory} has no hosts that are containers to measure")
    ok = exposure_table(hosts)
    found = session.contracts()
    published = {host: [contract for contract in found if contract.host == host] for host in hosts}
    failures = args.kill is not None or args.reboot or args.rolling
    if failures and not all(host_ready(published[host]) for host in hosts):
        sys.exit("report: a host is not ready before the first failure; run: lakehouse up")
    if args.kill is not None:
        rows = []
        for host in hosts:
            for unit in args.kill or units(host):
                seconds, detail = recovery(host, unit, published[host])
                ok &= seconds is not None
                rows.append((unit, host, f"{seconds:.1f} s" if seconds is not None else "-", detail))
        print()
        print(render(("unit killed (kill -9)", "host", "ready again after", "detail"), rows))
    if args.reboot:
        rows = []
        for host in hosts:
            seconds, order = reboot(host, published[host])
            ok &= seconds is not None
            rows.append((host, f"{seconds:.1f} s" if seconds is not None else "-", order))
        print()
        print(render(("host restarted", "every endpoint ready after", "units active, in order"), rows))
    if args.rolling:
        ok &= rolling(session, found)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
