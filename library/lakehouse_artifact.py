#!/usr/bin/python
"""Make one lakehouse artifact present and verified in the controller cache."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lakehouse_artifact
short_description: Fetch or build one artifact into the controller cache and verify its sha256
description:
  - Makes one entry of the C(lakehouse_artifacts) table (roles/lakehouse/defaults/main/artifacts.yml) present in the
    controller cache at C({cache_dir}/{name}/{version}/{arch}/{filename}), verified against its pinned sha256.
  - A cached file is hashed again whenever its size, modification time or inode changed since it was last
    verified (the digest is recorded beside it, C(.{filename}.sha256)). A file that does not match is never
    used; it is removed and fetched or built again.
  - Python programs (O(source.pip)) are built as a tar.gz of the wheels of a hash-pinned lock file, packed
    reproducibly, so their sha256 is pinned like a Go build's.
  - Nothing is fetched or built for an architecture that has no pinned checksum, so nothing reaches a host
    unverified.
  - Downloads and builds land in a temporary file beside the target and are renamed into place only after
    their checksum matched, so the cache never holds a partial or unverified file.
  - Runs on the controller; call it with C(delegate_to=localhost), usually with C(run_once).
author: Lakehouse bootstrap maintainers
options:
  name:
    description: Artifact name, the key in the artifact table; first directory of the cache layout.
    type: str
    required: true
  version:
    description:
      - Artifact version. For C(source.go) a Go module version (tag or pseudo-version).
      - For C(source.pip) it only names the artifact; the lock file decides what is in it.
    type: str
    required: true
  filename:
    description: File name of the artifact in the cache (and on the mirror). A plain name, no directories.
    type: str
    required: true
  arch:
    description: Target architecture, as Go and Debian spell it.
    type: str
    required: true
    choices: [amd64, arm64]
  sha256:
    description:
      - Pinned sha256 (hex) per architecture.
      - The module fails before fetching anything when the entry has no checksum for O(arch).
    type: dict
    required: true
    suboptions:
      amd64:
        description: sha256 of the amd64 artifact.
        type: str
      arm64:
        description: sha256 of the arm64 artifact.
        type: str
  source:
    description: Where the artifact comes from. Exactly one of O(source.url), O(source.go) and O(source.pip).
    type: dict
    required: true
    suboptions:
      url:
        description:
          - Download URL (C(http), C(https) or C(file)).
          - C({version}), C({arch}) and C({filename}) are substituted.
        type: str
      go:
        description:
          - Build from source with C(go install <module>[/<package>]@<version>), with C(CGO_ENABLED=0),
            C(GOOS=linux), C(GOARCH=<arch>), C(-trimpath) and C(-buildvcs=false) and the pinned toolchain,
            so the binary is reproducible and its sha256 can be pinned.
          - Or, for the project's own programs, C(go build) of the module in a local directory
            (O(source.go.path)); its C(version) then only names the artifact.
          - The caller's Go environment (C(GOPROXY), C(GOSUMDB), C(GONOSUMDB), C(GOFLAGS), C(GOMODCACHE),
            C(GOCACHE), ...) is passed through; the module adds its own flags to C(GOFLAGS).
        type: dict
        suboptions:
          module:
            description:
              - Go module path, for example C(github.com/minio/minio). Exactly one of this and O(source.go.path).
            type: str
          path:
            description:
              - A local Go module directory to build (the main package at its root), relative to
                O(source_root) unless absolute.
            type: str
          toolchain:
            description: Go toolchain to build with, set as C(GOTOOLCHAIN), for example C(go1.26.8).
            type: str
            required: true
          package:
            description:
              - Main package when it is not the module root, relative to the module (C(cmd/tool)) or as a
                full import path.
            type: str
          ldflags:
            description:
              - Passed as C(-ldflags). C({version}), C({arch}) and C({filename}) are substituted.
            type: str
          tags:
            description: Build tags, passed as C(-tags), for example Prometheus's service discovery selection.
            type: list
            elements: str
            default: []
      pip:
        description:
          - "Build a Python program's tree from a hash-pinned lock file with C(pip install --no-deps
            --require-hashes --only-binary=:all: --no-compile --target <dir> -r <lock>) for CPython
            O(source.pip.python) on manylinux (glibc O(source.pip.glibc) and older) for O(arch), run by the
            controller's own interpreter (C(sys.executable -m pip))."
          - The artifact is a tar.gz holding that tree under one directory, C(site-packages/) (so
            C(unpack.root) is C(site-packages)), without C(bin/) (its scripts name the build interpreter;
            hosts run C(python3 -m <module>) with C(PYTHONPATH) set to the tree), and without the rows of
            those scripts in the packages' C(RECORD) files.
          - Packed reproducibly (names sorted, mtime 0, owner root 0/0, modes 0755 or 0644, gzip mtime 0),
            so the same lock gives the same sha256.
          - The caller's pip environment (C(PIP_INDEX_URL), C(PIP_EXTRA_INDEX_URL), C(PIP_FIND_LINKS),
            C(PIP_CERT), ...) is passed through, so a mirror of the index can serve the wheels; the hashes
            of the lock still decide what is accepted.
        type: dict
        suboptions:
          requirements:
            description:
              - The lock file, relative to O(source_root) unless absolute. Every package, transitive ones
                included, one C(name==version --hash=sha256:...) requirement each, as
                C(pip install --require-hashes) wants them.
            type: str
            required: true
          python:
            description: The CPython version the hosts run (C(major.minor)), for wheel selection.
            type: str
            default: "3.11"
          glibc:
            description: The hosts' glibc version (C(major.minor)); manylinux wheels up to it are accepted.
            type: str
            default: "2.36"
  mirror:
    description:
      - Base URL of an offline mirror. When set it replaces every source with
        C({mirror}/{name}/{version}/{arch}/{filename}); the same checksums apply.
    type: str
    default: ""
  cache_dir:
    description: Root of the controller artifact cache.
    type: path
    required: true
  source_root:
    description:
      - The directory a relative O(source.go.path) or O(source.pip.requirements) is in (the project's checkout).
    type: path
    default: .
  go_binary:
    description: Go command used for builds; looked up in C(PATH), then in C(/usr/local/go/bin).
    type: str
    default: go
notes:
  - Supports check mode (reports whether it would fetch or build, changes nothing) and diff mode
    (before and after C(path) and C(sha256), C(absent) when there is no file).
  - Cross-compiles (O(arch) other than the controller's) cannot use C(GOBIN); the module therefore builds
    with a throw-away C(GOPATH) and picks the binary from its C(bin) directory (C(bin/linux_<arch>) for a
    cross-compile), while the module and build caches stay shared.
"""

