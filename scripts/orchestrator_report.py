#!/usr/bin/env python3
"""The orchestrator of an inventory, measured: what its endpoints answer, its memory, its start.

    .venv/bin/python scripts/orchestrator_report.py [-i INVENTORY] [--restart] [--run YYYY-MM-DD]

1. every endpoint of the orchestrator contract (UI/API, health) with what an anonymous request,
   each well-known default credential and the generated credential get;
2. on a host that is a container (sandbox or provisioned), each component's unit and its memory
   (systemd's MemoryCurrent);
   on a cluster (KUBECONFIG), its pod and the pod's memory (working set, from the cgroup of a node
   on this machine);
3. with --restart: every unit of the orchestrator restarted at once, then the seconds until each
   component's readiness command (the one the delivery engine waits on) succeeds; on a cluster,
   its pod deleted, then the seconds until its replacement is Ready (every container's probe);
4. with --run: the sample job daily_ingest run for that day through the orchestrator's API, its
   seconds from trigger to finish, and the rows Trino then reads for the day.

Every wait is bounded (READY_SECONDS); exits non-zero when an anonymous or default-credential
request is not refused, the generated credential is, or a component is not ready in time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from reliability_report import on_host, run_on_host, units  # noqa: E402 (scripts/, the script's own directory)

from lakehouse_cli import checks, orchestrator, probe  # noqa: E402
from lakehouse_cli.cli import Session  # noqa: E402
from lakehouse_cli.table import render  # noqa: E402

READY_SECONDS = 300
POLL_SECONDS = 0.5


def endpoint_table(contract, ctx: checks.VerifyContext) -> bool:
    admin = contract.credential("admin")
    generated = (admin["user"], ctx.secret(contract, admin["secret_ref"]))
    rows, ok = [], True
    for label, user, password in [
        ("anonymous", None, None),
        *[(f"default {u}/{p}", u, p) for u, p in checks.DEFAULT_ORCHESTRATOR_USERS],
        (f"generated ({admin['user']})", *generated),
    ]:
        url, reply = orchestrator.access(contract, user, password)
        request, status = url.removeprefix(contract.url) or "/", reply.status
        wanted = (200, 201) if label.startswith("generated") else (401, 403)
        ok &= status in wanted
        rows.append((contract.url, request, label, str(status), "pass" if status in wanted else "FAIL"))
    health = probe.request(contract.readiness_url, contract.ca).status
    rows.append(
        (contract.readiness_url, "GET", "anonymous (liveness)", str(health), "pass" if health == 200 else "FAIL")
    )
    print(render(("endpoint", "request", "credential", "answer", "refused/admitted as it should"), rows))
    return ok


def component(unit: str, service: str) -> str:
    """The component a unit runs: lakehouse-<service>[-<component>].service."""
    name = unit.removesuffix(".service").removeprefix(f"lakehouse-{service}").lstrip("-")
    return name or "proxy"


def memory_table(host: str, service: str) -> None:
    rows, total = [], 0
    for unit in units(host, f"lakehouse-{service}*"):
        memory = int(on_host(host, "systemctl", "show", "-p", "MemoryCurrent", "--value", unit).strip() or 0)
        total += memory
        rows.append((unit, host, f"{memory / 2**20:.0f} MiB"))
    rows.append(("all", host, f"{total / 2**20:.0f} MiB"))
    print()
    print(render(("unit", "host", "memory"), rows))


def restart_table(host: str, service: str, config_dir: str) -> bool:
    """Every unit restarted at once; each component's readiness polled on its own, bounded."""
    names = units(host, f"lakehouse-{service}*")
    on_host(host, "systemctl", "restart", *names)
    started = time.monotonic()

    def ready_after(unit: str) -> float | None:
        while time.monotonic() - started < READY_SECONDS:
            probe_command = ["/usr/bin/python3", f"{config_dir}/health.py", component(unit, service)]
            if run_on_host(host, *probe_command).returncode == 0:
                return time.monotonic() - started
            time.sleep(POLL_SECONDS)
        return None

    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        ready = dict(zip(names, pool.map(ready_after, names), strict=True))
    rows = [(unit, f"{seconds:.1f} s" if seconds is not None else f"not ready within {READY_SECONDS} s")
            for unit, seconds in sorted(ready.items(), key=lambda item: item[1] or READY_SECONDS)]  # fmt: skip
    print()
    print(render(("unit restarted", "ready after"), rows))
    return None not in ready.values()


