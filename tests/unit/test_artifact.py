"""library/lakehouse_artifact.py: downloads over a loopback HTTP server, Go builds from a file module proxy.

Nothing here leaves the machine: HTTP goes to 127.0.0.1 and Go reads modules from GOPROXY=file://.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from conftest import ModuleExit, load_source

MODULE = "lakehouse_artifact"
PAYLOAD = b"#!/bin/sh\necho lakehouse tool 1.2.3\n"
ELF_MACHINE = {"amd64": 62, "arm64": 183}  # e_machine: EM_X86_64, EM_AARCH64


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(path: Path) -> list[Path]:
    """The cache's files, without the lock each fetch or build takes beside its artifact."""
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix != ".lock") if path.exists() else []


class Site:
    """A static HTTP server on 127.0.0.1 that records the paths it was asked for."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        requests, directory = self.requests, str(root)

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=directory, **kwargs)

            def do_GET(self):
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, path: str, data: bytes) -> str:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return f"{self.url}/{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def site(tmp_path, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # loopback only, never through a proxy
    (tmp_path / "www").mkdir()
    server = Site(tmp_path / "www")
    yield server
    server.close()


def url_entry(cache: Path, url: str, data: bytes = PAYLOAD, arch: str = "amd64", **extra) -> dict:
    return {
        "name": "tool",
        "version": "1.2.3",
        "filename": "tool",
        "arch": arch,
        "source": {"url": url},
        "sha256": {arch: sha256(data)},
        "cache_dir": str(cache),
        **extra,
    }


def cached(cache: Path, arch: str = "amd64") -> Path:
    return cache / "tool" / "1.2.3" / arch / "tool"


# --- downloads ------------------------------------------------------------------------------------


def test_fresh_fetch_is_verified_then_served_from_cache(run_module, site, tmp_path):
    site.publish("releases/1.2.3/tool-amd64", PAYLOAD)
    args = url_entry(tmp_path / "cache", site.url + "/releases/{version}/tool-{arch}")

    first = run_module(MODULE, args)
    path = cached(tmp_path / "cache")
    assert first["changed"] is True
    assert first["source"] == "url"
    assert first["path"] == str(path)
    assert first["sha256"] == sha256(PAYLOAD)
    assert path.read_bytes() == PAYLOAD
    assert path.stat().st_mode & 0o777 == 0o755
    assert files_under(tmp_path / "cache") == [path]  # no temp file left beside it
    assert first["diff"]["before"] == {"path": str(path), "sha256": "absent"}
    assert first["diff"]["after"] == {"path": str(path), "sha256": sha256(PAYLOAD)}
    assert site.requests == ["/releases/1.2.3/tool-amd64"]

    second = run_module(MODULE, args)
    assert second["changed"] is False
    assert second["source"] == "cache"
    assert second["sha256"] == sha256(PAYLOAD)
    assert site.requests == ["/releases/1.2.3/tool-amd64"]  # verified locally, not fetched again


def test_corrupted_cache_file_is_detected_and_replaced(run_module, site, tmp_path):
    args = url_entry(tmp_path / "cache", site.publish("tool", PAYLOAD))
    run_module(MODULE, args)
    path = cached(tmp_path / "cache")
    path.write_bytes(b"tampered")

    result = run_module(MODULE, args)
    assert result["changed"] is True
    assert result["source"] == "url"
    assert result["diff"]["before"]["sha256"] == sha256(b"tampered")
    assert path.read_bytes() == PAYLOAD
    assert len(site.requests) == 2


def test_checksum_mismatch_from_server_fails_and_caches_nothing(run_module, site, tmp_path):
    args = url_entry(tmp_path / "cache", site.publish("tool", b"something else"))

    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, args)
    msg = failed.value.result["msg"]
    assert sha256(PAYLOAD) in msg
    assert sha256(b"something else") in msg
    assert failed.value.result["expected_sha256"] == sha256(PAYLOAD)
    assert failed.value.result["actual_sha256"] == sha256(b"something else")
    assert files_under(tmp_path / "cache") == []

    # A corrupted cached file is not kept either when the refill fails: nothing can pick it up later.
    path = cached(tmp_path / "cache")
    path.write_bytes(b"tampered")
    with pytest.raises(ModuleExit):
        run_module(MODULE, args)
    assert files_under(tmp_path / "cache") == []


def test_missing_checksum_for_arch_fails_before_any_request(run_module, site, tmp_path):
    args = url_entry(tmp_path / "cache", site.publish("tool", PAYLOAD), arch="amd64")
    args["arch"] = "arm64"  # the entry only pins amd64

    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, args)
    msg = failed.value.result["msg"]
    assert "tool" in msg
    assert "arm64" in msg
    assert "sha256" in msg
    assert site.requests == []
    assert not (tmp_path / "cache").exists()

    # A build is not even attempted (the missing go binary is not what it complains about).
    args["source"] = {"go": {"module": "example.test/tool", "toolchain": "go1.26.8"}}
    args["go_binary"] = "/nonexistent/go"
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, args)
    assert "sha256" in failed.value.result["msg"]
    assert "Go toolchain" not in failed.value.result["msg"]


def test_mirror_replaces_every_source(run_module, site, tmp_path):
    mirror = site.url + "/mirror"
    site.publish("mirror/tool/1.2.3/amd64/tool", PAYLOAD)

    args = url_entry(tmp_path / "a", site.url + "/upstream/tool", mirror=mirror + "/")
    result = run_module(MODULE, args)
    assert result["source"] == "mirror"
    assert cached(tmp_path / "a").read_bytes() == PAYLOAD
    assert site.requests == ["/mirror/tool/1.2.3/amd64/tool"]

    # A Go-built artifact comes from the mirror too: no toolchain needed offline.
    args = url_entry(tmp_path / "b", "unused", mirror=mirror, go_binary="/nonexistent/go")
    args["source"] = {"go": {"module": "example.test/tool", "toolchain": "go1.26.8"}}
    result = run_module(MODULE, args)
    assert result["source"] == "mirror"
    assert cached(tmp_path / "b").read_bytes() == PAYLOAD


def test_check_mode_changes_nothing(run_module, site, tmp_path):
    cache = tmp_path / "cache"
    args = url_entry(cache, site.publish("tool", PAYLOAD))

    result = run_module(MODULE, args, check_mode=True)
    assert result["changed"] is True
    assert result["source"] == "url"
    assert result["path"] == str(cached(cache))
    assert site.requests == []
    assert not cache.exists()

    run_module(MODULE, args)
    cached(cache).write_bytes(b"tampered")
    result = run_module(MODULE, args, check_mode=True)
    assert result["changed"] is True
    assert result["diff"]["before"]["sha256"] == sha256(b"tampered")
    assert cached(cache).read_bytes() == b"tampered"
    assert len(site.requests) == 1

    cached(cache).write_bytes(PAYLOAD)
    result = run_module(MODULE, args, check_mode=True)
    assert result["changed"] is False
    assert result["source"] == "cache"


def test_http_404_is_a_clear_error(run_module, site, tmp_path):
    url = site.url + "/missing/tool"
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, url_entry(tmp_path / "cache", url))
    msg = failed.value.result["msg"]
    assert "404" in msg
    assert url in msg
    assert "tool 1.2.3 (amd64)" in msg
    assert files_under(tmp_path / "cache") == []


def test_file_url(run_module, tmp_path):
    (tmp_path / "tool").write_bytes(PAYLOAD)
    result = run_module(MODULE, url_entry(tmp_path / "cache", (tmp_path / "tool").as_uri()))
    assert result["changed"] is True
    assert cached(tmp_path / "cache").read_bytes() == PAYLOAD


@pytest.mark.parametrize("field", ["name", "version", "filename"])
def test_path_parts_must_be_plain_names(run_module, tmp_path, field):
    args = url_entry(tmp_path / "cache", "file:///nonexistent")
    args[field] = "../escape"
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, args)
    assert field in failed.value.result["msg"]


@pytest.mark.parametrize(
    "other",
    [{"go": {"module": "example.test/tool", "toolchain": "go1.26.8"}}, {"pip": {"requirements": "lock.txt"}}],
)
def test_source_needs_exactly_one_of_url_go_and_pip(run_module, tmp_path, other):
    args = url_entry(tmp_path / "cache", "file:///nonexistent")
    args["source"].update(other)
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, args)
    assert "mutually exclusive" in failed.value.result["msg"]


def test_helpers():
    module = load_source(f"library/{MODULE}.py")
    assert module.go_target("github.com/minio/mc", None) == "github.com/minio/mc"
    assert module.go_target("github.com/minio/mc", "cmd/mc") == "github.com/minio/mc/cmd/mc"
    assert module.go_target("github.com/minio/mc", "github.com/minio/mc/cmd/mc") == "github.com/minio/mc/cmd/mc"
    assert module.merge_goflags("") == "-trimpath -buildvcs=false"
    assert module.merge_goflags("-modcacherw -buildvcs=false") == "-modcacherw -buildvcs=false -trimpath"
    assert module.substitute("{name}/{version}-{arch}", version="1", arch="arm64") == "{name}/1-arm64"
    # pip is given every manylinux platform a glibc 2.36 host runs, not just the newest.
    amd64 = module.pip_platforms("amd64", "2.36")
    assert amd64[:2] == ["manylinux_2_36_x86_64", "manylinux_2_35_x86_64"]
    assert "manylinux_2_17_x86_64" in amd64 and "manylinux_2_5_x86_64" in amd64
    assert amd64[-3:] == ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    assert "manylinux_2_37_x86_64" not in amd64
    assert module.pip_platforms("arm64", "2.36")[-1] == "manylinux2014_aarch64"


# --- Go builds ------------------------------------------------------------------------------------

HELLO_MOD = "module example.test/hello\n\ngo 1.21\n"
HELLO_MAIN = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello from the lakehouse") }\n'


@pytest.fixture(scope="module")
def goproxy(tmp_path_factory):
    """A file-based module proxy serving example.test/hello v1.0.0, and the local toolchain's name."""
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if go is None:
        pytest.skip("no Go toolchain (scripts/setup.sh installs one)")
    query = subprocess.run([go, "env", "-json", "GOVERSION", "GOHOSTARCH"], capture_output=True, text=True, check=True)
    goenv = json.loads(query.stdout)

    proxy = tmp_path_factory.mktemp("goproxy")
    versions = proxy / "example.test" / "hello" / "@v"
    versions.mkdir(parents=True)
    (versions / "list").write_text("v1.0.0\n")
    (versions / "v1.0.0.info").write_text('{"Version":"v1.0.0","Time":"2026-01-01T00:00:00Z"}\n')
    (versions / "v1.0.0.mod").write_text(HELLO_MOD)
    # golang.org/x/mod/zip layout: every file under <module>@<version>/, no directory entries.
    with zipfile.ZipFile(versions / "v1.0.0.zip", "w") as z:
        z.writestr("example.test/hello@v1.0.0/go.mod", HELLO_MOD)
        z.writestr("example.test/hello@v1.0.0/main.go", HELLO_MAIN)
    return {"url": proxy.as_uri(), "toolchain": goenv["GOVERSION"], "host_arch": goenv["GOHOSTARCH"]}


