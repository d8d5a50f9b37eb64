"""The service descriptor: what a role says about its service, normalized once for every engine.

A service role describes its service as data (roles/<role>/vars/main.yml, `<role>_service`):

    name, description, user, home, config_dir, server_name     required
    provides (its contract's layer), consumes [layers]           who may connect to whom
    start_after [{name, host, port}]                             metal: what must accept connections first
    artifacts [{name, dest}], runtime (java), ca_file           what is installed, where
    packages, package_config, conflicting_units                  Debian packages (metal) / image base
    files [{path, content, secret}]                               config files shared by every component
    directories, read_write_paths, capabilities, address_families, full_proc, limit_nofile
    protect_proc                                                  systemd's ProtectProc (invisible)
    image, version                                                key in lakehouse_images (default: name); image tag
    one_pod                                                       Kubernetes: every component in one pod
    kubernetes_rules [{api_groups, resources, verbs}]             what its pods may do in their namespace
    components [...]                                              one process each (required, >= 1)
    jobs [...]                                                    one-off steps

A component is one program: `program` by artifact ({artifact, path}) or by package ({package,
path}), never by a bare host path; `args`, `env`, its own `files`, `pre_start` commands, `ports`
as data ({name, port, tls, exposed, metrics_path}), `health` ({readiness, liveness} probes: an
HTTP GET of a `path` on a port, a TCP connection to a port without one, or a command), `stop`
({command, timeout}), `reload` ({signal}: a change of config files alone reloads the process
rather than restarting it), `rolling` (on metal, a change restarts it on one host at a time, each
ready again before the next stops; a cluster's StatefulSet rolls its pods so anyway), `replicas`,
`start_together` (on a cluster, the replicas start at once rather than each after the one before
is ready: they form one deployment and none is ready alone, as a distributed MinIO),
`placement` ({groups}), `volumes` ({name, path, size, storage_class}), `resources`.

On Kubernetes each component runs in pods of its own, unless the service is `one_pod`: then
every component is a container of one pod named after the service (the component of that name
first), as they share one host on metal, so they reach each other on loopback (a server that must
listen only locally, behind a proxy in front of it). `kubernetes_rules` (RBAC rules) give the
service's pods an account of their own with those rights, and the pods they start an account
with none (an orchestrator starts its jobs' pods).

`start_after` names the endpoints (by DNS name and port) that must accept a TCP connection before
the service starts on a metal host: its units wait for them, bounded, before each start, so
hosts that come back in any order start their services in dependency order. On Kubernetes the
kubelet's back-off restarts a pod until what it needs is there.

A job is a one-off program run `before` the first start (initdb; guarded by `creates` on metal,
an init container on Kubernetes) or `after` the service is ready (schema creation; a Job).

`lakehouse_service` applies every default here, in one place, and refuses unknown keys, so the
engines read plain fields and never guess. A Java runtime adds what every JVM service needs (the
runtime artifact; for the components run from its artifacts, JAVA_HOME and a trust store with
the lakehouse CA built before each start).
`ca_file` names the public file holding the CA that signs the service's certificate: the Java
trust store and the release's `helm test` read it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import posixpath
import re
import sys

from ansible.errors import AnsibleFilterError

# Ansible puts no controller-side shared code on the path: the repository root holds module_utils/.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.append(REPO)
from module_utils.lakehouse_files import artifact_path  # noqa: E402
from module_utils.lakehouse_jobs import JobSpecError, on_calendar  # noqa: E402
from module_utils.lakehouse_names import port_number  # noqa: E402

REQUIRED = object()
NAME = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")

SERVICE = {
    "name": REQUIRED,
    "description": REQUIRED,
    "user": REQUIRED,
    "home": REQUIRED,
    "config_dir": REQUIRED,
    "server_name": REQUIRED,
    "provides": REQUIRED,
    "consumes": [],
    "start_after": [],
    "artifacts": [],
    "runtime": None,
    "ca_file": None,
    "packages": [],
    "package_config": [],
    "conflicting_units": [],
    "files": [],
    "directories": [],
    "read_write_paths": [],
    "capabilities": [],
    "address_families": [],
    "full_proc": False,
    "protect_proc": "invisible",
    "limit_nofile": 65536,
    "image": None,
    "version": None,
    "one_pod": False,
    "kubernetes_rules": [],
    "components": REQUIRED,
    "jobs": [],
}
COMPONENT = {
    "name": REQUIRED,
    "description": None,
    "program": REQUIRED,
    "args": [],
    "env": {},
    "files": [],
    "pre_start": [],
    "ports": [],
    "health": REQUIRED,
    "stop": {},
    "reload": {},
    "rolling": False,
    "replicas": 1,
    "start_together": False,
    "placement": {},
    "volumes": [],
    "resources": {},
}
PORT = {"name": REQUIRED, "port": REQUIRED, "tls": True, "exposed": True, "metrics_path": None}
HEALTH = {"readiness": REQUIRED, "liveness": None, "retries": 60, "delay": 2}
PROBE = {"port": None, "path": None, "match": None, "command": None}
STOP = {"command": [], "timeout": 120}
RELOAD = {"signal": None}
SIGNALS = ("HUP", "USR1", "USR2")
PROTECT_PROC = ("invisible", "ptraceable", "noaccess", "default")
PLACEMENT = {"groups": [], "not_with": []}
VOLUME = {"name": REQUIRED, "path": REQUIRED, "size": "10Gi", "storage_class": ""}
JOB = {
    "name": REQUIRED,
    "program": REQUIRED,
    "args": [],
    "env": {},
    "when": "before",
    "creates": None,
    "schedule": None,
    "files": [],
}
WHEN = ("before", "after", "scheduled")
FILE = {"path": REQUIRED, "content": REQUIRED, "secret": False}
NEEDED = {"name": REQUIRED, "host": REQUIRED, "port": REQUIRED}
ARTIFACT = {"name": REQUIRED, "dest": REQUIRED}
PROGRAM = {"artifact": None, "package": None, "path": None}
RULE = {"api_groups": [""], "resources": REQUIRED, "verbs": REQUIRED}

# Filled in for a `runtime: java` service; the engines read the result like any other field.
# The JDK's well-known password: the store holds public certificates only.
JAVA_TRUSTSTORE_PASSWORD = "changeit"  # noqa: S105
JVM_SIGTERM_EXIT = 143  # a JVM stopped by SIGTERM exits with 128+15: a clean stop


def _fill(kind: str, where: str, given, defaults: dict) -> dict:
    if not isinstance(given, dict):
        raise AnsibleFilterError(f"{where}: a {kind} must be a mapping, got {type(given).__name__}")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise AnsibleFilterError(f"{where}: unknown {kind} key(s) {', '.join(unknown)}; known: {', '.join(defaults)}")
    result = {}
    for key, default in defaults.items():
        if key in given and given[key] is not None:
            result[key] = given[key]
        elif default is REQUIRED:
            raise AnsibleFilterError(f"{where}: the {kind} needs `{key}`")
        else:
            result[key] = copy.deepcopy(default)
    return result


def _name(where: str, value: str) -> str:
    if not isinstance(value, str) or not NAME.match(value) or len(value) > 40:
        raise AnsibleFilterError(f"{where}: `{value}` is not a lower-case name of 40 characters at most")
    return value


def _port_number(where: str, value) -> int:
    number = port_number(value)
    if number is None:
        raise AnsibleFilterError(f"{where}: `{value}` is not a port number from 1 to 65535")
    return number


def _bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "on", "1")
    return bool(value)


def _program(where: str, given, service: dict) -> str:
    """The absolute path of a program, the same on a host and in the service's image."""
    program = _fill("program", where, given, PROGRAM)
    if bool(program["artifact"]) == bool(program["package"]):
        raise AnsibleFilterError(f"{where}: a program names exactly one of `artifact` and `package`")
    if program["package"]:
        if program["package"] not in service["packages"]:
            raise AnsibleFilterError(f"{where}: package {program['package']} is not among the service's packages")
        if not (program["path"] or "").startswith("/"):
            raise AnsibleFilterError(f"{where}: a package's program needs its absolute `path`")
        return program["path"]
    dests = {a["name"]: a["dest"] for a in service["artifacts"]}
    if program["artifact"] not in dests:
        raise AnsibleFilterError(f"{where}: artifact {program['artifact']} is not among the service's artifacts")
    if program["path"] and program["path"].startswith("/"):
        raise AnsibleFilterError(f"{where}: an artifact's program `path` is relative to the artifact")
    base = dests[program["artifact"]]
    return posixpath.join(base, program["path"]) if program["path"] else base


