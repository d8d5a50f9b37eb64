"""library/lakehouse_image.py and module_utils/lakehouse_oci.py: reproducible images from local inputs.

Nothing here leaves the machine: .deb files are made in the test and served from file:// URLs, the
containerd is a throw-away one on a socket in the test's directory, the registry listens on loopback.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import CACHE, REPO, ModuleExit

MODULE = "lakehouse_image"
TOOL = b"#!/bin/sh\necho tool 1.0\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tar_gz(path: Path, members: dict[str, bytes], mode: int = 0o755) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.uname, info.mtime = len(data), mode, 1234, "builder", 1700000000
            tar.addfile(info, io.BytesIO(data))
    return path


def wheel(path: Path, members: dict[str, tuple[bytes, int]]) -> Path:
    with zipfile.ZipFile(path, "w") as whl:
        for name, (data, mode) in members.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | mode) << 16
            whl.writestr(info, data)
    return path


def make_deb(path: Path, package: str, version: str, files: dict[str, bytes]) -> Path:
    """A .deb as dpkg-deb builds it: an ar archive of debian-binary, control.tar.gz and data.tar.gz."""

    def tgz(members: dict[str, bytes]) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o755 if "/bin/" in name else 0o644
                tar.addfile(info, io.BytesIO(data))
        return out.getvalue()

    control = f"Package: {package}\nVersion: {version}\nArchitecture: amd64\nDescription: test\n".encode()
    parts = {"debian-binary": b"2.0\n", "control.tar.gz": tgz({"./control": control}), "data.tar.gz": tgz(files)}
    with open(path, "wb") as deb:
        deb.write(b"!<arch>\n")
        for name, data in parts.items():
            deb.write(f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode())
            deb.write(data + (b"\n" if len(data) % 2 else b""))
    return path


def write_lock(path: Path, debs: list[dict], packages: list[str]) -> Path:
    lock = {"lock_version": 1, "name": "test", "arch": "amd64", "packages": packages, "exclude": [], "debs": debs}
    path.write_text(json.dumps(lock))
    return path


class Archive:
    """An image archive opened for inspection: index, manifest, config and each layer's tar members."""

    def __init__(self, path: str):
        self.path = path
        with tarfile.open(path) as outer:
            self.names = outer.getnames()
            self.index = json.load(outer.extractfile("index.json"))
            blob = lambda digest: outer.extractfile("blobs/sha256/" + digest.split(":")[1]).read()  # noqa: E731
            self.manifest = json.loads(blob(self.index["manifests"][0]["digest"]))
            self.config = json.loads(blob(self.manifest["config"]["digest"]))
            self.layer_bytes = [blob(layer["digest"]) for layer in self.manifest["layers"]]
        self.layers = []
        for data in self.layer_bytes:
            with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
                self.layers.append(
                    {m.name.rstrip("/"): (m, tar.extractfile(m).read() if m.isfile() else None) for m in tar}
                )

    def member(self, path: str):
        """The topmost layer's entry for an image path (without the leading /)."""
        for layer in reversed(self.layers):
            if path in layer:
                return layer[path]
        raise KeyError(path)


@pytest.fixture
def inputs(tmp_path):
    """A tool binary, a server tarball with a versioned root and a wheel, like the artifact cache holds."""
    src = tmp_path / "artifacts"
    src.mkdir()
    tool = src / "tool"
    tool.write_bytes(TOOL)
    tool.chmod(0o755)
    server = tar_gz(
        src / "server-2.0.tar.gz",
        {"server-2.0/bin/launcher": b"#!/bin/sh\n", "server-2.0/lib/app.jar": b"jar", "extra/NOTICE": b"n"},
    )
    runtime = wheel(
        src / "rt-1-py3-none-any.whl",
        {
            "rt/runtime/bin/java": (b"\x7fELF", 0o755),
            "rt/runtime/lib/modules": (b"m", 0o644),
            "rt/__init__.py": (b"", 0o644),
        },
    )
    return {"tool": tool, "server": server, "runtime": runtime, "dir": tmp_path}


