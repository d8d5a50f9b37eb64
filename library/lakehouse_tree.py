#!/usr/bin/python
"""Directories, files and links of one service on a host, compared and written in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lakehouse_tree
short_description: Compare and write a service's directories, files and links on a host in one call
description:
  - Makes every directory, file and symbolic link it is given match what it is given (content, owner,
    group, mode, target), in that order. A converge thereby costs one round trip per service instead of
    one per file; library/lakehouse_service_state.py reads the rest (packages, artifacts, units).
  - A file is written only when its content, owner, group or mode differ, through a temporary file in
    the same directory that is renamed into place, so a reader never sees half a file.
  - Every entry carries a C(tag); the result lists the tags of what changed, so the caller decides what
    restarts (for instance a changed C(unit) restarts, a changed C(config) reloads).
  - With C(hide_content), no content appears in the diff (secret files); call it with C(no_log) then.
  - With C(previous_dir), what a call changes is kept first (the previous content, owner and mode of each
    changed file, the previous target of each changed link, or that it was absent). A later call with
    C(restore) puts all of it back, so an engine can undo a change that kept its service from becoming
    ready. A call that changes nothing leaves the kept state of an earlier call as it is.
author: Lakehouse bootstrap maintainers
options:
  directories:
    description: Directories to create or fix, parents first.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: str, required: true}
      owner: {description: Owning user; empty for the module's own., type: str, default: root}
      group: {description: Owning group; empty for the module's own., type: str, default: root}
      mode: {description: Octal mode as a string, e.g. C("0750")., type: str, default: "0755"}
      tag: {description: What the entry is, for RV(changed_tags)., type: str, default: directory}
  files:
    description: Regular files with their whole content.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path; its directory must exist or be in O(directories)., type: str, required: true}
      content: {description: The file's content (text)., type: str, required: true}
      owner: {description: Owning user; empty for the module's own., type: str, default: root}
      group: {description: Owning group; empty for the module's own., type: str, default: root}
      mode: {description: Octal mode as a string., type: str, default: "0644"}
      tag: {description: What the entry is, for RV(changed_tags)., type: str, default: file}
  links:
    description: Symbolic links, replaced when they point elsewhere.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path of the link., type: str, required: true}
      src: {description: What the link points to., type: str, required: true}
      tag: {description: What the entry is, for RV(changed_tags)., type: str, default: link}
  hide_content:
    description: Leave every content out of the diff (secret files).
    type: bool
    default: false
  previous_dir:
    description:
      - A directory (made C(0700), owned by the module's user) where a call that changes anything first
        replaces what an earlier call kept there with the previous state of every file and link it
        changes. Directories are not kept (a new one harms nothing).
    type: path
  restore:
    description:
      - Directories that calls with O(previous_dir) filled. Every file and link they kept is put back (a file
        that was absent is removed again), then they are forgotten. Excludes the other options but O(hide_content).
    type: list
    elements: path
    default: []
attributes:
  check_mode:
    support: full
    description: Reports what would change; writes nothing.
  diff_mode:
    support: full
    description: One diff per changed entry (contents unless O(hide_content)).
"""

EXAMPLES = r"""
- name: Write the config files and units of a service
  lakehouse_tree:
    directories:
      - {path: /etc/lakehouse/minio, group: minio-user, mode: "0750"}
    files:
      - path: /etc/lakehouse/minio/env
        content: "MINIO_VOLUMES=/var/lib/minio\n"
        group: minio-user
        mode: "0640"
        tag: config
      - {path: /etc/systemd/system/lakehouse-minio.service, content: "{{ unit }}", tag: unit}
    links:
      - {path: /usr/local/bin/minio, src: /opt/lakehouse/minio/2025-09-07/minio, tag: program}
    previous_dir: /var/lib/lakehouse/previous/minio/files

- name: Put back what the call above changed
  lakehouse_tree:
    restore: [/var/lib/lakehouse/previous/minio/files]
"""

