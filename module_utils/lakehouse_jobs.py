"""Orchestrator-neutral job specs (jobs/*.yml): their schema, their one loader and validator, and
the renderers that turn them into an Airflow 3 DAG file or a Dagster definitions module.

Pure Python (stdlib and PyYAML): Ansible filter plugins and the unit tests import it alike. A job's
logic lives in its container image; an orchestrator only schedules the job and runs that container.

Job spec (schema_version 1; unknown keys are refused, defaults are applied here and nowhere else)::

    schema_version: 1                     # required
    name: daily_ingest                    # required, [a-z][a-z0-9_]*, at most 63 characters, unique
    description: ...                      # default ""
    image: daily-ingest                   # required: a key of the project's image table, which the
                                          #   caller resolves to a reference (runtime context `images`)
    command: [/usr/bin/python3, /opt/lakehouse-jobs/daily_ingest.py]
                                          # default []: the image's entrypoint (Kubernetes `command`);
                                          #   no template variable (Docker's entrypoint is not templated)
    args: ["--date", "{{ ds }}"]          # default []: Kubernetes `args`; template variables allowed
    env: {ROWS: "1000"}                   # default {}: strings only, template variables allowed; no
                                          #   secret-looking name (PASSWORD, PASSWD, SECRET, TOKEN,
                                          #   CREDENTIAL, KEY) and no LAKEHOUSE_* name (the contracts' own)
    schedule: "@daily"                    # default null (manual only); @hourly, @daily, @weekly,
                                          #   @monthly or a numeric 5-field cron, all in UTC
    start_date: "2026-01-01"              # YYYY-MM-DD (UTC midnight); required with a schedule
    catchup: false                        # default false
    resources:                            # default {requests: {}, limits: {}}; keys cpu and memory
      requests: {cpu: 100m, memory: 128Mi}
      limits: {memory: 512Mi}
    retries: 1                            # default 0
    retry_delay_seconds: 60               # default 60
    timeout_seconds: 900                  # default 3600
    uses: [query]                         # default []: contracts the job needs, of query, catalog,
                                          #   object_storage; what each becomes is the context's

No secret and no literal host appears in a spec: what the job needs to reach a service arrives
through `uses` (plain environment values and read-only mounted files), so a spec refuses "://" in
command, args and env.

Template variables, the only `{{ ... }}` a spec may hold (in args and env values): `{{ ds }}`
(YYYY-MM-DD), `{{ ds_nodash }}` (YYYYMMDD), `{{ data_interval_start }}`, `{{ data_interval_end }}`
(ISO 8601 with offset, e.g. 2026-01-01T00:00:00+00:00) and `{{ run_id }}`. Other Jinja syntax
(`{%`, `{#`, other names, filters) is refused. A scheduled run covers one interval of its schedule:
`ds` is the day the interval starts (the @daily run that starts at 2026-01-02T00:00Z covers, and is
the run of, 2026-01-01). Airflow renders them natively: every field that carries one (DockerOperator
`command`, `environment`; KubernetesPodOperator `arguments`, `env_vars`) is a templated field, the
schedule is a CronDataIntervalTimetable (logical date = interval start) and the operators' template
file extensions are switched off (an argument ending in .sh or .json stays a plain string). Dagster
computes them in the op: from the partition's time window (every scheduled job is partitioned by its
schedule), else from the run tag `lakehouse/logical_date` (ISO 8601), else the run's creation time;
`run_id` is Dagster's run id.

Runtime context: what the caller (the orchestrator role) passes to the renderers::

    {"target": "docker" | "kubernetes",                                  # required
     "images": {"daily-ingest": "localhost/lakehouse/daily-ingest:1.0.0@sha256:..."},  # required
     "contracts": {                                                       # default {}
         "query": {
             "env": {"LAKEHOUSE_QUERY_URL": "https://trino.lakehouse.test:8443",
                     "LAKEHOUSE_QUERY_USER": "admin", "LAKEHOUSE_QUERY_CATALOG": "lakehouse",
                     "LAKEHOUSE_CA_FILE": "/run/lakehouse/ca.crt",
                     "LAKEHOUSE_QUERY_PASSWORD_FILE": "/run/lakehouse/secrets/query-password"},
             "files": [
                 # docker: "source" is a file on the container host;
                 # kubernetes: {"secret": NAME, "key": KEY} or {"config_map": NAME, "key": KEY}
                 {"source": "/etc/lakehouse-orchestrator/jobs/query.password",
                  "path": "/run/lakehouse/secrets/query-password"}]}},
     "docker": {"url": "unix:///run/podman/podman.sock",                  # required for docker
                "network_mode": "host"},                                  # default "host"
     "kubernetes": {"namespace": "lakehouse",                             # required for kubernetes
                    "service_account": "lakehouse-jobs",                  # required for kubernetes
                    "image_pull_policy": "IfNotPresent",                  # default
                    "run_as_user": 65532, "run_as_group": 65532},         # optional
     "labels": {"app.kubernetes.io/managed-by": "lakehouse"}}             # default {}

Every `uses` entry must be a key of `contracts`. Env values are plain; a contract env name that looks
like a secret is refused unless it ends in _FILE and names one of the contract's mounted paths.
Files are mounted read-only (Docker bind mounts; Kubernetes secret or config map volumes, one subPath
mount per file, mode 0444). The renderers never read a file: no secret value is in their output.
Every container carries the context's labels and `lakehouse.job: <name>`. On Kubernetes the pod runs
with runAsNonRoot, no privilege escalation, every capability dropped and the RuntimeDefault seccomp
profile, so a job image declares a numeric non-root USER (or the context sets run_as_user).

Triggering the run of a date D (e.g. 2026-01-02) through each orchestrator's API:

- Airflow (dag_id = the job's name): ``POST /api/v2/dags/{name}/dagRuns`` with
  ``{"logical_date": "2026-01-02T00:00:00Z", "data_interval_start": "2026-01-02T00:00:00Z",
  "data_interval_end": "2026-01-03T00:00:00Z", "conf": {}}`` (without the interval Airflow infers
  the interval ending at the logical date; `ds` is the logical date's day either way). Airflow keeps
  one run per logical date: a second run of the same date is a 409; re-run it with
  ``POST /api/v2/dags/{name}/dagRuns/{dag_run_id}/clear`` and ``{"dry_run": false}``.
- Dagster (code location `lakehouse_jobs` as render_dagster_workspace names it, repository
  `__repository__`, job = the job's name): the GraphQL ``launchRun`` mutation with
  ``executionParams = {"selector": {"repositoryLocationName": "lakehouse_jobs",
  "repositoryName": "__repository__", "jobName": name}, "runConfigData": {},
  "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "2026-01-02"}]}}``.
  The partition key is the interval start in the partitions' format: %Y-%m-%d for @daily,
  @weekly and @monthly, %Y-%m-%d-%H:%M for @hourly and other crons. A job without a schedule is
  unpartitioned: tag it {"key": "lakehouse/logical_date", "value": "2026-01-02T00:00:00+00:00"}.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Mapping

import yaml

SCHEMA_VERSION = 1
TEMPLATE_VARIABLES = ("ds", "ds_nodash", "data_interval_start", "data_interval_end", "run_id")
CONTRACTS = ("query", "catalog", "object_storage")
TARGETS = ("docker", "kubernetes")
JOB_LABEL = "lakehouse.job"
DAGSTER_LOCATION = "lakehouse_jobs"
DAGSTER_REPOSITORY = "__repository__"
# The presets as crons (UTC) and, for Dagster, the partitions definition and its key format.
PRESETS = {
    "@hourly": ("0 * * * *", "HourlyPartitionsDefinition", "%Y-%m-%d-%H:%M"),
    "@daily": ("0 0 * * *", "DailyPartitionsDefinition", "%Y-%m-%d"),
    "@weekly": ("0 0 * * 0", "WeeklyPartitionsDefinition", "%Y-%m-%d"),
    "@monthly": ("0 0 1 * *", "MonthlyPartitionsDefinition", "%Y-%m-%d"),
}
CRON_PARTITION_FORMAT = "%Y-%m-%d-%H:%M"

DEFAULTS = {
    "description": "",
    "command": [],
    "args": [],
    "env": {},
    "schedule": None,
    "start_date": None,
    "catchup": False,
    "resources": {"requests": {}, "limits": {}},
    "retries": 0,
    "retry_delay_seconds": 60,
    "timeout_seconds": 3600,
    "uses": [],
}
REQUIRED = ("schema_version", "name", "image")
KEYS = REQUIRED + tuple(DEFAULTS)

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_IMAGE_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)
_VARIABLE = re.compile(r"^\s*(" + "|".join(TEMPLATE_VARIABLES) + r")\s*$")
_SECRET_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL")
_CPU = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
_MEMORY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MEMORY_UNITS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_MEMORY_UNITS.update({"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40})
_CRON_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_PART = re.compile(r"^(\*|(\d+)(-(\d+))?)(/(\d+))?$")


class JobSpecError(ValueError):
    """A job spec or runtime context that the renderers refuse; the message names file and key."""


# --- loading and validation ----------------------------------------------------------------------


def _plain(value):
    """value with Ansible's (or any) str/dict/list subclasses made plain, so repr() is Python source."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, Mapping):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def looks_secret(name: str) -> bool:
    """True when an environment variable's name says it holds a secret."""
    upper = str(name).upper()
    if any(word in upper for word in _SECRET_WORDS):
        return True
    return any(part in ("KEY", "APIKEY", "ACCESSKEY", "PRIVATEKEY") for part in upper.split("_"))


