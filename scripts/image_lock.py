#!/usr/bin/env python3
"""Resolve the Debian base sets of images/bases.yml into their lock files, images/locks/<set>.json.

    .venv/bin/python scripts/image_lock.py            # every set
    .venv/bin/python scripts/image_lock.py java       # one set
    .venv/bin/python scripts/image_lock.py --check    # fail if a lock is stale (its set changed)

Run on a Debian 12 controller after `apt-get update`: the closure and the versions are what its apt
lists offer now (apt-cache depends --recurse, without recommends and suggests, minus the set's
exclude list). Commit the lock; builds then download exactly the versions it names and verify
each .deb's sha256, so a lock only changes when this script is run again.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import ansible.module_utils
import yaml

REPO = Path(__file__).resolve().parent.parent
BASES = REPO / "images" / "bases.yml"
LOCKS = REPO / "images" / "locks"

# The project's module_utils, as Ansible ships them to modules.
ansible.module_utils.__path__.append(str(REPO / "module_utils"))
debian = importlib.import_module("ansible.module_utils.lakehouse_debian")


def flatten(items) -> list[str]:
    """The exclude lists nest through YAML anchors (a shared list plus a set's own names)."""
    out = []
    for item in items or []:
        out += flatten(item) if isinstance(item, list) else [item]
    return sorted(set(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="*", help="base sets to resolve (default: all)")
    parser.add_argument("--arch", default="amd64")
    parser.add_argument("--check", action="store_true", help="only check that each lock matches its set")
    args = parser.parse_args()
    sets = yaml.safe_load(BASES.read_text())["sets"]
    unknown = set(args.sets) - set(sets)
    if unknown:
        parser.error(f"unknown sets {sorted(unknown)}; images/bases.yml has {sorted(sets)}")
    stale = []
    for name in args.sets or sorted(sets):
        packages, exclude = sorted(sets[name]["packages"]), flatten(sets[name].get("exclude"))
        path = LOCKS / f"{name}.json"
        if args.check:
            lock = debian.load_lock(str(path)) if path.exists() else {}
            if (lock.get("packages"), lock.get("exclude"), lock.get("arch")) != (packages, exclude, args.arch):
                stale.append(name)
            continue
        lock = debian.resolve(name, packages, exclude, args.arch)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(debian.dump_lock(lock))
        size = sum(d["size"] for d in lock["debs"]) / 1e6
        print(f"{path.relative_to(REPO)}: {len(lock['debs'])} packages, {size:.1f} MB of .deb files")
    if stale:
        print(f"stale locks (run scripts/image_lock.py {' '.join(stale)}): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