RETURN = r"""
changed_tags:
  description: The tags of the entries that changed (or would in check mode), sorted.
  returned: always
  type: list
  elements: str
changed_paths:
  description: The paths that changed (or would), in the order given; with O(restore), those put back.
  returned: always
  type: list
  elements: str
"""

import grp
import json
import os
import pwd
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule


def ids(module: AnsibleModule, owner: str, group: str) -> tuple[int, int]:
    """The numeric owner and group (empty: the module's own); in check mode a user that an earlier
    task would create is -1."""
    try:
        uid = pwd.getpwnam(owner).pw_uid if owner else os.getuid()
        return uid, grp.getgrnam(group).gr_gid if group else os.getgid()
    except KeyError as err:
        if module.check_mode:
            return -1, -1
        module.fail_json(msg=f"no such user or group on {os.uname().nodename}: {err.args[0]}")


def attributes_differ(path: str, uid: int, gid: int, mode: int) -> bool:
    st = os.lstat(path)
    return (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (uid, gid, mode)


def write_atomically(path: str, content: bytes, uid: int, gid: int, mode: int):
    """Write through a temporary file in the same directory, renamed into place: a reader never
    sees half a file."""
    fd, temp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchown(f.fileno(), uid, gid)
            os.fchmod(f.fileno(), mode)
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def link_atomically(path: str, src: str):
    temp = f"{path}.lakehouse-new"
    if os.path.lexists(temp):
        os.unlink(temp)
    os.symlink(src, temp)
    os.replace(temp, path)


class Previous:
    """What a call changed, kept in a directory before the change: `manifest.json` lists each entry
    (path, tag, and its previous state) and `<n>` holds the previous content of file n."""

    def __init__(self, directory: str | None):
        self.directory = directory
        self.entries: list[dict] = []

    def keep(self, entry: dict, kind: str):
        if not self.directory:
            return
        if not self.entries:  # the first change of this call replaces what an earlier one kept
            shutil.rmtree(self.directory, ignore_errors=True)
            os.makedirs(self.directory, mode=0o700)
            os.chmod(self.directory, 0o700)
        path = entry["path"]
        kept = {"path": path, "tag": entry["tag"], "kind": kind, "present": False}
        if kind == "link" and os.path.islink(path):
            kept.update(present=True, src=os.readlink(path))
        elif kind == "file" and os.path.isfile(path) and not os.path.islink(path):
            st = os.lstat(path)
            kept.update(present=True, uid=st.st_uid, gid=st.st_gid, mode=st.st_mode & 0o7777)
            shutil.copyfile(path, os.path.join(self.directory, str(len(self.entries))))
        self.entries.append(kept)
        # Written after each entry, so a call that stops half-way still names all it changed.
        write_atomically(os.path.join(self.directory, "manifest.json"),
                         json.dumps(self.entries).encode(), os.getuid(), os.getgid(), 0o600)  # fmt: skip


def restore(module: AnsibleModule, directories: list[str]) -> dict:
    """Put back what each directory kept, newest first, and forget it."""
    tags: set[str] = set()
    paths: list[str] = []
    for directory in reversed(directories):
        manifest = os.path.join(directory, "manifest.json")
        if not os.path.isfile(manifest):
            continue
        with open(manifest) as f:
            entries = json.load(f)
        for index in reversed(range(len(entries))):
            kept = entries[index]
            path = kept["path"]
            tags.add(kept["tag"])
            paths.append(path)
            if module.check_mode:
                continue
            if not kept["present"]:
                if os.path.lexists(path):
                    os.unlink(path)
            elif kept["kind"] == "link":
                link_atomically(path, kept["src"])
            else:
                with open(os.path.join(directory, str(index)), "rb") as f:
                    write_atomically(path, f.read(), kept["uid"], kept["gid"], kept["mode"])
        if not module.check_mode:
            shutil.rmtree(directory)
    return {"changed": bool(paths), "changed_tags": sorted(tags), "changed_paths": paths}


class Tree:
    def __init__(self, module: AnsibleModule):
        self.module = module
        self.check = module.check_mode
        self.hide = module.params["hide_content"]
        self.changed_tags: set[str] = set()
        self.changed_paths: list[str] = []
        self.diff: list[dict] = []
        self.previous = Previous(None if self.check else module.params["previous_dir"])

    def changed(self, entry: dict, before: str, after: str):
        self.changed_tags.add(entry["tag"])
        self.changed_paths.append(entry["path"])
        if self.module._diff:
            self.diff.append(
                {"before_header": entry["path"], "after_header": entry["path"], "before": before, "after": after}
            )

    def directory(self, entry: dict):
        path, mode = entry["path"], int(entry["mode"], 8)
        uid, gid = ids(self.module, entry["owner"], entry["group"])
        wanted = f"directory {entry['owner']}:{entry['group']} {entry['mode']}\n"
        if os.path.isdir(path) and not os.path.islink(path):
            if not attributes_differ(path, uid, gid, mode):
                return
            self.changed(entry, "directory (other owner or mode)\n", wanted)
        else:
            self.changed(entry, "absent\n", wanted)
        if not self.check:
            os.makedirs(path, exist_ok=True)
            os.chown(path, uid, gid)
            os.chmod(path, mode)

    def file(self, entry: dict):
        path, mode, content = entry["path"], int(entry["mode"], 8), entry["content"].encode()
        uid, gid = ids(self.module, entry["owner"], entry["group"])
        before = None
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as f:
                before = f.read()
            if before == content and not attributes_differ(path, uid, gid, mode):
                return
        shown = "(hidden)\n"
        if before is None:
            self.changed(entry, "absent\n", shown if self.hide else content.decode())
        elif before == content:
            self.changed(entry, "other owner or mode\n", f"{entry['owner']}:{entry['group']} {entry['mode']}\n")
        else:
            old, new = (shown, shown) if self.hide else (before.decode(errors="replace"), content.decode())
            self.changed(entry, old, new)
        if not self.check:
            self.previous.keep(entry, "file")
            write_atomically(path, content, uid, gid, mode)

    def link(self, entry: dict):
        path, src = entry["path"], entry["src"]
        if os.path.islink(path):
            current = os.readlink(path)
            if current == src:
                return
            self.changed(entry, f"-> {current}\n", f"-> {src}\n")
        else:
            if os.path.exists(path):
                self.module.fail_json(msg=f"{path} exists and is not a symbolic link; it is left as it is")
            self.changed(entry, "absent\n", f"-> {src}\n")
        if not self.check:
            self.previous.keep(entry, "link")
            link_atomically(path, src)


def main():
    def entry(**options):
        return {"type": "list", "elements": "dict", "default": [], "options": options}

    path = {"type": "str", "required": True}
    attrs = {"owner": {"type": "str", "default": "root"}, "group": {"type": "str", "default": "root"}}
    module = AnsibleModule(
        argument_spec={
            "directories": entry(path=path, mode={"type": "str", "default": "0755"},
                                 tag={"type": "str", "default": "directory"}, **attrs),
            "files": entry(path=path, content={"type": "str", "required": True},
                           mode={"type": "str", "default": "0644"}, tag={"type": "str", "default": "file"}, **attrs),
            "links": entry(path=path, src={"type": "str", "required": True}, tag={"type": "str", "default": "link"}),
            "hide_content": {"type": "bool", "default": False},
            "previous_dir": {"type": "path"},
            "restore": {"type": "list", "elements": "path", "default": []},
        },
        mutually_exclusive=[("restore", kind) for kind in ("directories", "files", "links", "previous_dir")],
        supports_check_mode=True,
    )  # fmt: skip
    if module.params["restore"]:
        module.exit_json(**restore(module, module.params["restore"]))
    tree = Tree(module)
    for kind, write in (("directories", tree.directory), ("files", tree.file), ("links", tree.link)):
        for item in module.params[kind]:
            if not os.path.isabs(item["path"]):
                module.fail_json(msg=f"{kind}: {item['path']} is not an absolute path")
            write(item)
    result = {
        "changed": bool(tree.changed_paths),
        "changed_tags": sorted(tree.changed_tags),
        "changed_paths": tree.changed_paths,
    }
    if module._diff:
        result["diff"] = tree.diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
