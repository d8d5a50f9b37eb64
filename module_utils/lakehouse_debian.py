"""A reproducible Debian base: a pinned package set, resolved once into a lock file, then extracted
from the exact .deb files the lock names (never a debootstrap, whose output varies run to run).

- `resolve()` walks the dependency closure of a package list with apt-cache, skipping an exclude
  list (maintainer-script machinery, perl, init systems: what a container never runs), and returns
  the lock: name, version, architecture, size, sha256 and URL of each .deb.
- `fetch()` downloads exactly those versions (`apt-get download name=version`, else the lock's URL)
  into the controller cache and verifies each sha256.
- `add_packages()` puts the packages' files into a layer, reading each .deb's data.tar in Python, and
  does the little a container needs of their maintainer scripts (the /bin/sh link, the CA bundle).

Modules import this as ``ansible.module_utils.lakehouse_debian``; scripts/image_lock.py by path.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request

from ansible.module_utils.lakehouse_files import CHUNK, sha256_file

LOCK_VERSION = 1
APT_OPTIONS = ["-o", "APT::Sandbox::User=root"]  # root downloads into the cache without the _apt sandbox
DEPENDS_FLAGS = [
    "--recurse",
    "--no-recommends",
    "--no-suggests",
    "--no-conflicts",
    "--no-breaks",
    "--no-replaces",
    "--no-enhances",
]
# Paths a container does not read, as dpkg's path-exclude would drop them; copyright files stay.
PATH_EXCLUDE = (
    "/usr/share/bash-completion",
    "/usr/share/bug",
    "/usr/share/doc",
    "/usr/share/info",
    "/usr/share/lintian",
    "/usr/share/locale",
    "/usr/share/man",
)
PATH_KEEP = re.compile(r"^/usr/share/doc/[^/]+/copyright$")
CA_DIR = "/usr/share/ca-certificates"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class DebianError(Exception):
    """A lock cannot be resolved, a package cannot be fetched or does not match its lock."""


def run(cmd: list[str], cwd: str | None = None) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DebianError(f"`{' '.join(cmd)}` failed (rc={result.returncode}): {result.stderr.strip()[-2000:]}")
    return result.stdout


# --- resolving a lock ----------------------------------------------------------------------------

DEP_LINE = re.compile(r"^ (\||\s)(?:Pre)?Depends: (.+)$")


def parse_depends(output: str) -> dict[str, list[list[tuple[str, list[str]]]]]:
    """`apt-cache depends` output -> {package: [group, ...]}, a group being the alternatives of one
    dependency (`a | b`), each alternative (target, providers). A virtual target is spelled <name>."""
    graph: dict[str, list] = {}
    current = None
    group_open = False  # the previous alternative ended with "|": this one joins its group
    for line in output.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            current = graph.setdefault(line.strip(), [])
            group_open = False
            continue
        match = DEP_LINE.match(line)
        if match and current is not None:
            alternative = (match.group(2).strip(), [])
            if group_open:
                current[-1].append(alternative)
            else:
                current.append([alternative])
            group_open = match.group(1) == "|"
        elif line.startswith("    ") and current:
            current[-1][-1][1].append(line.strip())
    return graph


def closure(graph: dict, roots: list[str], exclude: set[str]) -> list[str]:
    """The packages to install: roots plus, per dependency group, the first alternative that is
    already chosen, else the first real, not excluded one (a virtual one by its first provider).
    A group whose every alternative is excluded is dropped: that is what the exclude list is for."""
    chosen: list[str] = []
    seen: set[str] = set()
    queue = list(roots)
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        if name not in graph:
            raise DebianError(f"package {name} is unknown to apt-cache (apt-get update? a typo?)")
        seen.add(name)
        chosen.append(name)
        for group in graph[name]:
            candidates = []
            for target, providers in group:
                if target.startswith("<"):
                    candidates += providers
                else:
                    candidates.append(target)
            usable = [c for c in candidates if c not in exclude]
            pick = next((c for c in usable if c in seen), usable[0] if usable else None)
            if pick is not None:
                queue.append(pick)
    return sorted(chosen)


def parse_stanzas(text: str) -> list[dict[str, str]]:
    stanzas, fields, key = [], {}, None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                stanzas.append(fields)
            fields, key = {}, None
        elif line[0] in " \t" and key:
            fields[key] += "\n" + line
        else:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    if fields:
        stanzas.append(fields)
    return stanzas


def resolve(name: str, packages: list[str], exclude: list[str], arch: str = "amd64") -> dict:
    """Resolve a base set into its lock, from the controller's apt lists (Debian 12, `apt-get update`)."""
    graph = parse_depends(run(["apt-cache", "depends", *DEPENDS_FLAGS, *packages]))
    names = closure(graph, list(packages), set(exclude))
    shown = {s["Package"]: s for s in parse_stanzas(run(["apt-cache", "show", "--no-all-versions", *names]))}
    uris = {}
    # --print-uris lines: 'URL' FILENAME SIZE SHA256:HEX, for packages apt would download.
    for line in run(
        ["apt-get", "download", "--print-uris", *APT_OPTIONS, *names], cwd=tempfile.gettempdir()
    ).splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].startswith("SHA256:"):
            uris[parts[3][7:]] = parts[0].strip("'")
    debs = []
    for package in names:
        info = shown[package]
        if info.get("Architecture") not in (arch, "all"):
            raise DebianError(f"{package} is {info.get('Architecture')}, not {arch} or all")
        debs.append(
            {
                "name": package,
                "version": info["Version"],
                "arch": info["Architecture"],
                "size": int(info["Size"]),
                "sha256": info["SHA256"],
                "url": uris.get(info["SHA256"], ""),
            }
        )
    return {
        "lock_version": LOCK_VERSION,
        "name": name,
        "arch": arch,
        "packages": sorted(packages),
        "exclude": sorted(exclude),
        "debs": debs,
    }