def args_for(inputs, cache: Path, **extra) -> dict:
    args = {
        "name": "svc",
        "tag": "2.0",
        "cache_dir": str(cache),
        "files": [
            {"src": str(inputs["tool"]), "dest": "/usr/local/lib/lakehouse/tool/1.0/tool", "sha256": sha256(TOOL)}
        ],
        "archives": [
            {
                "src": str(inputs["server"]),
                "dest": "/usr/local/lib/lakehouse/server/2.0/server-2.0",
                "root": "server-2.0",
            },
            {"src": str(inputs["runtime"]), "dest": "/usr/local/lib/lakehouse/rt/1/runtime", "root": "rt/runtime"},
        ],
        "links": [
            {"dest": "/usr/local/bin/tool", "src": "/usr/local/lib/lakehouse/tool/1.0/tool"},
            {"dest": "/usr/local/lib/lakehouse/srv", "src": "/usr/local/lib/lakehouse/server/2.0/server-2.0"},
        ],
        "user": {"name": "svc", "uid": 10001, "home": "/var/lib/svc"},
        "directories": [{"path": "/var/lib/svc/data"}, {"path": "/var/log/svc", "mode": "0700"}],
        "env": {"PATH": "/usr/local/bin:/usr/bin:/bin"},
        "entrypoint": ["/usr/local/bin/tool"],
        "labels": {"org.opencontainers.image.version": "2.0"},
    }
    args.update(extra)
    return args


def test_building_twice_gives_the_same_digest_byte_for_byte(run_module, inputs):
    first = run_module(MODULE, args_for(inputs, inputs["dir"] / "a"))
    second = run_module(MODULE, args_for(inputs, inputs["dir"] / "b"))
    assert first["changed"] and first["built"] and second["built"]
    assert first["digest"] == second["digest"]
    assert first["digest"].startswith("sha256:") and len(first["digest"]) == 71
    assert Path(first["archive"]).read_bytes() == Path(second["archive"]).read_bytes()
    assert first["reference"] == f"lakehouse/svc:2.0@{first['digest']}"


def test_unchanged_inputs_reuse_the_archive_and_the_record_holds_the_digest(run_module, inputs):
    cache = inputs["dir"] / "cache"
    built = run_module(MODULE, args_for(inputs, cache))
    mtime = os.stat(built["archive"]).st_mtime_ns
    again = run_module(MODULE, args_for(inputs, cache))
    assert not again["changed"] and not again["built"]
    assert again["digest"] == built["digest"] and os.stat(again["archive"]).st_mtime_ns == mtime
    assert again["diff"]["before"] == again["diff"]["after"]
    record = json.loads((cache / "svc" / "2.0.json").read_text())
    assert record["digest"] == built["digest"] and record["reference"] == built["reference"]
    assert record["inputs"]["files"][0]["sha256"] == sha256(TOOL)
    assert record["inputs"]["archives"][0]["sha256"] == sha256(inputs["server"].read_bytes())


def test_a_changed_input_gives_another_digest(run_module, inputs):
    args = args_for(inputs, inputs["dir"] / "cache")
    del args["files"][0]["sha256"]
    before = run_module(MODULE, args)["digest"]
    inputs["tool"].write_bytes(TOOL + b"# 1.1\n")
    changed = run_module(MODULE, args)
    assert changed["changed"] and changed["built"] and changed["digest"] != before
    other_env = run_module(MODULE, dict(args, env={"PATH": "/bin"}))
    assert other_env["digest"] not in (before, changed["digest"])


