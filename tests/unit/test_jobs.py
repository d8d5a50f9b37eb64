"""Job specs (jobs/*.yml): the loader's refusals and defaults (module_utils/lakehouse_jobs.py), the
Airflow and Dagster renderers for both targets, and the sample job's pure functions."""

from __future__ import annotations

import copy
import datetime
import sys
from pathlib import Path

import pytest
import yaml
from conftest import load_source

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from module_utils import lakehouse_jobs as jobs  # noqa: E402

SENTINEL = "s3cr3t-sentinel-never-rendered"
IMAGE = "localhost/lakehouse/daily-ingest:1.0.0@sha256:" + "a" * 64
ENV = {
    "LAKEHOUSE_QUERY_URL": "https://trino.lakehouse.test:8443",
    "LAKEHOUSE_QUERY_USER": "admin",
    "LAKEHOUSE_QUERY_CATALOG": "lakehouse",
    "LAKEHOUSE_CA_FILE": "/run/lakehouse/ca.crt",
    "LAKEHOUSE_QUERY_PASSWORD_FILE": "/run/lakehouse/secrets/query-password",
}
MINIMAL = {"schema_version": 1, "name": "nightly", "image": "daily-ingest"}


def load_program():
    return load_source("jobs/programs/daily_ingest.py")


@pytest.fixture
def sample():
    return jobs.load_spec(REPO / "jobs" / "daily_ingest.yml")


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "query.password"
    path.write_text(SENTINEL)
    return str(path)


def runtime_context(target, password_source, ca_source, section):
    files = [
        {"source": password_source, "path": "/run/lakehouse/secrets/query-password"},
        {"source": ca_source, "path": "/run/lakehouse/ca.crt"},
    ]
    return {
        "target": target,
        "images": {"daily-ingest": IMAGE},
        "contracts": {"query": {"env": dict(ENV), "files": files}},
        target: section,
        "labels": {"app.kubernetes.io/managed-by": "lakehouse"},
    }


def docker_context(host_file="/etc/lakehouse-orchestrator/jobs/query.password"):
    section = {"url": "unix:///run/podman/podman.sock", "network_mode": "host"}
    return runtime_context("docker", host_file, "/etc/lakehouse/ca.crt", section)


def kubernetes_context():
    return runtime_context(
        "kubernetes",
        {"secret": "lakehouse-orchestrator-jobs", "key": "query-password"},
        {"config_map": "lakehouse-ca", "key": "ca.crt"},
        {"namespace": "lakehouse", "service_account": "lakehouse-jobs"},
    )


def context_for(target, password_file):
    """The runtime context of a target: the docker one mounting `password_file`, or the kubernetes one."""
    return docker_context(password_file) if target == "docker" else kubernetes_context()


def refused(document, *words):
    with pytest.raises(jobs.JobSpecError) as caught:
        jobs.load_spec(document)
    for word in words:
        assert word in str(caught.value), str(caught.value)
    return str(caught.value)


# --- the loader ----------------------------------------------------------------------------------


def test_the_sample_job_loads(sample):
    assert sample["name"] == "daily_ingest"
    assert sample["schedule"] == "@daily" and sample["start_date"] == "2026-01-01"
    assert sample["uses"] == ["query"] and sample["args"] == ["--date", "{{ ds }}"]
    assert jobs.load_specs(REPO / "jobs") == [sample]


def test_defaults_are_applied_once_and_a_loaded_spec_loads_unchanged():
    spec = jobs.load_spec(MINIMAL)
    assert spec == {**MINIMAL, **jobs.DEFAULTS}
    assert spec["schedule"] is None and spec["catchup"] is False and spec["uses"] == []
    assert (spec["retries"], spec["retry_delay_seconds"], spec["timeout_seconds"]) == (0, 60, 3600)
    assert spec["resources"] == {"requests": {}, "limits": {}}
    assert jobs.load_spec(spec) == spec
    assert jobs.load_spec(copy.deepcopy(spec)) is not spec


