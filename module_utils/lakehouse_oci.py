"""A deterministic OCI image writer: layer contents in, an OCI image layout tarball out.

The same inputs give the same bytes, so the same manifest digest, on every machine with the same
zlib: entries are sorted, every mtime is fixed, owners are numeric (no user or group names), no
atime/ctime PAX records are written, gzip carries no name and mtime 0, and every JSON document is
canonical (sorted keys, no spaces).

A layer is a set of entries (files, directories, symlinks) collected from files on disk, bytes,
directory trees and archives (tar, tar.gz, tar.xz, zip, wheel). `write_image` turns built layers
into an OCI image layout archive (the format `ctr images import` and `skopeo copy oci-archive:` read).
`image_from_directory` is the short way for a one-layer image of a directory.

Modules import this as ``ansible.module_utils.lakehouse_oci``; plain scripts may import it by path.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field

from ansible.module_utils.lakehouse_files import CHUNK

# Every entry's mtime, and the image's `created`: the reproducible-builds convention's
# SOURCE_DATE_EPOCH, fixed rather than read from the environment so a build never depends on it.
MTIME = 0
CREATED = "1970-01-01T00:00:00Z"
GZIP_LEVEL = 6

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ANNOTATION_REF = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD = "io.containerd.image.name"


class ImageError(Exception):
    """A layer or image cannot be built from the given inputs."""


def canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def image_path(path: str) -> str:
    """An absolute, normalized image path ("/usr/bin/x"); refuses anything that climbs out of /."""
    parts = []
    for part in path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise ImageError(f"path {path!r} leaves the image root")
        parts.append(part)
    return "/" + "/".join(parts)


def parents(path: str) -> list[str]:
    """The parent directories of an image path, outermost first ("/a/b/c" -> ["/a", "/a/b"])."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def normalize_reference(name: str) -> str:
    """The fully qualified name that containerd's CRI looks images up by, as Docker normalizes it:
    "lakehouse/minio:1" -> "docker.io/lakehouse/minio:1", "busybox" -> "docker.io/library/busybox"."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if rest else f"docker.io/library/{name}"


@dataclass
class Entry:
    """One layer entry. `kind` is file, dir or symlink; a file's bytes come from `open()`."""

    path: str
    kind: str = "file"
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    target: str = ""  # symlink target
    opener: object = None  # () -> binary file object, for files
    # Files with one link_key share their data (hard links): written once, the others link to it.
    link_key: str = ""

    def tarinfo(self) -> tarfile.TarInfo:
        info = tarfile.TarInfo(self.path.lstrip("/"))
        info.mode = self.mode & 0o7777
        info.uid, info.gid = self.uid, self.gid
        info.uname = info.gname = ""
        info.mtime = MTIME
        if self.kind == "dir":
            info.type = tarfile.DIRTYPE
        elif self.kind == "symlink":
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, self.target, 0o777
        else:
            info.type, info.size = tarfile.REGTYPE, self.size
        return info


def normal_mode(mode: int, is_dir: bool = False) -> int:
    """Root-owned and read-only: 0755 for directories and executables, 0644 for the rest."""
    return 0o755 if is_dir or mode & 0o111 else 0o644


class _Hashing:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, out):
        self.out, self.sha256, self.size = out, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self):
        self.out.flush()


@dataclass
class Blob:
    """A built layer: its blob file, the digest of the blob and of its uncompressed tar (diff_id)."""

    path: str
    digest: str
    diff_id: str
    size: int
    media_type: str
    dirs: list[str] = field(default_factory=list)  # directories it holds, for the layers above it
    comment: str = ""

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("digest", "diff_id", "size", "media_type", "dirs", "comment")}

    @classmethod
    def from_dict(cls, path: str, data: dict) -> Blob:
        return cls(path=path, **data)