def test_layer_entries_are_sorted_with_fixed_mtime_and_numeric_owners(run_module, inputs):
    result = run_module(MODULE, args_for(inputs, inputs["dir"] / "cache"))
    image = Archive(result["archive"])
    with tarfile.open(result["archive"]) as outer:
        assert [m.name for m in outer] == sorted(m.name for m in outer)
        assert all(m.mtime == 0 and m.uid == 0 and not m.uname for m in outer)
    for data in image.layer_bytes:
        assert data[:4] == b"\x1f\x8b\x08\x00" and data[4:8] == b"\0\0\0\0"  # no name, mtime 0
    (layer,) = image.layers
    names = list(layer)
    assert names == sorted(names)
    for member, _ in layer.values():
        assert member.mtime == 0 and member.uname == "" and member.gname == ""
        assert not {"atime", "ctime", "mtime", "uname", "gname"} & set(member.pax_headers)
    assert image.index["manifests"][0]["annotations"] == {
        "io.containerd.image.name": "docker.io/lakehouse/svc:2.0",
        "org.opencontainers.image.ref.name": "2.0",
    }
    assert (
        json.loads((Path(result["archive"]).parent / "2.0.json").read_text())["image"] == "docker.io/lakehouse/svc:2.0"
    )


def test_the_user_and_directories_and_read_only_files(run_module, inputs):
    result = run_module(MODULE, args_for(inputs, inputs["dir"] / "cache"))
    image = Archive(result["archive"])
    assert image.config["config"]["User"] == "10001:10001"
    assert image.config["config"]["WorkingDir"] == "/var/lib/svc"
    assert image.config["config"]["Env"] == ["PATH=/usr/local/bin:/usr/bin:/bin"]
    assert image.config["config"]["Entrypoint"] == ["/usr/local/bin/tool"]
    assert "Cmd" not in image.config["config"]
    assert image.config["created"] == "1970-01-01T00:00:00Z"
    assert "svc:x:10001:10001:svc:/var/lib/svc:/usr/sbin/nologin" in image.member("etc/passwd")[1].decode().splitlines()
    assert "svc:x:10001:" in image.member("etc/group")[1].decode().splitlines()
    home, data, logs = (image.member(p)[0] for p in ("var/lib/svc", "var/lib/svc/data", "var/log/svc"))
    assert (home.uid, home.gid, home.mode) == (10001, 10001, 0o750)
    assert (data.uid, data.gid, data.mode) == (10001, 10001, 0o750)
    assert (logs.uid, logs.mode) == (10001, 0o700)
    assert image.member("tmp")[0].mode == 0o1777
    writable = {"var/lib/svc", "var/lib/svc/data", "var/log/svc", "tmp"}
    for name, (member, _) in image.layers[0].items():
        if name not in writable:
            assert member.uid == 0 and member.gid == 0, name
            assert member.issym() or not member.mode & 0o022, name
    tool = image.member("usr/local/lib/lakehouse/tool/1.0/tool")
    assert tool[1] == TOOL and tool[0].mode == 0o755
    assert image.member("usr/local/bin/tool")[0].linkname == "/usr/local/lib/lakehouse/tool/1.0/tool"


def test_an_archive_root_is_taken(run_module, inputs):
    result = run_module(MODULE, args_for(inputs, inputs["dir"] / "cache"))
    layer = Archive(result["archive"]).layers[0]
    server = "usr/local/lib/lakehouse/server/2.0/server-2.0"
    assert layer[f"{server}/bin/launcher"][0].mode == 0o755
    assert layer[f"{server}/lib/app.jar"][1] == b"jar"
    # The tarball's owner (1234, "builder") and mode are not kept: root-owned, read-only.
    assert (layer[f"{server}/lib/app.jar"][0].uid, layer[f"{server}/lib/app.jar"][0].mode) == (0, 0o755)
    assert not [n for n in layer if "extra" in n or "NOTICE" in n]
    runtime = "usr/local/lib/lakehouse/rt/1/runtime"
    assert layer[f"{runtime}/bin/java"][0].mode == 0o755 and layer[f"{runtime}/lib/modules"][0].mode == 0o644
    assert f"{runtime}/__init__.py" not in layer and "usr/local/lib/lakehouse/rt/1/rt" not in layer

    inside_a_link = args_for(
        inputs, inputs["dir"] / "cache", links=[{"dest": "/usr/local/lib/lakehouse/server", "src": "x"}]
    )
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, inside_a_link)
    assert (
        "/usr/local/lib/lakehouse/server is a symlink, yet /usr/local/lib/lakehouse/server/2.0"
        in failed.value.result["msg"]
    )

    missing = args_for(
        inputs, inputs["dir"] / "cache", archives=[{"src": str(inputs["server"]), "dest": "/x", "root": "nope"}]
    )
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, missing)
    assert "has nothing under 'nope' to take" in failed.value.result["msg"]