def test_a_yaml_date_is_a_start_date(tmp_path):
    path = tmp_path / "nightly.yml"
    path.write_text(yaml.safe_dump({**MINIMAL, "schedule": "@daily"}) + "start_date: 2026-03-01\n")
    assert jobs.load_spec(path)["start_date"] == "2026-03-01"


def test_unknown_keys_are_refused_with_the_file_and_the_key(tmp_path):
    path = tmp_path / "nightly.yml"
    path.write_text(yaml.safe_dump({**MINIMAL, "params": {"a": "b"}}))
    message = refused(path, str(path), "params", "unknown key")
    assert message.startswith(f"{path}: params:")
    refused({**MINIMAL, "resources": {"limits": {"gpu": "1"}}}, "resources.limits.gpu")
    refused({**MINIMAL, "resources": {"wants": {}}}, "resources.wants")


@pytest.mark.parametrize("name", ["Daily", "1daily", "daily-ingest", "", "a" * 64, 7])
def test_bad_names_are_refused(name):
    refused({**MINIMAL, "name": name}, "name")


@pytest.mark.parametrize("key", ["schema_version", "name", "image"])
def test_required_keys(key):
    document = dict(MINIMAL)
    del document[key]
    refused(document, key, "required")


def test_other_schema_versions_are_refused():
    refused({**MINIMAL, "schema_version": 2}, "schema_version")


@pytest.mark.parametrize(
    "value",
    ["{{ ds_nodash }}", "{{ds}}", "--at={{ data_interval_start }}", "{{ data_interval_end }}/{{ run_id }}"],
)
def test_template_variables_are_accepted(value):
    assert jobs.load_spec({**MINIMAL, "args": [value], "env": {"WHEN": value}})["args"] == [value]


@pytest.mark.parametrize(
    "value",
    ["{{ ts }}", "{{ ds | upper }}", "{{ macros.ds_add(ds, 1) }}", "{% if x %}", "{# note #}", "{{ ds"],
)
def test_other_templates_are_refused(value):
    refused({**MINIMAL, "args": [value]}, "args[0]")
    refused({**MINIMAL, "env": {"WHEN": value}}, "env.WHEN")


def test_a_template_in_command_is_refused():
    refused({**MINIMAL, "command": ["/bin/job", "{{ ds }}"]}, "command[1]", "no template variable")


@pytest.mark.parametrize(
    "name", ["DB_PASSWORD", "API_TOKEN", "AWS_SECRET_ACCESS_KEY", "ACCESS_KEY", "APIKEY", "password", "GCP_CREDENTIALS"]
)
def test_secret_looking_env_names_are_refused(name):
    refused({**MINIMAL, "env": {name: "x"}}, f"env.{name}", "uses")


def test_env_names_and_values():
    assert jobs.load_spec({**MINIMAL, "env": {"MONKEY_BUSINESS": "1", "KEYBOARD": "2"}})["env"]["KEYBOARD"] == "2"
    refused({**MINIMAL, "env": {"ROWS": 1000}}, "env.ROWS", "quote")
    refused({**MINIMAL, "env": {"BAD-NAME": "x"}}, "env.BAD-NAME")
    refused({**MINIMAL, "env": {"LAKEHOUSE_QUERY_URL": "x"}}, "env.LAKEHOUSE_QUERY_URL", "uses")
    refused({**MINIMAL, "env": {"TARGET": "https://trino:8443"}}, "env.TARGET", "uses")
    refused({**MINIMAL, "args": ["--url", "s3://bucket/x"]}, "args[1]", "uses")


@pytest.mark.parametrize(
    "schedule", ["@yearly", "@reboot", "daily", "* * * *", "60 * * * *", "0 24 * * *", "0 0 * * MON", "*/0 * * * *", 5]
)
def test_bad_schedules_are_refused(schedule):
    refused({**MINIMAL, "schedule": schedule, "start_date": "2026-01-01"}, "schedule")