def _problem(origin, key, reason):
    return JobSpecError(f"{origin}: {key}: {reason}")


def _strings(origin, key, value):
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _problem(origin, key, "must be a list of strings (quote numbers)")
    return list(value)


def _check_text(origin, key, text, templates=True):
    """Refuse Jinja syntax other than the template variables, and literal URLs."""
    if "{%" in text or "{#" in text:
        raise _problem(origin, key, f"{text!r}: only the template variables {{{{ name }}}} are allowed")
    for match in _TEMPLATE.finditer(text):
        if not templates:
            raise _problem(origin, key, f"{text!r}: no template variable here ({match.group(0)})")
        if not _VARIABLE.match(match.group(1)):
            raise _problem(
                origin,
                key,
                f"{match.group(0)!r} is not a template variable (known: {', '.join(TEMPLATE_VARIABLES)})",
            )
    if "{{" in _TEMPLATE.sub("", text):
        raise _problem(origin, key, f"{text!r}: unclosed '{{{{'")
    if "://" in text:
        raise _problem(origin, key, f"{text!r}: no URL in a job spec; declare the service in `uses`")


def _check_cron(origin, cron):
    fields = cron.split()
    if len(fields) != 5:
        raise _problem(origin, "schedule", f"{cron!r}: a preset ({', '.join(PRESETS)}), a 5-field cron or null")
    for field, (low, high) in zip(fields, _CRON_BOUNDS, strict=True):
        for part in field.split(","):
            match = _CRON_PART.match(part)
            numbers = [int(n) for n in (match.group(2), match.group(4)) if n is not None] if match else []
            if not match or any(not low <= n <= high for n in numbers) or match.group(6) == "0":
                raise _problem(origin, "schedule", f"{cron!r}: field {field!r} is not a numeric cron field")


_WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _calendar_field(origin, field: str, first: int, weekdays: bool = False) -> str:
    """One cron field as systemd writes it: ranges a..b, repetition start/step, weekdays by name."""
    parts = []
    for part in field.split(","):
        whole, start, _, end, _, step = _CRON_PART.match(part).groups()
        if weekdays and step:
            raise _problem(origin, "schedule", f"{field!r}: a step of weekdays has no calendar form")
        name = (lambda n: _WEEKDAYS[int(n)]) if weekdays else str
        if whole == "*":
            text = f"{first}/{step}" if step else "*"
        else:
            text = name(start) + (f"..{name(end)}" if end is not None else "")
            text += f"/{step}" if step else ""
        parts.append(text)
    return ",".join(parts)


def on_calendar(schedule: str, origin: str = "schedule") -> str:
    """A schedule (a preset or a 5-field cron, UTC, as a Kubernetes CronJob reads it) as the
    OnCalendar expression of a systemd timer, so one variable schedules both deliveries.

    Cron runs a job when either its day of month or its weekday matches; systemd when both do:
    a schedule that restricts both is refused rather than run on other days."""
    cron = PRESETS[schedule][0] if schedule in PRESETS else " ".join(str(schedule).split())
    _check_cron(origin, cron)
    minute, hour, day, month, weekday = cron.split()
    if day != "*" and weekday != "*":
        raise _problem(origin, "schedule", f"{schedule!r}: restrict the day of month or the weekday, not both")
    date = f"*-{_calendar_field(origin, month, 1)}-{_calendar_field(origin, day, 1)}"
    time = f"{_calendar_field(origin, hour, 0)}:{_calendar_field(origin, minute, 0)}:00"
    days = "" if weekday == "*" else _calendar_field(origin, weekday, 0, weekdays=True) + " "
    return f"{days}{date} {time} UTC"


def _check_resources(origin, resources):
    if not isinstance(resources, Mapping):
        raise _problem(origin, "resources", "must be a mapping of requests and limits")
    result = {}
    for section in ("requests", "limits"):
        values = resources.get(section) or {}
        if not isinstance(values, Mapping):
            raise _problem(origin, f"resources.{section}", "must be a mapping of cpu and memory")
        for name, value in values.items():
            key = f"resources.{section}.{name}"
            pattern = {"cpu": _CPU, "memory": _MEMORY}.get(name)
            if pattern is None:
                raise _problem(origin, key, "unknown key (cpu, memory)")
            if not isinstance(value, str | int) or isinstance(value, bool) or not pattern.match(str(value)):
                raise _problem(origin, key, f"{value!r} is not a Kubernetes quantity (e.g. 500m, 512Mi)")
        result[section] = {name: str(value) for name, value in values.items()}
    unknown = sorted(set(resources) - {"requests", "limits"})
    if unknown:
        raise _problem(origin, f"resources.{unknown[0]}", "unknown key (requests, limits)")
    return result