def dump_lock(lock: dict) -> str:
    """One .deb per line: a regenerated lock's diff shows exactly which versions moved."""
    head = {k: v for k, v in lock.items() if k != "debs"}
    body = ",\n".join("    " + json.dumps(d, sort_keys=True) for d in lock["debs"])
    text = json.dumps(head, indent=2, sort_keys=True)[:-2]
    return text + ',\n  "debs": [\n' + body + "\n  ]\n}\n"


def load_lock(path: str) -> dict:
    try:
        with open(path) as f:
            lock = json.load(f)
    except (OSError, ValueError) as e:
        raise DebianError(f"cannot read the lock {path}: {e}") from e
    if lock.get("lock_version") != LOCK_VERSION or not isinstance(lock.get("debs"), list):
        raise DebianError(f"{path} is not a version {LOCK_VERSION} lock; regenerate it with scripts/image_lock.py")
    for deb in lock["debs"]:
        missing = {"name", "version", "arch", "sha256"} - set(deb)
        if missing:
            raise DebianError(f"{path}: entry {deb.get('name', deb)} lacks {', '.join(sorted(missing))}")
        if not SHA256_RE.match(str(deb["sha256"])):
            raise DebianError(f"{path}: {deb['name']} has no 64-digit hex sha256: {deb['sha256']!r}")
    return lock


# --- fetching the locked packages ----------------------------------------------------------------


def deb_filename(deb: dict) -> str:
    """The file name apt gives a .deb (an epoch's colon is %3a)."""
    return f"{deb['name']}_{deb['version'].replace(':', '%3a')}_{deb['arch']}.deb"


def fetch(debs: list[dict], cache_dir: str) -> list[str]:
    """Paths of the locked .debs in `cache_dir`, downloading the missing ones; each is verified
    against the lock (a cached file too), and a mismatch fails without caching anything."""
    os.makedirs(cache_dir, exist_ok=True)
    paths, missing = [], []
    for deb in debs:
        path = os.path.join(cache_dir, deb_filename(deb))
        paths.append(path)
        if os.path.isfile(path) and sha256_file(path) == deb["sha256"]:
            continue
        missing.append(deb)
    if missing:
        work = tempfile.mkdtemp(dir=cache_dir, prefix=".download-")
        try:
            _download(missing, work)
            for deb in missing:
                got = os.path.join(work, deb_filename(deb))
                actual = sha256_file(got)
                if actual != deb["sha256"]:
                    raise DebianError(
                        f"{deb['name']} {deb['version']}: the downloaded .deb has sha256 {actual} but the lock pins "
                        f"{deb['sha256']}; the archive serves another file than the one locked, or the lock was "
                        "edited. Nothing was cached; regenerate the lock (scripts/image_lock.py) if the change is "
                        "wanted."
                    )
                os.replace(got, os.path.join(cache_dir, deb_filename(deb)))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return paths