def test_hard_links_stay_hard_links_with_the_data_first(run_module, inputs):
    tarball = inputs["dir"] / "linked.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        data = tarfile.TarInfo("pkg/plugin-b/shared.jar")
        data.size, data.mode = 3, 0o644
        tar.addfile(data, io.BytesIO(b"jar"))
        for name in ("pkg/plugin-a/shared.jar", "pkg/plugin-c/shared.jar"):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.LNKTYPE, "pkg/plugin-b/shared.jar"
            tar.addfile(link)
    args = args_for(
        inputs, inputs["dir"] / "cache", archives=[{"src": str(tarball), "dest": "/opt/pkg", "root": "pkg"}]
    )
    layer = Archive(run_module(MODULE, args)["archive"]).layers[0]
    carrier, *links = (layer[f"opt/pkg/plugin-{x}/shared.jar"][0] for x in "abc")
    assert carrier.isfile() and carrier.size == 3 and layer["opt/pkg/plugin-a/shared.jar"][1] == b"jar"
    assert all(link.islnk() and link.linkname == "opt/pkg/plugin-a/shared.jar" for link in links)


def test_an_input_that_does_not_match_its_pin_is_refused(run_module, inputs):
    args = args_for(inputs, inputs["dir"] / "cache")
    args["files"][0]["sha256"] = "0" * 64
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, args)
    assert "only verified artifacts go into an image" in failed.value.result["msg"]
    assert failed.value.result["actual_sha256"] == sha256(TOOL)
    assert not (inputs["dir"] / "cache" / "svc").exists()


def test_a_pinned_digest_is_checked(run_module, inputs):
    digest = run_module(MODULE, args_for(inputs, inputs["dir"] / "a"))["digest"]
    pinned = run_module(MODULE, args_for(inputs, inputs["dir"] / "b", digest=digest))
    assert pinned["digest"] == digest
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, args_for(inputs, inputs["dir"] / "c", digest="sha256:" + "0" * 64))
    assert f"the build gives {digest} but sha256:{'0' * 64} is pinned" in failed.value.result["msg"]
    assert not (inputs["dir"] / "c" / "svc" / "2.0.tar").exists()


def test_check_mode_builds_nothing(run_module, inputs):
    cache = inputs["dir"] / "cache"
    result = run_module(MODULE, args_for(inputs, cache), check_mode=True)
    assert result["changed"] and result["built"] and result["digest"] is None
    assert not cache.exists()
    run_module(MODULE, args_for(inputs, cache))
    again = run_module(MODULE, args_for(inputs, cache), check_mode=True)
    assert not again["changed"]


@pytest.fixture
def debian(tmp_path):
    """A lock of two local .debs (served as file:// URLs) and an empty .deb cache."""
    pool = tmp_path / "pool"
    pool.mkdir()
    debs = []
    for package, files in {
        "lakehouse-test-base": {"./bin/dash": b"\x7fELF dash", "./usr/share/doc/lakehouse-test-base/copyright": b"c"},
        "lakehouse-test-certs": {
            "./usr/share/ca-certificates/mozilla/B.crt": b"-----B-----\n",
            "./usr/share/ca-certificates/mozilla/A.crt": b"-----A-----",
            "./usr/share/man/man1/x.1.gz": b"man",
        },
    }.items():
        deb = make_deb(pool / f"{package}_1.0_amd64.deb", package, "1.0", files)
        debs.append(
            {
                "name": package,
                "version": "1.0",
                "arch": "amd64",
                "sha256": sha256(deb.read_bytes()),
                "url": deb.as_uri(),
            }
        )
    lock = write_lock(tmp_path / "test.json", debs, ["lakehouse-test-base", "lakehouse-test-certs"])
    return {"lock": lock, "debs": debs, "cache": tmp_path / "debs"}