def _probe(where: str, given, ports: dict) -> dict | None:
    if given is None:
        return None
    probe = _fill("probe", where, given, PROBE)
    if bool(probe["command"]) == bool(probe["port"]):
        raise AnsibleFilterError(f"{where}: a probe has exactly one of `port` (with `path`) and `command`")
    if probe["port"]:
        if probe["port"] not in ports:
            raise AnsibleFilterError(f"{where}: probe port {probe['port']} is not one of the ports {sorted(ports)}")
        if probe["path"] is not None and not probe["path"].startswith("/"):
            raise AnsibleFilterError(f"{where}: an HTTP probe's `path` starts with / (no path: a TCP probe)")
        if probe["match"] and not probe["path"]:
            raise AnsibleFilterError(f"{where}: a TCP probe has no body to `match`")
        # A port without a path is probed by a TCP connection: an endpoint whose every path
        # needs credentials (an exporter) is live once it accepts connections.
        probe["scheme"] = "tcp" if not probe["path"] else "https" if ports[probe["port"]]["tls"] else "http"
        probe["number"] = ports[probe["port"]]["port"]
    return probe


def _health(where: str, given, ports: dict) -> dict:
    health = _fill("health", where, given, HEALTH)
    health["readiness"] = _probe(f"{where} readiness", health["readiness"], ports)
    health["liveness"] = _probe(f"{where} liveness", health["liveness"], ports) or {
        **health["readiness"],
        "match": None,
    }
    health["retries"], health["delay"] = int(health["retries"]), int(health["delay"])
    health["wait_seconds"] = health["retries"] * health["delay"]  # how long either engine waits for readiness
    return health