def _check_int(origin, key, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _problem(origin, key, f"{value!r}: must be an integer of at least {low}")
    return value


def load_spec(source) -> dict:
    """The job spec at `source` (a path to a YAML file, or a mapping), validated, with defaults.

    Raises JobSpecError naming the file (or the spec's name) and the key. A loaded spec loads again
    unchanged, so the renderers validate what they are given."""
    if isinstance(source, Mapping):
        document = _plain(source)
        origin = f"job spec {document.get('name', '?')!s}"
    else:
        origin = os.fspath(source)
        try:
            with open(origin, encoding="utf-8") as handle:
                document = _plain(yaml.safe_load(handle))
        except (OSError, yaml.YAMLError) as error:
            raise JobSpecError(f"{origin}: {error}") from error
    if not isinstance(document, dict):
        raise JobSpecError(f"{origin}: a job spec is a mapping")
    for key in document:
        if key not in KEYS:
            raise _problem(origin, key, f"unknown key (known: {', '.join(KEYS)})")
    for key in REQUIRED:
        if key not in document:
            raise _problem(origin, key, "required")
    spec = {key: _plain(value) for key, value in DEFAULTS.items()}
    spec.update({key: value for key, value in document.items() if value is not None or key == "schedule"})

    if spec["schema_version"] != SCHEMA_VERSION:
        raise _problem(origin, "schema_version", f"{spec['schema_version']!r}: this loader reads {SCHEMA_VERSION}")
    if not isinstance(spec["name"], str) or not _NAME.match(spec["name"]):
        raise _problem(origin, "name", f"{spec['name']!r}: [a-z][a-z0-9_]*, at most 63 characters")
    if not isinstance(spec["description"], str):
        raise _problem(origin, "description", "must be a string")
    if not isinstance(spec["image"], str) or not _IMAGE_KEY.match(spec["image"]):
        raise _problem(origin, "image", f"{spec['image']!r}: a key of the image table, e.g. daily-ingest")

    spec["command"] = _strings(origin, "command", spec["command"])
    for index, item in enumerate(spec["command"]):
        _check_text(origin, f"command[{index}]", item, templates=False)
    spec["args"] = _strings(origin, "args", spec["args"])
    for index, item in enumerate(spec["args"]):
        _check_text(origin, f"args[{index}]", item)
    if not isinstance(spec["env"], Mapping):
        raise _problem(origin, "env", "must be a mapping of names to strings")
    for name, value in spec["env"].items():
        key = f"env.{name}"
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise _problem(origin, key, "not an environment variable name")
        if looks_secret(name):
            raise _problem(origin, key, "looks like a secret: a job gets secrets only as files, through `uses`")
        if name.upper().startswith("LAKEHOUSE_"):
            raise _problem(origin, key, "LAKEHOUSE_* variables are the contracts' own: declare them in `uses`")
        if not isinstance(value, str):
            raise _problem(origin, key, f"{value!r}: env values are strings (quote it)")
        _check_text(origin, key, value)

    schedule = spec["schedule"]
    if schedule is not None:
        if not isinstance(schedule, str):
            raise _problem(origin, "schedule", f"{schedule!r}: a preset, a 5-field cron or null")
        spec["schedule"] = schedule = " ".join(schedule.split())
        if schedule.startswith("@"):
            if schedule not in PRESETS:
                raise _problem(origin, "schedule", f"{schedule!r}: presets are {', '.join(PRESETS)}")
        else:
            _check_cron(origin, schedule)
    start = spec["start_date"]
    if isinstance(start, datetime.datetime):
        raise _problem(origin, "start_date", "a day, YYYY-MM-DD (UTC)")
    if isinstance(start, datetime.date):
        start = start.isoformat()
    if start is not None:
        try:
            datetime.date.fromisoformat(str(start))
        except ValueError:
            raise _problem(origin, "start_date", f"{start!r}: a day, YYYY-MM-DD (UTC)") from None
        if not re.match(r"^\d{4}-\d{2}-\d{2}$", str(start)):
            raise _problem(origin, "start_date", f"{start!r}: a day, YYYY-MM-DD (UTC)")
    elif schedule is not None:
        raise _problem(origin, "start_date", "required with a schedule")
    spec["start_date"] = start
    if not isinstance(spec["catchup"], bool):
        raise _problem(origin, "catchup", "true or false")
    spec["resources"] = _check_resources(origin, spec["resources"])
    spec["retries"] = _check_int(origin, "retries", spec["retries"], 0)
    spec["retry_delay_seconds"] = _check_int(origin, "retry_delay_seconds", spec["retry_delay_seconds"], 0)
    spec["timeout_seconds"] = _check_int(origin, "timeout_seconds", spec["timeout_seconds"], 1)
    uses = _strings(origin, "uses", spec["uses"])
    for name in uses:
        if name not in CONTRACTS:
            raise _problem(origin, "uses", f"{name!r}: contracts are {', '.join(CONTRACTS)}")
    if len(set(uses)) != len(uses):
        raise _problem(origin, "uses", "lists a contract twice")
    spec["uses"] = uses
    return {key: spec[key] for key in KEYS}


def load_specs(sources) -> list[dict]:
    """Every job spec of a directory (its *.yml and *.yaml) or of a list of paths or mappings,
    sorted by name; two specs of one name are refused."""
    if isinstance(sources, str | os.PathLike):
        folder = os.fspath(sources)
        sources = [
            os.path.join(folder, entry)
            for entry in sorted(os.listdir(folder))
            if entry.endswith((".yml", ".yaml")) and os.path.isfile(os.path.join(folder, entry))
        ]
    specs, seen = [], {}
    for source in sources:
        spec = load_spec(source)
        label = source.get("name") if isinstance(source, Mapping) else os.fspath(source)
        if spec["name"] in seen:
            raise JobSpecError(f"{label}: name: {spec['name']!r} is also the name of {seen[spec['name']]}")
        seen[spec["name"]] = label
        specs.append(spec)
    return sorted(specs, key=lambda spec: spec["name"])


# --- the runtime context -------------------------------------------------------------------------


def _context_problem(key, reason):
    return JobSpecError(f"runtime context: {key}: {reason}")


def _mapping(value, key, known, required=()):
    if not isinstance(value, Mapping):
        raise _context_problem(key, "must be a mapping")
    for name in value:
        if name not in known:
            raise _context_problem(f"{key}.{name}" if key else name, f"unknown key (known: {', '.join(known)})")
    for name in required:
        if value.get(name) in (None, ""):
            raise _context_problem(f"{key}.{name}" if key else name, "required")
    return value


def _context_text(key, value):
    if not isinstance(value, str) or not value:
        raise _context_problem(key, f"{value!r}: must be a non-empty string")
    if "{{" in value or "{%" in value or "{#" in value:
        raise _context_problem(key, f"{value!r}: no template syntax in a runtime context")
    return value


def check_context(context) -> dict:
    """The runtime context (see the module docstring), validated and with its defaults."""
    context = _plain(context)
    known = ("target", "images", "contracts", "docker", "kubernetes", "labels")
    _mapping(context, "", known, required=("target", "images"))
    target = context["target"]
    if target not in TARGETS:
        raise _context_problem("target", f"{target!r}: {' or '.join(TARGETS)}")
    images = context["images"]
    if not isinstance(images, Mapping) or not images:
        raise _context_problem("images", "a mapping of image keys to references")
    for key, reference in images.items():
        if any(char.isspace() for char in _context_text(f"images.{key}", reference)):
            raise _context_problem(f"images.{key}", f"{reference!r}: not an image reference")
    labels = context.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise _context_problem("labels", "must be a mapping")
    for name, value in labels.items():
        _context_text(f"labels.{name}", name)
        _context_text(f"labels.{name}", value)
    result = {"target": target, "images": dict(images), "labels": dict(labels), "contracts": {}}

    if target == "docker":
        docker = _mapping(context.get("docker") or {}, "docker", ("url", "network_mode"), required=("url",))
        result["docker"] = {"url": _context_text("docker.url", docker["url"])}
        result["docker"]["network_mode"] = _context_text("docker.network_mode", docker.get("network_mode", "host"))
    else:
        known_k8s = ("namespace", "service_account", "image_pull_policy", "run_as_user", "run_as_group")
        kubernetes = _mapping(
            context.get("kubernetes") or {}, "kubernetes", known_k8s, required=("namespace", "service_account")
        )
        result["kubernetes"] = {
            "namespace": _context_text("kubernetes.namespace", kubernetes["namespace"]),
            "service_account": _context_text("kubernetes.service_account", kubernetes["service_account"]),
            "image_pull_policy": kubernetes.get("image_pull_policy", "IfNotPresent"),
        }
        if result["kubernetes"]["image_pull_policy"] not in ("Always", "IfNotPresent", "Never"):
            raise _context_problem("kubernetes.image_pull_policy", "Always, IfNotPresent or Never")
        for name in ("run_as_user", "run_as_group"):
            if kubernetes.get(name) is not None:
                value = kubernetes[name]
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise _context_problem(f"kubernetes.{name}", f"{value!r}: a non-root numeric id")
                result["kubernetes"][name] = value

    contracts = context.get("contracts") or {}
    _mapping(contracts, "contracts", CONTRACTS)
    for name, contract in contracts.items():
        key = f"contracts.{name}"
        contract = _mapping(contract or {}, key, ("env", "files"))
        files = []
        for index, entry in enumerate(contract.get("files") or []):
            files.append(_context_file(f"{key}.files[{index}]", entry, target))
        paths = {entry["path"] for entry in files}
        env = contract.get("env") or {}
        if not isinstance(env, Mapping):
            raise _context_problem(f"{key}.env", "must be a mapping")
        for variable, value in env.items():
            if not isinstance(variable, str) or not _ENV_NAME.match(variable):
                raise _context_problem(f"{key}.env.{variable}", "not an environment variable name")
            _context_text(f"{key}.env.{variable}", value)
            if looks_secret(variable) and not (variable.upper().endswith("_FILE") and value in paths):
                raise _context_problem(
                    f"{key}.env.{variable}",
                    "looks like a secret: pass it as a file (files) and, if needed, its path in a *_FILE variable",
                )
        result["contracts"][name] = {"env": dict(env), "files": files}
    return result


def _context_file(key, entry, target):
    entry = _mapping(entry, key, ("source", "path"), required=("source", "path"))
    path = _context_text(f"{key}.path", entry["path"])
    if not os.path.isabs(path):
        raise _context_problem(f"{key}.path", f"{path!r}: an absolute path in the container")
    source = entry["source"]
    if target == "docker":
        if not isinstance(source, str) or not os.path.isabs(_context_text(f"{key}.source", source)):
            raise _context_problem(f"{key}.source", f"{source!r}: an absolute path on the container host")
    else:
        shape = f"{source!r}: {{secret: NAME, key: KEY}} or {{config_map: NAME, key: KEY}}"
        if not isinstance(source, Mapping) or len(source) != 2 or "key" not in source:
            raise _context_problem(f"{key}.source", shape)
        kind = next(name for name in source if name != "key")
        if kind not in ("secret", "config_map"):
            raise _context_problem(f"{key}.source", shape)
        _context_text(f"{key}.source.{kind}", source[kind])
        _context_text(f"{key}.source.key", source["key"])
        source = {kind: source[kind], "key": source["key"]}
    return {"source": source, "path": path}


def resolve(spec, context) -> dict:
    """What a run of `spec` gets under `context`: image reference, environment (the spec's, then
    its contracts'), read-only files, labels. Refuses a contract the context lacks and clashes."""
    spec = load_spec(spec)
    context = check_context(context)
    origin = f"job {spec['name']}"
    if spec["image"] not in context["images"]:
        raise _problem(origin, "image", f"{spec['image']!r} is not in the runtime context's images")
    env, files = dict(spec["env"]), {}
    for name in spec["uses"]:
        if name not in context["contracts"]:
            raise _problem(origin, "uses", f"{name!r}: the runtime context has no such contract")
        contract = context["contracts"][name]
        for variable, value in contract["env"].items():
            if env.get(variable, value) != value:
                raise _problem(origin, f"env.{variable}", f"set twice, differently (contract {name})")
            env[variable] = value
        for entry in contract["files"]:
            if files.get(entry["path"], entry)["source"] != entry["source"]:
                raise _problem(origin, "uses", f"{entry['path']}: mounted twice from different sources")
            files[entry["path"]] = entry
    labels = dict(context["labels"])
    labels[JOB_LABEL] = spec["name"]
    return {
        "spec": spec,
        "context": context,
        "image": context["images"][spec["image"]],
        "env": env,
        "files": [files[path] for path in sorted(files)],
        "labels": labels,
    }


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (512Mi, 1G, 1048576) in bytes."""
    match = _MEMORY.match(str(quantity))
    if not match:
        raise ValueError(f"{quantity!r} is not a memory quantity")
    return int(match.group(1)) * _MEMORY_UNITS[match.group(2)]


def cpu_cores(quantity: str) -> float:
    """A Kubernetes CPU quantity (500m, 2, 0.5) in cores."""
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _docker_limits(spec) -> dict:
    """Docker's memory limit (bytes) and CPU weight (cores, as DockerOperator's `cpus`, which it
    turns into cpu_shares): the memory limit, and the CPU limit else the CPU request."""
    limits, requests = spec["resources"]["limits"], spec["resources"]["requests"]
    result = {}
    if "memory" in limits:
        result["mem_limit"] = memory_bytes(limits["memory"])
    cpu = limits.get("cpu", requests.get("cpu"))
    if cpu is not None:
        result["cpus"] = cpu_cores(cpu)
    return result


def pod_shape(run) -> dict:
    """The Kubernetes pod pieces both renderers give the job's pod (snake_case model fields)."""
    kubernetes = run["context"]["kubernetes"]
    volumes, mounts = [], []
    for index, entry in enumerate(run["files"]):
        name = f"lakehouse-file-{index}"
        kind = "secret" if "secret" in entry["source"] else "config_map"
        items = [{"key": entry["source"]["key"], "path": "file"}]
        if kind == "secret":
            source = {"secret_name": entry["source"]["secret"], "items": items, "default_mode": 0o444}
        else:
            source = {"name": entry["source"]["config_map"], "items": items, "default_mode": 0o444}
        volumes.append({"name": name, kind: source})
        mounts.append({"name": name, "mount_path": entry["path"], "sub_path": "file", "read_only": True})
    seccomp = {"type": "RuntimeDefault"}
    pod_security = {"run_as_non_root": True, "seccomp_profile": seccomp}
    for name in ("run_as_user", "run_as_group"):
        if name in kubernetes:
            pod_security[name] = kubernetes[name]
    container_security = {
        "allow_privilege_escalation": False,
        "capabilities": {"drop": ["ALL"]},
        "run_as_non_root": True,
        "seccomp_profile": seccomp,
    }
    resources = {section: values for section, values in run["spec"]["resources"].items() if values}
    return {
        "volumes": volumes,
        "volume_mounts": mounts,
        "pod_security_context": pod_security,
        "container_security_context": container_security,
        "resources": resources,
    }