@pytest.mark.parametrize("schedule", ["@hourly", "@daily", "@weekly", "@monthly", "30 2 * * 1-5", "*/15 0-6 1,15 * *"])
def test_schedules(schedule):
    assert jobs.load_spec({**MINIMAL, "schedule": schedule, "start_date": "2026-01-01"})["schedule"] == schedule


def test_a_schedule_needs_a_start_date_of_a_day():
    refused({**MINIMAL, "schedule": "@daily"}, "start_date", "required")
    refused({**MINIMAL, "schedule": "@daily", "start_date": "2026-13-01"}, "start_date")
    refused({**MINIMAL, "schedule": "@daily", "start_date": "2026-1-1"}, "start_date")
    refused({**MINIMAL, "start_date": datetime.datetime(2026, 1, 1, 5)}, "start_date")


def test_other_refusals():
    refused({**MINIMAL, "uses": ["warehouse"]}, "uses")
    refused({**MINIMAL, "uses": ["query", "query"]}, "uses", "twice")
    refused({**MINIMAL, "retries": -1}, "retries")
    refused({**MINIMAL, "timeout_seconds": 0}, "timeout_seconds")
    refused({**MINIMAL, "catchup": "yes"}, "catchup")
    refused({**MINIMAL, "resources": {"limits": {"memory": "lots"}}}, "resources.limits.memory")
    refused({**MINIMAL, "args": "--date"}, "args")
    refused({**MINIMAL, "image": "Localhost/Image:1"}, "image")


def test_two_specs_of_one_name_are_refused(tmp_path):
    for stem in ("a", "b"):
        (tmp_path / f"{stem}.yml").write_text(yaml.safe_dump(MINIMAL))
    with pytest.raises(jobs.JobSpecError, match="also the name of"):
        jobs.load_specs(tmp_path)


def test_quantities():
    assert jobs.memory_bytes("512Mi") == 512 * 2**20
    assert jobs.memory_bytes("1G") == 10**9
    assert jobs.cpu_cores("250m") == 0.25 and jobs.cpu_cores("2") == 2.0


# --- the runtime context -------------------------------------------------------------------------


def test_the_context_is_checked(sample):
    context = docker_context()
    context["image"] = IMAGE
    with pytest.raises(jobs.JobSpecError, match="runtime context: image: unknown key"):
        jobs.render_airflow(sample, context)
    context = docker_context()
    context["contracts"]["query"]["env"]["LAKEHOUSE_QUERY_PASSWORD"] = SENTINEL
    with pytest.raises(jobs.JobSpecError, match="LAKEHOUSE_QUERY_PASSWORD: looks like a secret"):
        jobs.render_airflow(sample, context)
    context = docker_context()
    del context["contracts"]["query"]
    with pytest.raises(jobs.JobSpecError, match="uses: 'query'"):
        jobs.render_airflow(sample, context)
    with pytest.raises(jobs.JobSpecError, match="not in the runtime context's images"):
        jobs.render_airflow(sample, {**docker_context(), "images": {"other": IMAGE}})
    with pytest.raises(jobs.JobSpecError, match="absolute path on the container host"):
        jobs.render_airflow(sample, {**kubernetes_context(), "target": "docker", "docker": {"url": "unix:///x"}})
    with pytest.raises(jobs.JobSpecError, match="secret: NAME"):
        jobs.render_airflow(
            sample, {**docker_context(), "target": "kubernetes", "kubernetes": kubernetes_context()["kubernetes"]}
        )
    with pytest.raises(jobs.JobSpecError, match="kubernetes.namespace: required"):
        jobs.render_airflow(sample, {**kubernetes_context(), "kubernetes": {"service_account": "x"}})
    with pytest.raises(jobs.JobSpecError, match="no template syntax"):
        jobs.render_airflow(sample, {**docker_context(), "labels": {"a": "{{ ds }}"}})