class Layer(contextlib.ExitStack):
    """The entries of one layer. Later additions to a path replace earlier ones.

    Use as a context manager: archives opened for their members stay open until it exits.
    """

    def __init__(self, comment: str = "", tmpdir: str | None = None):
        super().__init__()
        self.entries: dict[str, Entry] = {}
        self.comment = comment
        self.tmpdir = tmpdir

    def add(self, entry: Entry) -> Entry:
        entry.path = image_path(entry.path)
        if entry.path == "/":
            return entry
        self.entries[entry.path] = entry
        return entry

    def add_dir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
        return self.add(Entry(path, "dir", mode, uid, gid))

    def add_symlink(self, path: str, target: str) -> Entry:
        return self.add(Entry(path, "symlink", target=target))

    def add_bytes(self, path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Entry:
        return self.add(Entry(path, "file", mode, uid, gid, len(data), opener=lambda: _BytesReader(data)))

    def add_file(self, path: str, src: str, mode: int | None = None, uid: int = 0, gid: int = 0) -> Entry:
        """A file from disk; its mode is normalized unless given. Symlinks are followed."""
        st = os.stat(src)
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{src} is not a regular file")
        mode = normal_mode(st.st_mode) if mode is None else mode
        key = f"inode:{st.st_dev}:{st.st_ino}" if st.st_nlink > 1 else ""
        return self.add(Entry(path, "file", mode, uid, gid, st.st_size, opener=lambda: open(src, "rb"), link_key=key))

    def add_tree(self, dest: str, src: str, keep_modes: bool = False, uid: int = 0, gid: int = 0):
        """A directory tree from disk at `dest`: files, directories and symlinks (kept as links)."""
        dest = image_path(dest)
        self.add_dir(dest, uid=uid, gid=gid)
        for top, dirs, files in os.walk(src):
            dirs.sort()
            rel = os.path.relpath(top, src)
            base = dest if rel == "." else f"{dest}/{rel}"
            for name in dirs + sorted(files):
                full, path = os.path.join(top, name), f"{base}/{name}"
                st = os.lstat(full)
                mode = stat.S_IMODE(st.st_mode) if keep_modes else normal_mode(st.st_mode, stat.S_ISDIR(st.st_mode))
                if stat.S_ISLNK(st.st_mode):
                    self.add_symlink(path, os.readlink(full))
                elif stat.S_ISDIR(st.st_mode):
                    self.add_dir(path, mode, uid, gid)
                elif stat.S_ISREG(st.st_mode):
                    self.add_file(path, full, mode, uid, gid)
                else:
                    raise ImageError(f"{full}: only files, directories and symlinks go into an image")

    def add_archive(self, dest: str, src: str, root: str = "", normalize: bool = True):
        """The members of an archive under `root` (a directory inside it, "" for all) at `dest`.

        normalize: root-owned, read-only modes (0755/0644) instead of the archive's owners and modes.
        """
        dest, root = image_path(dest), root.strip("/")
        self.add_dir(dest)
        taken = 0
        for name, entry in self._members(src):
            rel = name.strip("/")
            if rel.startswith("./"):
                rel = rel[2:]
            if root:
                if rel != root and not rel.startswith(root + "/"):
                    continue
                rel = rel[len(root) + 1 :]
            if not rel or rel == ".":
                continue
            entry.path = f"{dest}/{rel}"
            if normalize:
                entry.uid = entry.gid = 0
                entry.mode = normal_mode(entry.mode, entry.kind == "dir")
            self.add(entry)
            taken += 1
        if not taken:
            raise ImageError(f"{os.path.basename(src)} has nothing under {root or '/'!r} to take")

    def _members(self, src: str):
        with open(src, "rb") as f:
            is_zip = f.read(4) == b"PK\x03\x04"
        if is_zip:
            yield from self._zip_members(src)
        else:
            yield from self.tar_members(self.enter_context(self.open_tar(src)))

    def open_tar(self, src: str | None = None, fileobj=None) -> tarfile.TarFile:
        """A seekable tarfile: a compressed tar is decompressed once into a temporary file, so members
        can be read in sorted order without re-reading the stream."""
        # Files opened here stay open until the layer is written: the ExitStack closes them.
        raw = fileobj or self.enter_context(open(src, "rb"))  # noqa: SIM115
        magic = raw.read(6)
        raw.seek(0)
        if magic[:2] == b"\x1f\x8b":
            stream = self.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        elif magic == b"\xfd7zXZ\x00":
            stream = self.enter_context(lzma.LZMAFile(raw))  # noqa: SIM115
        else:
            return tarfile.open(fileobj=raw, mode="r:")
        plain = self.enter_context(tempfile.TemporaryFile(dir=self.tmpdir))  # noqa: SIM115
        shutil.copyfileobj(stream, plain, CHUNK)
        plain.seek(0)
        return tarfile.open(fileobj=plain, mode="r:")

    @staticmethod
    def tar_members(archive: tarfile.TarFile):
        members = archive.getmembers()
        by_name = {m.name.rstrip("/"): m for m in members}
        for member in members:
            if member.isdir():
                yield member.name, Entry("", "dir", member.mode, member.uid, member.gid)
            elif member.issym():
                yield member.name, Entry("", "symlink", target=member.linkname)
            elif member.isfile() or member.islnk():
                # Hard links stay hard links (Trino's tarball is 5,700 of them: copies would
                # quadruple the layer), regrouped at build time so the data comes first.
                data = by_name.get(member.linkname.rstrip("/")) if member.islnk() else member
                if data is None or not data.isfile():
                    raise ImageError(f"{member.name}: hard link to a missing file {member.linkname}")
                yield (
                    member.name,
                    Entry(
                        "",
                        "file",
                        member.mode,
                        member.uid,
                        member.gid,
                        data.size,
                        opener=lambda m=data: archive.extractfile(m),
                        link_key=f"tar:{id(archive)}:{data.name}",
                    ),
                )
            else:
                raise ImageError(f"{member.name}: device or fifo members do not go into an image")

    def _zip_members(self, src: str):
        archive = self.enter_context(zipfile.ZipFile(src))
        for info in archive.infolist():
            unix = info.external_attr >> 16
            if info.is_dir():
                yield info.filename, Entry("", "dir", stat.S_IMODE(unix) or 0o755)
            elif stat.S_ISLNK(unix):
                yield info.filename, Entry("", "symlink", target=archive.read(info).decode())
            else:
                yield (
                    info.filename,
                    Entry(
                        "",
                        "file",
                        stat.S_IMODE(unix) or 0o644,
                        size=info.file_size,
                        opener=lambda i=info: archive.open(i),
                    ),
                )

    def paths(self) -> list[str]:
        return sorted(self.entries)

    def build(self, blob_dir: str, compress: bool = True, lower_dirs: list[str] = ()) -> Blob:
        """Write the layer blob into `blob_dir` (named by its digest) and return it.

        Missing parent directories are written as root-owned 0755, except those a lower layer
        holds: a directory entry here would replace the lower one's owner and mode. Of files that
        share their data, the first in sorted order carries it and the others are hard links to it,
        so an extractor always meets the data before a link to it.
        """
        entries = dict(self.entries)
        lower = set(lower_dirs)
        for path in list(entries):
            for parent in parents(path):
                if parent in entries and entries[parent].kind != "dir":
                    raise ImageError(f"{parent} is a {entries[parent].kind}, yet {path} is to go inside it")
                if parent not in entries and parent not in lower:
                    entries[parent] = Entry(parent, "dir", 0o755)
        carrier: dict[str, str] = {}
        for path in sorted(entries):
            if entries[path].kind == "file" and entries[path].link_key:
                carrier.setdefault(entries[path].link_key, path)
        os.makedirs(blob_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=blob_dir, prefix=".layer-")
        try:
            with os.fdopen(fd, "wb") as out:
                compressed = _Hashing(out)
                # No file name and mtime 0 in the gzip header: it would otherwise differ per build.
                gz = gzip.GzipFile(filename="", fileobj=compressed, mode="wb", mtime=0, compresslevel=GZIP_LEVEL)
                plain = _Hashing(gz) if compress else compressed
                with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    for path in sorted(entries):
                        entry = entries[path]
                        info = entry.tarinfo()
                        first = carrier.get(entry.link_key, path) if entry.kind == "file" else path
                        if first != path:
                            info.type, info.linkname, info.size = tarfile.LNKTYPE, first.lstrip("/"), 0
                            tar.addfile(info)
                        elif entry.kind == "file":
                            with entry.opener() as data:
                                tar.addfile(info, _Exact(data, entry.size, path))
                        else:
                            tar.addfile(info)
                if compress:
                    gz.close()
            digest = "sha256:" + compressed.sha256.hexdigest()
            final = os.path.join(blob_dir, digest.split(":")[1])
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a blob from the user sharing the cache
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return Blob(
            path=final,
            digest=digest,
            diff_id="sha256:" + plain.sha256.hexdigest(),
            size=compressed.size,
            media_type=MEDIA_LAYER_GZIP if compress else MEDIA_LAYER,
            dirs=sorted(p for p, e in entries.items() if e.kind == "dir"),
            comment=self.comment,
        )


class _BytesReader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        chunk, self.pos = self.data[self.pos : end], min(end, len(self.data))
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Exact:
    """Reads exactly `size` bytes or fails: a file that changed since it was listed must not
    produce a silently truncated layer."""

    def __init__(self, f, size: int, path: str):
        self.f, self.left, self.path = f, size, path

    def read(self, n: int = -1) -> bytes:
        chunk = self.f.read(self.left if n < 0 else min(n, self.left))
        self.left -= len(chunk)
        if not chunk and self.left > 0:
            raise ImageError(f"{self.path} is shorter than when it was listed")
        return chunk


def image_config(
    blobs: list[Blob],
    arch: str = "amd64",
    user: str = "",
    env: dict | None = None,
    workdir: str = "",
    entrypoint: list | None = None,
    cmd: list | None = None,
    labels: dict | None = None,
) -> dict:
    """The OCI image configuration; empty fields are left out."""
    config = {
        "User": user,
        "Env": [f"{k}={v}" for k, v in sorted((env or {}).items())],
        "WorkingDir": workdir,
        "Entrypoint": list(entrypoint or []),
        "Cmd": list(cmd or []),
        "Labels": dict(labels or {}),
    }
    return {
        "architecture": arch,
        "os": "linux",
        "created": CREATED,
        "config": {k: v for k, v in config.items() if v},
        "rootfs": {"type": "layers", "diff_ids": [b.diff_id for b in blobs]},
        "history": [{"created": CREATED, "created_by": b.comment or "lakehouse_oci"} for b in blobs],
    }


def _descriptor(media_type: str, data: bytes) -> dict:
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}