@pytest.fixture
def go_env(goproxy, tmp_path, monkeypatch):
    """The caller's Go environment, which the module passes through: offline and hermetic."""
    monkeypatch.setenv("GOPROXY", goproxy["url"])
    monkeypatch.setenv("GOSUMDB", "off")
    monkeypatch.setenv("GOFLAGS", "-modcacherw")  # lets pytest delete the module cache
    monkeypatch.setenv("GOENV", "off")  # ignore the developer's `go env -w` settings
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "modcache"))
    monkeypatch.setenv("GOCACHE", str(tmp_path / "gocache"))
    for var in ("GOBIN", "GOPRIVATE", "GONOPROXY", "GONOSUMDB"):
        monkeypatch.delenv(var, raising=False)
    return goproxy


def go_entry(cache: Path, toolchain: str, arch: str, sha: str, version: str = "v1.0.0") -> dict:
    return {
        "name": "hello",
        "version": version,
        "filename": "hello",
        "arch": arch,
        "source": {"go": {"module": "example.test/hello", "toolchain": toolchain}},
        "sha256": {arch: sha},
        "cache_dir": str(cache),
    }


def built_sha256(run_module, args: dict) -> str:
    """Build with a wrong pin: the module fails, names both checksums and caches nothing."""
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, args)
    result = failed.value.result
    assert result["expected_sha256"] in result["msg"]
    assert result["actual_sha256"] in result["msg"]
    assert "toolchain" in result["msg"]
    assert files_under(Path(args["cache_dir"])) == []  # neither the binary nor the build GOPATH
    return result["actual_sha256"]