# --- Airflow -------------------------------------------------------------------------------------


def _k8s(model, fields, indent):
    """Python source constructing kubernetes.client model `model` from snake_case `fields`."""
    nested = {
        "secret": "V1SecretVolumeSource",
        "config_map": "V1ConfigMapVolumeSource",
        "seccomp_profile": "V1SeccompProfile",
        "capabilities": "V1Capabilities",
    }
    pad = " " * (indent + 4)
    parts = []
    for name, value in fields.items():
        if name in nested:
            text = _k8s(nested[name], value, indent + 4)
        elif name == "items":
            text = "[" + ", ".join(_k8s("V1KeyToPath", item, indent + 4) for item in value) + "]"
        elif name == "default_mode":
            text = oct(value)
        else:
            text = repr(value)
        parts.append(f"{pad}{name}={text},")
    return f"k8s.{model}(\n" + "\n".join(parts) + "\n" + " " * indent + ")"


def _schedule_airflow(spec) -> str:
    if spec["schedule"] is None:
        return "None"
    cron = PRESETS[spec["schedule"]][0] if spec["schedule"] in PRESETS else spec["schedule"]
    return f'CronDataIntervalTimetable({cron!r}, timezone="UTC")'


def _start_airflow(spec) -> str:
    if spec["start_date"] is None:
        return "None"
    day = datetime.date.fromisoformat(spec["start_date"])
    return f"datetime.datetime({day.year}, {day.month}, {day.day}, tzinfo=datetime.timezone.utc)"


