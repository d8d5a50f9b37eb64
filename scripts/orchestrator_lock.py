#!/usr/bin/env python3
"""Resolve the orchestrators' top-level pins into hash-pinned lock files, roles/orchestrator/files/locks/<name>.txt.

    .venv/bin/python scripts/orchestrator_lock.py            # airflow and dagster
    .venv/bin/python scripts/orchestrator_lock.py dagster    # one of them

For each: a scratch venv under /tmp with Python 3.11 (the hosts' python3), the top-level pins below
installed into it from wheels only, `pip freeze` of the result, then the exact wheel of each frozen
package for CPython 3.11 on manylinux x86_64 (glibc 2.36, Debian 12) downloaded and hashed. The lock
lists every package, `name==version --hash=sha256:...`, as `pip install --require-hashes` wants; the
artifact table builds the orchestrator's tree from it (library/lakehouse_artifact.py, source.pip).
After regenerating a lock, build the artifact and pin the sha256 the module reports.

The caller's PIP_* environment (an index mirror) applies to every pip run.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import ansible.module_utils

REPO = Path(__file__).resolve().parent.parent
LOCKS = REPO / "roles" / "orchestrator" / "files" / "locks"

# The project's module_utils, as Ansible ships them to modules; the artifact module names the
# wheel platforms, so the lock hashes exactly the wheels its builds will take.
ansible.module_utils.__path__.append(str(REPO / "module_utils"))
_spec = importlib.util.spec_from_file_location("lakehouse_artifact", REPO / "library" / "lakehouse_artifact.py")
artifact = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(artifact)

PYTHON, GLIBC, ARCH = "3.11", "2.36", "amd64"

# Top-level pins. Everything else is what they resolve to, frozen. Airflow runs SimpleAuthManager
# (no FAB provider); statsd is Airflow's StatsD metrics client; psycopg2 is SQLAlchemy's driver for
# the PostgreSQL metadata database (both orchestrators).
PINS = {
    "airflow": [
        "apache-airflow==3.3.2",
        "apache-airflow-providers-cncf-kubernetes==10.25.0",
        "apache-airflow-providers-docker==4.6.1",
        "apache-airflow-providers-postgres==7.1.1",
        "psycopg2-binary==2.9.13",
        "statsd==4.0.1",
    ],
    "dagster": [
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-graphql==1.13.27",
        "dagster-postgres==0.29.27",
        "dagster-docker==0.29.27",
        "dagster-k8s==0.29.27",
        "psycopg2-binary==2.9.13",
    ],
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def run(cmd: list[str], **kwargs) -> str:
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE, **kwargs).stdout


def resolve(name: str, pins: list[str], python: str, scratch: Path) -> dict[str, str]:
    """Install the pins into a scratch venv (without pip of its own, so nothing but their closure is
    in it) and freeze it: {canonical name: 'name==version'}."""
    venv = scratch / "venv"
    run([python, "-m", "venv", "--without-pip", str(venv)])
    interpreter = str(venv / "bin" / "python")
    version = run([interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).strip()
    if version != PYTHON:
        sys.exit(f"{python} is Python {version}; the hosts run {PYTHON}: pass --python python{PYTHON}")
    pip = [sys.executable, "-m", "pip", "--python", interpreter, "--disable-pip-version-check"]
    run([*pip, "install", "--only-binary=:all:", "--no-compile", *pins])
    frozen = {}
    for line in run([*pip, "freeze", "--all"]).splitlines():
        if "==" not in line:
            sys.exit(f"{name}: pip freeze gave {line!r}, not a name==version pin")
        frozen[canonical(line.split("==")[0])] = line.strip()
    return frozen


def wheel_hashes(frozen: dict[str, str], scratch: Path) -> dict[str, tuple[str, str]]:
    """The wheel of each pin for the hosts: {canonical name: (wheel file name, sha256)}."""
    (scratch / "pins.txt").write_text("".join(f"{pin}\n" for pin in frozen.values()))
    wheels = scratch / "wheels"
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp",
           "--abi", "cp" + PYTHON.replace(".", ""), "-d", str(wheels), "-r", str(scratch / "pins.txt")]  # fmt: skip
    for platform in artifact.pip_platforms(ARCH, GLIBC):
        cmd += ["--platform", platform]
    run(cmd)
    found = {}
    for wheel in sorted(wheels.iterdir()):
        found[canonical(wheel.name.split("-")[0])] = (wheel.name, hashlib.sha256(wheel.read_bytes()).hexdigest())
    missing = sorted(set(frozen) - set(found))
    if missing:
        sys.exit(f"no wheel for CPython {PYTHON} manylinux {ARCH} of: {', '.join(missing)}")
    return found


def write_lock(name: str, pins: list[str], frozen: dict[str, str], hashes: dict[str, tuple[str, str]]) -> Path:
    path = LOCKS / f"{name}.txt"
    lines = [
        f"# {name}: every package of the orchestrator's tree, with the sha256 of its wheel for CPython {PYTHON}",
        f"# on manylinux x86_64 (glibc {GLIBC}). Generated; do not edit. Regenerate with",
        f"#   .venv/bin/python scripts/orchestrator_lock.py {name}",
        "# then pin the artifact's new sha256 in roles/lakehouse/defaults/main/artifacts.yml.",
        "# Top-level pins (scripts/orchestrator_lock.py):",
        *(f"#   {pin}" for pin in pins),
        "",
    ]
    for key in sorted(frozen):
        wheel, digest = hashes[key]
        lines += [f"{frozen[key]} \\", f"    --hash=sha256:{digest}", f"    # {wheel}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"locks to regenerate: {', '.join(PINS)} (default: all)")
    parser.add_argument("--python", default=f"python{PYTHON}", help="the Python 3.11 to resolve with")
    args = parser.parse_args()
    unknown = set(args.names) - set(PINS)
    if unknown:
        parser.error(f"unknown locks {sorted(unknown)}; there are {sorted(PINS)}")
    for name in args.names or sorted(PINS):
        with tempfile.TemporaryDirectory(prefix=f"orchestrator-lock-{name}-", dir="/tmp") as scratch:
            frozen = resolve(name, PINS[name], args.python, Path(scratch))
            path = write_lock(name, PINS[name], frozen, wheel_hashes(frozen, Path(scratch)))
        print(f"{path.relative_to(REPO)}: {len(frozen)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
