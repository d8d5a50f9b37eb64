#!/usr/bin/env python3
"""Benchmark `lakehouse up` against its floor: cold, no-op, one host against eight, a fresh cache.

    .venv/bin/python scripts/benchmark_up.py [-i INVENTORY] [--runs N] [--cold-runs N] [--hosts-8 INVENTORY] [--fresh]

Prints, in one run:
1. setup by step, as scripts/setup.sh recorded it the last time each step had work to do
   (`$LAKEHOUSE_CACHE/setup-timings`: the first `make up` or `make test` of this machine);
2. with --fresh, the `make up` phases on an empty cache: setup (Python environment and the
   Kubernetes tooling check; the Docker engine and Debian packages stay installed), artifacts
   (fetched and built), converge, verify;
3. cold `up` with a warm artifact cache (the sandbox hosts removed first), median of --cold-runs;
4. the floor of a cold `up`, read from the sandbox host after it: the unpack time of every archive
   the host has (tar or unzip on the host), the Debian packages' install time (apt's runs, from
   /var/log/apt/history.log), and each unit's start-to-ready time from the journal (systemd's
   start of the unit to the service's own "ready" line); summed, as if nothing ran in parallel;
5. no-op `up`, median of --runs, each with `changed=0`;
6. cold `up` (median of --cold-runs) of the eight-host inventory (one host for the query path, seven Trino workers)
   against the one-host sandbox, and the memory each host uses.

Downloads and builds are never timed except under --fresh. The one-host sandbox is left up;
the eight hosts are removed after their figures. Only for inventories of sandbox hosts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lakehouse_cli import inventory as lakehouse_inventory  # noqa: E402

PYTHON = sys.executable
SITE_DONE = re.compile(r"site\.yml: done, (\d+) tasks, hosts ok=\d+ changed=(\d+)")
# Each service's own line saying it serves (the JSON log lines of MinIO, Nessie and Trino
# carry it in their message field; PostgreSQL's are in its own JSON files).
READY_LINES = {
    "lakehouse-minio.service": r"API: |S3-API: ",
    "lakehouse-postgresql.service": r"database system is ready to accept connections",
    "lakehouse-postgresql-exporter.service": r"Listening on",
    "lakehouse-nessie.service": r"started in [0-9.]+s",
    "lakehouse-trino.service": r"SERVER STARTED",
    "lakehouse-prometheus.service": r"Server is ready to receive web requests",
    "lakehouse-node-exporter.service": r"Listening on",
}
POSTGRESQL_LOGS = "/var/log/lakehouse-postgresql/postgresql-*.json"
ARTIFACT_ROOT = "/usr/local/lib/lakehouse"  # roles/delivery/defaults/main.yml: delivery_artifact_root
SCRATCH = "/var/lib/lakehouse-benchmark"  # on the host, removed after; not its /tmp, a tmpfs docker cp cannot write to
# journal MESSAGE_IDs of systemd's "Starting <unit>" and "Started <unit>" (a unit without a
# start-up step logs only the second).
SYSTEMD_STARTING, SYSTEMD_STARTED = "7d4958e842da4a758f6c1cdc7b36dcc5", "39f53479d3a045ac8e11786248231fbf"


def run(*command: str, env: dict | None = None, cwd: Path = REPO) -> tuple[float, str]:
    start = time.monotonic()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    elapsed = time.monotonic() - start
    output = result.stdout + result.stderr
    if result.returncode != 0:
        sys.exit(f"benchmark: {' '.join(command)} failed (rc={result.returncode}):\n{output[-3000:]}")
    return elapsed, output


def lakehouse(command: str, inventory: str, env: dict | None = None) -> tuple[float, str]:
    return run(PYTHON, "-m", "lakehouse_cli", command, "-i", inventory, env=env)


def site_summary(output: str) -> tuple[int, int]:
    match = SITE_DONE.search(output)
    if not match:
        sys.exit("benchmark: no site.yml summary in the output of lakehouse up")
    return int(match.group(1)), int(match.group(2))


def hosts_of(inventory: str) -> list[str]:
    return lakehouse_inventory.load(lakehouse_inventory.resolve_source(inventory), None).hosts


def host_memory(hosts: list[str]) -> list[str]:
    """Memory per host: what its lakehouse units use, as systemd accounts it (Docker's own figure
    is empty for containers sharing the host's cgroup namespace)."""
    lines = []
    for host in hosts:
        out = docker_exec(
            host,
            "for unit in $(systemctl list-units 'lakehouse-*' --type=service --plain --no-legend | cut -d' ' -f1);"
            ' do echo "$unit $(systemctl show -p MemoryCurrent --value "$unit")"; done',
        )
        pairs = (line.partition(" ") for line in out.splitlines())
        units = {unit: int(value) for unit, _, value in pairs if value.isdigit()}
        lines.append(f"{host}  {sum(units.values()) / 2**20:7.0f} MiB in {len(units)} units")
    return lines


def median_run(label: str, runs: int, step) -> float:
    """Median wall time of `runs` calls of step() (each returns its seconds), the runs listed."""
    times = [step() for _ in range(runs)]
    middle = statistics.median(times)
    print(f"{label:<44} {middle:7.1f} s   (runs: {', '.join(f'{t:.1f}' for t in times)})", flush=True)
    return middle


# The floor, read on a sandbox host after a cold up.


def docker_exec(host: str, script: str) -> str:
    return run("docker", "exec", host, "sh", "-c", script)[1]


def unpack_seconds(host: str, archives: list[Path]) -> dict[str, float]:
    """Time to unpack each archive on the host itself (copied there first, untimed)."""
    seconds = {}
    for archive in archives:
        docker_exec(host, f"rm -rf {SCRATCH} && mkdir -p {SCRATCH}/out")
        run("docker", "cp", str(archive), f"{host}:{SCRATCH}/{archive.name}")
        extract = "unzip -q" if archive.suffix in (".zip", ".whl") else f"tar -C {SCRATCH}/out -xf"
        into = f" -d {SCRATCH}/out" if archive.suffix in (".zip", ".whl") else ""
        out = docker_exec(
            host,
            f"s=$(date +%s.%N); {extract} {SCRATCH}/{archive.name}{into}; e=$(date +%s.%N);"
            f" rm -rf {SCRATCH}; echo $s $e",
        )
        start, end = map(float, out.split()[-2:])
        seconds[archive.name] = end - start
    return seconds


def package_seconds(host: str, since: float) -> float:
    """Time apt spent installing since `since` (epoch seconds): the sum of its runs, each from its
    Start-Date to its End-Date in /var/log/apt/history.log (not the span from the first to the last
    run, which would count the converge's other work between them)."""
    total, start = 0.0, None
    for line in docker_exec(host, "cat /var/log/apt/history.log 2>/dev/null || true").splitlines():
        key, _, value = line.partition(": ")
        if key not in ("Start-Date", "End-Date"):
            continue
        stamp = datetime.strptime(" ".join(value.split()), "%Y-%m-%d %H:%M:%S").timestamp()
        if key == "Start-Date":
            start = stamp
        elif start is not None and start >= since:
            total += stamp - start
    return total


def start_to_ready(host: str) -> dict[str, float | None]:
    """Per lakehouse unit: seconds from systemd starting it (its last start) to its own ready line."""
    out = docker_exec(host, "journalctl -b -o json --no-pager -u 'lakehouse-*'")
    starts: dict[str, int] = {}
    ready: dict[str, int] = {}
    for line in out.splitlines():
        entry = json.loads(line)
        stamp = int(entry["__REALTIME_TIMESTAMP"])
        message_id, unit = entry.get("MESSAGE_ID"), entry.get("UNIT")
        if unit in READY_LINES and message_id in (SYSTEMD_STARTING, SYSTEMD_STARTED):
            # A start is its "Starting" line, or its "Started" line when no "Starting" came first.
            if message_id == SYSTEMD_STARTING or unit not in starts or unit in ready:
                starts[unit] = stamp
                ready.pop(unit, None)
            continue
        own = entry.get("_SYSTEMD_UNIT")
        message = entry.get("MESSAGE")
        if isinstance(message, list):  # journald stores non-UTF-8 messages as bytes
            message = bytes(message).decode(errors="replace")
        if own in READY_LINES and own in starts and own not in ready and re.search(READY_LINES[own], message or ""):
            ready[own] = stamp
    # PostgreSQL's log collector writes its ready line to its JSON files (postgresql.conf.j2).
    unit = "lakehouse-postgresql.service"
    for line in docker_exec(host, f"cat {POSTGRESQL_LOGS} 2>/dev/null || true").splitlines():
        entry = json.loads(line)
        when = datetime.strptime(entry["timestamp"], "%Y-%m-%d %H:%M:%S.%f %Z").replace(tzinfo=UTC)
        stamp = int(when.timestamp() * 1e6)
        if unit in starts and stamp >= starts[unit] and re.search(READY_LINES[unit], entry.get("message", "")):
            ready[unit] = min(stamp, ready.get(unit, stamp))
    return {unit: (ready[unit] - starts[unit]) / 1e6 if unit in ready else None for unit in starts}


def cached_archives(host: str) -> list[Path]:
    """The archives of the artifact cache that the converge unpacked on `host` (the table marks
    them `unpack`; the host has their versioned directory under the artifact root)."""
    table = json.loads(
        run(
            PYTHON,
            "-c",
            "import json, yaml; print(json.dumps(yaml.safe_load(open('roles/lakehouse/defaults/main/artifacts.yml'))))",
        )[1]
    )
    cache = Path(os.environ.get("LAKEHOUSE_CACHE", Path.home() / ".cache/lakehouse")) / "artifacts"
    found = []
    for name, entry in (table.get("lakehouse_artifacts") or {}).items():
        installed = f"{ARTIFACT_ROOT}/{name}/{entry['version']}"
        if entry.get("unpack") is not None and docker_exec(host, f"test -d {installed} && echo yes || true").strip():
            found += sorted((cache / name / str(entry["version"])).glob(f"*/{entry['filename']}"))[:1]
    return found


def print_floor(host: str, since: float) -> float:
    unpacks = unpack_seconds(host, cached_archives(host))
    packages = package_seconds(host, since)
    services = start_to_ready(host)
    print(f"floor on {host} (summed, nothing in parallel):")
    for name, seconds in unpacks.items():
        print(f"  unpack {name:<52} {seconds:7.1f} s")
    print(f"  debian packages (apt runs, summed)                  {packages:7.1f} s")
    for unit, seconds in sorted(services.items()):
        shown = f"{seconds:7.1f} s" if seconds is not None else "    n/a (no ready line in the journal)"
        print(f"  start to ready {unit:<44} {shown}")
    floor = sum(unpacks.values()) + packages + sum(s for s in services.values() if s is not None)
    print(f"  {'floor':<66} {floor:7.1f} s", flush=True)
    return floor


# The phases.


def print_setup_timings() -> None:
    timings = Path(os.environ.get("LAKEHOUSE_CACHE", Path.home() / ".cache/lakehouse")) / "setup-timings"
    if not timings.is_file():
        print("setup: no recorded timings (scripts/setup.sh records them when a step has work to do)")
        return
    print("setup, as last recorded per step (scripts/setup.sh):")
    last: dict[str, str] = {}
    for line in timings.read_text().splitlines():
        step, _, seconds = line.rpartition("\t")
        last[step] = seconds
    for step, seconds in last.items():
        print(f"  {step:<64} {int(seconds):5d} s")


def fresh_make_up(inventory: str) -> None:
    """`make up`'s phases in a fresh clone of this checkout's HEAD, on an empty cache."""
    scratch = Path(tempfile.mkdtemp(prefix="lakehouse-fresh-"))
    clone, cache = scratch / "lakehouse", scratch / "cache"
    env = dict(
        os.environ, LAKEHOUSE_CACHE=str(cache), GOCACHE=str(cache / "go-build"), GOMODCACHE=str(cache / "go-mod")
    )
    try:
        run("git", "clone", "-q", str(REPO), str(clone))
        phases = {
            "setup, all steps": run("env", f"SETUP_INVENTORY={inventory}", "scripts/setup.sh", env=env, cwd=clone)[0]
        }
        python = str(clone / ".venv" / "bin" / "python")
        phases["artifacts (fetch, build, verify)"] = run("scripts/fill_artifacts.sh", inventory, env=env, cwd=clone)[0]
        run(python, "-m", "lakehouse_cli", "down", "-i", inventory, env=env, cwd=clone)
        for phase, command in (("converge (lakehouse up)", "up"), ("verify", "verify")):
            phases[phase] = run(python, "-m", "lakehouse_cli", command, "-i", inventory, env=env, cwd=clone)[0]
        print("make up in a fresh clone on an empty cache (the Docker engine and Debian packages stay installed):")
        for line in (cache / "setup-timings").read_text().splitlines():
            step, _, seconds = line.rpartition("\t")
            print(f"  setup: {step:<57} {int(seconds):5d} s")
        for phase, seconds in [*phases.items(), ("make up, in all", sum(phases.values()))]:
            print(f"  {phase:<64} {seconds:5.0f} s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def cold_up(inventory: str) -> tuple[float, float]:
    """Remove the inventory's sandbox hosts, then time `lakehouse up`; returns (seconds, start epoch)."""
    lakehouse("down", inventory)
    since = time.time()
    seconds, output = lakehouse("up", inventory)
    site_summary(output)
    return seconds, since


def noop_up(inventory: str) -> float:
    seconds, output = lakehouse("up", inventory)
    tasks, changed = site_summary(output)
    if changed:
        sys.exit(f"benchmark: a no-op up changed {changed} tasks; the converge is not idempotent")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="inventories/sandbox", help="the one-host sandbox")
    parser.add_argument("--hosts-8", default="inventories/sandbox-8", help="the eight-host sandbox ('' to skip)")
    parser.add_argument("--runs", type=int, default=3, help="runs per no-op median (default 3)")
    parser.add_argument("--cold-runs", type=int, default=3, help="runs per cold-up median (default 3)")
    parser.add_argument("--fresh", action="store_true", help="also time make up's phases on an empty cache")
    args = parser.parse_args()

    print_setup_timings()
    if args.fresh:
        fresh_make_up(args.inventory)
    run("scripts/fill_artifacts.sh", args.inventory)

    last_start = [0.0]

    def one_cold() -> float:
        seconds, last_start[0] = cold_up(args.inventory)
        return seconds

    cold = median_run("cold up, warm artifact cache (1 host)", args.cold_runs, one_cold)
    host = hosts_of(args.inventory)[0]
    floor = print_floor(host, last_start[0])
    noop = median_run("no-op up (changed=0)", args.runs, lambda: noop_up(args.inventory))
    print(f"{'cold up / floor':<44} {cold / floor:7.2f}")
    print(f"{'no-op up / floor':<44} {noop / floor:7.2f}")
    for line in host_memory(hosts_of(args.inventory)):
        print(f"memory, 1 host:  {line}")

    if args.hosts_8:
        lakehouse("down", args.inventory)  # the eight hosts get the machine to themselves
        eight = median_run("cold up, warm artifact cache (8 hosts)", args.cold_runs, lambda: cold_up(args.hosts_8)[0])
        print(f"{'8 hosts / 1 host':<44} {eight / cold:7.2f}")
        for line in host_memory(hosts_of(args.hosts_8)):
            print(f"memory, 8 hosts: {line}")
        lakehouse("down", args.hosts_8)
        lakehouse("up", args.inventory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