# --- the renderers -------------------------------------------------------------------------------


def compiles(source, name):
    compile(source, name, "exec")
    return source


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_airflow_dag(sample, password_file, target):
    context = context_for(target, password_file)
    source = compiles(jobs.render_airflow(sample, context), "daily_ingest.py")
    assert SENTINEL not in source
    assert "from airflow.sdk import DAG" in source
    assert "dag_id='daily_ingest'" in source
    assert "is_paused_upon_creation=False" in source
    assert "CronDataIntervalTimetable('0 0 * * *', timezone=\"UTC\")" in source
    assert "datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)" in source
    assert "catchup=False" in source
    assert "'retries': 1" in source and "seconds=60" in source and "seconds=900" in source
    assert repr(IMAGE) in source
    assert "'lakehouse.job': 'daily_ingest'" in source and "'app.kubernetes.io/managed-by': 'lakehouse'" in source
    assert "'LAKEHOUSE_QUERY_URL': 'https://trino.lakehouse.test:8443'" in source
    assert "template_ext = ()" in source
    if target == "docker":
        assert "DockerOperator" in source
        assert "docker_url='unix:///run/podman/podman.sock'" in source and "network_mode='host'" in source
        assert "auto_remove='force'" in source and "mount_tmp_dir=False" in source
        assert "entrypoint=['/usr/bin/python3', '/opt/lakehouse-jobs/daily_ingest.py']" in source
        assert "command=['--date', '{{ ds }}']" in source
        assert f"source={password_file!r}, type='bind', read_only=True" in source
        assert source.count("read_only=True") == 2
        assert f"mem_limit={256 * 2**20}" in source and "cpus=0.1" in source
    else:
        assert "KubernetesPodOperator" in source
        assert "in_cluster=True" in source and "namespace='lakehouse'" in source
        assert "service_account_name='lakehouse-jobs'" in source
        assert "cmds=['/usr/bin/python3', '/opt/lakehouse-jobs/daily_ingest.py']" in source
        assert "arguments=['--date', '{{ ds }}']" in source
        assert "secret_name='lakehouse-orchestrator-jobs'" in source and "name='lakehouse-ca'" in source
        assert source.count("read_only=True") == 2
        assert "on_finish_action='delete_pod'" in source
        assert "run_as_non_root=True" in source and "allow_privilege_escalation=False" in source
        assert "drop=['ALL']" in source and "type='RuntimeDefault'" in source
        assert "limits={'memory': '256Mi'}" in source


def test_airflow_translates_the_interval_bounds_to_iso_8601(sample):
    spec = {**sample, "args": ["{{data_interval_start}}", "{{ data_interval_end }}", "{{ run_id }}", "a.sh"]}
    source = jobs.render_airflow(spec, docker_context())
    assert (
        "command=['{{ data_interval_start.isoformat() }}', '{{ data_interval_end.isoformat() }}', "
        "'{{ run_id }}', 'a.sh']" in source
    )


