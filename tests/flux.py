"""Flux for the real test node: a Git server on loopback and Flux's three controllers.

    with GitServer(root) as git, Flux(node, work_dir) as flux:
        git.url                  # http://localhost:<port>/lakehouse.git, what Flux clones
        git.repository           # the bare repository on disk, what a test pushes to
        flux.reconcile(kind, name, namespace)   # ask for a reconcile now, as `flux reconcile` does

The Git server is `git http-backend` (Git's own smart HTTP server, a CGI program) behind a small
HTTP server on 127.0.0.1: Flux clones over http, https or ssh only. The controllers
(scripts/flux/build.sh) run out of cluster with the node's admin kubeconfig, their metrics, health
and artifact addresses on loopback; their CRDs are applied first. Every wait is bounded.
"""

from __future__ import annotations

import os
import subprocess
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from controlplane import build_env, wait_for
from kubernetes import client, config
from minio_server import free_port

NAMESPACE = "flux-system"
CONTROLLERS = ("source-controller", "kustomize-controller", "helm-controller")
GROUPS = {
    "GitRepository": ("source.toolkit.fluxcd.io", "v1", "gitrepositories"),
    "Kustomization": ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations"),
    "HelmRelease": ("helm.toolkit.fluxcd.io", "v2", "helmreleases"),
}


class _GitHandler(BaseHTTPRequestHandler):
    root: Path

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._backend()

    def do_POST(self):  # noqa: N802
        self._backend()

    def _backend(self):
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "REMOTE_ADDR": self.client_address[0],
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        result = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60)
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


class GitServer:
    """A bare repository `lakehouse.git` served read-only over smart HTTP on 127.0.0.1."""

    def __init__(self, root: Path, branch: str = "main"):
        self.root, self.branch = root, branch
        self.repository = root / "lakehouse.git"

    def __enter__(self) -> GitServer:
        subprocess.run(["git", "init", "-q", "--bare", "-b", self.branch, str(self.repository)], check=True)
        handler = type("Handler", (_GitHandler,), {"root": self.root})
        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.url = f"http://localhost:{self._server.server_address[1]}/lakehouse.git"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()


class Flux:
    """Flux's controllers against the node's API server, in namespace flux-system."""

    def __init__(self, node, work_dir: Path):
        self.node, self.dir = node, work_dir
        self.processes: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> Flux:
        build = build_env("flux")
        self.api = config.new_client_from_config(config_file=str(self.node.kubeconfig))
        extensions = client.ApiextensionsV1Api(self.api)
        for crd_file in sorted(Path(build["CRD_DIR"]).rglob("*.yaml")):
            for crd in yaml.safe_load_all(crd_file.read_text()):
                if crd:
                    extensions.create_custom_resource_definition(crd)
        core = client.CoreV1Api(self.api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
        (self.dir / "artifacts").mkdir(parents=True, exist_ok=True)
        storage_port = free_port()
        env = {**os.environ, "KUBECONFIG": str(self.node.kubeconfig), "RUNTIME_NAMESPACE": NAMESPACE}
        for name in CONTROLLERS:
            health = free_port()
            args = [
                str(Path(build["BIN_DIR"]) / name),
                f"--metrics-addr=127.0.0.1:{free_port()}",
                f"--health-addr=127.0.0.1:{health}",
                "--enable-leader-election=false",
                "--log-level=info",
            ]
            if name == "source-controller":
                args += [
                    f"--storage-path={self.dir / 'artifacts'}",
                    f"--storage-addr=127.0.0.1:{storage_port}",
                    f"--storage-adv-addr=localhost:{storage_port}",
                ]
            log = (self.dir / f"{name}.log").open("wb")
            self.processes[name] = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
            wait_for(f"{name} ready", lambda name=name, port=health: self._ready(name, port), timeout=60)
        return self

    def __exit__(self, *exc):
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.api.close()

    def _ready(self, name: str, port: int) -> bool:
        if self.processes[name].poll() is not None:
            raise RuntimeError(f"{name} exited ({self.processes[name].returncode}):\n{self.log_tail()}")
        return _answers(f"http://127.0.0.1:{port}/readyz")

    def objects(self, kind: str, namespace: str) -> list[dict]:
        group, version, plural = GROUPS[kind]
        found = client.CustomObjectsApi(self.api).list_namespaced_custom_object(group, version, namespace, plural)
        return found["items"]

    def create(self, document: dict) -> None:
        group, version, plural = GROUPS[document["kind"]]
        client.CustomObjectsApi(self.api).create_namespaced_custom_object(
            group, version, document["metadata"]["namespace"], plural, document
        )

    def delete(self, kind: str, name: str, namespace: str) -> None:
        group, version, plural = GROUPS[kind]
        client.CustomObjectsApi(self.api).delete_namespaced_custom_object(group, version, namespace, plural, name)

    def reconcile(self, kind: str, name: str, namespace: str) -> None:
        """Ask for a reconcile now (the annotation `flux reconcile` sets)."""
        group, version, plural = GROUPS[kind]
        stamp = datetime.now(UTC).isoformat()
        client.CustomObjectsApi(self.api).patch_namespaced_custom_object(
            group,
            version,
            namespace,
            plural,
            name,
            {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}},
        )

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(
            f"--- {name}\n" + "\n".join((self.dir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
            for name in self.processes
        )


def ready(document: dict) -> bool:
    """A Flux object's Ready condition is True for its current generation."""
    status = document.get("status") or {}
    return any(
        c["type"] == "Ready"
        and c["status"] == "True"
        and status.get("observedGeneration") == document["metadata"]["generation"]
        for c in status.get("conditions") or []
    )


def conditions(documents: list[dict]) -> str:
    """Each object's conditions, one line: what a failed wait reports."""
    lines = []
    for d in documents:
        found = (d.get("status") or {}).get("conditions") or []
        said = ", ".join(f"{c['type']}={c['status']} ({c.get('message', '')[:200]})" for c in found)
        lines.append(f"{d['kind']}/{d['metadata']['name']}: {said}")
    return "\n".join(lines)


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