# Airflow's own names for the template variables; its interval bounds are pendulum DateTimes whose
# str() is not ISO 8601 (a space before the time), hence isoformat().
AIRFLOW_VARIABLES = {
    "ds": "ds",
    "ds_nodash": "ds_nodash",
    "data_interval_start": "data_interval_start.isoformat()",
    "data_interval_end": "data_interval_end.isoformat()",
    "run_id": "run_id",
}


def airflow_template(text: str) -> str:
    """A spec string with its template variables as Airflow's Jinja expressions."""
    return _TEMPLATE.sub(lambda match: "{{ " + AIRFLOW_VARIABLES[match.group(1).strip()] + " }}", text)


def render_airflow(spec, context) -> str:
    """The source of the Airflow 3 DAG file of one job (dag_id = task owner = the job's name, one
    task `run`): a DockerOperator (target docker) or a KubernetesPodOperator (target kubernetes)."""
    run = resolve(spec, context)
    spec, context = run["spec"], run["context"]
    name = spec["name"]
    args = [airflow_template(arg) for arg in spec["args"]]
    env = {variable: airflow_template(value) for variable, value in run["env"].items()}
    task = [
        "task_id='run'",
        f"image={run['image']!r}",
    ]
    if context["target"] == "docker":
        docker = context["docker"]
        imports = [
            "import os",
            "from airflow.providers.docker.operators.docker import DockerOperator",
            "from airflow.sdk import DAG, CronDataIntervalTimetable",
            "from docker.types import Mount",
        ]
        base = "DockerOperator"
        mounts = ", ".join(
            f"Mount(target={entry['path']!r}, source={entry['source']!r}, type='bind', read_only=True)"
            for entry in run["files"]
        )
        task += [
            f"docker_url={docker['url']!r}",
            f"network_mode={docker['network_mode']!r}",
            "auto_remove='force'",
            "mount_tmp_dir=False",
            # As the orchestrator's own user: the job reads the credential files it is given, no more.
            "user=f'{os.getuid()}:{os.getgid()}'",
            f"entrypoint={spec['command'] or None!r}",
            f"command={args or None!r}",
            f"environment={env!r}",
            f"mounts=[{mounts}]",
            f"labels={run['labels']!r}",
            "do_xcom_push=False",
        ]
        task += [f"{key}={value!r}" for key, value in _docker_limits(spec).items()]
    else:
        kubernetes = context["kubernetes"]
        shape = pod_shape(run)
        imports = [
            "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator",
            "from airflow.sdk import DAG, CronDataIntervalTimetable",
            "from kubernetes.client import models as k8s",
        ]
        base = "KubernetesPodOperator"
        volumes = ", ".join(_k8s("V1Volume", volume, 12) for volume in shape["volumes"])
        mounts = ", ".join(_k8s("V1VolumeMount", mount, 12) for mount in shape["volume_mounts"])
        task += [
            f"name={name.replace('_', '-')!r}",
            "in_cluster=True",
            f"namespace={kubernetes['namespace']!r}",
            f"service_account_name={kubernetes['service_account']!r}",
            f"image_pull_policy={kubernetes['image_pull_policy']!r}",
            f"cmds={spec['command'] or None!r}",
            f"arguments={args!r}",
            f"env_vars={env!r}",
            f"volumes=[{volumes}]",
            f"volume_mounts=[{mounts}]",
            f"container_resources={_k8s('V1ResourceRequirements', shape['resources'], 8)}",
            f"labels={run['labels']!r}",
            "on_finish_action='delete_pod'",
            "get_logs=True",
            f"security_context={_k8s('V1PodSecurityContext', shape['pod_security_context'], 8)}",
            f"container_security_context={_k8s('V1SecurityContext', shape['container_security_context'], 8)}",
            "do_xcom_push=False",
        ]
    default_args = (
        f"{{'owner': 'lakehouse', 'retries': {spec['retries']}, "
        f"'retry_delay': datetime.timedelta(seconds={spec['retry_delay_seconds']}), "
        f"'execution_timeout': datetime.timedelta(seconds={spec['timeout_seconds']})}}"
    )
    lines = [
        f'"""The lakehouse job {name}, rendered from its job spec by module_utils/lakehouse_jobs.py: do not edit."""',
        "",
        "import datetime",
        "",
        *imports,
        "",
        "",
        f"class LakehouseJob({base}):",
        '    """Job arguments are data: none is read as a template file (.sh, .json, ...)."""',
        "",
        "    template_ext = ()",
        "",
        "",
        "with DAG(",
        f"    dag_id={name!r},",
        f"    description={spec['description'][:200]!r},",
        f"    doc_md={spec['description']!r},",
        f"    schedule={_schedule_airflow(spec)},",
        f"    start_date={_start_airflow(spec)},",
        f"    catchup={spec['catchup']!r},",
        "    is_paused_upon_creation=False,",
        "    max_active_runs=1,",
        "    tags=['lakehouse'],",
        f"    default_args={default_args},",
        "):",
        "    LakehouseJob(",
        *(f"        {item}," for item in task),
        "    )",
        "",
    ]
    return "\n".join(lines)