def test_the_debian_base_comes_from_the_locked_packages(run_module, inputs, debian):
    options = {"lock": str(debian["lock"]), "cache_dir": str(debian["cache"])}
    result = run_module(MODULE, args_for(inputs, inputs["dir"] / "cache", debian=options))
    image = Archive(result["archive"])
    base, service = image.layers
    assert base["bin/dash"][1] == b"\x7fELF dash" and base["bin/sh"][0].linkname == "dash"
    assert base["etc/ssl/certs/ca-certificates.crt"][1] == b"-----A-----\n-----B-----\n"
    assert "usr/share/doc/lakehouse-test-base/copyright" in base and "usr/share/man/man1/x.1.gz" not in base
    assert b"Package: lakehouse-test-certs" in base["var/lib/dpkg/status.d/lakehouse-test-certs"][1]
    # The service layer leaves the base's directories (owner, mode) alone.
    assert "usr" not in service and "bin" not in service
    assert sorted(p.name for p in debian["cache"].iterdir()) == [f"{d['name']}_1.0_amd64.deb" for d in debian["debs"]]
    assert [inp.split()[0] for inp in result["inputs"]["debian"]["debs"]] == [
        "lakehouse-test-base=1.0",
        "lakehouse-test-certs=1.0",
    ]
    # A second image on the same lock reuses the cached base layer.
    other = run_module(MODULE, args_for(inputs, inputs["dir"] / "cache", name="other", debian=options))
    assert other["layers"][0]["digest"] == result["layers"][0]["digest"]


def test_a_wrong_sha256_in_the_lock_fails_clearly(run_module, inputs, debian):
    debs = [dict(debian["debs"][0], sha256="1" * 64), debian["debs"][1]]
    lock = write_lock(debian["lock"], debs, ["lakehouse-test-base", "lakehouse-test-certs"])
    with pytest.raises(ModuleExit) as failed:
        run_module(
            MODULE,
            args_for(inputs, inputs["dir"] / "cache", debian={"lock": str(lock), "cache_dir": str(debian["cache"])}),
        )
    msg = failed.value.result["msg"]
    assert f"lakehouse-test-base 1.0: the downloaded .deb has sha256 {debian['debs'][0]['sha256']}" in msg
    assert f"the lock pins {'1' * 64}" in msg and "Nothing was cached" in msg
    assert not [p for p in debian["cache"].iterdir() if p.name.startswith("lakehouse-test-base")]


def test_a_stale_lock_is_refused(run_module, inputs, debian):
    options = {"lock": str(debian["lock"]), "packages": ["lakehouse-test-base"], "cache_dir": str(debian["cache"])}
    with pytest.raises(ModuleExit) as failed:
        run_module(MODULE, args_for(inputs, inputs["dir"] / "cache", debian=options))
    assert "regenerate it with scripts/image_lock.py" in failed.value.result["msg"]


