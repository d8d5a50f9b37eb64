"""A real single-node Kubernetes cluster for tests: containers actually run.

The control plane of tests/controlplane.py (same PKI, kine, API server, controller-manager and
scheduler), bound to a node IP on a private bridge instead of loopback, plus a node: its own
containerd (runc, overlayfs), kubelet, kube-proxy (nftables) and CoreDNS as a host process
behind the kube-dns Service. No registry is reachable, so images are imported from archives;
the sandbox ("pause") image and a busybox image are built from Debian's busybox-static.

    with RealNode() as node:
        node.volumes(2, "1Gi")                      # static hostPath PVs, storageClassName ""
        node.import_image("app.oci.tar")            # OCI or docker-save archive
        subprocess.run(["helm", "list"], env=node.env, check=True)

kubelet and the CNI plugins change the machine (sysctls, netfilter chains, bridges, mounts,
cgroups), so there is one node per machine and stop() puts back what it found. Root only.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import ansible.module_utils
from controlplane import REPO, SERVICE_CIDR, ControlPlane, ControlPlaneError, _free_port

NODE_NAME = "lakehouse-node"
NODE_BRIDGE = "lh-node0"  # carries the node IP: kubelet refuses loopback, dummy links are unavailable
NODE_NETWORK = ipaddress.ip_network("10.213.7.0/24")  # private, clear of Docker's 172.17+ pools
NODE_IP = str(next(NODE_NETWORK.hosts()))
CNI_BRIDGE = "lh-cni0"
CNI_NETWORK = "lakehouse-node"
POD_CIDR = "10.244.0.0/24"
CLUSTER_DNS = str(ipaddress.ip_network(SERVICE_CIDR).network_address + 10)  # 10.96.0.10, kubeadm's choice
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "lakehouse.test/pause:busybox"
BUSYBOX_IMAGE = "lakehouse.test/busybox:1"
BUSYBOX = Path("/bin/busybox")  # Debian busybox-static: no libc needed in the image
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian containernetworking-plugins
CONTAINERD = shutil.which("containerd") or "/usr/bin/containerd"
CTR = shutil.which("ctr") or "/usr/bin/ctr"
RUNC = shutil.which("runc") or "/usr/sbin/runc"
DIR_PREFIX = "lakehouse-node-"
# Names the node's netfilter objects carry: kube-proxy's nft tables, kubelet's and the CNI
# plugins' iptables chains (firewall: CNI-FORWARD/CNI-ADMIN, portmap: CNI-HOSTPORT-*, CNI-DN-*).
NFT_TABLE = "kube-proxy"
DOCKER_CHAIN = "CNI-LAKEHOUSE-DOCKER"  # pods to the sandbox's containers (see _admit_pods_to_docker_networks)
CHAIN_PREFIXES = ("CNI-", "KUBE-")
KUBEPODS = "kubepods"


# -- images ------------------------------------------------------------------------------------


def _oci():
    """module_utils/lakehouse_oci.py, the project's deterministic OCI image writer (importable
    outside pytest too, where conftest has not added module_utils to ansible.module_utils)."""
    if str(REPO / "module_utils") not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(str(REPO / "module_utils"))
    return importlib.import_module("ansible.module_utils.lakehouse_oci")


def oci_archive(directory: Path, name: str, dest: Path, **config) -> str:
    """`directory` as a one-layer OCI archive that `ctr images import` names `name` ("repo:tag");
    `config` takes lakehouse_oci.image_config's entrypoint, cmd, env, user, workdir. Returns the
    manifest digest."""
    repo, _, tag = name.rpartition(":")
    return _oci().image_from_directory(str(directory), str(dest), repo, tag, **config)


def busybox_rootfs(directory: Path) -> Path:
    """A root filesystem of Debian's static busybox: every applet linked in /bin, a sticky /tmp."""
    (directory / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, directory / "bin" / "busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        if applet != "busybox" and "/" not in applet:
            (directory / "bin" / applet).symlink_to("busybox")
    for sub, mode in (("tmp", 0o1777), ("etc", 0o755)):
        (directory / sub).mkdir()
        (directory / sub).chmod(mode)
    # Names for the uids the tests run as; files only, busybox reads them without NSS.
    (directory / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
    (directory / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return directory


# -- machine state -----------------------------------------------------------------------------

# Counters and per-boot values that move on their own; everything else writable under /proc/sys
# is a setting somebody chose.
_VOLATILE_SYSCTLS = re.compile(
    r"^(kernel\.ns_last_pid|kernel\.random\..*|fs\.(dentry-state|inode-.*|file-nr|aio-nr)|"
    r"net\.netfilter\.nf_conntrack_count|vm\.(drop_caches|compact_memory|stat_refresh)|"
    r".*\.(flush|nr_.*)|kernel\.(sched_domain|tainted|pty\.nr|hung_task_.*count)|dev\..*)$"
)
# Per-interface settings come and go with the interfaces (Docker makes veths all the time).
_PER_DEVICE = re.compile(r"^net\.ipv[46]\.(conf|neigh)\.(?!all\b|default\b)[^.]+\.")


def sysctls() -> dict[str, str]:
    """Every readable, writable, non-volatile, non-per-device sysctl: name -> value."""
    values = {}
    for path in Path("/proc/sys").rglob("*"):
        try:
            if not path.is_file() or not (path.stat().st_mode & 0o200):
                continue
            key = ".".join(path.relative_to("/proc/sys").parts)
            if _VOLATILE_SYSCTLS.match(key) or _PER_DEVICE.match(key):
                continue
            values[key] = path.read_text().strip()
        except OSError:  # write-only entries, permission, vanished
            continue
    return values


def _run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


def _nft_objects() -> tuple[set[str], set[str]]:
    """(tables as "family name", chains as "family table chain") of the whole nft ruleset."""
    out = json.loads(_run("nft", "-j", "list", "chains").stdout or "{}").get("nftables", [])
    tables = {
        f"{t['table']['family']} {t['table']['name']}"
        for t in json.loads(_run("nft", "-j", "list", "tables").stdout or "{}").get("nftables", [])
        if "table" in t
    }
    chains = {f"{c['chain']['family']} {c['chain']['table']} {c['chain']['name']}" for c in out if "chain" in c}
    return tables, chains


def _links() -> dict[str, str | None]:
    """Link name -> its bridge (master), for every link of the host's network namespace."""
    return {link["ifname"]: link.get("master") for link in json.loads(_run("ip", "-j", "link", "show").stdout)}


def _cgroup_mounts() -> dict[str, str]:
    """Mount point -> controllers ("memory", "net_cls,net_prio", "" for v2) of every cgroup mount."""
    found = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, _, options = right.split()[:3]
        if fstype in ("cgroup", "cgroup2"):
            keep = [o for o in options.split(",") if o not in ("rw", "ro") and "=" not in o or o.startswith("name=")]
            found[left.split()[4]] = ",".join(keep) if fstype == "cgroup" else ""
    return found


def _unmounted_hierarchies() -> list[str]:
    """cgroup v1 hierarchies this process belongs to that no mount shows (here: hugetlb,
    perf_event, net_cls,net_prio). containerd's cgroup library cannot load a container's cgroups
    then, so it watches no OOM events and reports no stats."""
    mounted = {c for controllers in _cgroup_mounts().values() for c in controllers.split(",") if c}
    missing = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, _ = line.split(":", 2)
        if number != "0" and controllers and not set(controllers.split(",")) & mounted:
            missing.append(controllers)
    return missing


def _kubepods_cgroups() -> set[str]:
    return {str(p) for mount in _cgroup_mounts() for p in Path(mount).glob(f"{KUBEPODS}*") if p.is_dir()}


_HOST_PATHS = (
    "/var/lib/cni",
    "/var/log/containers",
    "/var/log/pods",
    "/run/netns",
    "/opt/containerd",
    "/var/lib/kubelet",
)


# The parts of machine_state() a node's teardown must restore exactly.
COMPARED_STATE = (
    "sysctls",
    "nft_tables",
    "node_chains",
    "links",
    "kubepods_cgroups",
    "netns",
    "host_paths",
    "mounts",
)


def machine_state() -> dict:
    """What a node changes, in comparable form: see RealNode.stop for what puts each back."""
    tables, chains = _nft_objects()
    return {
        "sysctls": sysctls(),
        "nft_tables": sorted(tables),
        # Docker's chains come and go with its networks; ours are the ones that must not linger.
        "node_chains": sorted(c for c in chains if c.split()[-1].startswith(CHAIN_PREFIXES)),
        "links": sorted(name for name in _links() if not name.startswith(("veth", "br-"))),
        "kubepods_cgroups": sorted(_kubepods_cgroups()),
        "netns": sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else None,
        "host_paths": {p: os.path.exists(p) for p in _HOST_PATHS},
        "run_containerd": os.path.exists("/run/containerd"),
        "mounts": sorted(m for m in _mounts() if DIR_PREFIX in m or m.startswith("/run/netns/")),
    }


def _mounts() -> list[str]:
    """Mount points of this mount namespace, in mount order (octal escapes decoded)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        raw = line.split()[4]
        points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), raw))
    return points


# -- the node ----------------------------------------------------------------------------------


class RealNode(ControlPlane):
    """Context manager: control plane on the node IP plus a real node; stop() restores the machine.

    Attributes once entered (besides ControlPlane's kubeconfig, env, server, versions, ca, dir):
    node_name, node_ip, pod_cidr, cluster_dns, busybox_image (imported, for test pods),
    pause_image, containerd_socket, startup_seconds (control plane + node until Ready),
    timings (per phase, seconds), before (machine_state() taken before start), notes (what
    this machine could not provide). After stop: teardown_errors, restored_sysctls.

    Methods: import_image(archive), images(), volumes(count, size), request(method, path, body),
    logs(), processes(), pss_mib().
    """

    address = NODE_IP
    binaries = ("kine", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "helm")
    node_binaries = ("kubelet", "kube-proxy", "coredns")
    dir_prefix = DIR_PREFIX
    _active: RealNode | None = None  # one node per machine, so one per process

    def __init__(self, bin_dir: Path | str | None = None, startup_timeout: float = 180.0):
        super().__init__(bin_dir, startup_timeout)
        missing = [n for n in self.node_binaries if not (self.bin_dir / n).is_file()]
        if missing:
            raise ControlPlaneError(
                f"node binaries missing from {self.bin_dir}: {', '.join(missing)}; run scripts/controlplane/build.sh"
            )
        host = [
            str(p)
            for p in (Path(CONTAINERD), Path(RUNC), BUSYBOX, CNI_BIN_DIR / "bridge", CNI_BIN_DIR / "firewall")
            if not p.exists()
        ]
        if host or os.geteuid() != 0:
            raise ControlPlaneError(f"a real node needs root and {host or 'nothing else'}; run scripts/setup.sh")
        self.node_name, self.node_ip, self.pod_cidr = NODE_NAME, NODE_IP, POD_CIDR
        self.cluster_dns, self.busybox_image, self.pause_image = CLUSTER_DNS, BUSYBOX_IMAGE, PAUSE_IMAGE
        self.timings: dict[str, float] = {}
        self.teardown_errors: list[str] = []
        self.notes: list[str] = []  # what this machine could not give the node
        self._hierarchies: list[tuple[str, bool]] = []
        self.restored_sysctls: dict[str, tuple[str, str]] = {}
        self._volumes = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        if RealNode._active is not None:
            raise ControlPlaneError("a RealNode is already running in this process (one node per machine)")
        self._cleanup_stale()
        self.before = machine_state()
        RealNode._active = self
        try:
            return super().__enter__()
        except BaseException:
            RealNode._active = None
            raise

    def _start_all(self, deadline: float) -> None:
        t0 = time.monotonic()
        (self.dir / "machine-before.json").write_text(json.dumps(self.before))  # for _cleanup_stale
        self._bridge_up()
        self._mount_hierarchies()
        pki = self._start_control_plane(deadline)
        self.timings["control_plane"] = time.monotonic() - t0
        self._start_nodes(pki, deadline)
        sa_path = "/api/v1/namespaces/default/serviceaccounts/default"
        self._wait("default ServiceAccount", lambda: self.request("GET", sa_path)[0] == 200, deadline)
        self.timings["total"] = time.monotonic() - t0

    def _bridge_up(self) -> None:
        busy = [
            r for r in json.loads(_run("ip", "-j", "route", "show").stdout) if r.get("dst") not in (None, "default")
        ]
        for route in busy:
            with contextlib.suppress(ValueError):
                if ipaddress.ip_network(route["dst"], strict=False).overlaps(NODE_NETWORK):
                    raise ControlPlaneError(f"{NODE_NETWORK} is already routed here: {route}")
        _run("ip", "link", "add", NODE_BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{NODE_IP}/{NODE_NETWORK.prefixlen}", "dev", NODE_BRIDGE)
        _run("ip", "link", "set", NODE_BRIDGE, "up")

    def _mount_hierarchies(self) -> None:
        """Mount the hidden cgroup hierarchies at /sys/fs/cgroup/<controllers> while the node runs.

        There, not elsewhere: runc's cgroupfs driver only looks under /sys/fs/cgroup, and kubelet
        sets hugetlb limits as soon as any hugetlb mount exists. stop() unmounts them again.
        """
        for controllers in _unmounted_hierarchies():
            point = Path("/sys/fs/cgroup", controllers)
            created = not point.exists()
            try:
                point.mkdir(exist_ok=True)
            except OSError as err:  # systemd test hosts sharing this tmpfs remount it read-only
                self.notes.append(f"cgroup {controllers} stays hidden ({err}): no OOMKilled reasons, no stats")
                continue
            _run("mount", "-t", "cgroup", "-o", controllers, "cgroup", str(point))
            self._hierarchies.append((str(point), created))
            (self.dir / "hierarchies.json").write_text(json.dumps(self._hierarchies))  # for _cleanup_stale

    def _apiserver_flags(self, pki) -> list[str]:
        kubelet_client = pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",))
        return [
            # The default (lease) reconciler publishes the node IP as the kubernetes Service's endpoint.
            f"--kubelet-client-certificate={kubelet_client[0]}",
            f"--kubelet-client-key={kubelet_client[1]}",
            f"--kubelet-certificate-authority={pki.ca_crt}",
            "--kubelet-preferred-address-types=InternalIP",
            "--enable-admission-plugins=NodeRestriction",
        ]

    def _start_nodes(self, pki, deadline: float) -> None:
        t0 = time.monotonic()
        d = self.dir
        self._start_containerd(deadline)
        for name, config in (
            (PAUSE_IMAGE, {"entrypoint": ["/bin/busybox", "sleep", "infinity"]}),
            (BUSYBOX_IMAGE, {"cmd": ["/bin/sh"], "env": {"PATH": "/bin"}, "workdir": "/"}),
        ):
            stem = name.split("/")[-1].replace(":", "-")
            archive = d / "images" / f"{stem}.oci.tar"
            archive.parent.mkdir(exist_ok=True)
            oci_archive(busybox_rootfs(d / "images" / stem), name, archive, **config)
            self.import_image(archive)
        self.timings["containerd_and_images"] = time.monotonic() - t0

        t1 = time.monotonic()
        self._start_kubelet(pki, deadline)
        self._wait("node Ready", self._node_ready, deadline)
        self.timings["node_ready"] = time.monotonic() - t1
        t2 = time.monotonic()
        self._start_kube_proxy(pki, deadline)
        self._start_coredns(pki, deadline)
        self.timings["proxy_and_dns"] = time.monotonic() - t2

    # -- containerd --------------------------------------------------------------------------

    def _start_containerd(self, deadline: float) -> None:
        d = self.dir / "containerd"
        cni_conf = self.dir / "cni" / "net.d"
        cni_conf.mkdir(parents=True)
        (d / "opt").mkdir(parents=True)
        self.containerd_socket = d / "containerd.sock"
        (cni_conf / "10-lakehouse.conflist").write_text(json.dumps(self._cni_config(), indent=2))
        self._admit_pods_to_docker_networks()
        config = f"""version = 2
root = "{d}/root"
state = "{d}/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # root here lacks CAP_SYS_RESOURCE: never ask for an oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # kubelet runs the cgroupfs driver (no systemd here); crun fails on these hybrid cgroups.
        SystemdCgroup = false
        BinaryName = "{RUNC}"
        # runc's state beside ours, not in the shared /run/containerd/runc.
        Root = "{d}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
"""
        (d / "config.toml").write_text(config)
        self._spawn("containerd", ["--config", str(d / "config.toml"), "--log-level", "warn"], executable=CONTAINERD)
        self._wait("containerd", lambda: self._ctr("version", check=False).returncode == 0, deadline)

    @staticmethod
    def _admit_pods_to_docker_networks() -> None:
        """Let pods open connections to the sandbox's systemd test hosts (Docker containers), as a
        site's pods reach its metal hosts: Docker's FORWARD chain admits only published ports, and
        the pod network is not masqueraded. A chain of our prefix, so teardown removes it."""
        if _run("iptables", "-w", "-S", "DOCKER-USER", check=False).returncode != 0:
            return  # no Docker engine: nothing filters the way
        _run("iptables", "-w", "-N", DOCKER_CHAIN, check=False)
        _run("iptables", "-w", "-A", DOCKER_CHAIN, "-s", POD_CIDR, "-j", "ACCEPT")
        _run("iptables", "-w", "-I", "DOCKER-USER", "-j", DOCKER_CHAIN)

    def _cni_config(self) -> dict:
        return {
            "cniVersion": "1.0.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": CNI_BRIDGE,
                    "isGateway": True,
                    # Pods talk to each other, the node IP and Services only: nothing to masquerade.
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.dir / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
                # Docker's FORWARD policy is DROP: this accepts traffic from and to the pod's address.
                {"type": "firewall", "backend": "iptables"},
            ],
        }

    def _ctr(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return _run(
            CTR, "--address", str(self.containerd_socket), "--namespace", "k8s.io", *args, check=check, timeout=timeout
        )

    def import_image(self, archive: Path | str, base_name: str | None = None) -> list[dict[str, str]]:
        """Import an OCI or docker-save archive into the node's containerd; returns [{name, digest}].

        Pods use the names with imagePullPolicy: Never (or IfNotPresent). `base_name` names an
        OCI archive whose index carries no image name annotation.
        """
        extra = ["--base-name", base_name] if base_name else []
        out = self._ctr("images", "import", *extra, str(archive), timeout=300).stdout
        # ctr reports each image as "unpacking NAME (sha256:...)...done".
        found = re.findall(r"unpacking (\S+) \((sha256:[0-9a-f]{64})\)", out)
        if not found:
            raise ControlPlaneError(f"ctr imported no image from {archive}: {out}")
        return [{"name": name, "digest": digest} for name, digest in found]

    def images(self) -> list[dict[str, str]]:
        """The images containerd holds for the node: [{name, digest}]."""
        out = self._ctr("images", "list").stdout.splitlines()[1:]
        rows = [line.split() for line in out]
        # The CRI plugin also lists each image under its config digest; those are not names.
        return [{"name": f[0], "digest": f[2]} for f in rows if len(f) > 2 and not f[0].startswith("sha256:")]

    # -- kubelet, kube-proxy, CoreDNS ---------------------------------------------------------

    def _start_kubelet(self, pki, deadline: float) -> None:
        d = self.dir / "kubelet"
        d.mkdir()
        user = f"system:node:{NODE_NAME}"
        kubeconfig = self._kubeconfig("kubelet", pki.issue("kubelet", user, ("system:nodes",)))
        serving = pki.issue("kubelet-serving", user, ("system:nodes",), server=True, addresses=(NODE_IP, NODE_NAME))
        self.kubelet_port, self.kubelet_healthz = _free_port(), _free_port()
        # Pods get cluster DNS only; the host's resolvers stay out of them.
        (d / "resolv.conf").write_text(f"nameserver {CLUSTER_DNS}\n")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This machine: hybrid cgroup v1, no systemd, no swap accounting to rely on.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "address": NODE_IP,
            "port": self.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.kubelet_healthz,
            "tlsCertFile": str(serving[0]),
            "tlsPrivateKeyFile": str(serving[1]),
            # The API server's kubelet client cert (logs, exec) is checked against the test CA.
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki.ca_crt)},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDNS": [CLUSTER_DNS],
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": str(d / "resolv.conf"),
            "podLogsDir": str(d / "pod-logs"),
            "maxPods": 110,
            # Imported images cannot be pulled again: never collect them, never evict on a full disk.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "serializeImagePulls": False,
            "registerNode": True,
            "enableServer": True,
            "protectKernelDefaults": False,
        }
        (d / "config.json").write_text(json.dumps(config, indent=2))
        self._spawn(
            "kubelet",
            [
                f"--config={d / 'config.json'}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={d / 'root'}",
                f"--node-ip={NODE_IP}",
                f"--hostname-override={NODE_NAME}",
                "--v=1",
            ],
        )

    def _node_ready(self) -> bool:
        status, body = self.request("GET", f"/api/v1/nodes/{NODE_NAME}")
        conditions = body.get("status", {}).get("conditions", []) if status == 200 else []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _start_kube_proxy(self, pki, deadline: float) -> None:
        d = self.dir / "kube-proxy"
        d.mkdir()
        # Bootstrap RBAC binds system:node-proxier to this user name.
        kubeconfig = self._kubeconfig("kube-proxy", pki.issue("kube-proxy", "system:kube-proxy"))
        healthz = _free_port()
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "nftables",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "hostnameOverride": NODE_NAME,
            "bindAddress": NODE_IP,
            "healthzBindAddress": f"127.0.0.1:{healthz}",
            "metricsBindAddress": f"127.0.0.1:{_free_port()}",
            "nodePortAddresses": [f"{NODE_IP}/32"],
            "clusterCIDR": POD_CIDR,
            "detectLocalMode": "ClusterCIDR",
            # Zero: leave the machine's conntrack table size and timeouts alone.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
                "udpTimeout": "0s",
                "udpStreamTimeout": "0s",
            },
        }
        (d / "config.json").write_text(json.dumps(config, indent=2))
        self._spawn("kube-proxy", [f"--config={d / 'config.json'}", "--v=1"])
        self._wait("kube-proxy /healthz", lambda: self._http_ok(healthz, "/healthz"), deadline)

    def _start_coredns(self, pki, deadline: float) -> None:
        d = self.dir / "coredns"
        d.mkdir()
        user = "system:lakehouse-coredns"
        # What CoreDNS's kubernetes plugin reads (the upstream coredns ClusterRole).
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": user},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        }
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": user},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }
        ports = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
            # No selector: the endpoint is the host process, published by hand below.
            "spec": {"clusterIP": CLUSTER_DNS, "ports": [{**p, "targetPort": 53} for p in ports]},
        }
        slice_ = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-node",
                "namespace": "kube-system",
                "labels": {
                    "kubernetes.io/service-name": "kube-dns",
                    "endpointslice.kubernetes.io/managed-by": "lakehouse.test",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}, "nodeName": NODE_NAME}],
            "ports": ports,
        }
        for path, obj in (
            ("/apis/rbac.authorization.k8s.io/v1/clusterroles", role),
            ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding),
            ("/api/v1/namespaces/kube-system/services", service),
            ("/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices", slice_),
        ):
            status, body = self.request("POST", path, obj)
            if status not in (201, 409):
                raise ControlPlaneError(f"creating {obj['kind']}: HTTP {status} {body}")
        kubeconfig = self._kubeconfig("coredns", pki.issue("coredns", user))
        ready = _free_port()
        # Cluster names, and the machine's hosts file (where the sandbox names its metal hosts, so a
        # pod finds them by name as on a site); no forwarder: a pod's lookup never leaves the machine.
        (d / "Corefile").write_text(
            f"""{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {NODE_IP}
    errors
    ready 127.0.0.1:{ready}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} lakehouse-test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
}}
.:53 {{
    bind {NODE_IP}
    errors
    hosts /etc/hosts
}}
"""
        )
        self._spawn("coredns", ["-conf", str(d / "Corefile")])
        self._wait("CoreDNS /ready", lambda: self._http_ok(ready, "/ready"), deadline)

    @staticmethod
    def _http_ok(port: int, path: str) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        finally:
            conn.close()

    # -- helpers for tests ---------------------------------------------------------------------

    def volumes(self, count: int, size: str = "1Gi", prefix: str = "pv") -> list[str]:
        """Create `count` static hostPath PersistentVolumes (storageClassName "", so claims that name
        no class bind to them) under the node's temp dir; returns their names.

        Directories are world-writable: charts run pods as various non-root uids. Each carries the
        label lakehouse.test/volumes=<prefix>, for claims that must get these and no others.
        """
        names = []
        for _ in range(count):
            self._volumes += 1
            name = f"{prefix}-{self._volumes}"
            path = self.dir / "volumes" / name
            path.mkdir(parents=True)
            path.chmod(0o1777)
            pv = {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name, "labels": {"lakehouse.test/volumes": prefix}},
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {"path": str(path), "type": "Directory"},
                },
            }
            status, body = self.request("POST", "/api/v1/persistentvolumes", pv)
            if status != 201:
                raise ControlPlaneError(f"creating PersistentVolume {name}: HTTP {status} {body}")
            names.append(name)
        return names

    def processes(self) -> dict[str, list[int]]:
        """Pids per part of the cluster: each component, containerd's shims, and the pods' processes."""
        found = {name: [proc.pid] for name, proc in self._procs if proc.poll() is None}
        found["shims"] = self._shim_pids()
        found["pods"] = sorted(self._kubepods_pids())
        return found

    def pss_mib(self) -> dict[str, float]:
        """Proportional set size per part of the cluster, MiB (shared pages split among users)."""
        result = {}
        for name, pids in self.processes().items():
            total = 0
            for pid in pids:
                with contextlib.suppress(OSError, ValueError):
                    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                        if line.startswith("Pss:"):
                            total += int(line.split()[1])
            result[name] = round(total / 1024, 1)
        return result

    # -- teardown ------------------------------------------------------------------------------

    def stop(self, grace: float = 10.0) -> None:
        """Stop everything and undo what the node did to the machine, step by step.

        Pods first (with the controllers stopped, nothing recreates them; the kubelet tears down
        their sandboxes, so the CNI plugins remove their rules), then the node's processes, then
        whatever is left: processes in kubepods cgroups, shims, mounts, network namespaces,
        netfilter tables and chains, links, cgroups, files kubelet and the CNI plugins create
        outside the temp dir, and sysctls back to the values recorded before start. Errors are
        collected in teardown_errors so one failing step does not leave the rest undone.
        """
        if not self._procs and self.dir is None:
            return
        self._step("delete pods", self._delete_pods)
        for name in ("coredns", "kube-proxy", "kubelet", "containerd"):
            self._step(f"stop {name}", self._terminate, name, grace)
        self._cleanup_host(self.before if hasattr(self, "before") else None, hierarchies=self._hierarchies)
        keep = os.environ.get("LAKEHOUSE_CONTROLPLANE_KEEP")
        super().stop(grace)  # the control plane, then the temp dir
        if keep is None and self.dir and self.dir.exists():
            self._step("remove temp dir", shutil.rmtree, self.dir)
        if RealNode._active is self:
            RealNode._active = None
        self.dir = None

    def _step(self, what: str, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as err:  # keep undoing the rest
            self.teardown_errors.append(f"{what}: {err}")

    def _terminate(self, name: str, grace: float) -> None:
        for entry in [e for e in self._procs if e[0] == name]:
            proc = entry[1]
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            self._procs.remove(entry)

    def _delete_pods(self) -> None:
        alive = {name for name, proc in self._procs if proc.poll() is None}
        if not {"kube-apiserver", "kubelet"} <= alive:
            return
        for name in ("kube-controller-manager", "kube-scheduler"):
            self._terminate(name, 10)
        status, namespaces = self.request("GET", "/api/v1/namespaces")
        for ns in (n["metadata"]["name"] for n in namespaces.get("items", [])) if status == 200 else ():
            self.request("DELETE", f"/api/v1/namespaces/{ns}/pods?gracePeriodSeconds=1")
        deadline = time.monotonic() + 60
        for _ in range(240):
            status, pods = self.request("GET", "/api/v1/pods")
            if status == 200 and not pods["items"]:
                break
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"pods still present: {[p['metadata']['name'] for p in pods['items']]}")
            time.sleep(0.25)
        # The kubelet stops the sandboxes after the pods are gone; wait for the CNI teardown.
        for _ in range(120):
            tasks = self._ctr("tasks", "list", check=False).stdout.splitlines()[1:]
            if not any("RUNNING" in line for line in tasks):
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"sandboxes still running: {tasks}")
            time.sleep(0.25)

    def _shim_pids(self, marker: str | None = None) -> list[int]:
        """containerd-shim processes serving our containerd (matched by its socket path)."""
        marker = marker or str(getattr(self, "containerd_socket", "\0"))
        pids = []
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                if argv and argv[0].endswith(b"containerd-shim-runc-v2") and any(marker.encode() in a for a in argv):
                    pids.append(int(proc.name))
        return pids

    @staticmethod
    def _kubepods_pids() -> set[int]:
        pids = set()
        for cgroup in _kubepods_cgroups():
            for procs in Path(cgroup).rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    pids.update(int(p) for p in procs.read_text().split())
        return pids

    def _cleanup_host(self, before: dict | None, dirs: tuple[Path, ...] = (), hierarchies=()) -> None:
        """Undo the node's changes to the machine; `before` is machine_state() from before start,
        `hierarchies` the (mount point, created) pairs _mount_hierarchies made."""
        dirs = dirs or ((self.dir,) if self.dir else ())
        # Containers whose shim outlived everything, then the shims themselves.
        for _ in range(20):
            pids = self._kubepods_pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.25)
        markers = [str(d) for d in dirs] or [DIR_PREFIX]
        for marker in markers:
            for pid in self._shim_pids(marker):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        # cgroups first: the hierarchies mounted in the temp dir must still be there to rmdir in.
        self._step("cgroups", self._remove_cgroups, before)
        self._step("cgroup hierarchies", self._unmount_hierarchies, hierarchies)
        self._step("unmount", self._unmount, dirs, before)
        self._step("network namespaces", self._remove_netns, before)
        self._step("netfilter", self._remove_netfilter, before)
        self._step("links", self._remove_links)
        self._step("host paths", self._remove_host_paths, before)
        if before:
            self._step("sysctls", self._restore_sysctls, before["sysctls"])

    @staticmethod
    def _umount(point: str) -> None:
        if _run("umount", point, check=False).returncode != 0:
            _run("umount", "-l", point, check=False)

    def _unmount(self, dirs: tuple[Path, ...], before: dict | None) -> None:
        old = set((before or {}).get("mounts", []))
        prefixes = tuple(f"{d}/" for d in dirs) or (f"{tempfile.gettempdir()}/{DIR_PREFIX}",)
        for _ in range(5):  # stacked mounts: each pass takes the top ones
            points = [m for m in _mounts() if m.startswith(prefixes) and m not in old]
            if not points:
                return
            for point in reversed(points):
                self._umount(point)
        raise ControlPlaneError(f"still mounted: {points}")

    @staticmethod
    def _remove_netns(before: dict | None) -> None:
        netns = Path("/run/netns")
        if not netns.is_dir():
            return
        old = set((before or {}).get("netns") or [])
        for entry in netns.iterdir():
            if entry.name.startswith("cni-") and entry.name not in old:
                RealNode._umount(str(entry))
                entry.unlink(missing_ok=True)
        if before is not None and before.get("netns") is None:
            for point in [m for m in _mounts() if m == str(netns)]:
                RealNode._umount(point)
            with contextlib.suppress(OSError):
                netns.rmdir()

    @staticmethod
    def _remove_netfilter(before: dict | None) -> None:
        old_tables = set((before or {}).get("nft_tables", []))
        tables, _ = _nft_objects()
        for table in sorted(tables - old_tables):
            family, name = table.split()
            if name == NFT_TABLE:
                _run("nft", "delete", "table", family, name)
        # iptables (the nft backend here) chains of kubelet, kube-proxy and the CNI plugins: drop
        # the rules that jump to them, then the chains.
        lingering = []
        for tool in ("iptables", "ip6tables"):
            if not shutil.which(tool):
                continue
            for table in ("filter", "nat", "mangle"):
                rules = _run(tool, "-w", "-t", table, "-S", check=False).stdout.splitlines()
                ours = [r.split()[1] for r in rules if r.startswith("-N ") and r.split()[1].startswith(CHAIN_PREFIXES)]
                if not ours:
                    continue
                for rule in rules:
                    parts = shlex.split(rule)  # comments are quoted
                    if parts[0] == "-A" and not parts[1].startswith(CHAIN_PREFIXES) and any(c in parts for c in ours):
                        _run(tool, "-w", "-t", table, "-D", *parts[1:], check=False)
                for chain in ours:
                    _run(tool, "-w", "-t", table, "-F", chain, check=False)
                for chain in ours:
                    _run(tool, "-w", "-t", table, "-X", chain, check=False)
                left = [
                    r
                    for r in _run(tool, "-w", "-t", table, "-S").stdout.splitlines()
                    if any(c in r.split() for c in ours)
                ]
                lingering += [f"{tool} -t {table} {rule}" for rule in left]
        # iptables-nft makes a table on first use (kubelet's canaries touch ip6 and mangle): drop the
        # ones that were not there before and hold nothing now.
        tables, chains = _nft_objects()
        for table in sorted(tables - old_tables):
            if not any(chain.startswith(f"{table} ") for chain in chains):
                _run("nft", "delete", "table", *table.split())
        if lingering:
            raise ControlPlaneError(f"netfilter still holds {lingering}")

    @staticmethod
    def _remove_links() -> None:
        links = _links()
        for name, master in links.items():
            if master == CNI_BRIDGE:  # a veth whose pod was never torn down
                _run("ip", "link", "delete", name, check=False)
        for bridge in (CNI_BRIDGE, NODE_BRIDGE):
            if bridge in links:
                _run("ip", "link", "delete", bridge)

    @staticmethod
    def _remove_cgroups(before: dict | None) -> None:
        old = set((before or {}).get("kubepods_cgroups", []))
        for top in sorted(_kubepods_cgroups() - old):
            for path in sorted((p for p in Path(top).rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(FileNotFoundError):
                    path.rmdir()
            Path(top).rmdir()

    @staticmethod
    def _unmount_hierarchies(hierarchies) -> None:
        # Only our own mounts: systemd test hosts mount hierarchies on this shared tmpfs too.
        for point, created in hierarchies:
            if point in _cgroup_mounts():
                _run("umount", point)
            if created:
                Path(point).rmdir()

    @staticmethod
    def _remove_host_paths(before: dict | None) -> None:
        existed = (before or {}).get("host_paths", {})
        cni_results = Path("/var/lib/cni/results")
        if cni_results.is_dir():  # libcni's cache of our network's results
            for entry in cni_results.glob(f"{CNI_NETWORK}-*"):
                entry.unlink()
        # containerd 1.6 puts every shim's socket (Docker's too) under /run/containerd/s: take
        # away only empty directories there, a socket may belong to a Docker container.
        shared = Path("/run/containerd")
        if before is not None and not before.get("run_containerd", True) and shared.is_dir():
            for path in sorted((p for p in shared.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [shared]:
                with contextlib.suppress(OSError):
                    path.rmdir()
        # Made by kubelet (its device-plugin socket is always under /var/lib/kubelet), containerd's
        # CNI library and the kubelet's log links; nothing else uses them on this machine.
        for path in _HOST_PATHS:
            if path != "/run/netns" and not existed.get(path, True) and os.path.lexists(path):
                shutil.rmtree(path)

    def _restore_sysctls(self, before: dict[str, str]) -> None:
        now = sysctls()
        for key, value in before.items():
            if key in now and now[key] != value:
                path = Path("/proc/sys", *key.split("."))
                path.write_text(value)
                self.restored_sysctls[key] = (now[key], value)

    def _cleanup_stale(self) -> None:
        """Undo a node whose test process was killed before its teardown ran (one per machine)."""
        stale = sorted(Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"))
        if not stale and NODE_BRIDGE not in _links():
            return
        before, hierarchies = None, []
        for d in stale:
            with contextlib.suppress(OSError, ValueError):
                before = json.loads((d / "machine-before.json").read_text())
            with contextlib.suppress(OSError, ValueError):
                hierarchies += json.loads((d / "hierarchies.json").read_text())
        self._cleanup_host(before, tuple(stale), hierarchies)
        for d in stale:
            shutil.rmtree(d, ignore_errors=True)
        if self.teardown_errors:
            raise ControlPlaneError(f"could not clean up an earlier node: {self.teardown_errors}")