# --- Dagster -------------------------------------------------------------------------------------

_DAGSTER_HEAD = '''"""The lakehouse jobs as one Dagster code location, rendered from their job specs by
module_utils/lakehouse_jobs.py: do not edit."""

import collections
import datetime
import os
import re

import dagster as dg
'''

_DAGSTER_COMMON = '''
VARIABLE = re.compile(r"\\{\\{\\s*(ds|ds_nodash|data_interval_start|data_interval_end|run_id)\\s*\\}\\}")
UTC = datetime.timezone.utc


def _utc(moment):
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def template_variables(context):
    """The five template variables of this run: from its partition's time window, else from the
    run tag lakehouse/logical_date, else the run's creation time."""
    if context.has_partition_key:
        window = context.partition_time_window
        start, end = _utc(window.start), _utc(window.end)
    else:
        tag = context.run.tags.get("lakehouse/logical_date")
        if tag:
            start = _utc(datetime.datetime.fromisoformat(tag))
        else:
            record = context.instance.get_run_record_by_id(context.run_id)
            start = _utc(record.create_timestamp if record else datetime.datetime.now(UTC))
        end = start
    return {
        "ds": start.strftime("%Y-%m-%d"),
        "ds_nodash": start.strftime("%Y%m%d"),
        "data_interval_start": start.isoformat(),
        "data_interval_end": end.isoformat(),
        "run_id": context.run_id,
    }


def substitute(text, variables):
    return VARIABLE.sub(lambda match: variables[match.group(1)], text)
'''

_DAGSTER_DOCKER = '''
def run_container(context, job, variables):
    """Run the job's container on the Docker/Podman host; remove it whatever happens; fail the op
    on a non-zero exit with the container's last log lines."""
    client = docker.DockerClient(base_url=DOCKER["url"])
    limits = job["docker_limits"]
    container = client.containers.create(
        job["image"],
        entrypoint=job["command"] or None,
        command=[substitute(arg, variables) for arg in job["args"]] or None,
        environment={name: substitute(value, variables) for name, value in job["env"].items()},
        labels=job["labels"],
        network_mode=DOCKER["network_mode"],
        user=f"{os.getuid()}:{os.getgid()}",  # the code server's user: it reads the files it is given, no more
        mounts=[
            docker.types.Mount(target=entry["path"], source=entry["source"], type="bind", read_only=True)
            for entry in job["files"]
        ],
        mem_limit=limits.get("mem_limit"),
        cpu_shares=round(limits["cpus"] * 1024) if "cpus" in limits else None,
        name=f"lakehouse-job-{job['name'].replace('_', '-')}-{context.run_id[:8]}-{context.retry_number}",
    )
    try:
        container.start()
        try:
            status = container.wait(timeout=job["timeout_seconds"])
        except requests.exceptions.RequestException:
            container.kill()
            raise dg.Failure(description=f"{job['name']}: no exit within {job['timeout_seconds']} s") from None
        lines = container.logs(stdout=True, stderr=True).decode("utf-8", "replace").splitlines()
        for line in lines:
            context.log.info(line)
        code = status.get("StatusCode")
        if code != 0:
            tail = "\\n".join(collections.deque(lines, maxlen=20))
            raise dg.Failure(
                description=f"{job['name']}: the container exited with {code}; its last lines:\\n{tail}",
                metadata={"exit_code": code, "last_log_lines": dg.MetadataValue.text(tail)},
            )
    finally:
        try:
            container.remove(force=True)
        except docker.errors.APIError as error:
            context.log.warning(f"{job['name']}: could not remove container {container.id}: {error}")
'''