def assert_elf(path: Path, arch: str):
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF"
    assert int.from_bytes(head[18:20], "little") == ELF_MACHINE[arch]


def test_go_build_is_reproducible_and_pinned(run_module, go_env, tmp_path, monkeypatch):
    arch = go_env["host_arch"]
    if arch not in ELF_MACHINE:
        pytest.skip(f"controller architecture {arch} is not a lakehouse target")
    wrong = "0" * 64
    actual = built_sha256(run_module, go_entry(tmp_path / "cache1", go_env["toolchain"], arch, wrong))
    # The caller's GOMODCACHE and GOFLAGS were used: the module is there, in a writable directory (-modcacherw).
    extracted = tmp_path / "modcache" / "example.test" / "hello@v1.0.0"
    assert (extracted / "go.mod").is_file()
    assert extracted.stat().st_mode & 0o200

    # Again from nothing: fresh module, build and artifact caches give the same binary.
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "modcache2"))
    monkeypatch.setenv("GOCACHE", str(tmp_path / "gocache2"))
    args = go_entry(tmp_path / "cache2", go_env["toolchain"], arch, actual)
    result = run_module(MODULE, args)
    path = tmp_path / "cache2" / "hello" / "v1.0.0" / arch / "hello"
    assert result["changed"] is True
    assert result["source"] == "go"
    assert result["path"] == str(path)
    assert result["sha256"] == actual
    assert sha256(path.read_bytes()) == actual
    assert files_under(tmp_path / "cache2") == [path]
    assert_elf(path, arch)
    assert subprocess.run([path], capture_output=True, text=True, check=True).stdout == "hello from the lakehouse\n"

    again = run_module(MODULE, args)
    assert again["changed"] is False
    assert again["source"] == "cache"