def test_airflow_manual_and_cron_schedules(sample):
    manual = {**sample, "schedule": None, "start_date": None, "resources": {}}
    source = compiles(jobs.render_airflow(manual, docker_context()), "manual.py")
    assert "schedule=None" in source and "start_date=None" in source and "mem_limit" not in source
    weekdays = {**sample, "schedule": "30 2 * * 1-5"}
    assert "CronDataIntervalTimetable('30 2 * * 1-5'" in jobs.render_airflow(weekdays, kubernetes_context())


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_dagster_definitions(sample, password_file, target):
    context = context_for(target, password_file)
    hourly = {**sample, "name": "hourly_load", "schedule": "@hourly"}
    weekdays = {**sample, "name": "weekday_load", "schedule": "30 2 * * 1-5"}
    manual = {**sample, "name": "manual_load", "schedule": None, "start_date": None}
    source = compiles(jobs.render_dagster([sample, hourly, weekdays, manual], context), "definitions.py")
    assert SENTINEL not in source
    assert "defs = dg.Definitions(jobs=JOB_DEFINITIONS, schedules=SCHEDULES)" in source
    assert "default_status=dg.DefaultScheduleStatus.RUNNING" in source
    assert "build_schedule_from_partitioned_job" in source
    assert "'partitions': 'DailyPartitionsDefinition'" in source
    assert "'partitions': 'HourlyPartitionsDefinition'" in source
    assert "'partitions': 'TimeWindowPartitionsDefinition'" in source and "'cron': '30 2 * * 1-5'" in source
    assert "'name': 'manual_load'" in source and "'schedule': None" in source
    assert 'dg.RetryPolicy(max_retries=job["retries"], delay=job["retry_delay_seconds"])' in source
    assert repr(IMAGE) in source
    assert "'lakehouse.job': 'daily_ingest'" in source
    assert "'args': ['--date', '{{ ds }}']" in source  # substituted by the op at run time
    assert "context.partition_time_window" in source and "context.run_id" in source
    assert 'run.tags.get("lakehouse/logical_date")' in source
    if target == "docker":
        assert 'docker.DockerClient(base_url=DOCKER["url"])' in source
        assert 'type="bind", read_only=True' in source and f"'source': {password_file!r}" in source
        assert "container.remove(force=True)" in source and "collections.deque(lines, maxlen=20)" in source
        assert "'network_mode': 'host'" in source
    else:
        assert "dagster_k8s.execute_k8s_job(" in source
        assert "'read_only': True" in source and "'secret_name': 'lakehouse-orchestrator-jobs'" in source
        assert "'drop': ['ALL']" in source and "'run_as_non_root': True" in source
        assert "'type': 'RuntimeDefault'" in source and "'allow_privilege_escalation': False" in source
        assert "'namespace': 'lakehouse'" in source and "'service_account': 'lakehouse-jobs'" in source


def test_dagster_runtime_helpers_substitute_the_variables(sample):
    """The op's substitution and variable code, run here without Dagster: a fake context per case."""
    source = jobs.render_dagster(sample, docker_context())
    common = source[source.index("VARIABLE = re.compile") : source.index("\ndef run_container")]
    namespace = {"re": __import__("re"), "datetime": datetime}
    exec(compile(common, "common", "exec"), namespace)  # noqa: S102 (our own rendered code)

    class Window:
        start = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
        end = datetime.datetime(2026, 1, 3, tzinfo=datetime.UTC)

    class Partitioned:
        has_partition_key = True
        partition_time_window = Window
        run_id = "0f1e2d3c"

    variables = namespace["template_variables"](Partitioned)
    assert variables == {
        "ds": "2026-01-02",
        "ds_nodash": "20260102",
        "data_interval_start": "2026-01-02T00:00:00+00:00",
        "data_interval_end": "2026-01-03T00:00:00+00:00",
        "run_id": "0f1e2d3c",
    }
    text = "{{ ds }}/{{ds_nodash}}/{{ data_interval_start }}..{{ data_interval_end }}@{{ run_id }}"
    assert namespace["substitute"](text, variables) == (
        "2026-01-02/20260102/2026-01-02T00:00:00+00:00..2026-01-03T00:00:00+00:00@0f1e2d3c"
    )

    class Run:
        tags = {"lakehouse/logical_date": "2026-02-03T00:00:00+00:00"}

    class Manual:
        has_partition_key = False
        run = Run
        run_id = "r"

    manual = namespace["template_variables"](Manual)
    assert manual["ds"] == "2026-02-03" and manual["data_interval_end"] == "2026-02-03T00:00:00+00:00"


def test_dagster_workspace_names_the_code_location():
    workspace = yaml.safe_load(jobs.render_dagster_workspace("definitions.py"))
    assert workspace == {
        "load_from": [{"python_file": {"relative_path": "definitions.py", "location_name": jobs.DAGSTER_LOCATION}}]
    }