_DAGSTER_KUBERNETES = '''
def run_container(context, job, variables):
    """Run the job's container as a Kubernetes Job (one pod, no Kubernetes retry: Dagster retries)."""
    pod = job["pod"]
    dagster_k8s.execute_k8s_job(
        context,
        image=job["image"],
        command=job["command"] or None,
        args=[substitute(arg, variables) for arg in job["args"]],
        namespace=KUBERNETES["namespace"],
        service_account_name=KUBERNETES["service_account"],
        image_pull_policy=KUBERNETES["image_pull_policy"],
        env_vars=[f"{name}={substitute(value, variables)}" for name, value in job["env"].items()],
        volumes=pod["volumes"],
        volume_mounts=pod["volume_mounts"],
        labels=job["labels"],
        resources=pod["resources"] or None,
        timeout=job["timeout_seconds"],
        container_config={"security_context": pod["container_security_context"]},
        pod_spec_config={"security_context": pod["pod_security_context"]},
        job_spec_config={"backoff_limit": 0, "ttl_seconds_after_finished": 600},
    )
'''

_DAGSTER_BUILD = """

def partitions(job):
    schedule = job["schedule"]
    if schedule is None:
        return None
    start = datetime.datetime.fromisoformat(job["start_date"]).replace(tzinfo=UTC)
    if schedule["partitions"] == "TimeWindowPartitionsDefinition":
        return dg.TimeWindowPartitionsDefinition(
            start=start, cron_schedule=schedule["cron"], fmt=schedule["format"], timezone="UTC"
        )
    return getattr(dg, schedule["partitions"])(start_date=start, timezone="UTC")


def build(job):
    retry = dg.RetryPolicy(max_retries=job["retries"], delay=job["retry_delay_seconds"]) if job["retries"] else None

    @dg.op(name=f"{job['name']}_container", description=job["description"] or None, retry_policy=retry)
    def run(context: dg.OpExecutionContext) -> None:
        variables = template_variables(context)
        context.log.info(f"{job['name']}: {variables}")
        run_container(context, job, variables)

    @dg.job(
        name=job["name"],
        description=job["description"] or None,
        partitions_def=partitions(job),
        tags={"dagster/max_runtime": str(job["timeout_seconds"] * (job["retries"] + 1) + 300)},
    )
    def definition():
        run()

    if job["schedule"] is None:
        return definition, None
    schedule = dg.build_schedule_from_partitioned_job(
        definition, name=f"{job['name']}_schedule", default_status=dg.DefaultScheduleStatus.RUNNING
    )
    return definition, schedule


JOB_DEFINITIONS = []
SCHEDULES = []
for _job in JOBS:
    _definition, _schedule = build(_job)
    JOB_DEFINITIONS.append(_definition)
    if _schedule is not None:
        SCHEDULES.append(_schedule)

defs = dg.Definitions(jobs=JOB_DEFINITIONS, schedules=SCHEDULES)
"""


def _dagster_job(run) -> dict:
    spec = run["spec"]
    schedule = None
    if spec["schedule"] in PRESETS:
        cron, partitions, fmt = PRESETS[spec["schedule"]]
        schedule = {"cron": cron, "partitions": partitions, "format": fmt}
    elif spec["schedule"] is not None:
        schedule = {"cron": spec["schedule"], "partitions": "TimeWindowPartitionsDefinition"}
        schedule["format"] = CRON_PARTITION_FORMAT
    job = {
        "name": spec["name"],
        "description": spec["description"],
        "image": run["image"],
        "command": spec["command"],
        "args": spec["args"],
        "env": run["env"],
        "files": run["files"],
        "labels": run["labels"],
        "schedule": schedule,
        "start_date": spec["start_date"],
        "retries": spec["retries"],
        "retry_delay_seconds": spec["retry_delay_seconds"],
        "timeout_seconds": spec["timeout_seconds"],
    }
    if run["context"]["target"] == "docker":
        job["docker_limits"] = _docker_limits(spec)
    else:
        job["pod"] = pod_shape(run)
    return job


def render_dagster(specs, context) -> str:
    """The source of one Dagster definitions module (`defs`) for a job spec or a list of them: per
    job, one job of one op (both named after the job) and, with a schedule, a time-window
    partitions definition and a RUNNING schedule `<name>_schedule` built from the partitioned job."""
    if isinstance(specs, Mapping):
        specs = [specs]
    specs = load_specs(list(specs))
    runs = [resolve(spec, context) for spec in specs]
    context = check_context(context)
    jobs = [_dagster_job(run) for run in runs]
    if context["target"] == "docker":
        imports = "import docker\nimport docker.errors\nimport docker.types\nimport requests\n"
        settings = f"DOCKER = {context['docker']!r}\n"
        runner = _DAGSTER_DOCKER
    else:
        imports = "import dagster_k8s\n"
        settings = f"KUBERNETES = {context['kubernetes']!r}\n"
        runner = _DAGSTER_KUBERNETES
    body = "JOBS = [\n" + "".join(f"    {job!r},\n" for job in jobs) + "]\n"
    return "".join([_DAGSTER_HEAD, imports, "\n", settings, body, _DAGSTER_COMMON, "\n", runner, _DAGSTER_BUILD])


def render_dagster_workspace(definitions_path: str) -> str:
    """workspace.yaml for Dagster's webserver and daemon: the definitions file as the code location
    DAGSTER_LOCATION (the name a launchRun selector uses)."""
    return yaml.safe_dump(
        {"load_from": [{"python_file": {"relative_path": str(definitions_path), "location_name": DAGSTER_LOCATION}}]},
        sort_keys=False,
    )