def _rule(where: str, given) -> dict:
    rule = _fill("kubernetes rule", where, given, RULE)
    for key, value in rule.items():
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise AnsibleFilterError(f"{where}: a kubernetes rule's `{key}` is a list of names")
    return rule


def _files(where: str, given: list) -> list[dict]:
    files = [_fill("file", f"{where} file {i}", f, FILE) for i, f in enumerate(given)]
    for entry in files:
        path = entry["path"]
        if path.startswith("/") or ".." in path.split("/"):
            raise AnsibleFilterError(f"{where}: file path {path} must be relative to the config directory")
        entry["secret"] = _bool(entry["secret"])
    return files


def _scheduled(service: dict, job: dict, where: str) -> dict:
    """What the engines run of a scheduled job: on a host a oneshot unit (read by the same unit
    template as a component's) started by a timer; on a cluster a CronJob of the same schedule."""
    try:
        calendar = on_calendar(job["schedule"], where)
    except JobSpecError as error:
        raise AnsibleFilterError(str(error)) from None
    unit = f"lakehouse-{job['workload']}"
    return {
        "schedule": " ".join(str(job["schedule"]).split()),
        "on_calendar": calendar,
        "unit": f"{unit}.service",
        "timer": f"{unit}.timer",
        "description": f"{service['description']}: {job['name']}",
        "oneshot": True,
        "pre_start": [],
        "reload": dict(RELOAD),
        "stop": dict(STOP),
    }


def _component(service: dict, given) -> dict:
    where = f"service {service['name']}"
    component = _fill("component", where, given, COMPONENT)
    where = f"service {service['name']} component {_name(where, component['name'])}"
    program = component.pop("program")
    component["executable"] = _program(where, program, service)
    # What a JVM needs (its trust store, JAVA_HOME) goes to the programs of the service's artifacts
    # (the runtime itself, a launcher), not to a system package's (a front).
    runs_java = service["java"] and bool(program.get("artifact"))
    ports = [_fill("port", f"{where} port", p, PORT) for p in component["ports"]]
    for port in ports:
        # A container port's name is an IANA service name: 15 characters at most.
        if len(_name(f"{where} port", port["name"])) > 15:
            raise AnsibleFilterError(f"{where}: port name `{port['name']}` is longer than 15 characters")
        port["port"] = _port_number(f"{where} port {port['name']}", port["port"])
        port["tls"], port["exposed"] = _bool(port["tls"]), _bool(port["exposed"])
    by_name = {p["name"]: p for p in ports}
    if len(by_name) != len(ports) or len({p["port"] for p in ports}) != len(ports):
        raise AnsibleFilterError(f"{where}: port names and numbers must be unique")
    component["ports"] = ports
    component["stop"] = _fill("stop", where, component["stop"], STOP)
    component["stop"]["timeout"] = int(component["stop"]["timeout"])
    component["reload"] = _fill("reload", where, component["reload"], RELOAD)
    if (signal := component["reload"]["signal"]) not in (None, *SIGNALS):
        raise AnsibleFilterError(f"{where}: reload signal {signal} is not one of {', '.join(SIGNALS)}")
    component["rolling"] = _bool(component["rolling"])
    component["placement"] = _fill("placement", where, component["placement"], PLACEMENT)
    component["volumes"] = [_fill("volume", where, v, VOLUME) for v in component["volumes"]]
    component["files"] = _files(where, component["files"])
    component["env"] = {str(k): str(v) for k, v in component["env"].items()}
    component["args"] = [str(a) for a in component["args"]]
    component["replicas"] = int(component["replicas"])
    component["start_together"] = _bool(component["start_together"])
    # One name per process: `<service>` for the component named after it, else `<service>-<component>`.
    main = component["name"] == service["name"]
    component["unit"] = f"lakehouse-{service['name']}{'' if main else '-' + component['name']}.service"
    component["workload"] = service["name"] if main else f"{service['name']}-{component['name']}"
    component["description"] = component["description"] or service["description"]
    component["oneshot"] = False
    if runs_java:
        component["pre_start"] = list(service["_pre_start"]) + component["pre_start"]
        component["env"] = {**component["env"], **service["_env"]}
    return component