EXAMPLES = r"""
- name: Cache a downloaded artifact
  lakehouse_artifact:
    name: trino-cli
    version: "476"
    filename: trino
    arch: amd64
    source:
      url: https://repo.example.org/trino-cli/{version}/trino-cli-{version}-executable.jar
    sha256:
      amd64: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    cache_dir: "{{ lakehouse_artifact_cache }}"

- name: Build every artifact of the table for the hosts' architecture
  lakehouse_artifact:
    name: "{{ item.key }}"
    version: "{{ item.value.version }}"
    filename: "{{ item.value.filename }}"
    arch: amd64
    source: "{{ item.value.source }}"
    sha256: "{{ item.value.sha256 }}"
    mirror: "{{ lakehouse_artifact_mirror }}"
    cache_dir: "{{ lakehouse_artifact_cache }}"
  loop: "{{ lakehouse_artifacts | dict2items }}"
  delegate_to: localhost
  run_once: true

- name: Cache Airflow, its providers and every dependency as one verified tree
  lakehouse_artifact:
    name: airflow
    version: 3.3.2
    filename: airflow-3.3.2-py311.tar.gz
    arch: amd64
    source:
      pip:
        requirements: roles/orchestrator/files/locks/airflow.txt
    sha256:
      amd64: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    cache_dir: "{{ lakehouse_artifact_cache }}"
    source_root: "{{ playbook_dir }}/.."
"""