@pytest.mark.parametrize("name", sorted(yaml.safe_load((REPO / "images" / "bases.yml").read_text())["sets"]))
def test_the_committed_locks_match_their_sets(name):
    lock = json.loads((REPO / "images" / "locks" / f"{name}.json").read_text())
    assert lock["lock_version"] == 1 and lock["arch"] == "amd64"
    assert {d["name"] for d in lock["debs"]} >= set(lock["packages"])
    assert not {d["name"] for d in lock["debs"]} & set(lock["exclude"])
    assert all(len(d["sha256"]) == 64 and d["version"] for d in lock["debs"])
    check = subprocess.run(
        [str(REPO / ".venv/bin/python"), str(REPO / "scripts/image_lock.py"), "--check", name],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def test_image_from_directory_for_a_single_layer_image(tmp_path):
    from ansible.module_utils.lakehouse_oci import image_from_directory

    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "pause").write_bytes(b"\x7fELF")
    (root / "bin" / "pause").chmod(0o755)
    (root / "bin" / "sleep").symlink_to("pause")
    first = image_from_directory(str(root), str(tmp_path / "a.tar"), "lakehouse/pause", "1", entrypoint=["/bin/pause"])
    second = image_from_directory(str(root), str(tmp_path / "b.tar"), "lakehouse/pause", "1", entrypoint=["/bin/pause"])
    assert first == second and (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    layer = Archive(str(tmp_path / "a.tar")).layers[0]
    assert layer["bin/sleep"][0].linkname == "pause" and layer["bin/pause"][0].mode == 0o755


# --- delivery: a throw-away containerd, a registry on loopback --------------------------------------------------


def wait_for(check, what: str, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} did not come up within {timeout} s")


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    """A containerd of its own (root, state, socket in a temporary directory), without the CRI plugin:
    ctr needs only the content store, images and the overlayfs snapshotter."""
    if not shutil.which("containerd") or not shutil.which("ctr") or os.geteuid() != 0:
        pytest.fail("needs root, containerd and ctr (docker.io, which scripts/setup.sh installs)")
    top = tmp_path_factory.mktemp("containerd")
    socket_path = top / "containerd.sock"
    (top / "config.toml").write_text(
        f'version = 2\nroot = "{top}/root"\nstate = "{top}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{socket_path}"\n'
        f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{top}/opt"\n'
    )
    log = open(top / "containerd.log", "wb")  # noqa: SIM115 (open for the daemon's life)
    daemon = subprocess.Popen(["containerd", "--config", str(top / "config.toml")], stdout=log, stderr=log)
    try:
        wait_for(socket_path.exists, "containerd")
        yield {"address": str(socket_path), "namespace": "k8s.io"}
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        log.close()
        # Snapshots are overlay mounts only while containers run; none ran, so the tree just goes.
        shutil.rmtree(top, ignore_errors=True)


def test_imported_into_containerd(run_module, inputs, containerd):
    args = args_for(inputs, inputs["dir"] / "cache", state="imported", containerd=containerd)
    first = run_module(MODULE, args)
    assert first["imported"] and first["changed"]
    listed = subprocess.run(
        ["ctr", "--address", containerd["address"], "-n", "k8s.io", "images", "ls"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert any(line.split()[:1] == [first["image"]] and first["digest"] in line for line in listed.splitlines())
    again = run_module(MODULE, args)
    assert not again["imported"] and not again["changed"]
    assert run_module(MODULE, args, check_mode=True)["changed"] is False


def registry_binary() -> str | None:
    """Debian's docker-registry (distribution 2.8): on PATH, or unpacked into the cache by scripts/setup.sh."""
    extracted = CACHE / "tools" / "docker-registry" / "usr" / "bin" / "docker-registry"
    return shutil.which("docker-registry") or (str(extracted) if extracted.is_file() else None)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    binary = registry_binary()
    if not binary:
        pytest.fail("no docker-registry binary: scripts/setup.sh unpacks Debian's into the cache")
    top = tmp_path_factory.mktemp("registry")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (top / "config.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {top}/data\n"
        f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: warn\n"
    )
    log = open(top / "registry.log", "wb")  # noqa: SIM115 (open for the daemon's life)
    daemon = subprocess.Popen([binary, "serve", str(top / "config.yml")], stdout=log, stderr=log)

    def answers() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(answers, "the registry")
        yield f"http://127.0.0.1:{port}/lakehouse"
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        log.close()


def test_pushed_to_a_registry(run_module, inputs, registry):
    import urllib.request

    args = args_for(inputs, inputs["dir"] / "cache", state="pushed", registry={"url": registry})
    assert run_module(MODULE, args, check_mode=True)["pushed"]
    first = run_module(MODULE, args)
    assert first["pushed"] and first["pushed_reference"].endswith(f"/lakehouse/svc:2.0@{first['digest']}")
    request = urllib.request.Request(
        registry.replace("/lakehouse", "/v2/lakehouse/svc/manifests/2.0"),
        method="HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Docker-Content-Digest"] == first["digest"]
    again = run_module(MODULE, args)
    assert not again["pushed"] and not again["changed"]