def normalize(descriptor: dict, platform: dict | None = None) -> dict:
    """The descriptor with every default applied and every reference checked.

    `platform` names what the delivery provides around the service: `java_home` (where the Java
    runtime is linked) and `truststore_builder` (the script that builds a JVM's trust store).
    """
    platform = platform or {}
    service = _fill("service", f"service {descriptor.get('name', '?')}", descriptor, SERVICE)
    where = f"service {service['name']}"
    _name(where, service["name"])
    service["artifacts"] = [_fill("artifact", where, a, ARTIFACT) for a in service["artifacts"]]
    service["files"] = _files(where, service["files"])
    service["start_after"] = [_fill("start_after", where, n, NEEDED) for n in service["start_after"]]
    for needed in service["start_after"]:
        needed["port"] = _port_number(f"{where} start_after {needed['name']}", needed["port"])
    service["image"] = service["image"] or service["name"]
    service["_env"], service["_pre_start"] = {}, []
    service["java"] = service["runtime"] == "java"
    service["truststore_builder"] = platform.get("truststore_builder") if service["java"] else None
    if service["runtime"] not in (None, "java"):
        raise AnsibleFilterError(f"{where}: unknown runtime {service['runtime']} (known: java)")
    if service["protect_proc"] not in PROTECT_PROC:
        known = ", ".join(PROTECT_PROC)
        raise AnsibleFilterError(f"{where}: protect_proc {service['protect_proc']} is not one of {known}")
    public_files = {f["path"] for f in service["files"] if not f["secret"]}
    if service["ca_file"] and service["ca_file"] not in public_files:
        raise AnsibleFilterError(f"{where}: ca_file {service['ca_file']} is not one of its public files")
    if service["java"]:
        java_home = platform.get("java_home")
        if not java_home or not service["ca_file"]:
            raise AnsibleFilterError(f"{where}: a Java service needs the platform's java_home and its `ca_file`")
        store = f"{service['home']}/truststore.p12"
        service["artifacts"].append({"name": "java_runtime", "dest": java_home})
        service["_env"] = {
            "JAVA_HOME": java_home,
            "JAVA_TOOL_OPTIONS": f"-Djavax.net.ssl.trustStore={store} -Djavax.net.ssl.trustStoreType=PKCS12"
            f" -Djavax.net.ssl.trustStorePassword={JAVA_TRUSTSTORE_PASSWORD}",
        }
        service["_pre_start"] = [
            [platform["truststore_builder"], store, f"{service['config_dir']}/{service['ca_file']}"]
        ]
        # A JIT compiler needs writable executable memory; a JVM lists interfaces over netlink.
        service["address_families"] = sorted({*service["address_families"], "AF_NETLINK"})
    service["memory_deny_write_execute"] = not service["java"]
    service["success_exit_status"] = [JVM_SIGTERM_EXIT] if service["java"] else []
    if not service["components"]:
        raise AnsibleFilterError(f"{where}: a service needs at least one component")
    service["components"] = [_component(service, c) for c in service["components"]]
    names = [c["name"] for c in service["components"]]
    if len(set(names)) != len(names):
        raise AnsibleFilterError(f"{where}: component names must be unique")
    service["one_pod"] = _bool(service["one_pod"])
    if service["one_pod"]:
        if any(c["replicas"] != 1 for c in service["components"]):
            raise AnsibleFilterError(f"{where}: the components of a one_pod service have one replica each")
        for component in service["components"]:
            component["workload"] = service["name"]
        pod_ports = {p["name"]: p for c in service["components"] for p in c["ports"]}
        every = sum(len(c["ports"]) for c in service["components"])
        if len(pod_ports) != every or len({p["port"] for p in pod_ports.values()}) != every:
            raise AnsibleFilterError(
                f"{where}: the port names and numbers of a one_pod service's components must be unique"
            )
    for component in service["components"]:
        # A probe reaches a port of its own component, or of any in its pod (a server behind a
        # front is probed through it: the pod's and the host's network are the same).
        ports = pod_ports if service["one_pod"] else {p["name"]: p for p in component["ports"]}
        component_where = f"{where} component {component['name']}"
        component["health"] = _health(component_where, component["health"], ports)
        if component["rolling"] and not component["health"]["liveness"]["port"]:
            # Each host asks the other hosts' instances whether they are live (peer_probes).
            raise AnsibleFilterError(
                f"{component_where}: a rolling component's liveness probe is a port, which other hosts can ask"
            )
    service["kubernetes_rules"] = [_rule(where, r) for r in service["kubernetes_rules"]]
    jobs = []
    for given in service["jobs"]:
        job = _fill("job", where, given, JOB)
        job_where = f"{where} job {_name(where, job['name'])}"
        job["executable"] = _program(job_where, job.pop("program"), service)
        if job["when"] not in WHEN:
            raise AnsibleFilterError(f"{job_where}: `when` is before (the first start), after (ready) or scheduled")
        if job["when"] == "before" and not job["creates"]:
            raise AnsibleFilterError(f"{job_where}: a job run before the first start needs `creates`")
        if (job["when"] == "scheduled") != bool(job["schedule"]):
            raise AnsibleFilterError(f"{job_where}: a `schedule` (a cron or preset) is what makes a job scheduled")
        job["files"] = _files(job_where, job["files"])
        if job["files"] and job["when"] == "before":
            raise AnsibleFilterError(f"{job_where}: a job run before the first start reads the service's files only")
        job["args"] = [str(a) for a in job["args"]]
        job["env"] = {**{str(k): str(v) for k, v in job["env"].items()}, **service["_env"]}
        job["workload"] = f"{service['name']}-{job['name']}"
        if job["when"] == "scheduled":
            job.update(_scheduled(service, job, job_where))
        jobs.append(job)
    service["jobs"] = jobs
    del service["_env"], service["_pre_start"]
    return service


