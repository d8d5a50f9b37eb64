"""The `lakehouse` command (lakehouse_cli/): parsing, rendering, contracts, secrets, failures, verify.

Nothing here needs Docker: playbook failures run against the controller itself (connection local),
and `verify`/`status` run against a real MinIO with TLS on loopback (tests/unit/minio_server.py)
described by a contract written the way roles/minio/tasks/publish.yml writes it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "unit")]

from lakehouse_cli import LakehouseError, cli, contracts  # noqa: E402
from lakehouse_cli.checks import CHECKS, COMMON_CHECKS, checks_for  # noqa: E402
from lakehouse_cli.env import mask_extra_var, parse_extra_vars  # noqa: E402
from lakehouse_cli.playbook import Invocation, Outcome, failure_reason  # noqa: E402
from lakehouse_cli.progress import Progress  # noqa: E402
from lakehouse_cli.table import render  # noqa: E402

HOST = "minio-test.lakehouse.test"


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """Secret store and state directory in tmp_path, through the environment as the roles read them."""
    secrets, state = tmp_path / "secrets", tmp_path / "state"
    monkeypatch.setenv("LAKEHOUSE_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(state))
    for name in [n for n in os.environ if n.startswith("LAKEHOUSE_SECRET_")]:
        monkeypatch.delenv(name)
    return secrets, state


def write_inventory(path: Path, host: str, **hostvars) -> Path:
    hostvars = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, **hostvars}
    inventory = {
        "all": {
            "hosts": {host: hostvars},
            "children": {"object_storage": {"hosts": {host: None}}},
        }
    }
    path.write_text(json.dumps(inventory))  # JSON is YAML
    return path


def write_contract(state: Path, host: str, service: str, data: dict) -> Path:
    path = state / "contracts" / host / f"{service}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4) + "\n")
    return path


def object_storage_contract(url: str, ca: Path, buckets=("warehouse",)) -> dict:
    """The shape of roles/minio/vars/main.yml's minio_contract."""
    host, port = url.removeprefix("https://").split(":")
    admin = {
        "user_ref": "lakehouse_secret:minio/root_user",
        "secret_ref": "lakehouse_secret:minio/root_password",
        "kind": "s3_secret_key",
    }
    return {
        "schema_version": 1,
        "service": "object_storage",
        "implementation": "minio",
        "url": url,
        "endpoints": [{"name": "s3", "url": url, "scheme": "https", "host": host, "port": int(port)}],
        "region": "us-east-1",
        "path_style": True,
        "health": {"readiness": {"url": f"{url}/minio/health/ready"}, "liveness": {"url": f"{url}/minio/health/live"}},
        "metrics": [
            {"component": "minio", "url": f"{url}/minio/v2/metrics/cluster", "auth": "bearer", "credentials": admin}
        ],
        "tls": {"ca_ref": str(ca)},
        "credentials": {"admin": admin},
        "buckets": list(buckets),
    }


def run_main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# --- argument parsing ---------------------------------------------------------------------------


def test_parse_defaults():
    args = cli.build_parser().parse_args(["up"])
    assert (args.command, args.inventory, args.limit, args.extra_vars, args.check, args.verbose) == (
        "up",
        "inventories/sandbox",
        None,
        [],
        False,
        0,
    )


def test_parse_every_option():
    argv = ["up", "-i", "inv", "--limit", "metal-*", "-e", "a=1", "--extra-vars", "@vars.yml", "--check", "-vv"]
    args = cli.build_parser().parse_args(argv)
    assert args.inventory == "inv"
    assert args.limit == "metal-*"
    assert args.extra_vars == ["a=1", "@vars.yml"]
    assert args.check is True
    assert args.verbose == 2


@pytest.mark.parametrize("command", ["up", "verify", "status", "down", "drift", "render", "provision"])
def test_every_command_takes_the_common_options(command):
    args = cli.build_parser().parse_args([command, "-i", "x", "--limit", "h", "-e", "k=v", "-v"])
    assert (args.inventory, args.limit, args.extra_vars, args.verbose) == ("x", "h", ["k=v"], 1)