def write_image(path: str, blobs: list[Blob], config: dict, name: str, tag: str) -> dict:
    """Write the OCI image layout tarball of `blobs` and `config` to `path` (atomically).

    name: repository ("lakehouse/minio"); the index names the image `normalize_reference(name:tag)`
    for containerd and `tag` as its OCI ref name. Returns digest (the manifest's), config_digest,
    manifest, index (the documents as written) and size of the archive.
    """
    config_bytes = canonical_json(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": _descriptor(MEDIA_CONFIG, config_bytes),
        "layers": [{"mediaType": b.media_type, "digest": b.digest, "size": b.size} for b in blobs],
    }
    manifest_bytes = canonical_json(manifest)
    descriptor = _descriptor(MEDIA_MANIFEST, manifest_bytes)
    descriptor["annotations"] = {ANNOTATION_CONTAINERD: normalize_reference(f"{name}:{tag}"), ANNOTATION_REF: tag}
    descriptor["platform"] = {"architecture": config["architecture"], "os": config["os"]}
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [descriptor]}

    members = {
        "blobs": None,
        "blobs/sha256": None,
        "index.json": canonical_json(index),
        "oci-layout": canonical_json({"imageLayoutVersion": "1.0.0"}),
        "blobs/sha256/" + manifest["config"]["digest"][7:]: config_bytes,
        "blobs/sha256/" + descriptor["digest"][7:]: manifest_bytes,
    }
    for blob in blobs:
        members["blobs/sha256/" + blob.digest[7:]] = blob

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".image-")
    try:
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for member in sorted(members):
                content = members[member]
                entry = Entry(member, "dir" if content is None else "file", 0o755 if content is None else 0o644)
                if content is None:
                    tar.addfile(entry.tarinfo())
                elif isinstance(content, Blob):
                    entry.size = os.path.getsize(content.path)
                    with open(content.path, "rb") as data:
                        tar.addfile(entry.tarinfo(), _Exact(data, entry.size, content.path))
                else:
                    entry.size = len(content)
                    tar.addfile(entry.tarinfo(), _BytesReader(content))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {
        "digest": descriptor["digest"],
        "config_digest": manifest["config"]["digest"],
        "manifest": manifest,
        "index": index,
        "size": os.path.getsize(path),
    }


def read_archive(path: str) -> dict:
    """The index, manifest and config of an archive written by write_image (for checks and pushes)."""
    with tarfile.open(path, mode="r:") as tar:
        index = json.load(tar.extractfile("index.json"))
        digest = index["manifests"][0]["digest"]
        manifest = json.load(tar.extractfile("blobs/sha256/" + digest[7:]))
        config = json.load(tar.extractfile("blobs/sha256/" + manifest["config"]["digest"][7:]))
    return {"index": index, "digest": digest, "manifest": manifest, "config": config}


def image_from_directory(
    directory: str,
    path: str,
    name: str,
    tag: str = "latest",
    arch: str = "amd64",
    keep_modes: bool = True,
    **config,
) -> str:
    """A one-layer image of `directory` (its contents become /) written to `path`; returns the
    manifest digest. `config` takes image_config's user, env, workdir, entrypoint, cmd, labels.

        digest = image_from_directory("rootfs", "pause.tar", "lakehouse/pause", "1", entrypoint=["/pause"])
    """
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(path))) as work, Layer() as layer:
        layer.add_tree("/", directory, keep_modes=keep_modes)
        blob = layer.build(work)
        return write_image(path, [blob], image_config([blob], arch=arch, **config), name, tag)["digest"]