def placed(service: dict, host: str, groups: dict, exclusive: bool = True) -> list[dict]:
    """The components of a normalized service that `host` receives.

    A component runs where its placement groups include the host (every host of the play when it
    names none). On a metal host (`exclusive`) a component does not run beside one it is
    `not_with` (a host that is both Trino coordinator and worker runs one process); a cluster
    host runs each in pods of its own.
    """

    def member(component: dict) -> bool:
        wanted = component["placement"]["groups"]
        return not wanted or any(host in groups.get(group, []) for group in wanted)

    here = {c["name"] for c in service["components"] if member(c)}
    return [
        c
        for c in service["components"]
        if c["name"] in here and not (exclusive and set(c["placement"]["not_with"]) & here)
    ]


def _config_files(service: dict, members: list[dict]) -> list[dict]:
    return service["files"] + [f for member in members for f in member["files"]]


def _pods(components: list[dict]) -> list[list[dict]]:
    """The components grouped by the pod they run in (their workload), the one named after the
    service first in its pod: one each, or every component of a one_pod service together."""
    pods: dict[str, list[dict]] = {}
    for component in components:
        pods.setdefault(component["workload"], []).append(component)
    return [sorted(members, key=lambda c: c["workload"] != c["name"]) for members in pods.values()]


def _cluster_jobs(service: dict) -> list[dict]:
    """The jobs a cluster runs in pods of their own (an after-start Job, a CronJob)."""
    return [j for j in service["jobs"] if j["when"] != "before"]


def _job_owner(job: dict) -> dict:
    """What a job's pod mounts: the service's files and its own, under a name of its own."""
    return {"workload": job["workload"], "files": job["files"]}


def config_key(path: str) -> str:
    """The key of a config file in its ConfigMap or Secret: a key cannot hold "/", "__" stands for it."""
    return path.replace("/", "__")


def config_objects(service: dict, components: list[dict]) -> list[dict]:
    """The config files of each component (and job pod) a cluster receives, as the data
    of a ConfigMap (public files) and a Secret (secret files, base64) named <workload>-config.

    A key cannot hold "/", so "__" stands for it; the chart maps each key back to its path.
    """
    owners = _pods(components) + [[_job_owner(j)] for j in _cluster_jobs(service)]
    objects = []
    for members in owners:
        files = _config_files(service, members)
        objects.append(
            {
                "name": f"{members[0]['workload']}-config",
                "configmap": {config_key(f["path"]): f["content"] for f in files if not f["secret"]},
                "secret": {
                    config_key(f["path"]): base64.b64encode(f["content"].encode()).decode()
                    for f in files
                    if f["secret"]
                },
            }
        )
    return objects


def _chart_config(service: dict, members: list[dict]) -> dict:
    files = _config_files(service, members)
    return {
        "name": f"{members[0]['workload']}-config",
        "dir": service["config_dir"],
        "files": [{"path": f["path"], "secret": f["secret"]} for f in files],
        # Paths, secret flags and contents: any change rolls the component's pods.
        "checksum": hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest(),
        "secretFiles": any(f["secret"] for f in files),
        "publicFiles": any(not f["secret"] for f in files),
    }


def _container(component: dict) -> dict:
    """What the chart runs of a component in its pod: one container."""
    return {
        "name": component["name"],
        "command": [component["executable"]],
        "args": component["args"],
        "env": component["env"],
        "ports": component["ports"],
        "health": component["health"],
        "stop": component["stop"],
        "resources": component["resources"],
    }