@pytest.mark.parametrize("argv", [[], ["explode"], ["verify", "--check"], ["status", "--bogus"]])
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(argv)
    assert exit_info.value.code == 2


def test_extra_vars_parse_like_ansible(tmp_path):
    (tmp_path / "vars.yml").write_text("lakehouse_site: fromfile\nother: 1\n")
    assert parse_extra_vars(["a=1 b='x y'"]) == {"a": "1", "b": "x y"}
    assert parse_extra_vars(['{"lakehouse_site": "json"}']) == {"lakehouse_site": "json"}
    assert parse_extra_vars(["@vars.yml", "other=2"], cwd=tmp_path) == {"lakehouse_site": "fromfile", "other": "2"}
    with pytest.raises(LakehouseError):
        parse_extra_vars(["novalue"])


def test_secret_looking_extra_vars_are_never_echoed():
    assert mask_extra_var("minio_root_password=hunter2hunter2 site=x") == "minio_root_password=<hidden> site=x"
    assert mask_extra_var('{"api_token": "abc"}') == "<hidden>"
    assert mask_extra_var("@secrets.yml") == "@secrets.yml"
    invocation = Invocation(
        playbook="playbooks/site.yml",
        inventory=str(REPO / "inventories" / "sandbox"),
        extra_vars=("minio_root_password=hunter2hunter2",),
        check=True,
    )
    shown = invocation.command_line()
    assert "hunter2" not in shown
    assert shown == (
        "ansible-playbook -i inventories/sandbox -e 'minio_root_password=<hidden>' --check playbooks/site.yml"
    )
    assert "minio_root_password=hunter2hunter2" in invocation.arguments()  # Ansible itself gets the value


# --- table rendering ----------------------------------------------------------------------------


def test_table_aligns_columns():
    text = render(("service", "health"), [("object_storage", "healthy"), ("catalog", "unreachable (timed out)")])
    assert text.splitlines() == [
        "service         health",
        "--------------  -----------------------",
        "object_storage  healthy",
        "catalog         unreachable (timed out)",
    ]


def test_table_without_rows_and_with_a_bad_row():
    assert render(("a", "bb"), []).splitlines() == ["a  bb", "-  --"]
    with pytest.raises(ValueError):
        render(("a", "b"), [("only one",)])


# --- contracts and secrets ----------------------------------------------------------------------


def test_contract_discovery(tmp_path):
    state = tmp_path / "state"
    write_contract(state, "b.example.test", "object_storage", object_storage_contract("https://b:9000", tmp_path))
    write_contract(state, "a.example.test", "object_storage", object_storage_contract("https://a:9000", tmp_path))
    write_contract(state, "a.example.test", "catalog", CATALOG)
    (state / "contracts" / "a.example.test" / "notes.txt").write_text("not a contract")

    found = contracts.find_contracts(state, site="s1")
    assert [(c.host, c.service) for c in found] == [
        ("a.example.test", "catalog"),
        ("a.example.test", "object_storage"),
        ("b.example.test", "object_storage"),
    ]
    assert {c.site for c in found} == {"s1"}
    only_b = contracts.find_contracts(state, hosts=["b.example.test", "gone.example.test"])
    assert [(c.host, c.url) for c in only_b] == [("b.example.test", "https://b:9000")]
    assert contracts.find_contracts(tmp_path / "empty") == []

    write_contract(state, "c.example.test", "object_storage", {}).write_text("{not json")
    with pytest.raises(LakehouseError, match="unreadable contract"):
        contracts.find_contracts(state)


