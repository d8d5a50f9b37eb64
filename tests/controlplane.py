"""A real Kubernetes control plane for tests, on loopback only, with no container runtime.

kine (etcd API over SQLite) stores, kube-apiserver serves, kube-controller-manager and
kube-scheduler turn Deployments into scheduled Pods, and kwok plays the kubelet of fake Nodes so
those Pods become Ready. The binaries come from scripts/controlplane/build.sh.

    with ControlPlane() as cp:
        subprocess.run(["helm", "list"], env=cp.env, check=True)

Plain helper module, not a conftest: test modules build their own fixtures on top of it.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import http.client
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parent.parent
BINARIES = ("kine", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "helm")
NODES = ("kwok-node-0", "kwok-node-1")
# kwok adopts the Nodes carrying this annotation (its documented fake-node marker).
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
SERVICE_CIDR = "10.96.0.0/16"  # only allocated from, never routed


class ControlPlaneError(RuntimeError):
    """The control plane could not be found, started or reached."""


CACHE = Path(os.environ.get("LAKEHOUSE_CACHE", Path.home() / ".cache" / "lakehouse"))
# `make test` builds OpenTofu, then the Kubernetes tooling, in the background while the tiers that
# need neither run (scripts/setup.sh); each build writes its exit status to <name>-build.rc when it
# ends, its output to <name>-build.log.
BUILD_WAIT_SECONDS = 3600


def wait_for_build(name: str = "controlplane", timeout: float = BUILD_WAIT_SECONDS, poll: float = 5.0) -> None:
    """Wait, bounded, for the background build `name` (tofu, controlplane) to end; fail if it failed.

    Nothing to wait for when no build was started in the background (no log) or it has ended.
    """
    status_file, log = CACHE / f"{name}-build.rc", CACHE / f"{name}-build.log"
    if not log.exists():
        return
    deadline = time.monotonic() + timeout
    while not status_file.exists():
        if time.monotonic() > deadline:
            raise ControlPlaneError(f"the {name} build did not end within {timeout:.0f} s; see {log}")
        time.sleep(poll)
    status = status_file.read_text().strip()
    if status != "0":
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise ControlPlaneError(f"the {name} build failed (exit {status}); last lines of {log}:\n{tail}")


def build_env(name: str = "controlplane") -> dict[str, str]:
    """Pins and output paths as scripts/<name>/build.sh reports them, so the two never disagree."""
    script = REPO / "scripts" / name / "build.sh"
    out = subprocess.run(["bash", str(script), "--print-env"], check=True, capture_output=True, text=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in each child: the kernel kills it if the test process dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _PKI:
    """A throwaway CA with the certificates the components present to each other."""

    def __init__(self, directory: Path):
        self.dir = directory
        now = datetime.datetime.now(datetime.UTC)
        self._validity = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2))
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lakehouse-test-ca")])
        usage = x509.KeyUsage(True, False, False, False, False, True, True, False, False)
        self.ca_cert = (
            self._builder(name, self.ca_key.public_key(), name)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_crt, self.ca_key_file = self._write("ca", self.ca_cert, self.ca_key)

    def _builder(self, subject: x509.Name, public_key, issuer: x509.Name) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._validity[0])
            .not_valid_after(self._validity[1])
        )

    def _write(self, stem: str, cert: x509.Certificate, key) -> tuple[Path, Path]:
        crt, key_file = self.dir / f"{stem}.crt", self.dir / f"{stem}.key"
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_file.chmod(0o600)
        return crt, key_file

    def issue(
        self,
        stem: str,
        common_name: str,
        groups: tuple[str, ...] = (),
        server: bool = False,
        addresses: tuple[str, ...] = (),
    ):
        """Client cert (CN = user, O = groups, as the API server reads them) or a serving cert.

        A serving cert names loopback, the kubernetes Service and any extra `addresses` (IPs or names).
        """
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
        purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            self._builder(x509.Name(attrs), key.public_key(), self.ca_cert.subject)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        )
        if server:
            # In-cluster names too, so a client using the kubernetes Service name would verify.
            names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
            ips = ["127.0.0.1", str(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))]
            for extra in addresses:
                try:
                    ips.append(str(ipaddress.ip_address(extra)))
                except ValueError:
                    names.append(extra)
            sans = [x509.DNSName(n) for n in dict.fromkeys(names)]
            sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(ips)]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return self._write(stem, builder.sign(self.ca_key, hashes.SHA256()), key)

    def service_account_keys(self) -> tuple[Path, Path]:
        """RSA pair the API server signs ServiceAccount tokens with (RS256, what every client expects)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub, priv = self.dir / "sa.pub", self.dir / "sa.key"
        pub.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        priv.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        priv.chmod(0o600)
        return pub, priv


