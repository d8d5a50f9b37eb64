#!/usr/bin/env python3
"""Benchmark `lakehouse up`: a cold up with a warm artifact cache, then a no-op up.

    .venv/bin/python scripts/benchmark_up.py [-i INVENTORY]

1. fills the artifact cache (playbooks/artifacts.yml), so downloads and builds are not timed;
2. `lakehouse down`: the sandbox hosts are removed (secrets, contracts and cache are kept);
3. times `lakehouse up` on new hosts (cold), then `lakehouse up` again (no-op, must change nothing);
4. prints both wall times, the changed counts and the memory each sandbox host uses.

The lakehouse is left up afterwards. Only for inventories with sandbox hosts, which it removes first.
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

from lakehouse_cli import inventory as lakehouse_inventory  # noqa: E402

PYTHON = sys.executable
SITE_DONE = re.compile(r"site\.yml: done, (\d+) tasks, hosts ok=\d+ changed=(\d+)")


def run(*command: str) -> tuple[float, str]:
    start = time.monotonic()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    output = result.stdout + result.stderr
    if result.returncode != 0:
        sys.exit(f"benchmark: {' '.join(command)} failed (rc={result.returncode}):\n{output[-3000:]}")
    return elapsed, output


def lakehouse(command: str, inventory: str) -> tuple[float, str]:
    return run(PYTHON, "-m", "lakehouse_cli", command, "-i", inventory)


def site_summary(output: str) -> str:
    match = SITE_DONE.search(output)
    return f"{match.group(1)} tasks, hosts changed={match.group(2)}" if match else "no site.yml summary"


def host_memory(inventory: str) -> list[str]:
    """Memory per sandbox container, as Docker reports it."""
    hosts = lakehouse_inventory.load(lakehouse_inventory.resolve_source(inventory), None).hosts
    _, stats = run("docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *hosts)
    return stats.strip().splitlines()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="inventories/sandbox")
    args = parser.parse_args()

    cache_seconds, _ = run(
        str(Path(PYTHON).parent / "ansible-playbook"), "-i", args.inventory, "playbooks/artifacts.yml"
    )
    down_seconds, _ = lakehouse("down", args.inventory)
    cold_seconds, cold = lakehouse("up", args.inventory)
    noop_seconds, noop = lakehouse("up", args.inventory)

    print(f"artifact cache check (already warm) {cache_seconds:7.1f} s")
    print(f"down (remove sandbox hosts)         {down_seconds:7.1f} s")
    print(f"cold up, warm artifact cache        {cold_seconds:7.1f} s   ({site_summary(cold)})")
    print(f"no-op up                            {noop_seconds:7.1f} s   ({site_summary(noop)})")
    for line in host_memory(args.inventory):
        print(f"memory after up: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