# --- the sample job's program --------------------------------------------------------------------


def test_program_arguments():
    program = load_program()
    arguments = program.parse_args(["--date", "2026-01-02"], environ={"ROWS": "25"})
    assert arguments.date == datetime.date(2026, 1, 2) and arguments.rows == 25
    assert program.parse_args(["--date", "2026-01-02"], environ={}).rows == 1000
    assert program.parse_args(["--date", "2026-01-02", "--rows", "3"], environ={"ROWS": "25"}).rows == 3
    for argv, environ in (
        (["--date", "2026-1-2"], {}),
        (["--date", "2026-02-30"], {}),
        ([], {}),
        (["--date", "2026-01-02"], {"ROWS": "many"}),
        (["--date", "2026-01-02"], {"ROWS": "0"}),
    ):
        with pytest.raises(SystemExit):
            program.parse_args(argv, environ=environ)


def test_program_statements_replace_the_day():
    program = load_program()
    steps = program.statements("lakehouse", datetime.date(2026, 1, 2), 25_000)
    assert [step for step, _ in steps] == ["create_schema", "create_table", "delete_day", "insert_day", "count_day"]
    sql = dict(steps)
    table = '"lakehouse"."ingest"."daily_events"'
    assert sql["create_schema"] == 'CREATE SCHEMA IF NOT EXISTS "lakehouse"."ingest"'
    assert "(event_date date, event_id bigint, kind varchar, amount double)" in sql["create_table"]
    assert "WITH (partitioning = ARRAY['event_date'])" in sql["create_table"]
    assert sql["delete_day"] == f"DELETE FROM {table} WHERE event_date = DATE '2026-01-02'"  # noqa: S608
    assert sql["insert_day"].startswith(f"INSERT INTO {table} ")
    assert "UNNEST(sequence(0, 2))" in sql["insert_day"] and "WHERE n <= 25000" in sql["insert_day"]
    assert "2026010200000000 + n" in sql["insert_day"]
    assert sql["count_day"] == f"SELECT count(*) FROM {table} WHERE event_date = DATE '2026-01-02'"  # noqa: S608
    with pytest.raises(ValueError):
        program.statements('lakehouse"; DROP', datetime.date(2026, 1, 2), 1)


@pytest.mark.parametrize(
    ("schedule", "calendar"),
    [
        ("@daily", "*-*-* 0:0:00 UTC"),
        ("@hourly", "*-*-* *:0:00 UTC"),
        ("@weekly", "Sun *-*-* 0:0:00 UTC"),
        ("@monthly", "*-*-1 0:0:00 UTC"),
        ("*/15 * * * *", "*-*-* *:0/15:00 UTC"),
        ("30 2 * * 1-5", "Mon..Fri *-*-* 2:30:00 UTC"),
        ("0 0 * * 0,6", "Sun,Sat *-*-* 0:0:00 UTC"),
        ("5 1,13 * 1-6/2 *", "*-1..6/2-* 1,13:5:00 UTC"),
        ("0  3 1 * *", "*-*-1 3:0:00 UTC"),
    ],
)
def test_a_schedule_is_the_same_calendar_for_a_systemd_timer(schedule, calendar):
    assert jobs.on_calendar(schedule) == calendar


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ("0 0 1 * 1", "restrict the day of month or the weekday, not both"),
        ("* * * * */2", "a step of weekdays has no calendar form"),
        ("0 24 * * *", "is not a numeric cron field"),
        ("@yearly", "a preset (@hourly, @daily, @weekly, @monthly), a 5-field cron or null"),
    ],
)
def test_a_schedule_without_the_same_meaning_on_both_is_refused(schedule, reason):
    with pytest.raises(jobs.JobSpecError, match="postgresql_backup_schedule") as refused:
        jobs.on_calendar(schedule, "postgresql_backup_schedule")
    assert reason in str(refused.value)
