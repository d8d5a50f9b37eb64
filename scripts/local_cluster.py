#!/usr/bin/env python3
"""A local single-node Kubernetes cluster for trying the Helm delivery: the real test node of
tests/node.py (control plane, kubelet, containerd, kube-proxy, CoreDNS), kept running in the
background until it is stopped.

    local_cluster.py start STATE_DIR   start it (a no-op when it runs); wait until it is Ready
    local_cluster.py stop STATE_DIR    stop it; the machine is put back as it was
    local_cluster.py status STATE_DIR  exit 0 when it runs

STATE_DIR receives `kubeconfig` (admin) and `containerd.sock` (a link to the node's containerd),
the paths an inventory names (inventories/sandbox-k8s), plus `pid` and `cluster.log`. One node
per machine, root only: kubelet and the CNI plugins change sysctls, netfilter and mounts, which
the stop undoes.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 300  # seconds, start of the control plane and node included


def running(state: Path) -> int | None:
    """The pid of the cluster's keeper, if it runs."""
    try:
        pid = int((state / "pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def keep(state: Path) -> None:
    """The background process: the node lives as long as this process, stopped by SIGTERM."""
    sys.path.insert(0, str(REPO / "tests"))
    from node import RealNode

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    with RealNode() as node:
        node.volumes(8, "10Gi", prefix="local")
        for link, target in (("kubeconfig", node.kubeconfig), ("containerd.sock", node.containerd_socket)):
            (state / link).unlink(missing_ok=True)
            (state / link).symlink_to(target)
        (state / "ready").touch()
        while not stop:
            signal.pause()
    for name in ("ready", "kubeconfig", "containerd.sock", "pid"):
        (state / name).unlink(missing_ok=True)


def start(state: Path) -> int:
    if running(state):
        print(f"local cluster: running ({state})")
        return 0
    state.mkdir(parents=True, exist_ok=True)
    (state / "ready").unlink(missing_ok=True)
    if os.fork() == 0:  # the keeper: detached from the caller's session and output
        os.setsid()
        log = os.open(state / "cluster.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        (state / "pid").write_text(str(os.getpid()))
        try:
            keep(state)
        finally:
            os._exit(0)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if (state / "ready").exists():
            print(f"local cluster: started; kubeconfig {state / 'kubeconfig'}")
            return 0
        if not running(state) and (state / "pid").exists():
            break
        time.sleep(0.5)
    tail = (state / "cluster.log").read_text(errors="replace").splitlines()[-30:]
    print("local cluster: did not start\n" + "\n".join(tail), file=sys.stderr)
    stop(state)
    return 1


def stop(state: Path) -> int:
    pid = running(state)
    if not pid:
        print("local cluster: not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    for _ in range(240):  # the node's teardown deletes pods first: bounded, a minute or two
        if not running(state):
            print("local cluster: stopped")
            return 0
        time.sleep(0.5)
    print(f"local cluster: still stopping (pid {pid}); see {state / 'cluster.log'}", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("state_dir", type=Path)
    args = parser.parse_args()
    state = args.state_dir.expanduser()
    if args.action == "status":
        return 0 if running(state) else 1
    return start(state) if args.action == "start" else stop(state)


if __name__ == "__main__":
    sys.exit(main())
