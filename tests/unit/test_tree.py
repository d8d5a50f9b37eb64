"""library/lakehouse_tree.py and the sha256 record it shares with the artifact cache."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
from pathlib import Path

import pytest
from ansible.module_utils.lakehouse_files import sha256_recorded
from conftest import ModuleExit

MODULE = "lakehouse_tree"
USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def entry(path: Path, **extra) -> dict:
    return {"path": str(path), "owner": USER, "group": GROUP, **extra}


@pytest.fixture
def tree(tmp_path: Path) -> dict:
    conf = tmp_path / "etc" / "svc"
    return {
        "directories": [entry(conf, mode="0750")],
        "files": [
            entry(conf / "a.conf", content="a = 1\n", mode="0640", tag="config"),
            entry(tmp_path / "svc.service", content="[Service]\n", tag="unit:svc.service"),
        ],
        "links": [{"path": str(tmp_path / "svc"), "src": "/opt/svc/1.0/svc", "tag": "program"}],
    }


def test_first_run_writes_everything_and_tags_what_changed(run_module, tmp_path, tree):
    result = run_module(MODULE, tree)
    assert result["changed"] and result["changed_tags"] == ["config", "directory", "program", "unit:svc.service"]
    conf = tmp_path / "etc" / "svc"
    assert (conf / "a.conf").read_text() == "a = 1\n"
    assert oct((conf / "a.conf").stat().st_mode & 0o777) == "0o640"
    assert oct(conf.stat().st_mode & 0o777) == "0o750"
    assert os.readlink(tmp_path / "svc") == "/opt/svc/1.0/svc"
    assert [d["after_header"] for d in result["diff"]] == result["changed_paths"]


def test_second_run_changes_nothing(run_module, tree):
    run_module(MODULE, tree)
    again = run_module(MODULE, tree)
    assert not again["changed"] and again["changed_tags"] == [] and again["diff"] == []


def test_one_changed_file_is_the_only_change_and_its_diff_shows_both_contents(run_module, tmp_path, tree):
    run_module(MODULE, tree)
    tree["files"][0]["content"] = "a = 2\n"
    result = run_module(MODULE, tree)
    assert result["changed_tags"] == ["config"]
    assert result["diff"] == [
        {"before_header": tree["files"][0]["path"], "after_header": tree["files"][0]["path"],
         "before": "a = 1\n", "after": "a = 2\n"}
    ]  # fmt: skip
    assert not list((tmp_path / "etc" / "svc").glob(".a.conf.*")), "no temporary file is left behind"


def test_a_mode_change_alone_is_fixed(run_module, tmp_path, tree):
    run_module(MODULE, tree)
    (tmp_path / "etc" / "svc" / "a.conf").chmod(0o666)
    result = run_module(MODULE, tree)
    assert result["changed_paths"] == [tree["files"][0]["path"]]
    assert oct((tmp_path / "etc" / "svc" / "a.conf").stat().st_mode & 0o777) == "0o640"


def test_check_mode_reports_and_writes_nothing(run_module, tmp_path, tree):
    result = run_module(MODULE, tree, check_mode=True)
    assert result["changed"] and len(result["changed_paths"]) == 4
    assert not (tmp_path / "etc").exists() and not (tmp_path / "svc").is_symlink()


def test_hidden_content_never_reaches_the_diff(run_module, tmp_path):
    secret = entry(tmp_path / "token", content="s3cr3t-value\n", mode="0600", tag="config")
    first = run_module(MODULE, {"files": [secret], "hide_content": True})
    secret["content"] = "other-s3cr3t\n"
    second = run_module(MODULE, {"files": [secret], "hide_content": True})
    assert "s3cr3t" not in repr(first) + repr(second)
    assert (tmp_path / "token").read_text() == "other-s3cr3t\n"


def test_a_link_replaced_by_a_file_is_refused(run_module, tmp_path):
    (tmp_path / "svc").write_text("not a link")
    with pytest.raises(ModuleExit) as refused:
        run_module(MODULE, {"links": [{"path": str(tmp_path / "svc"), "src": "/opt/svc"}]})
    assert "is not a symbolic link" in refused.value.result["msg"]
    assert (tmp_path / "svc").read_text() == "not a link"


def test_an_unknown_owner_fails_naming_it(run_module, tmp_path):
    with pytest.raises(ModuleExit) as refused:
        run_module(MODULE, {"directories": [{"path": str(tmp_path / "d"), "owner": "no-such-lakehouse-user"}]})
    assert "no-such-lakehouse-user" in refused.value.result["msg"]


def test_restore_puts_back_exactly_what_the_last_changing_call_changed(run_module, tmp_path, tree):
    previous = tmp_path / "previous"
    run_module(MODULE, tree | {"previous_dir": str(previous)})
    conf = tmp_path / "etc" / "svc"
    (conf / "a.conf").chmod(0o600)  # the working state: a mode of its own, kept too
    # A change of one file, one new file and a new program version.
    tree["files"][0]["content"] = "a = broken\n"
    tree["files"].append(entry(conf / "b.conf", content="b = 1\n", tag="config"))
    tree["links"][0]["src"] = "/opt/svc/2.0/svc"
    changed = run_module(MODULE, tree | {"previous_dir": str(previous)})
    assert changed["changed_tags"] == ["config", "program"]
    assert oct(previous.stat().st_mode & 0o777) == "0o700"
    # A later call that changes nothing keeps what the changing call kept.
    assert not run_module(MODULE, tree | {"previous_dir": str(previous)})["changed"]

    assert run_module(MODULE, {"restore": [str(previous)]}, check_mode=True)["changed"]
    assert (conf / "a.conf").read_text() == "a = broken\n", "check mode restores nothing"
    restored = run_module(MODULE, {"restore": [str(previous)]})
    assert sorted(restored["changed_paths"]) == sorted(
        [str(conf / "a.conf"), str(conf / "b.conf"), str(tmp_path / "svc")]
    )
    assert restored["changed_tags"] == ["config", "program"]
    assert (conf / "a.conf").read_text() == "a = 1\n" and oct((conf / "a.conf").stat().st_mode & 0o777) == "0o600"
    assert not (conf / "b.conf").exists(), "a file the change added is removed again"
    assert os.readlink(tmp_path / "svc") == "/opt/svc/1.0/svc"
    assert (tmp_path / "svc.service").read_text() == "[Service]\n", "what the change left alone stays"
    assert not previous.exists()
    assert not run_module(MODULE, {"restore": [str(previous)]})["changed"], "restored once, then forgotten"


def test_restore_excludes_writing(run_module, tmp_path, tree):
    with pytest.raises(ModuleExit) as refused:
        run_module(MODULE, tree | {"restore": [str(tmp_path / "previous")]})
    assert "mutually exclusive" in refused.value.result["msg"]


def test_check_mode_keeps_nothing(run_module, tmp_path, tree):
    run_module(MODULE, tree | {"previous_dir": str(tmp_path / "previous")}, check_mode=True)
    assert not (tmp_path / "previous").exists()


def test_the_recorded_sha256_is_trusted_only_while_the_file_is_unchanged(tmp_path, monkeypatch):
    artifact = tmp_path / "tool"
    artifact.write_bytes(b"one")
    assert sha256_recorded(str(artifact)) == hashlib.sha256(b"one").hexdigest()
    assert (tmp_path / ".tool.sha256").exists()
    import ansible.module_utils.lakehouse_files as files

    hashed = []
    monkeypatch.setattr(files, "sha256_file", lambda path: hashed.append(path) or "rehashed")
    assert files.sha256_recorded(str(artifact)) == hashlib.sha256(b"one").hexdigest() and not hashed
    artifact.write_bytes(b"two")  # a rewrite changes size, time or inode: hashed again
    assert files.sha256_recorded(str(artifact)) == "rehashed" and hashed == [str(artifact)]