def test_go_cross_compile(run_module, go_env, tmp_path):
    # go install refuses GOBIN when cross-compiling; the module must cope.
    arch = "arm64" if go_env["host_arch"] == "amd64" else "amd64"
    actual = built_sha256(run_module, go_entry(tmp_path / "cache", go_env["toolchain"], arch, "f" * 64))

    result = run_module(MODULE, go_entry(tmp_path / "cache", go_env["toolchain"], arch, actual))
    path = tmp_path / "cache" / "hello" / "v1.0.0" / arch / "hello"
    assert result["source"] == "go"
    assert sha256(path.read_bytes()) == actual
    assert files_under(tmp_path / "cache") == [path]
    assert_elf(path, arch)


def test_go_build_of_a_local_module_directory_is_reproducible_and_pinned(run_module, go_env, tmp_path):
    """The project's own programs (images/probe) build from a directory of the checkout."""
    arch = go_env["host_arch"]
    if arch not in ELF_MACHINE:
        pytest.skip(f"controller architecture {arch} is not a lakehouse target")
    checkout = tmp_path / "checkout"
    (checkout / "tools" / "hello").mkdir(parents=True)
    (checkout / "tools" / "hello" / "go.mod").write_text(HELLO_MOD)
    (checkout / "tools" / "hello" / "main.go").write_text(HELLO_MAIN)
    args = go_entry(tmp_path / "cache1", go_env["toolchain"], arch, "0" * 64, version="1.0.0")
    args["source"]["go"] = {"path": "tools/hello", "toolchain": go_env["toolchain"]}
    args["source_root"] = str(checkout)
    actual = built_sha256(run_module, args)

    # Another checkout in another place builds the same binary (-trimpath).
    moved = tmp_path / "elsewhere"
    shutil.copytree(checkout, moved)
    args.update(cache_dir=str(tmp_path / "cache2"), source_root=str(moved), sha256={arch: actual})
    result = run_module(MODULE, args)
    path = tmp_path / "cache2" / "hello" / "1.0.0" / arch / "hello"
    assert result["changed"] is True and result["source"] == "go" and result["sha256"] == actual
    assert subprocess.run([path], capture_output=True, text=True, check=True).stdout == "hello from the lakehouse\n"

    # Build tags select files: a tagged build is another binary, and its own pin.
    (checkout / "tools" / "hello" / "tagged.go").write_text(
        '//go:build lakehouse_tagged\n\npackage main\n\nfunc init() { println("tagged") }\n'
    )
    args["source"]["go"]["tags"] = ["lakehouse_tagged"]
    args.update(cache_dir=str(tmp_path / "cache-tagged"), source_root=str(checkout), sha256={arch: "0" * 64})
    tagged = built_sha256(run_module, args)
    assert tagged != actual

    args["source"]["go"]["path"] = "tools/missing"
    args["cache_dir"] = str(tmp_path / "cache3")
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, args)
    assert "tools/missing is not a Go module directory (no go.mod)" in failed.value.result["msg"]