class ControlPlane:
    """Context manager: starts every component, waits until it is usable, stops all on exit.

    Attributes once entered: kubeconfig (admin, system:masters), env (for subprocesses: KUBECONFIG,
    helm on PATH, helm's state kept in the temp dir), bin_dir, versions (the build pins),
    server (URL), nodes (kwok Node names), startup_seconds.

    Subclasses (tests/node.py) reuse the PKI, the store, API server, controller-manager and
    scheduler, and replace the nodes: `address` is where the API server binds and advertises,
    `_apiserver_flags` adds to its flags, `_start_nodes` brings up whatever runs the Pods.
    """

    address = "127.0.0.1"
    binaries = BINARIES
    dir_prefix = "lakehouse-controlplane-"

    def __init__(self, bin_dir: Path | str | None = None, startup_timeout: float = 180.0):
        self.versions = build_env()
        self.bin_dir = Path(bin_dir or os.environ.get("LAKEHOUSE_CONTROLPLANE_BIN") or self.versions["BIN_DIR"])
        self.kwok_stages = Path(self.versions["KWOK_STAGES"])
        missing = [name for name in self.binaries if not (self.bin_dir / name).is_file()]
        if not self.kwok_stages.is_file():
            missing.append(self.kwok_stages.name)
        if missing:
            raise ControlPlaneError(
                f"control plane binaries missing from {self.bin_dir}: {', '.join(missing)}; "
                "run scripts/controlplane/build.sh"
            )
        self.startup_timeout = startup_timeout
        self.nodes = NODES
        self._procs: list[tuple[str, subprocess.Popen]] = []
        self.dir: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        started = time.monotonic()
        self.dir = Path(tempfile.mkdtemp(prefix=self.dir_prefix))
        try:
            self._start_all(deadline=started + self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, grace: float = 10.0) -> None:
        """Stop newest first, one at a time: SIGTERM, then SIGKILL after `grace` seconds.

        One at a time because the API server shuts down in about a second while its store is up,
        but hangs until killed when kine goes away at the same moment.
        """
        for _, proc in reversed(self._procs):
            proc.terminate()  # a no-op on a process already reaped
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._procs.clear()
        if self.dir and not os.environ.get("LAKEHOUSE_CONTROLPLANE_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def _start_all(self, deadline: float) -> None:
        pki = self._start_control_plane(deadline)
        self._start_nodes(pki, deadline)
        # Pods are refused until the ServiceAccount controller has made the namespace's default SA.
        sa_path = "/api/v1/namespaces/default/serviceaccounts/default"
        self._wait("default ServiceAccount", lambda: self.request("GET", sa_path)[0] == 200, deadline)

    def _apiserver_flags(self, pki: _PKI) -> list[str]:
        """What differs between tiers; here: no kubelet, nothing to publish for the kubernetes Service."""
        # Endpoints may not hold a loopback address, so do not publish one for the kubernetes Service.
        return ["--endpoint-reconciler-type=none"]

    def _start_control_plane(self, deadline: float) -> _PKI:
        """kine, kube-apiserver, kube-controller-manager, kube-scheduler; returns the PKI for more certs."""
        d = self.dir
        pki = self.pki = _PKI(d)
        self.ca = pki.ca_crt
        serving = pki.issue("apiserver", "kube-apiserver", server=True, addresses=(self.address,))
        sa_pub, sa_key = pki.service_account_keys()
        ports = {name: _free_port() for name in ("kine", "apiserver", "kcm", "scheduler")}
        self.port = ports["apiserver"]
        self.server = f"https://{self.address}:{self.port}"
        # The built-in RBAC bindings know these user names; admin and kwok get system:masters.
        self.admin_cert = pki.issue("admin", "lakehouse-admin", ("system:masters",))
        self.kubeconfig = self._kubeconfig("admin", self.admin_cert)
        kcm_cfg = self._kubeconfig("kcm", pki.issue("kcm", "system:kube-controller-manager"))
        sched_cfg = self._kubeconfig("scheduler", pki.issue("scheduler", "system:kube-scheduler"))
        # Serving certs from our CA, so their /healthz can be checked with verification on.
        kcm_tls = pki.issue("kcm-serving", "kube-controller-manager", server=True)
        sched_tls = pki.issue("scheduler-serving", "kube-scheduler", server=True)

        self._spawn(
            "kine",
            [
                f"--listen-address=127.0.0.1:{ports['kine']}",
                f"--endpoint=sqlite://{d}/state.db?_journal_mode=WAL&_busy_timeout=30000&_txlock=immediate&cache=shared",
                "--metrics-bind-address=0",  # its default is :8080 on every interface
            ],
        )
        self._wait("kine", lambda: self._tcp_open(ports["kine"]), deadline)
        self._spawn(
            "kube-apiserver",
            [
                f"--bind-address={self.address}",
                f"--secure-port={self.port}",
                f"--advertise-address={self.address}",
                *self._apiserver_flags(pki),
                f"--etcd-servers=http://127.0.0.1:{ports['kine']}",
                f"--tls-cert-file={serving[0]}",
                f"--tls-private-key-file={serving[1]}",
                f"--client-ca-file={pki.ca_crt}",
                "--anonymous-auth=false",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--profiling=false",
            ],
        )
        # Only once ready: before RBAC's bootstrap roles exist the controller-manager is refused and exits.
        self._wait("kube-apiserver /readyz", lambda: self.request("GET", "/readyz")[0] == 200, deadline)
        self._spawn(
            "kube-controller-manager",
            [
                *self._component_flags(kcm_cfg, ports["kcm"], kcm_tls),
                # Each controller gets its own ServiceAccount and RBAC role, as on a real cluster.
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={pki.ca_crt}",
                f"--cluster-signing-cert-file={pki.ca_crt}",
                f"--cluster-signing-key-file={pki.ca_key_file}",
            ],
        )
        self._spawn("kube-scheduler", self._component_flags(sched_cfg, ports["scheduler"], sched_tls))
        self._wait("kube-controller-manager /healthz", lambda: self._healthz(ports["kcm"]), deadline)
        self._wait("kube-scheduler /healthz", lambda: self._healthz(ports["scheduler"]), deadline)
        return pki

    def _start_nodes(self, pki: _PKI, deadline: float) -> None:
        """kwok and its fake Nodes."""
        kwok_cfg = self._kubeconfig("kwok", pki.issue("kwok", "kwok-controller", ("system:masters",)))
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={kwok_cfg}",
                f"--config={self.kwok_stages}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={'='.join(KWOK_ANNOTATION)}",
                "--node-lease-duration-seconds=40",
                "--cidr=10.244.0.0/16",
                "--node-ip=10.0.0.1",
            ],
        )

        for name in self.nodes:
            status, body = self.request("POST", "/api/v1/nodes", self._node(name))
            if status not in (201, 409):
                raise ControlPlaneError(f"creating Node {name}: HTTP {status} {body}")
        self._wait("kwok nodes Ready", self._nodes_ready, deadline)

    # -- pieces ------------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], executable: Path | str | None = None) -> subprocess.Popen:
        """Start bin_dir/name (or `executable`), logging to name.log in the temp dir."""
        with open(self.dir / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                [str(executable or self.bin_dir / name), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                # Only the kernel can clean up after a SIGKILLed test run.
                preexec_fn=_die_with_parent,
            )
        self._procs.append((name, proc))
        return proc

    def _component_flags(self, kubeconfig: Path, port: int, tls: tuple[Path, Path]) -> list[str]:
        """Flags shared by controller-manager and scheduler: own kubeconfig, HTTPS on loopback."""
        return [
            f"--tls-cert-file={tls[0]}",
            f"--tls-private-key-file={tls[1]}",
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--leader-elect=false",
        ]

    def _kubeconfig(self, stem: str, cert: tuple[Path, Path]) -> Path:
        path = self.dir / f"{stem}.kubeconfig"
        config = {  # JSON is YAML, and every client here reads it
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "lakehouse-test",
            "clusters": [
                {"name": "lakehouse-test", "cluster": {"server": self.server, "certificate-authority": str(self.ca)}}
            ],
            "users": [{"name": stem, "user": {"client-certificate": str(cert[0]), "client-key": str(cert[1])}}],
            "contexts": [{"name": "lakehouse-test", "context": {"cluster": "lakehouse-test", "user": stem}}],
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)  # helm warns about a group-readable kubeconfig
        return path

    @staticmethod
    def _node(name: str) -> dict:
        """A Node as the kwok docs describe it: kwok fills in status, leases and readiness."""
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1], "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            },
        }

    def _nodes_ready(self) -> bool:
        status, body = self.request("GET", "/api/v1/nodes")
        if status != 200:
            return False
        ready = {
            item["metadata"]["name"]
            for item in body["items"]
            for cond in item.get("status", {}).get("conditions", [])
            if cond["type"] == "Ready" and cond["status"] == "True"
        }
        return ready >= set(self.nodes)

    @staticmethod
    def _tcp_open(port: int) -> bool:
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    def _healthz(self, port: int) -> bool:
        # /healthz is open to unauthenticated callers on both components.
        ctx = ssl.create_default_context(cafile=str(self.ca))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        finally:
            conn.close()

    def request(self, method: str, path: str, body: dict | None = None, authenticated: bool = True):
        """One HTTPS call to the API server; returns (status, parsed JSON or text)."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if authenticated:
            ctx.load_cert_chain(*map(str, self.admin_cert))
        conn = http.client.HTTPSConnection(self.address, self.port, context=ctx, timeout=10)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
        finally:
            conn.close()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text

    def _wait(self, what: str, ready, deadline: float, interval: float = 0.25) -> None:
        """Poll `ready` until true; bounded by the shared deadline and an attempt count."""
        last: Exception | None = None
        for _ in range(int(self.startup_timeout / interval) + 1):
            self._check_alive()
            try:
                if ready():
                    return
            except (OSError, http.client.HTTPException) as err:  # not listening yet, TLS not up yet...
                last = err
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        raise ControlPlaneError(f"{what} not ready in time (last error: {last})\n{self.logs()}")

    def _check_alive(self) -> None:
        dead = [(name, proc.returncode) for name, proc in self._procs if proc.poll() is not None]
        if dead:
            raise ControlPlaneError(f"exited early: {dead}\n{self.logs()}")

    def logs(self, lines: int = 15) -> str:
        """The last lines of each component's log, for failure messages."""
        out = []
        for name, _ in self._procs:
            text = (self.dir / f"{name}.log").read_text(errors="replace").splitlines()
            out.append(f"--- {name} ---\n" + "\n".join(text[-lines:]))
        return "\n".join(out)

    @property
    def env(self) -> dict[str, str]:
        helm = self.dir / "helm"
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            # Keep helm's repositories and cache out of $HOME.
            "HELM_CACHE_HOME": str(helm / "cache"),
            "HELM_CONFIG_HOME": str(helm / "config"),
            "HELM_DATA_HOME": str(helm / "data"),
        }


def static_volume(api, name: str, path: str, size: str = "1Gi", claim: tuple[str, str] | None = None) -> None:
    """A PersistentVolume with no storage class, for a StatefulSet's claim on kwok (no provisioner
    runs there); `claim` (namespace, name) reserves it for one claim."""
    from kubernetes import client

    client.CoreV1Api(api).create_persistent_volume(
        client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": size},
                access_modes=["ReadWriteOnce"],
                storage_class_name="",
                host_path=client.V1HostPathVolumeSource(path=path),
                claim_ref=client.V1ObjectReference(namespace=claim[0], name=claim[1]) if claim else None,
            ),
        )
    )


def wait_for(what: str, check, timeout: float = 90, interval: float = 0.5):
    """Poll `check` until it returns something truthy; bounded in time and attempts."""
    import pytest

    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 1):
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    pytest.fail(f"{what} not reached within {timeout}s")