def _guarded(job: dict) -> list[str]:
    """A first-start job as an init container: skipped once `creates` exists, as on metal."""
    return ["/bin/sh", "-c", 'test -e "$0" || exec "$@"', job["creates"], job["executable"], *job["args"]]


def _pod_of(component: dict, components: list[dict]) -> list[dict]:
    """The components that share `component`'s pod (its workload), itself among them."""
    return [c for c in components if c["workload"] == component["workload"]]


def _test_targets(components: list[dict]) -> list[dict]:
    """What the release's `helm test` reaches through each Service, as a consumer would: every
    exposed port, at the path of the component's HTTP probe on it (else a TCP connection)."""
    targets = []
    for component in components:
        # Any probe of the pod on that port (a front's port may serve its server's readiness).
        pod = [c["health"] for c in _pod_of(component, components)]
        http_probes = [p for h in pod for p in (h["readiness"], h["liveness"]) if p and p["port"]]
        for port in component["ports"]:
            if not port["exposed"]:
                continue
            probe = next((p for p in http_probes if p["port"] == port["name"]), None)
            targets.append(
                {
                    "workload": component["workload"],
                    "port": port["port"],
                    "scheme": probe["scheme"] if probe else "tcp",
                    "path": (probe["path"] if probe else "") or "",
                }
            )
    return targets


def helm_values(
    service: dict, components: list[dict], image: dict, cluster_domain: str, uid: int, probe: str = ""
) -> dict:
    """The values of the generic chart (helm/lakehouse-service) for the components a cluster
    receives: names, the image pin, programs, ports, probes and checksums; never a file's content.
    Pods run as `uid`, the service user of the images built from the artifact table. `probe` is
    the path of lakehouse-probe in the image (built images hold it): the program of `helm test`."""
    first_start = [j for j in service["jobs"] if j["when"] == "before"]
    chart_components = []
    for main, *sidecars in _pods(components):
        members = [main, *sidecars]
        # Each start's steps in order, each once (the components of one pod may share them), with
        # the environment of the component that asks for it.
        pre_start: dict[tuple, dict] = {}
        for member in members:
            for argv in member["pre_start"]:
                pre_start.setdefault(tuple(argv), member["env"])
        inits = [
            {"name": f"pre-start-{i}", "command": list(argv), "env": env}
            for i, (argv, env) in enumerate(pre_start.items())
        ]
        inits += [{"name": job["name"], "command": _guarded(job), "env": job["env"]} for job in first_start]
        volumes = [v for member in members for v in member["volumes"]]
        chart_components.append(
            {
                **_container(main),
                "workload": main["workload"],
                "replicas": main["replicas"],
                "startTogether": main["start_together"],
                "home": service["home"],
                "homeIsVolume": service["home"] in {v["path"] for v in volumes},
                # Paths the unit may write besides its home: emptyDirs on a read-only root file system.
                "writable": sorted(set(service["read_write_paths"]) - {v["path"] for v in volumes} - {service["home"]}),
                "config": _chart_config(service, members),
                "initContainers": inits,
                "sidecars": [_container(sidecar) for sidecar in sidecars],
                "volumes": [
                    {"name": v["name"], "path": v["path"], "size": v["size"], "storageClassName": v["storage_class"]}
                    for v in volumes
                ],
            }
        )
    jobs = []
    for job in _cluster_jobs(service):
        config = _chart_config(service, [_job_owner(job)])
        jobs.append(
            {
                "name": job["name"],
                # A CronJob's schedule (UTC); none for a Job run once after the service is ready.
                "schedule": job["schedule"],
                "workload": job["workload"],
                "command": [job["executable"], *job["args"]],
                "env": job["env"],
                "home": service["home"],
                "homeIsVolume": False,
                "writable": sorted(set(service["read_write_paths"]) - {service["home"]}),
                "volumes": [],
                "config": config,
                "checksum": hashlib.sha256(json.dumps([job, config["checksum"]], sort_keys=True).encode()).hexdigest(),
                "backoffLimit": 3,
                "resources": {},
            }
        )
    return {
        "name": service["name"],
        "clusterDomain": cluster_domain,
        "image": {key: image[key] for key in ("repository", "tag", "digest")},
        "components": chart_components,
        "jobs": jobs,
        "provides": service["provides"],
        "consumes": sorted(service["consumes"]),
        "networkPolicy": {"enabled": True, "from": []},
        "rbac": {
            "rules": [
                {"apiGroups": r["api_groups"], "resources": r["resources"], "verbs": r["verbs"]}
                for r in service["kubernetes_rules"]
            ]
        },
        "tests": {
            "probe": probe,
            # The CA the probe trusts: the service's CA file, from the first component's ConfigMap.
            "ca": {"config": components[0]["workload"] + "-config", "key": config_key(service["ca_file"])}
            if service["ca_file"] and components
            else None,
            "targets": _test_targets(components) if probe else [],
        },
        # Merged by Helm over the chart's restricted defaults.
        "podSecurityContext": {"runAsUser": uid, "runAsGroup": uid, "fsGroup": uid},
    }