RETURN = r"""
path:
  description: Path of the verified artifact in the controller cache (the would-be path in check mode).
  returned: success
  type: str
  sample: /root/.cache/lakehouse/artifacts/minio/v0.0.0-20260212201848-7aac2a2c5b7c/amd64/minio
sha256:
  description: sha256 of the artifact; equal to the pinned checksum for O(arch).
  returned: success
  type: str
  sample: 1ce61ef8ebff2ff722c34ba8c213a64022c23facd5bd9e709a8414a22df924b4
source:
  description: Where the file came from on this run (in check mode, where it would come from).
  returned: success
  type: str
  choices: [cache, url, mirror, go, pip]
  sample: cache
expected_sha256:
  description: The pinned checksum, when a download or build did not match it.
  returned: failure on a checksum mismatch
  type: str
actual_sha256:
  description: The checksum of what was downloaded or built, when it did not match the pinned one.
  returned: failure on a checksum mismatch
  type: str
"""

import fcntl
import gzip
import hashlib
import os
import re
import shutil
import sys
import tarfile
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.lakehouse_files import CHUNK, remove_recorded, sha256_file, sha256_recorded
from ansible.module_utils.urls import fetch_url

ARCHES = ("amd64", "arm64")
GO_DIRS = ["/usr/local/go/bin"]
GO_FLAGS = ("-trimpath", "-buildvcs=false")
# Artifacts are mostly programs; one mode whatever the source keeps cache entries identical.
MODE = 0o755
TIMEOUT = 60
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# source.pip: the tree's one top directory in the tar.gz (the table's unpack.root), and the machine
# names of manylinux wheel tags.
PIP_TOP = "site-packages"
PIP_MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
# The legacy manylinux tags and the glibc they stand for (PEP 600); manylinux1 and 2010 were x86 only.
PIP_LEGACY = (
    ("manylinux2014", 17, ("x86_64", "aarch64")),
    ("manylinux2010", 12, ("x86_64",)),
    ("manylinux1", 5, ("x86_64",)),
)
# A RECORD row of a script pip wrote to bin/ (relative to the tree: ../../bin/<name>).
PIP_BIN_ROW = re.compile(r"^(?:\.\./)+bin/")
# What pip says when the lock's hashes refuse a wheel, or the lock lacks a pin or a hash.
PIP_HASHES = re.compile(r"DO NOT MATCH THE HASHES|--require-hashes mode")
# What pip says when no wheel of a requirement fits the platform (or none is on the index).
PIP_NO_WHEEL = re.compile(r"(?:No matching distribution found for|satisfies the requirement) (\S+)")


def cache_path(cache_dir: str, name: str, version: str, arch: str, filename: str) -> str:
    """The cache layout tests/conftest.py's `artifact` fixture relies on."""
    return os.path.join(cache_dir, name, version, arch, filename)


def substitute(template: str, **values: str) -> str:
    # Plain replace, not str.format: URLs and ldflags may contain other braces.
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def mirror_url(mirror: str, name: str, version: str, arch: str, filename: str) -> str:
    return f"{mirror.rstrip('/')}/{name}/{version}/{arch}/{filename}"


def go_target(module_path: str, package: str | None) -> str:
    """Import path to install: the module root, or `package` relative to it (a full import path also works)."""
    if not package:
        return module_path
    package = package.strip("/")
    if package == module_path or package.startswith(module_path + "/"):
        return package
    return f"{module_path}/{package}"


def merge_goflags(caller: str, ours=GO_FLAGS) -> str:
    """The caller's GOFLAGS (e.g. -modcacherw, -mod=mod) followed by ours, without repeats."""
    flags = caller.split()
    return " ".join(flags + [flag for flag in ours if flag not in flags])


def tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def pip_platforms(arch: str, glibc: str) -> list[str]:
    """pip's --platform values for manylinux wheels that run with `glibc` on `arch`, newest first.

    pip does not widen a --platform manylinux_2_X to older glibc versions (as it does on a real host),
    so every one is named, down to manylinux1's 2.5, with the legacy aliases.
    """
    machine = PIP_MACHINES[arch]
    major, minor = (int(part) for part in glibc.split("."))
    tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 4, -1)]
    tags += [f"{tag}_{machine}" for tag, since, machines in PIP_LEGACY if minor >= since and machine in machines]
    return tags


def strip_bin_records(tree: str) -> None:
    """Drop the rows of the removed bin/ scripts from each installed package's RECORD: their hashes are
    of the shebang pip wrote, which names the interpreter that ran it."""
    for entry in sorted(os.listdir(tree)):
        record = os.path.join(tree, entry, "RECORD")
        if not entry.endswith(".dist-info") or not os.path.isfile(record):
            continue
        with open(record, newline="") as f:
            rows = f.read().splitlines(keepends=True)
        kept = [row for row in rows if not PIP_BIN_ROW.match(row)]
        if kept != rows:
            with open(record, "w", newline="") as f:
                f.writelines(kept)


def pack_tree(tree: str, top: str, out) -> None:
    """Write `tree` as a tar.gz with every member under `top`/, reproducibly: names sorted, mtime 0,
    owner root (0/0), modes 0755 (directories, executables) or 0644, and a gzip header without name
    or time."""

    def info(path: str, name: str) -> tarfile.TarInfo:
        st = os.lstat(path)
        member = tarfile.TarInfo(name)
        member.mtime, member.uid, member.gid, member.uname, member.gname = 0, 0, 0, "root", "root"
        if os.path.islink(path):
            member.type, member.linkname, member.mode = tarfile.SYMTYPE, os.readlink(path), 0o777
        elif os.path.isdir(path):
            member.type, member.mode = tarfile.DIRTYPE, 0o755
        else:
            member.size, member.mode = st.st_size, 0o755 if st.st_mode & 0o111 else 0o644
        return member

    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.addfile(info(tree, top))
        for root, dirs, files in os.walk(tree):
            dirs.sort()
            rel = os.path.relpath(root, tree)
            prefix = top if rel == "." else f"{top}/{rel}"
            # os.walk lists a link to a directory among `dirs` but does not walk into it.
            for name in sorted(dirs + files):
                path = os.path.join(root, name)
                member = info(path, f"{prefix}/{name}")
                if member.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(member, f)
                else:
                    tar.addfile(member)


def built_binary(bindir: str) -> str | None:
    """The one file `go install` left under GOPATH/bin (bin/<exe>, or bin/linux_<arch>/<exe> when cross)."""
    found = [os.path.join(top, f) for top, _, files in os.walk(bindir) for f in files]
    return found[0] if len(found) == 1 else None