CATALOG = {
    "schema_version": 1,
    "service": "catalog",
    "implementation": "hive-metastore",
    "url": "thrift://metastore.example.test:9083",
    "endpoints": [
        {
            "name": "thrift",
            "url": "thrift://metastore.example.test:9083",
            "scheme": "thrift",
            "host": "metastore.example.test",
            "port": 9083,
        }
    ],
    "health": {"readiness": {"tcp": {"host": "metastore.example.test", "port": 9083}}},
    "type": "hive",
    "name": "lakehouse",
    "warehouse": "s3://warehouse/",
    "hive": {"uri": "thrift://metastore.example.test:9083"},
    "object_storage": {
        "endpoint": "https://s3.example.test",
        "region": "us-east-1",
        "path_style": True,
        "credentials": {"user": "app", "secret_ref": "lakehouse_secret:s3/users/app", "kind": "s3_secret_key"},
    },
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(lambda c: c.pop("schema_version"), "schema_version: is required", id="no-schema-version"),
        pytest.param(
            lambda c: c.update(schema_version=2), "schema_version: must be 1 (got 2)", id="other-schema-version"
        ),
        pytest.param(
            lambda c: c["endpoints"][0].update(host="192.0.2.7"),
            "endpoints[0].host: must be a DNS name (an IP literal is refused) (got '192.0.2.7')",
            id="ip-host",
        ),
        pytest.param(
            lambda c: c.update(url="https://192.0.2.7:9000"),
            "url: must be a URL whose host is a DNS name (an IP literal is refused) (got 'https://192.0.2.7:9000')",
            id="ip-url",
        ),
        pytest.param(
            lambda c: c["credentials"]["admin"].update(secret_ref="hunter2-literal"),
            "credentials.admin.secret_ref: must be a reference to the secret store, lakehouse_secret:<path>"
            " (a literal secret is refused)",
            id="literal-secret",
        ),
        pytest.param(
            lambda c: c["credentials"]["admin"].update(kind="api_key"),
            "credentials.admin.kind: must be one of password, s3_secret_key, bearer_token (got 'api_key')",
            id="unknown-kind",
        ),
        pytest.param(
            lambda c: c["credentials"]["admin"].update(password="hunter2-literal"),
            "credentials.admin.password: is not a field of this contract",
            id="literal-password-field",
        ),
        pytest.param(
            lambda c: c.update(service="catalog"), "service: is 'catalog', expected 'object_storage'", id="other-layer"
        ),
    ],
)
def test_a_malformed_contract_is_one_line_naming_file_and_field(tmp_path, dirs, change, message):
    _, state = dirs
    data = object_storage_contract(f"https://{HOST}:9000", tmp_path)
    change(data)
    path = write_contract(state, HOST, "object_storage", data)
    code, out, err = run_main("status", "-i", str(write_inventory(tmp_path / "hosts.yml", HOST)))
    assert (code, out) == (1, "")
    assert err == f"lakehouse: invalid contract {path}: {message}\n"
    assert "hunter2" not in err


def test_state_and_secret_directories_follow_the_roles():
    env = {"HOME": "/home/u"}
    assert contracts.state_dir("prod", env) == Path("/home/u/.local/state/lakehouse/prod")
    assert contracts.secrets_dir("prod", env) == Path("/home/u/.local/share/lakehouse/prod")
    env = {"HOME": "/home/u", "LAKEHOUSE_STATE_DIR": "/s", "LAKEHOUSE_SECRETS_DIR": "/k"}
    assert (contracts.state_dir("prod", env), contracts.secrets_dir("prod", env)) == (Path("/s"), Path("/k"))


def test_secret_reference_resolution(tmp_path):
    store = tmp_path / "store"
    (store / "minio").mkdir(parents=True)
    (store / "minio" / "root_password").write_text("s3cr3t-value\n")
    resolve = contracts.resolve_secret

    assert resolve("lakehouse_secret:minio/root_password", store, env={}) == "s3cr3t-value"
    # The environment wins, as in plugins/lookup/lakehouse_secret.py.
    env = {"LAKEHOUSE_SECRET_MINIO_ROOT_PASSWORD": "from-env"}
    assert resolve("lakehouse_secret:minio/root_password", store, env=env) == "from-env"

    for ref, message in [
        ("lakehouse_secret:minio/missing", "not found"),
        ("lakehouse_secret:../outside", "invalid credential path"),
        ("lakehouse_secret:/etc/passwd", "invalid credential path"),
        ("vault:minio/root_password", "unsupported credential reference"),
    ]:
        with pytest.raises(LakehouseError, match=message) as error:
            resolve(ref, store, env={})
        assert "s3cr3t-value" not in str(error.value)