def test_go_build_failure_shows_go_errors(run_module, go_env, tmp_path):
    args = go_entry(tmp_path / "cache", go_env["toolchain"], "amd64", "0" * 64, version="v9.9.9")
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, args)
    msg = failed.value.result["msg"]
    assert "go install example.test/hello@v9.9.9" in msg
    assert "v9.9.9" in msg.splitlines()[-1]  # the tail of go's own stderr
    assert files_under(tmp_path / "cache") == []


def test_missing_go_toolchain_is_a_clear_error(run_module, tmp_path):
    args = go_entry(tmp_path / "cache", "go1.26.8", "amd64", "0" * 64)
    args["go_binary"] = "/nonexistent/go"
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, args)
    assert "Go toolchain" in failed.value.result["msg"]
    assert "/nonexistent/go" in failed.value.result["msg"]
    assert files_under(tmp_path / "cache") == []


# --- pip builds -----------------------------------------------------------------------------------


def make_wheel(wheelhouse: Path, name: str, version: str, tag: str = "py3-none-any", scripts: bool = False) -> Path:
    """A minimal wheel of one module `name` (pip does not care that it is not from a real build)."""
    import base64
    import csv
    import io

    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n\n\ndef main():\n    print('{name} ' + VERSION)\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: lakehouse-tests\nRoot-Is-Purelib: true\nTag: {tag}\n",
    }
    if scripts:  # pip writes bin/<name> with a shebang naming the interpreter that installed it
        files[f"{info}/entry_points.txt"] = f"[console_scripts]\n{name} = {name}:main\n"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        writer.writerow([path, f"sha256={digest}", len(text.encode())])
    writer.writerow([f"{info}/RECORD", "", ""])
    wheel = wheelhouse / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in [*files.items(), (f"{info}/RECORD", record.getvalue())]:
            z.writestr(path, text)
    return wheel


def lock_line(wheel: Path, pin: str) -> str:
    return f"{pin} \\\n    --hash=sha256:{sha256(wheel.read_bytes())}\n"


@pytest.fixture
def wheelhouse(tmp_path, monkeypatch):
    """Wheels in a local directory, pip pointed at it and nothing else (PIP_NO_INDEX, no config file)."""
    house = tmp_path / "wheels"
    house.mkdir()
    for var in [v for v in os.environ if v.startswith("PIP_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(house))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    wheels = {
        "tiny": make_wheel(house, "lhtiny", "1.0", scripts=True),
        # Platform wheels: one any manylinux2014 host takes, one that needs glibc 2.38.
        "native": make_wheel(house, "lhnative", "1.0", "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"),
        "new": make_wheel(house, "lhnew", "1.0", "cp311-cp311-manylinux_2_38_x86_64"),
    }
    return wheels


def pip_entry(cache: Path, lock: Path, sha: str, arch: str = "amd64", **pip) -> dict:
    return {
        "name": "tiny",
        "version": "1.0",
        "filename": "tiny-1.0-py311.tar.gz",
        "arch": arch,
        "source": {"pip": {"requirements": lock.name, **pip}},
        "sha256": {arch: sha},
        "cache_dir": str(cache),
        "source_root": str(lock.parent),
    }


def test_pip_build_is_reproducible_and_pinned(run_module, wheelhouse, tmp_path):
    import gzip
    import tarfile

    lock = tmp_path / "lock.txt"
    lock.write_text(lock_line(wheelhouse["tiny"], "lhtiny==1.0") + lock_line(wheelhouse["native"], "lhnative==1.0"))
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, pip_entry(tmp_path / "cache1", lock, "0" * 64))
    result = failed.value.result
    actual = result["actual_sha256"]
    assert f"has sha256 {actual} but" in result["msg"] and "pin the sha256 built as sha256.amd64" in result["msg"]
    assert files_under(tmp_path / "cache1") == []  # neither the tar.gz nor the tree it was packed from

    # Another build, in another directory, packs the same bytes.
    args = pip_entry(tmp_path / "cache2", lock, actual)
    result = run_module(MODULE, args)
    path = tmp_path / "cache2" / "tiny" / "1.0" / "amd64" / "tiny-1.0-py311.tar.gz"
    assert result["changed"] is True and result["source"] == "pip" and result["sha256"] == actual
    assert files_under(tmp_path / "cache2") == [path]
    assert path.read_bytes()[4:8] == b"\0\0\0\0"  # gzip MTIME
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        record = tar.extractfile("site-packages/lhtiny-1.0.dist-info/RECORD").read().decode()
    assert names[0] == "site-packages"
    assert all(n.startswith("site-packages/") for n in names[1:])
    assert "site-packages/lhtiny/__init__.py" in names and "site-packages/lhnative/__init__.py" in names
    assert not [n for n in names if n.startswith("site-packages/bin")]
    assert "bin/" not in record and "lhtiny/__init__.py" in record
    assert not [n for n in names if "__pycache__" in n]  # --no-compile
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "root", "root")}
    assert {m.mode for m in members if m.isdir()} == {0o755} and {m.mode for m in members if m.isfile()} == {0o644}

    # Hosts run the tree with python3 -m and PYTHONPATH.
    with tarfile.open(path) as tar:
        tar.extractall(tmp_path / "host", filter="data")
    env = {"PYTHONPATH": str(tmp_path / "host" / "site-packages")}
    code = "import lhtiny; lhtiny.main()"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert run.stdout == "lhtiny 1.0\n"

    again = run_module(MODULE, args)
    assert again["changed"] is False and again["source"] == "cache"
    with gzip.open(path) as packed:
        assert packed.read(1)  # still a valid archive