def _download(debs: list[dict], work: str):
    apt = shutil.which("apt-get")
    left = list(debs)
    if apt:
        result = subprocess.run(
            [apt, "download", *APT_OPTIONS, *[f"{d['name']}={d['version']}" for d in debs]],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        left = [d for d in debs if not os.path.isfile(os.path.join(work, deb_filename(d)))]
        apt_error = result.stderr.strip()[-1000:]
    else:
        apt_error = "apt-get is not installed"
    for deb in left:
        # apt no longer offers a version once a point release replaced it: the lock's URL (a
        # mirror or snapshot) may still serve it.
        if not deb.get("url"):
            raise DebianError(f"cannot download {deb['name']}={deb['version']}: {apt_error}")
        try:
            with (
                urllib.request.urlopen(deb["url"], timeout=60) as response,  # noqa: S310 (http(s) from the lock)
                open(os.path.join(work, deb_filename(deb)), "wb") as out,
            ):
                shutil.copyfileobj(response, out, CHUNK)
        except OSError as e:
            raise DebianError(f"cannot download {deb['name']}={deb['version']} ({apt_error}; {deb['url']}: {e})") from e


# --- extracting into a layer ---------------------------------------------------------------------


def ar_members(path: str) -> dict[str, bytes]:
    """The members of a .deb (an ar archive): debian-binary, control.tar.*, data.tar.*."""
    members = {}
    with open(path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise DebianError(f"{path} is not a .deb (no ar header)")
        while header := f.read(60):
            if len(header) < 60:
                break
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            members[name] = f.read(size)
            if size % 2:
                f.read(1)
    return members


def _member(members: dict[str, bytes], prefix: str, path: str) -> bytes:
    for name, data in members.items():
        if name.startswith(prefix):
            if name.endswith((".zst", ".bz2")):
                # Python's stdlib reads gzip and xz only; Debian 12 packages use xz.
                flag = "--fsys-tarfile" if prefix == "data.tar" else "--ctrl-tarfile"
                return subprocess.run(["dpkg-deb", flag, path], capture_output=True, check=True).stdout
            return data
    raise DebianError(f"{path} has no {prefix}")


def excluded(path: str) -> bool:
    if PATH_KEEP.match(path):
        return False
    return any(path == prefix or path.startswith(prefix + "/") for prefix in PATH_EXCLUDE)


def add_packages(layer, deb_paths: list[str]):
    """Put the files of the .debs into `layer` (a lakehouse_oci.Layer) as dpkg would unpack them,
    owners and modes as packaged, plus /var/lib/dpkg/status.d/<package> so image scanners see
    what is installed."""
    for path in sorted(deb_paths, key=os.path.basename):
        members = ar_members(path)
        control_tar = layer.open_tar(fileobj=io.BytesIO(_member(members, "control.tar", path)))
        control = control_tar.extractfile(control_tar.getmember("./control")).read().decode()
        fields = parse_stanzas(control)[0]
        # The control file as distroless images keep it: scanners read status.d/ like dpkg's status.
        layer.add_bytes(f"/var/lib/dpkg/status.d/{fields['Package']}", control.encode())
        data_tar = layer.open_tar(fileobj=io.BytesIO(_member(members, "data.tar", path)))
        for name, entry in layer.tar_members(data_tar):
            entry.path = "/" + (name[2:] if name.startswith("./") else name)
            if entry.path in ("/", "/.") or excluded(entry.path):
                continue
            layer.add(entry)
    _maintainer_results(layer)


def _maintainer_results(layer):
    """What the maintainer scripts of a few packages would have made, derived from their files."""
    entries = layer.entries
    if "/bin/dash" in entries and "/bin/sh" not in entries:
        layer.add_symlink("/bin/sh", "dash")  # dash's postinst diverts /bin/sh to it
    certs = sorted(p for p in entries if p.startswith(CA_DIR + "/") and p.endswith(".crt"))
    if certs:
        # update-ca-certificates (ca-certificates' postinst): every packaged CA, in name order.
        bundle = b""
        for cert in certs:
            with entries[cert].opener() as f:
                data = f.read()
            bundle += data if data.endswith(b"\n") else data + b"\n"
        layer.add_bytes(CA_BUNDLE, bundle)