# --- progress and failure reasons ---------------------------------------------------------------


def event(kind: str, **data) -> dict:
    return {"event": kind, "event_data": {"playbook": "site.yml", "play": "Object storage", **data}}


def test_plain_progress_and_the_failed_task():
    out = io.StringIO()
    progress = Progress(out=out, mode="plain")
    progress.start("site.yml")
    for item in [
        event("playbook_on_play_start", name="Object storage"),
        event("playbook_on_task_start", task="Deliver MinIO"),
        event("runner_on_ok", host="h1", res={"changed": True}),
        event("runner_on_ok", host="h2", res={"changed": False}),
        event("playbook_on_task_start", task="Optional probe"),
        event("runner_on_failed", host="h2", ignore_errors=True, res={"msg": "ignored"}),
        event("playbook_on_task_start", task="Manage users"),
        event(
            "runner_on_failed",
            host="h1",
            res={"msg": "One or more items failed", "results": [{"failed": False}, {"failed": True, "msg": "no\nway"}]},
        ),
    ]:
        assert progress(item) is False  # nothing is kept on disk
    progress.finish("failed")

    lines = out.getvalue().splitlines()
    assert lines[:3] == ["play: Object storage", "  task 1: Deliver MinIO", "  task 2: Optional probe"]
    assert "  FAILED: h1: no way" in lines
    assert lines[-1].startswith("site.yml: FAILED, 3 tasks, hosts ok=1 changed=0 failed=1")
    outcome = Outcome("failed", 2, progress.failure, [])
    reason = failure_reason(Invocation("playbooks/site.yml", "inv"), outcome)
    assert reason == 'task "Manage users" failed on h1 in playbooks/site.yml: no way'


def test_a_report_task_s_message_follows_the_summary_line():
    out = io.StringIO()
    progress = Progress(out=out, mode="plain")
    progress.start("site.yml")
    progress(event("playbook_on_task_start", task="Report what the restore filled"))
    progress(
        event("runner_on_ok", host="db-1", res={"changed": False, "msg": "Backup 20261207T000000Z: restored\nnessie"})
    )
    progress(event("playbook_on_task_start", task="Show the published endpoints"))
    progress(event("runner_on_ok", host="db-1", res={"changed": False, "msg": "not a report"}))
    progress.finish("successful")
    lines = out.getvalue().splitlines()
    assert lines[-2].startswith("site.yml: done, 2 tasks")
    assert lines[-1] == "  db-1: Backup 20261207T000000Z: restored nessie"
    assert lines.count(lines[-1]) == 1, lines


def test_the_reason_is_the_failure_that_stopped_the_run_not_a_rescued_one():
    progress = Progress(out=io.StringIO(), mode="plain")
    progress.start("site.yml")
    for item in [
        event("playbook_on_task_start", task="Wait until ready"),
        event("runner_on_failed", host="h1", res={"msg": "non-zero return code"}),
        event("playbook_on_task_start", task="Put back the files"),
        event("runner_on_ok", host="h1", res={"changed": True}),
        event("playbook_on_task_start", task="Fail with the reason"),
        event("runner_on_failed", host="h1", res={"msg": "postgresql did not become ready; " + "x" * 600}),
    ]:
        progress(item)
    progress.finish("failed")
    reason = failure_reason(Invocation("playbooks/site.yml", "inv"), Outcome("failed", 2, progress.failure, []))
    assert reason.startswith('task "Fail with the reason" failed on h1 in playbooks/site.yml: postgresql did not')
    assert reason.endswith("x" * 600), "a service's log lines are not cut short"


