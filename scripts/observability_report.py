#!/usr/bin/env python3
"""What the lakehouse's Prometheus sees, and how fast its target-down alert follows a failure.

    .venv/bin/python scripts/observability_report.py [-i INVENTORY]
        [--kill UNIT --on CONTAINER] [--delete-pod POD | --stop WORKLOAD] [--kubeconfig PATH --namespace NS]

1. a table of every expected target (from the contracts): service, component, host, URL, whether
   Prometheus reads it as up, its last scrape duration, and what an anonymous scrape of it gets;
2. Prometheus's own resident memory (its process_resident_memory_bytes);
3. with --kill: `kill -9` of the unit's main process on a sandbox host (a container), then the
   seconds until LakehouseTargetDown fires for one of that host's targets and until it clears;
   with --delete-pod: the same for a deleted pod on a cluster (its controller replaces it: when
   the replacement answers within the alert's 30 s, the alert rightly never fires); with --stop, a
   workload (statefulset/NAME) scaled to no pod until the alert fires, then back to one.

Every wait is bounded (FIRE_SECONDS, CLEAR_SECONDS). Read-only but for the failure it causes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lakehouse_cli import contracts, monitoring, probe  # noqa: E402
from lakehouse_cli.cli import Session  # noqa: E402
from lakehouse_cli.table import render  # noqa: E402

FIRE_SECONDS = 300
CLEAR_SECONDS = 600
POLL_SECONDS = 1.0


class Prometheus:
    def __init__(self, contract: contracts.Contract):
        admin = contract.credential("admin")
        password = contracts.resolve_secret(admin["secret_ref"], contracts.secrets_dir(contract.site))
        self.contract, self.user, self.password = contract, admin["user"], password
        self.headers = probe.basic_auth(self.user, self.password)

    def api(self, path: str) -> dict:
        reply, answer = probe.get_json(f"{self.contract.url}/api/v1/{path}", self.contract.ca, self.headers)
        if answer is None:
            sys.exit(f"report: Prometheus answered {reply.status} {reply.detail} to {path}")
        return answer["data"]

    def value(self, query: str) -> float | None:
        result = self.api(f"query?query={quote(query)}")["result"]
        return float(result[0]["value"][1]) if result else None

    def firing(self, instance: str) -> bool:
        return any(
            alert["labels"].get("alertname") == "LakehouseTargetDown"
            and alert["labels"].get("instance") == instance
            and alert["state"] == "firing"
            for alert in self.api("alerts")["alerts"]
        )


def targets_table(found: list[contracts.Contract], prometheus: Prometheus) -> None:
    active = monitoring.active_targets(prometheus.contract, prometheus.user, prometheus.password)
    rows = []
    for url, (contract, target) in sorted(monitoring.expected(found).items()):
        seen = active.get(url, {})
        anonymous = probe.request(url, contract.ca)
        rows.append(
            (
                contract.service,
                target["component"],
                contract.host,
                url,
                "1" if seen.get("health") == "up" else "0",
                f"{seen.get('lastScrapeDuration', 0) * 1000:.0f} ms" if seen else "-",
                f"{anonymous.status or ''} {anonymous.detail}".strip(),
            )
        )
    print(render(("service", "component", "host", "URL", "up", "scrape", "anonymous scrape"), rows))
    memory = prometheus.value('process_resident_memory_bytes{service="observability"}')
    if memory is not None:
        print(f"\nPrometheus resident memory: {memory / 2**20:.0f} MiB")


def alert_timing(
    prometheus: Prometheus, instance: str, cause: list[str], what: str, recover: list[str] | None = None
) -> None:
    """Run `cause`, then time LakehouseTargetDown for `instance`: fired, then cleared (after running
    `recover`, when the cause does not heal by itself)."""
    if prometheus.firing(instance):
        sys.exit(f"report: LakehouseTargetDown already fires for {instance}")
    subprocess.run(cause, check=True, capture_output=True, text=True, timeout=60)
    start = time.monotonic()
    fired = cleared = None
    while time.monotonic() - start < FIRE_SECONDS and fired is None:
        if prometheus.firing(instance):
            fired = time.monotonic() - start
        time.sleep(POLL_SECONDS)
    if recover:
        subprocess.run(recover, check=True, capture_output=True, text=True, timeout=60)
    while fired is not None and time.monotonic() - start < CLEAR_SECONDS and cleared is None:
        if not prometheus.firing(instance):
            cleared = time.monotonic() - start
        time.sleep(POLL_SECONDS)
    fired_text = f"{fired:.0f} s" if fired is not None else f"not within {FIRE_SECONDS} s"
    cleared_text = f"{cleared:.0f} s" if cleared is not None else "-"
    print(f"\n{what}: LakehouseTargetDown for {instance} fired after {fired_text}, cleared after {cleared_text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="inventories/sandbox")
    parser.add_argument("--kill", metavar="UNIT", help="a unit whose main process gets kill -9")
    parser.add_argument("--on", metavar="CONTAINER", help="the sandbox host (container) of --kill")
    parser.add_argument("--delete-pod", metavar="POD")
    parser.add_argument("--stop", metavar="WORKLOAD", help="a workload (statefulset/NAME) scaled to 0, then to 1")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--namespace", default="lakehouse")
    parser.add_argument("--instance", help="the target (host:port) whose alert is timed")
    args = parser.parse_args()
    session = Session(argparse.Namespace(inventory=args.inventory, limit=None, extra_vars=[], verbose=0), sys.stdout)
    found = session.contracts()
    observability = next((c for c in found if c.service == "observability"), None)
    if observability is None:
        sys.exit(f"report: no observability contract for {args.inventory}; run: lakehouse up")
    prometheus = Prometheus(observability)
    targets_table(found, prometheus)
    if args.kill:
        cause = ["docker", "exec", args.on, "systemctl", "kill", "--signal=KILL", "--kill-whom=main", args.kill]
        alert_timing(prometheus, args.instance, cause, f"kill -9 of {args.kill} on {args.on}")
    kubectl = ["kubectl", f"--kubeconfig={args.kubeconfig}", "-n", args.namespace]
    if args.delete_pod:
        alert_timing(
            prometheus, args.instance, [*kubectl, "delete", "pod", args.delete_pod], f"deleted pod {args.delete_pod}"
        )
    if args.stop:
        scale = [*kubectl, "scale", args.stop, "--replicas"]
        alert_timing(prometheus, args.instance, [*scale, "0"], f"{args.stop} scaled to 0, then 1", [*scale, "1"])


if __name__ == "__main__":
    main()