class Artifact:
    def __init__(self, module: AnsibleModule):
        self.module = module
        p = module.params
        self.name, self.version, self.arch, self.filename = p["name"], p["version"], p["arch"], p["filename"]
        self.label = f"{self.name} {self.version} ({self.arch})"
        # What {placeholders} in source.url and source.go.ldflags stand for.
        self.values = {"version": self.version, "arch": self.arch, "filename": self.filename}
        self.path = cache_path(p["cache_dir"], self.name, self.version, self.arch, self.filename)
        self.expected = None

    def fail(self, msg: str, **kwargs):
        self.module.fail_json(msg=f"artifact {self.label}: {msg}", path=self.path, **kwargs)

    def pinned_sha256(self) -> str:
        value = (self.module.params["sha256"] or {}).get(self.arch)
        if not value:
            self.fail(
                f"no sha256 pinned for arch {self.arch}; nothing reaches a host unverified, so it is not "
                f"fetched or built. Pin sha256.{self.arch} in the artifact table first."
            )
        value = value.strip().lower()
        if not SHA256_RE.match(value):
            self.fail(f"sha256.{self.arch} is not a 64-digit hex sha256: {value!r}")
        return value

    def mismatch(self, actual: str, what: str, hint: str):
        self.fail(
            f"{what} has sha256 {actual} but {self.expected} is pinned; {hint}. Nothing was cached.",
            expected_sha256=self.expected,
            actual_sha256=actual,
        )

    def install(self, src: str):
        """Move a verified file into place; the rename is atomic because src is in the same directory."""
        os.chmod(src, MODE)
        os.replace(src, self.path)

    def install_verified(self, path: str, what: str, hint: str):
        """Install a build (beside the cache file) if it has the pinned checksum; fail otherwise."""
        actual = sha256_file(path)
        if actual != self.expected:
            self.mismatch(actual, what, hint)
        self.install(path)

    def download(self, url: str):
        # decompress=False: the pinned checksum is of the bytes as published, even if a server
        # labels a .tar.gz with Content-Encoding: gzip.
        response, info = fetch_url(self.module, url, timeout=TIMEOUT, decompress=False)
        status = info.get("status")
        # file:// responses carry no status; HTTP errors come back as the error object.
        if response is None or (status is not None and not 200 <= status < 300):
            self.fail(f"cannot download {url}: {info.get('msg')}", url=url, status=status)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path), prefix=f".{self.filename}.", suffix=".part")
        try:
            digest = hashlib.sha256()
            try:
                with os.fdopen(fd, "wb") as out:
                    while chunk := response.read(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            except OSError as e:
                self.fail(f"download from {url} was interrupted: {e}", url=url)
            actual = digest.hexdigest()
            if actual != self.expected:
                self.mismatch(
                    actual, f"the download from {url}", "the server sent something other than what was pinned"
                )
            self.install(tmp)
        finally:
            response.close()
            if os.path.exists(tmp):
                os.unlink(tmp)

    def go_command(self) -> str:
        go = self.module.params["go_binary"]
        found = self.module.get_bin_path(go) or self.module.get_bin_path(go, opt_dirs=GO_DIRS)
        if not found:
            self.fail(
                f"the Go toolchain is needed to build it, but {go!r} is not in PATH nor in "
                f"{', '.join(GO_DIRS)}; install Go (scripts/setup.sh does) or set go_binary"
            )
        return found

    def build(self, go: dict):
        go_cmd = self.go_command()
        local = go.get("path") and os.path.join(self.module.params["source_root"], go["path"])
        if local and not os.path.isfile(os.path.join(local, "go.mod")):
            self.fail(f"{local} is not a Go module directory (no go.mod)")
        # What is built: the local directory, or the module's package at the pinned version.
        what = local or f"{go_target(go['module'], go.get('package'))}@{self.version}"
        cmd = [go_cmd, "build" if local else "install"]
        if go.get("ldflags"):
            cmd.append("-ldflags=" + substitute(go["ldflags"], **self.values))
        if go.get("tags"):
            cmd.append("-tags=" + ",".join(go["tags"]))
        shown = "go " + " ".join([*cmd[1:], what])

        # go install refuses GOBIN for cross-compiles (and linux/<arch> is one on any other controller),
        # so GOBIN is cleared and the binary is taken from a private GOPATH's bin directory instead.
        # That GOPATH lives beside the cache file so the final rename stays on one filesystem.
        gopath = tempfile.mkdtemp(dir=os.path.dirname(self.path), prefix=f".{self.filename}.build-")
        try:
            # The private GOPATH would move the module cache too; keep the caller's.
            rc, out, err = self.module.run_command(
                [go_cmd, "env", "GOMODCACHE"], cwd=gopath, environ_update={"GOTOOLCHAIN": "local"}
            )
            if rc != 0 or not out.strip():
                self.fail(f"{go_cmd} does not work: {tail(err or out)}")
            env = {
                "GOTOOLCHAIN": go["toolchain"],
                "CGO_ENABLED": "0",
                "GOOS": "linux",
                "GOARCH": self.arch,
                "GOFLAGS": merge_goflags(os.environ.get("GOFLAGS", "")),
                "GOPATH": gopath,
                "GOMODCACHE": out.strip(),
                "GOBIN": "",
            }
            # A local module is built where its go.mod is, into the bin directory `go install` would use.
            cmd += ["-o", os.path.join(gopath, "bin", self.filename), "."] if local else [what]
            rc, out, err = self.module.run_command(cmd, cwd=local or gopath, environ_update=env)
            if rc != 0:
                self.fail(
                    f"`{shown}` failed for linux/{self.arch} (rc={rc}, GOTOOLCHAIN={go['toolchain']}):\n"
                    f"{tail(err or out)}",
                    rc=rc,
                    stderr=err,
                )
            binary = built_binary(os.path.join(gopath, "bin"))
            if binary is None:
                self.fail(f"`{shown}` succeeded but left no single binary in {gopath}/bin")
            self.install_verified(
                binary,
                f"the build of {what}",
                f"builds with a pinned toolchain are reproducible, so does the toolchain differ from "
                f"{go['toolchain']} (GOTOOLCHAIN), or do the ldflags or the pin itself?",
            )
        finally:
            shutil.rmtree(gopath, ignore_errors=True)

    def pip_build(self, pip: dict):
        lock = os.path.join(self.module.params["source_root"], pip["requirements"])
        if not os.path.isfile(lock):
            self.fail(f"the lock file {lock} of source.pip.requirements does not exist")
        python, glibc = pip["python"], pip["glibc"]
        if not re.match(r"^3\.\d+$", python) or not re.match(r"^2\.\d+$", glibc):
            self.fail(f"source.pip wants python as 3.N and glibc as 2.N, not {python!r} and {glibc!r}")
        platforms = pip_platforms(self.arch, glibc)
        target = f"CPython {python} on manylinux (glibc {glibc}) {PIP_MACHINES[self.arch]}"
        # The tree and the tar.gz are built beside the cache file, so the final rename stays on one filesystem.
        workdir = tempfile.mkdtemp(dir=os.path.dirname(self.path), prefix=f".{self.filename}.build-")
        tree = os.path.join(workdir, PIP_TOP)
        abi = "cp" + python.replace(".", "")
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--require-hashes", "--only-binary=:all:",
               "--no-compile", "--disable-pip-version-check", "--no-input", "--target", tree,
               "--python-version", python, "--implementation", "cp", "--abi", abi]  # fmt: skip
        for platform in platforms:
            cmd += ["--platform", platform]
        cmd += ["-r", lock]
        shown = f"pip install --require-hashes --target ... -r {lock}"
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path), prefix=f".{self.filename}.", suffix=".part")
        try:
            # The caller's PIP_* environment (an index mirror, its CA) is inherited; pip runs as root
            # on many controllers, which it would warn about on every build.
            env = {"PIP_ROOT_USER_ACTION": "ignore"}
            rc, out, err = self.module.run_command(cmd, cwd=workdir, environ_update=env)
            if rc != 0:
                self.pip_failed(rc, out, err, lock, target, shown, sys.executable)
            shutil.rmtree(os.path.join(tree, "bin"), ignore_errors=True)
            strip_bin_records(tree)
            with os.fdopen(fd, "wb") as out_file:
                fd = None
                pack_tree(tree, PIP_TOP, out_file)
            self.install_verified(
                tmp,
                f"the build of {lock} for {target}",
                f"the same lock packs to the same tar.gz, so if the lock was changed on purpose, pin the sha256 "
                f"built as sha256.{self.arch} (else does the controller's pip, {sys.executable} -m pip, write "
                f"other metadata than the one that built the pin?)",
            )
        finally:
            if fd is not None:
                os.close(fd)
            if os.path.exists(tmp):
                os.unlink(tmp)
            shutil.rmtree(workdir, ignore_errors=True)

    def pip_failed(self, rc: int, out: str, err: str, lock: str, target: str, shown: str, python: str):
        text = f"{out}\n{err}"
        if "No module named pip" in text:
            self.fail(f"building it needs pip in the controller's Python, {python}; install pip there", rc=rc)
        missing = PIP_NO_WHEEL.search(text)
        if missing:
            self.fail(
                f"pip found no wheel of {missing.group(1)} for {target} (wheels only, no builds from source); "
                f"pin in {lock} a version of it that publishes one (or a pure-Python wheel), then pin the "
                f"sha256 built:\n{tail(err or out)}",
                rc=rc,
                stderr=err,
            )
        if PIP_HASHES.search(text):
            self.fail(
                f"`{shown}` refused a wheel whose sha256 is not in {lock}: the lock is stale or incomplete "
                f"(every dependency needs its name==version and --hash), or the index served another file; "
                f"regenerate the lock:\n{tail(err or out)}",
                rc=rc,
                stderr=err,
            )
        self.fail(f"`{shown}` failed for {target} (rc={rc}):\n{tail(err or out)}", rc=rc, stderr=err)

    def run(self):
        module, p = self.module, self.module.params
        for field in ("name", "version", "filename"):
            if p[field] in (".", "..") or "/" in p[field]:
                self.fail(f"{field} must be a plain name, not {p[field]!r}: it is a directory of the cache layout")
        self.expected = self.pinned_sha256()

        before = sha256_recorded(self.path, record=not module.check_mode) if os.path.isfile(self.path) else None
        result = {"changed": False, "path": self.path, "sha256": self.expected, "source": "cache"}
        if module._diff:
            result["diff"] = {
                "before": {"path": self.path, "sha256": before or "absent"},
                "after": {"path": self.path, "sha256": self.expected},
            }
        if before == self.expected:
            module.exit_json(**result)

        source = p["source"]
        if p["mirror"]:
            result["source"], url = "mirror", mirror_url(p["mirror"], self.name, self.version, self.arch, self.filename)
        elif source.get("url"):
            result["source"], url = "url", substitute(source["url"], **self.values)
        else:
            result["source"], url = "go" if source.get("go") else "pip", None
        result["changed"] = True
        if module.check_mode:
            module.exit_json(**result)

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        # One fetch or build per artifact at a time (a background fill of the cache and a converge
        # may ask for the same one): a caller that waited finds it verified and changes nothing.
        with open(os.path.join(os.path.dirname(self.path), f".{self.filename}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if os.path.isfile(self.path) and sha256_recorded(self.path) == self.expected:
                result.update(changed=False, source="cache")
                module.exit_json(**result)
            if os.path.isfile(self.path):
                # Failed verification: remove it now so nothing downstream can pick it up if the refill fails.
                remove_recorded(self.path)
            if url is None and source.get("go"):
                self.build(source["go"])
            elif url is None:
                self.pip_build(source["pip"])
            else:
                self.download(url)
        module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "version": {"type": "str", "required": True},
            "filename": {"type": "str", "required": True},
            "arch": {"type": "str", "required": True, "choices": list(ARCHES)},
            "sha256": {
                "type": "dict",
                "required": True,
                "options": {arch: {"type": "str"} for arch in ARCHES},
            },
            "source": {
                "type": "dict",
                "required": True,
                "options": {
                    "url": {"type": "str"},
                    "go": {
                        "type": "dict",
                        "options": {
                            "module": {"type": "str"},
                            "path": {"type": "str"},
                            "toolchain": {"type": "str", "required": True},
                            "package": {"type": "str"},
                            "ldflags": {"type": "str"},
                            "tags": {"type": "list", "elements": "str", "default": []},
                        },
                        "mutually_exclusive": [("module", "path")],
                        "required_one_of": [("module", "path")],
                    },
                    "pip": {
                        "type": "dict",
                        "options": {
                            "requirements": {"type": "str", "required": True},
                            "python": {"type": "str", "default": "3.11"},
                            "glibc": {"type": "str", "default": "2.36"},
                        },
                    },
                },
                "mutually_exclusive": [("url", "go", "pip")],
                "required_one_of": [("url", "go", "pip")],
            },
            "mirror": {"type": "str", "default": ""},
            "cache_dir": {"type": "path", "required": True},
            "source_root": {"type": "path", "default": "."},
            "go_binary": {"type": "str", "default": "go"},
        },
        supports_check_mode=True,
    )
    Artifact(module).run()


if __name__ == "__main__":
    main()