def pod_tables(contract, service: str, restart: bool) -> bool:
    """The orchestrator's pod on its cluster: its memory, and with `restart` its replacement's start."""
    import glob

    from kubernetes import client, config

    config.load_kube_config()
    core = client.CoreV1Api()
    namespace = contract.url.split("://", 1)[1].split(".")[1]  # https://<service>.<namespace>.svc...
    selector = f"app.kubernetes.io/name={service},app.kubernetes.io/part-of=lakehouse"

    def ready_pod(other_than: str = ""):
        for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
            conditions = {c.type: c.status for c in pod.status.conditions or []}
            if pod.metadata.uid != other_than and conditions.get("Ready") == "True":
                return pod
        return None

    pod = ready_pod()
    if pod is None:
        print(f"\nno ready pod of {service} in {namespace}")
        return False
    cgroups = glob.glob(f"/sys/fs/cgroup/memory/kubepods*/**/pod{pod.metadata.uid}", recursive=True)
    memory = "not on this machine"
    if cgroups:
        stat = dict(line.split() for line in Path(cgroups[0], "memory.stat").read_text().splitlines())
        usage = int(Path(cgroups[0], "memory.usage_in_bytes").read_text())
        memory = f"{(usage - int(stat['total_inactive_file'])) / 2**20:.0f} MiB"
    print()
    print(render(("pod", "containers", "memory (working set)"),
                 [(pod.metadata.name, " ".join(c.name for c in pod.spec.containers), memory)]))  # fmt: skip
    if not restart:
        return True
    core.delete_namespaced_pod(pod.metadata.name, namespace)
    started = time.monotonic()
    while (replacement := ready_pod(other_than=pod.metadata.uid)) is None:
        if time.monotonic() - started > READY_SECONDS:
            print(f"\nno replacement of {pod.metadata.name} ready within {READY_SECONDS} s")
            return False
        time.sleep(POLL_SECONDS)
    print()
    seconds = f"{time.monotonic() - started:.1f} s"
    print(
        render(("pod deleted", "replacement", "ready after"), [(pod.metadata.name, replacement.metadata.name, seconds)])
    )
    return True


def run_table(contract, ctx: checks.VerifyContext, day: datetime.date) -> None:
    admin = contract.credential("admin")
    started = time.monotonic()
    state = orchestrator.run_job(
        contract, "daily_ingest", day, admin["user"], ctx.secret(contract, admin["secret_ref"]), READY_SECONDS
    )
    seconds = time.monotonic() - started
    print()
    rows = [("daily_ingest", day.isoformat(), state, f"{seconds:.1f} s", str(checks.ingested_rows(ctx, day)))]
    print(render(("job", "day", "state", "trigger to finish", "rows read back"), rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="inventories/sandbox")
    parser.add_argument("--restart", action="store_true", help="restart the orchestrator and time each component")
    parser.add_argument("--run", type=datetime.date.fromisoformat, metavar="DAY", help="run daily_ingest for DAY")
    args = parser.parse_args()
    session = Session(argparse.Namespace(inventory=args.inventory, limit=None, extra_vars=[], verbose=0), sys.stdout)
    found = session.contracts()
    ctx = checks.VerifyContext(contracts=found)
    published = [contract for contract in found if contract.service == "orchestrator"]
    if not published:
        sys.exit(f"report: {args.inventory} publishes no orchestrator contract; run: lakehouse up")
    ok = True
    containers = set(session.inventory.containers)
    for contract in published:
        service = contract.data["implementation"]
        ok &= endpoint_table(contract, ctx)
        if contract.host in containers:
            memory_table(contract.host, service)
            if args.restart:
                ok &= restart_table(contract.host, service, f"/etc/lakehouse-{service}")
        elif ".svc." in contract.url:
            ok &= pod_tables(contract, service, args.restart)
        if args.run:
            run_table(contract, ctx, args.run)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