def readiness_waits(service: dict, components: list[dict], endpoint: dict) -> list[dict]:
    """The readiness probes on a port that an engine waits on, by DNS name: an HTTP `url`, or a
    TCP `host` and `port` (a URL of scheme tcp).

    On a metal host every component's probe, at the service's published name. On a cluster the
    kubelet's probes gate the rollout; they check the status only, so a probe that must also
    match the body is waited on here, through the component's Service (a component whose
    readiness lives in the body and that no Service exposes says so with a probe command).
    """
    waits = []
    for component in components:
        probe = component["health"]["readiness"]
        if not probe["port"]:
            continue
        if endpoint["delivery"] == "helm":
            port = next(
                p for c in _pod_of(component, service["components"]) for p in c["ports"] if p["name"] == probe["port"]
            )
            if not (probe["match"] and port["exposed"]):
                continue
            host = f"{component['workload']}.{endpoint['namespace']}.svc.{endpoint['cluster_domain']}"
        else:
            host = service["server_name"]
        waits.append(
            {
                "component": component["name"],
                "url": f"{probe['scheme']}://{host}:{probe['number']}{probe['path'] or ''}",
                "host": host,
                "port": probe["number"],
                "match": probe["match"] or "",
                "retries": component["health"]["retries"],
                "delay": component["health"]["delay"],
            }
        )
    return waits


def state_probes(service: dict, components: list[dict], endpoint: dict, ca_path: str) -> list[dict]:
    """The readiness probes as library/lakehouse_service_state.py tries them once on a metal host:
    each URL (trusting `ca_path`) or TCP port of readiness_waits, and each component's command."""
    probes = []
    for wait in readiness_waits(service, components, endpoint):
        if wait["url"].startswith("tcp:"):
            probes.append({"name": wait["component"], "host": wait["host"], "port": wait["port"]})
        else:
            probes.append({"name": wait["component"], "url": wait["url"], "match": wait["match"], "ca_path": ca_path})
    for component in components:
        if component["health"]["readiness"]["command"]:
            probes.append({"name": component["name"], "command": component["health"]["readiness"]["command"]})
    return probes


def peer_probes(hosts: list, hostvars, units: list, ca_path: str) -> list[dict]:
    """The liveness probes of the rolling `units` on other hosts (`hosts`, each placed by
    roles/delivery: its `__delivery` and `__delivery_components` in `hostvars`), as
    library/lakehouse_unit_restart.py tries them before this host restarts: a roll stops at a host
    whose restart failed."""
    probes, units = [], set(units)
    for host in hosts:
        peer = hostvars[host]
        for component in peer.get("__delivery_components") or []:
            if component["unit"] not in units:
                continue
            live, name = component["health"]["liveness"], peer["__delivery"]["server_name"]
            probe = {"name": f"{component['name']} on {host}"}
            if live["path"]:
                probe.update(url=f"{live['scheme']}://{name}:{live['number']}{live['path']}", ca_path=ca_path)
            else:
                probe.update(host=name, port=live["number"])
            probes.append(probe)
    return probes


def image_content(
    service: dict, table: dict, fetched: dict, root: str, arch: str, builder: str, tools: list | None = None
) -> dict:
    """What a service's image holds, laid out as the systemd engine lays out a host: each verified
    artifact at its versioned path (an archive unpacked there), its `dest` a link to it, the Java
    trust store builder where the unit runs it; the service user owns its home and directories.
    `tools` are artifacts ({name, dest}) every image holds besides the service's (the probe)."""
    content = {"files": [], "archives": [], "links": []}
    for artifact in [*service["artifacts"], *(tools or [])]:
        entry = table[artifact["name"]]
        path = artifact_path(artifact["name"], table, root)
        source = {"src": fetched[artifact["name"]]["path"], "dest": path, "sha256": entry["sha256"][arch]}
        if entry.get("unpack"):
            content["archives"].append({**source, "root": entry["unpack"]["root"]})
        else:
            content["files"].append({**source, "mode": "0755"})
        content["links"].append({"dest": artifact["dest"], "src": path})
    if service["java"]:
        content["files"].append({"src": builder, "dest": service["truststore_builder"], "mode": "0755"})
    content["directories"] = [{"path": path} for path in service["directories"]]
    # Tagged by the service's version, else its first artifact's; the digest decides anyway.
    main = service["artifacts"][0]["name"] if service["artifacts"] else None
    content["tag"] = str(service["version"] or (table[main]["version"] if main else ""))
    if not content["tag"]:
        raise AnsibleFilterError(f"service {service['name']}: an image needs the service's `version` or an artifact")
    return content


