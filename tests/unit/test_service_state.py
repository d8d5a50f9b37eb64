"""library/lakehouse_service_state.py (one read of what a host already has of a service) and
library/lakehouse_unit_restart.py (a restart that returns once the host is ready again)."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import stat
import subprocess
import threading
from pathlib import Path

import pytest

MODULE = "lakehouse_service_state"


def test_artifacts_absent_or_not_matching_are_reported_missing(run_module, tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_bytes(b"good")
    bad.write_bytes(b"bad")
    digest = hashlib.sha256(b"good").hexdigest()
    artifacts = [{"path": str(p), "sha256": digest} for p in (good, bad, tmp_path / "absent")]
    result = run_module(MODULE, {"artifacts": artifacts})
    assert result["artifacts_missing"] == [str(bad), str(tmp_path / "absent")] and not result["changed"]
    assert (tmp_path / ".good.sha256").exists()


def test_check_mode_records_no_digest(run_module, tmp_path):
    artifact = tmp_path / "tool"
    artifact.write_bytes(b"tool")
    run_module(MODULE, {"artifacts": [{"path": str(artifact), "sha256": "0" * 64}]}, check_mode=True)
    assert not (tmp_path / ".tool.sha256").exists()


def test_paths_and_packages_missing_are_listed_in_order(run_module, tmp_path):
    (tmp_path / "here").write_text("")
    result = run_module(
        MODULE,
        {"paths": [str(tmp_path / "here"), str(tmp_path / "gone")], "packages": ["dpkg", "no-such-lakehouse-package"]},
    )
    assert result["paths_missing"] == [str(tmp_path / "gone")]
    assert result["packages_missing"] == ["no-such-lakehouse-package"]


def test_a_user_that_does_not_exist_does_not_match(run_module):
    result = run_module(MODULE, {"user": {"name": "no-such-lakehouse-user", "home": "/nonexistent"}})
    assert result["user_matches"] is False
    assert run_module(MODULE, {})["user_matches"] is True  # nothing asked


@pytest.fixture
def fake_systemctl(tmp_path, monkeypatch):
    """A systemctl that answers `show` for two units: one running, one stopped and disabled."""
    script = tmp_path / "bin" / "systemctl"
    script.parent.mkdir()
    script.write_text(
        "#!/bin/sh\n"
        "printf 'Id=a.service\\nLoadState=loaded\\nUnitFileState=enabled\\nActiveState=active\\n\\n'\n"
        "printf 'Id=b.service\\nLoadState=loaded\\nUnitFileState=disabled\\nActiveState=inactive\\n'\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")


def test_units_report_their_state_and_which_run(run_module, fake_systemctl):
    result = run_module(MODULE, {"units": ["a.service", "b.service"]})
    assert result["units"]["b.service"] == {"loaded": True, "enabled": False, "active": False}
    assert result["units_running"] == ["a.service"]


@pytest.fixture
def http_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            body = b'{"status": "UP"}' if self.path == "/ready" else b"starting"
            self.send_response(200 if self.path != "/missing" else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()


def test_probes_that_do_not_answer_as_wanted_are_named(run_module, http_server):
    listener = socket.create_server(("127.0.0.1", 0))
    free = socket.create_server(("127.0.0.1", 0))
    free_port = free.getsockname()[1]
    free.close()
    probes = [
        {"name": "ready", "url": f"{http_server}/ready", "match": '"UP"'},
        {"name": "body", "url": f"{http_server}/starting", "match": '"UP"'},
        {"name": "status", "url": f"{http_server}/missing"},
        {"name": "port", "host": "localhost", "port": listener.getsockname()[1]},
        {"name": "closed", "host": "localhost", "port": free_port},
        {"name": "command", "command": ["true"]},
        {"name": "failing", "command": ["false"]},
    ]
    try:
        result = run_module(MODULE, {"probes": probes})
    finally:
        listener.close()
    assert result["probes_failed"] == ["body", "status", "closed", "failing"] and not result["changed"]


def test_it_never_changes_anything(run_module, tmp_path: Path):
    before = sorted(tmp_path.iterdir())
    assert run_module(MODULE, {"paths": [str(tmp_path)]})["changed"] is False
    assert sorted(tmp_path.iterdir()) == before


def test_a_restart_in_check_mode_is_reported_and_not_made(run_module):
    result = run_module("lakehouse_unit_restart", {"units": ["lakehouse-no-such.service"]}, check_mode=True)
    assert result["changed"] is True
    assert run_module("lakehouse_unit_restart", {"units": []})["changed"] is False


def test_a_restart_that_systemd_refuses_fails_with_its_reason(run_module):
    with pytest.raises(Exception) as failed:
        run_module("lakehouse_unit_restart", {"units": ["lakehouse-no-such-unit.service"]})
    assert "systemctl restart lakehouse-no-such-unit.service failed" in failed.value.result["msg"]


def test_a_restart_is_refused_while_a_peer_does_not_answer(run_module):
    # A closed port stands for the same component on another host whose restart failed.
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    peers = [{"name": "worker on worker-1", "host": "127.0.0.1", "port": port}]
    with pytest.raises(Exception) as refused:
        run_module("lakehouse_unit_restart", {"units": ["lakehouse-no-such-unit.service"], "peers": peers})
    result = refused.value.result
    assert result["refused"] is True and result["probes_failed"] == ["worker on worker-1"]
    assert "not restarted while worker on worker-1 does not answer" in result["msg"]


def test_a_wait_in_check_mode_tries_each_probe_once_and_reports_those_that_did_not_answer(run_module):
    with socket.create_server(("127.0.0.1", 0)) as listening, socket.create_server(("127.0.0.1", 0)) as closed:
        closed_port = closed.getsockname()[1]
        closed.close()
        probes = [
            {"name": "api", "host": "127.0.0.1", "port": listening.getsockname()[1]},
            {"name": "admin", "host": "127.0.0.1", "port": closed_port},
        ]
        args = {"units": ["lakehouse-no-such.service"], "restart": False, "probes": probes}
        result = run_module("lakehouse_unit_restart", args, check_mode=True)
    assert result["changed"] is False and result["probes_failed"] == ["admin"]


def test_unit_files_matching_a_service_s_patterns_are_listed(tmp_path):
    from conftest import load_source

    state = load_source("library/lakehouse_service_state.py")
    for name in ("lakehouse-postgresql-backup.timer", "lakehouse-postgresql-old.timer", "lakehouse-minio.service"):
        (tmp_path / name).write_text("")
    found = state.unit_files(["lakehouse-postgresql-*.timer"], str(tmp_path))
    assert found == ["lakehouse-postgresql-backup.timer", "lakehouse-postgresql-old.timer"]
    assert state.unit_files([], str(tmp_path)) == []


def test_restart_counts_of_every_unit_come_from_one_systemctl_call(tmp_path, monkeypatch):
    from conftest import load_source

    restart = load_source("library/lakehouse_unit_restart.py")
    calls = tmp_path / "calls"
    script = tmp_path / "bin" / "systemctl"
    script.parent.mkdir()
    script.write_text(
        f'#!/bin/sh\necho "$*" >> {calls}\n'
        "printf 'ActiveState=activating\\nNRestarts=3\\n\\nActiveState=failed\\nNRestarts=5\\n'\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")

    class Module:  # what restarts() asks of an AnsibleModule
        @staticmethod
        def run_command(args):
            done = subprocess.run(args, capture_output=True, text=True, check=False)
            return done.returncode, done.stdout, done.stderr

    # The second unit failed for good: no count, so the wait fails at once.
    assert restart.restarts(Module, ["a.service", "b.service"]) == {"a.service": 3, "b.service": None}
    assert calls.read_text().splitlines() == ["show -p ActiveState,NRestarts a.service b.service"]