def test_unreachable_and_error_reasons():
    progress = Progress(out=io.StringIO(), mode="plain")
    progress.start("site.yml")
    progress(event("playbook_on_task_start", task="Gathering Facts"))
    progress(event("runner_on_unreachable", host="metal-1", res={"msg": "Failed to connect"}))
    progress.finish("failed")
    invocation = Invocation("playbooks/site.yml", "inv")
    assert failure_reason(invocation, Outcome("failed", 4, progress.failure, [])) == (
        'host metal-1 unreachable in task "Gathering Facts" of playbooks/site.yml: Failed to connect'
    )

    progress.start("site.yml")
    for line in ["[ERROR]: the playbook: x.yml could not be found", "Origin: x.yml"]:
        progress({"event": "verbose", "stdout": line})
    progress.finish("failed")
    assert failure_reason(invocation, Outcome("failed", 1, None, progress.errors)) == (
        "playbooks/site.yml: [ERROR]: the playbook: x.yml could not be found"
    )
    assert "interrupted" in failure_reason(invocation, Outcome("canceled", 254, None, []))


def test_a_failed_playbook_exits_with_one_line_naming_the_task(tmp_path):
    """`up` on a controller-local host with an IP literal endpoint: preflight stops it, one line says why."""
    inventory = write_inventory(tmp_path / "hosts.yml", "preflight.lakehouse.test", minio_server_name="192.0.2.1")
    env = {
        **os.environ,
        "LAKEHOUSE_SECRETS_DIR": str(tmp_path / "secrets"),
        "LAKEHOUSE_STATE_DIR": str(tmp_path / "state"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "lakehouse_cli", "up", "-i", str(inventory), "-e", "minio_root_password=Sup3rS3cret9"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lakehouse: ")
    assert 'task "Check the names, ports and TLS files" failed on preflight.lakehouse.test' in lines[0]
    assert "IP literals are not allowed" in lines[0]
    assert "Sup3rS3cret9" not in result.stdout + result.stderr
    assert "ansible-playbook -i" in result.stdout  # the equivalent plain command, secrets masked
    assert not (tmp_path / "state" / "contracts").exists()


def test_down_refuses_an_inventory_without_sandbox_hosts(tmp_path, dirs):
    inventory = write_inventory(tmp_path / "hosts.yml", HOST)
    code, out, err = run_main("down", "-i", str(inventory))
    assert code == 1
    assert err == f"lakehouse: inventory {inventory} has no sandbox hosts; down removes only the sandbox\n"


def test_render_refuses_an_inventory_without_cluster_hosts(tmp_path, dirs):
    inventory = write_inventory(tmp_path / "hosts.yml", HOST)
    code, _, err = run_main("render", "-i", str(inventory), "-o", str(tmp_path / "tree"))
    assert (code, err) == (1, f"lakehouse: no host of {inventory} is delivered by Helm: there is nothing to render\n")
    assert not (tmp_path / "tree").exists()


def test_provision_refuses_a_directory_that_is_not_an_environment(tmp_path, dirs):
    code, _, err = run_main("provision", "-i", str(tmp_path))
    assert (code, err) == (1, f"lakehouse: {tmp_path} has no provision.yml: it is not a provisioned environment\n")


def test_drift_lists_each_change_a_check_run_would_make_and_exits_2(tmp_path, dirs):
    inventory = write_inventory(tmp_path / "hosts.yml", HOST)
    progress = Progress(out=io.StringIO(), mode="plain")
    progress.start("site.yml")
    for task, res in [
        ("Write the files of minio", {"changed": True, "changed_paths": ["/etc/minio/minio.env"]}),
        ("Manage policies", {"changed": True, "results": [{"changed": True, "item": {}, "_ansible_item_label": "rw"},
                                                          {"changed": False, "_ansible_item_label": "ro"}]}),
        ("Read the state of minio", {"changed": False}),
    ]:  # fmt: skip
        progress({"event": "playbook_on_task_start", "event_data": {"task": task}})
        progress({"event": "runner_on_ok", "event_data": {"host": HOST, "res": res}})
    assert [(c.task, c.detail) for c in progress.changes] == [
        ("Write the files of minio", "/etc/minio/minio.env"),
        ("Manage policies", "rw"),
    ]
    with mock.patch.object(cli, "run_or_raise", lambda invocation, _: captured.append(invocation)):
        captured: list = []
        with mock.patch.object(cli.Session, "progress", lambda self: progress):
            code, out, err = run_main("drift", "-i", str(inventory))
    assert captured[0].check and captured[0].diff
    assert code == cli.DRIFT_EXIT == 2
    assert "/etc/minio/minio.env" in out and "`lakehouse up` repairs them" in err


def test_a_missing_inventory_is_one_line(tmp_path):
    code, _, err = run_main("status", "-i", str(tmp_path / "nowhere"))
    assert (code, err) == (1, f"lakehouse: inventory {tmp_path / 'nowhere'} not found\n")


def test_status_without_contracts_says_what_to_do(tmp_path, dirs):
    inventory = write_inventory(tmp_path / "hosts.yml", HOST)
    code, _, err = run_main("status", "-i", str(inventory))
    assert code == 1
    assert err.startswith("lakehouse: no published contract") and err.endswith("run: lakehouse up\n")


def test_checks_are_registered_per_service():
    assert [c.name for c in COMMON_CHECKS] == [
        "readiness",
        "metrics refuse an anonymous scrape",
        "metrics refuse a wrong credential",
        "TLS 1.1 and below refused",
        "certificate refused without the lakehouse CA",
        "plain HTTP refused",
    ]
    assert [c.name for c in CHECKS["object_storage"]] == [
        "anonymous access refused",
        "default credentials refused",
        "put/get/delete round trip",
    ]
    # readiness, the metrics refusals and the TLS refusals, for a contract with such endpoints
    assert [c.name for c in checks_for("query_worker")] == [c.name for c in COMMON_CHECKS]
    assert [c.name for c in checks_for("unknown_service")] == [c.name for c in COMMON_CHECKS]


# --- verify and status against a real MinIO -----------------------------------------------------


@pytest.fixture(scope="module")
def minio_tls(artifact, tmp_path_factory):
    from minio_server import MinioServer

    server = MinioServer(artifact("minio"), tmp_path_factory.mktemp("cli-minio"), tls=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def warehouse(minio_tls):
    """A versioned `warehouse` bucket, as the sandbox inventory declares it; returns a root client."""
    import urllib3
    from minio import Minio
    from minio.commonconfig import ENABLED
    from minio.versioningconfig import VersioningConfig

    client = Minio(
        minio_tls.endpoint.removeprefix("https://"),
        access_key=minio_tls.root_user,
        secret_key=minio_tls.root_password,
        secure=True,
        http_client=urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(minio_tls.ca_path)),
    )
    if not client.bucket_exists("warehouse"):
        client.make_bucket("warehouse")
    client.set_bucket_versioning("warehouse", VersioningConfig(ENABLED))
    return client


@pytest.fixture
def published(minio_tls, warehouse, tmp_path, dirs):
    """An inventory with one host, its object storage contract, and the credentials it references."""
    secrets, state = dirs
    (secrets / "minio").mkdir(parents=True)
    (secrets / "minio" / "root_user").write_text(minio_tls.root_user + "\n")
    (secrets / "minio" / "root_password").write_text(minio_tls.root_password + "\n")
    write_contract(state, HOST, "object_storage", object_storage_contract(minio_tls.endpoint, minio_tls.ca_path))
    return write_inventory(tmp_path / "hosts.yml", HOST, lakehouse_site="clitest")


def test_verify_passes_against_a_real_minio(published, minio_tls, warehouse):
    code, out, err = run_main("verify", "-i", str(published))
    assert (code, err) == (0, ""), out
    lines = out.splitlines()
    assert lines[0].split() == ["check", "endpoint", "result"]
    rows = {line.split("  ")[0]: line for line in lines[2:-1]}
    assert set(rows) == {
        "object_storage readiness",
        "object_storage metrics refuse an anonymous scrape",
        "object_storage metrics refuse a wrong credential",
        "object_storage TLS 1.1 and below refused",
        "object_storage certificate refused without the lakehouse CA",
        "object_storage plain HTTP refused",
        "object_storage anonymous access refused",
        "object_storage default credentials refused",
        "object_storage put/get/delete round trip",
    }
    assert all(" pass" in row for row in rows.values()), out
    assert "403 AccessDenied" in rows["object_storage anonymous access refused"]
    assert "403 InvalidAccessKeyId" in rows["object_storage default credentials refused"]
    assert "TLS 1.0 and 1.1 refused (protocol version alert)" in rows["object_storage TLS 1.1 and below refused"]
    assert "CERTIFICATE_VERIFY_FAILED" in rows["object_storage certificate refused without the lakehouse CA"]
    assert "HTTP 400 in plain text" in rows["object_storage plain HTTP refused"]
    assert lines[-1] == "all 9 checks passed"
    assert minio_tls.root_password not in out and minio_tls.root_user not in out
    # The round trip leaves nothing behind, not even a version or a delete marker.
    assert list(warehouse.list_objects("warehouse", recursive=True, include_version=True)) == []


def test_verify_fails_with_a_wrong_credential(published, minio_tls, dirs):
    secrets, _ = dirs
    (secrets / "minio" / "root_password").write_text("not-the-password-at-all\n")
    code, out, err = run_main("verify", "-i", str(published))
    assert code != 0
    assert len(err.splitlines()) == 1
    assert err.startswith("lakehouse: 1 of 9 checks failed, first: object_storage put/get/delete round trip at ")
    assert "SignatureDoesNotMatch" in err
    round_trip = next(line for line in out.splitlines() if "round trip" in line)
    assert " FAIL (put refused: 403 SignatureDoesNotMatch)" in round_trip
    assert "not-the-password-at-all" not in out + err
    assert minio_tls.root_password not in out + err


def test_verify_fails_without_the_credential_file(published, dirs):
    secrets, _ = dirs
    (secrets / "minio" / "root_user").unlink()
    code, out, err = run_main("verify", "-i", str(published))
    assert code == 1
    assert "credential lakehouse_secret:minio/root_user not found" in err


def test_status_shows_health_from_the_contract(published, minio_tls, dirs):
    code, out, err = run_main("status", "-i", str(published))
    assert (code, err) == (0, "")
    assert out.splitlines()[0].split() == ["service", "host", "delivery", "endpoint", "health"]
    assert out.splitlines()[2].split() == ["object_storage", HOST, "systemd", minio_tls.endpoint, "healthy"]

    # The same contract on a second host whose server is gone: reported, and the exit code says so.
    _, state = dirs
    gone = object_storage_contract("https://localhost:1", minio_tls.ca_path)
    write_contract(state, "gone.lakehouse.test", "object_storage", gone)
    inventory = published.parent / "two.yml"
    inventory.write_text(
        textwrap.dedent(f"""\
        all:
          hosts:
            {HOST}: {{ansible_connection: local}}
            gone.lakehouse.test: {{ansible_connection: local, lakehouse_delivery: helm}}
        """)
    )
    code, out, err = run_main("status", "-i", str(inventory))
    assert code == 1
    gone_row = next(line for line in out.splitlines() if "gone.lakehouse.test" in line).split()
    assert gone_row[:4] == ["object_storage", "gone.lakehouse.test", "helm", "https://localhost:1"]
    assert gone_row[4] == "unreachable"
    assert err.startswith("lakehouse: 1 of 2 services not healthy: object_storage on gone.lakehouse.test (unreachable")

    code, out, _ = run_main("status", "-i", str(inventory), "--limit", HOST)
    assert code == 0 and "gone.lakehouse.test" not in out