def scheduled_jobs(service: dict) -> list[dict]:
    """The jobs a metal host runs from a timer."""
    return [j for j in service["jobs"] if j["when"] == "scheduled"]


def host_tree(
    service: dict,
    components: list[dict],
    table: dict,
    root: str,
    arch: str,
    units: list,
    platform_files: list,
    job_units: list = (),
) -> dict:
    """What the systemd engine lays out on a host for a service, as lakehouse_tree entries
    (library/lakehouse_tree.py): `directories`, public `files`, `secrets` and `links`, each file
    tagged with what a change of it means (`config`, `unit:<unit>`, `program`); and what
    library/lakehouse_service_state.py checks: the installed `artifacts` with their sha256, the
    `unpacked` archives' paths, and `artifact_paths` (artifact name -> installed path).
    `units` holds each component's rendered unit, in order, and `job_units` each scheduled job's
    rendered unit and timer; `platform_files` are what the host shares between services (the CA,
    the trust store builder). A scheduled job's own files are tagged `job`: their change restarts
    no component (the next run reads them).

    The layout is the one image_content gives an image: each verified artifact at its versioned
    path, its `dest` a link to it.
    """
    user, config_dir = service["user"], service["config_dir"]
    files = service["files"] + [f for c in components for f in c["files"]]
    scheduled = scheduled_jobs(service)
    job_files = [f for j in scheduled for f in j["files"]]
    subdirs = sorted({posixpath.dirname(f["path"]) for f in files + job_files} - {""})
    tree = {
        "directories": [],
        "files": [],
        "secrets": [],
        "links": [],
        "artifacts": [],
        "unpacked": [],
        "artifact_paths": {},
    }
    # Written before the packages are installed, so that their maintainer scripts read it.
    tree["preseed"] = {
        "directories": [{"path": p} for p in sorted({posixpath.dirname(f["path"]) for f in service["package_config"]})],
        "files": [{"path": f["path"], "content": f["content"], "tag": "package"} for f in service["package_config"]],
    }
    for path in [service["home"], *service["directories"]]:
        tree["directories"].append({"path": path, "owner": user, "group": user, "mode": "0750"})
    for sub in ["", *subdirs]:
        tree["directories"].append({"path": posixpath.join(config_dir, sub), "group": user, "mode": "0750"})
    for artifact in service["artifacts"]:
        entry, path = table[artifact["name"]], artifact_path(artifact["name"], table, root)
        tree["artifact_paths"][artifact["name"]] = path
        tree["directories"].append({"path": posixpath.dirname(path), "mode": "0755"})
        tree["links"].append({"path": artifact["dest"], "src": path, "tag": "program"})
        if entry.get("unpack"):
            tree["unpacked"].append(path)
        else:
            tree["artifacts"].append({"path": path, "sha256": entry["sha256"][arch]})
    for entry, tag in [*((f, "config") for f in files), *((f, "job") for f in job_files)]:
        path = f"{config_dir}/{entry['path']}"
        if entry["secret"]:
            tree["secrets"].append({"path": path, "content": entry["content"], "owner": user, "group": user,
                                    "mode": "0600", "tag": tag})  # fmt: skip
        else:
            tree["files"].append({"path": path, "content": entry["content"], "group": user, "mode": "0640",
                                  "tag": tag})  # fmt: skip
    if len(units) != len(components):
        raise AnsibleFilterError(f"service {service['name']}: {len(units)} units rendered, {len(components)} placed")
    for component, unit in zip(components, units, strict=True):
        tree["files"].append({"path": f"/etc/systemd/system/{component['unit']}", "content": unit,
                              "tag": f"unit:{component['unit']}"})  # fmt: skip
    if len(job_units) != len(scheduled):
        raise AnsibleFilterError(f"service {service['name']}: {len(job_units)} job units, {len(scheduled)} jobs")
    for job, (unit, timer) in zip(scheduled, job_units, strict=True):
        for name, content in ((job["unit"], unit), (job["timer"], timer)):
            tag = f"timer:{job['timer']}"
            tree["files"].append({"path": f"/etc/systemd/system/{name}", "content": content, "tag": tag})
    tree["files"] += platform_files
    return tree


class FilterModule:
    def filters(self):
        return {
            "lakehouse_service": normalize,
            "lakehouse_placed": placed,
            "lakehouse_config_objects": config_objects,
            "lakehouse_config_key": config_key,
            "lakehouse_helm_values": helm_values,
            "lakehouse_image_content": image_content,
            "lakehouse_readiness_waits": readiness_waits,
            "lakehouse_state_probes": state_probes,
            "lakehouse_peer_probes": peer_probes,
            "lakehouse_host_tree": host_tree,
            "lakehouse_scheduled_jobs": scheduled_jobs,
        }