def test_pip_build_takes_only_what_the_lock_hashes(run_module, wheelhouse, tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("lhtiny==1.0 \\\n    --hash=sha256:" + "1" * 64 + "\n")
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, pip_entry(tmp_path / "cache", lock, "0" * 64))
    msg = failed.value.result["msg"]
    assert "refused a wheel whose sha256 is not in" in msg and str(lock) in msg
    assert files_under(tmp_path / "cache") == []

    lock.write_text("lhtiny==1.0\n")  # no hash at all
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, pip_entry(tmp_path / "cache", lock, "0" * 64))
    assert "regenerate the lock" in failed.value.result["msg"]

    args = pip_entry(tmp_path / "cache", tmp_path / "missing.txt", "0" * 64)
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, args)
    missing = tmp_path / "missing.txt"
    assert f"the lock file {missing} of source.pip.requirements does not exist" in failed.value.result["msg"]
    assert files_under(tmp_path / "cache") == []


def test_pip_build_without_a_wheel_for_the_hosts_names_the_package(run_module, wheelhouse, tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text(lock_line(wheelhouse["tiny"], "lhtiny==1.0") + lock_line(wheelhouse["new"], "lhnew==1.0"))
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, pip_entry(tmp_path / "cache", lock, "0" * 64))
    msg = failed.value.result["msg"]
    assert "no wheel of lhnew==1.0 for CPython 3.11 on manylinux (glibc 2.36) x86_64" in msg
    assert "pin in" in msg and str(lock) in msg
    assert files_under(tmp_path / "cache") == []

    # Hosts with a newer glibc take it; arm64 hosts take none of these platform wheels.
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, pip_entry(tmp_path / "cache", lock, "0" * 64, glibc="2.39"))
    assert failed.value.result["actual_sha256"]
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, pip_entry(tmp_path / "cache", lock, "0" * 64, arch="arm64"))
    assert "no wheel of lhnew==1.0 for CPython 3.11 on manylinux (glibc 2.36) aarch64" in failed.value.result["msg"]


def test_pip_check_mode_and_mirror(run_module, wheelhouse, site, tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text(lock_line(wheelhouse["tiny"], "lhtiny==1.0"))
    result = run_module(MODULE, pip_entry(tmp_path / "cache", lock, "0" * 64), check_mode=True)
    assert result["changed"] is True and result["source"] == "pip"
    assert not (tmp_path / "cache").exists()

    # A mirror serves the packed tree: no pip, no lock needed.
    site.publish("mirror/tiny/1.0/amd64/tiny-1.0-py311.tar.gz", PAYLOAD)
    args = pip_entry(tmp_path / "cache", tmp_path / "missing.txt", sha256(PAYLOAD))
    args["mirror"] = site.url + "/mirror"
    assert run_module(MODULE, args)["source"] == "mirror"
