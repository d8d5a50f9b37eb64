"""The environment Ansible runs in, and the few extra-variable helpers the command needs.

The children get what `make` gives them: the project environment's binaries first on PATH and
the Helm CLI built by scripts/controlplane/build.sh (for the Helm delivery engine).
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from lakehouse_cli import REPO, LakehouseError

# Names of variables whose values are never echoed (the same words the principles tests use).
SECRET_NAME = re.compile(r"(password|secret|token|access_key|secret_key|private_key)", re.IGNORECASE)
HIDDEN = "<hidden>"


def venv_bin() -> Path:
    """The directory of the interpreter running us (the project's .venv/bin), symlinks kept."""
    return Path(sys.executable).parent


@functools.cache
def helm_bin_dir() -> str | None:
    script = REPO / "scripts" / "controlplane" / "build.sh"
    if not script.is_file():
        return None
    try:
        out = subprocess.run(
            [str(script), "--print-env"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.startswith("BIN_DIR="):
            return line.removeprefix("BIN_DIR=")
    return None


def ansible_env(base: Mapping[str, str] | None = None, color: bool = True) -> dict[str, str]:
    """The full environment for ansible-playbook / ansible-inventory."""
    env = dict(os.environ if base is None else base)
    path = [str(venv_bin())]
    if helm := helm_bin_dir():
        path.append(helm)
    env["PATH"] = os.pathsep.join([*path, env.get("PATH", os.defpath)])
    # bin/lakehouse puts the repository on PYTHONPATH to find this package; Ansible needs not.
    if "PYTHONPATH" in env:
        kept = [p for p in env["PYTHONPATH"].split(os.pathsep) if p and Path(p).resolve() != REPO]
        if kept:
            env["PYTHONPATH"] = os.pathsep.join(kept)
        else:
            del env["PYTHONPATH"]
    # ansible-runner sets this variable for its event callback, which hides ansible.cfg's
    # callback_plugins; naming the project's here keeps them (it appends its own).
    env["ANSIBLE_CALLBACK_PLUGINS"] = os.pathsep.join(
        p for p in (env.get("ANSIBLE_CALLBACK_PLUGINS"), str(REPO / "plugins" / "callback")) if p
    )
    if not color:
        env["ANSIBLE_NOCOLOR"] = "1"
    return env


def parse_extra_vars(values: Iterable[str], cwd: Path | None = None) -> dict:
    """What `-e` values set, as ansible-playbook reads them: key=value pairs, inline YAML/JSON, @file."""
    result: dict = {}
    for value in values:
        value = value.strip()
        if value.startswith("@"):
            path = Path(value[1:]).expanduser()
            if not path.is_absolute():
                path = (cwd or Path.cwd()) / path
            try:
                loaded = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError) as err:
                raise LakehouseError(f"cannot read extra vars file {path}: {err}") from err
        elif value.startswith(("{", "[")):
            try:
                loaded = yaml.safe_load(value)
            except yaml.YAMLError as err:
                raise LakehouseError(f"extra vars are neither key=value nor valid YAML/JSON: {err}") from err
        else:
            loaded = {}
            for pair in shlex.split(value):
                key, sep, val = pair.partition("=")
                if not sep:
                    raise LakehouseError(f"extra var {key!r} is not key=value")
                loaded[key] = val
        if not isinstance(loaded, dict):
            raise LakehouseError("extra vars must be a mapping")
        result.update(loaded)
    return result


def mask_extra_var(value: str) -> str:
    """An `-e` value fit to echo: values of secret-looking variables replaced by <hidden>."""
    stripped = value.strip()
    if stripped.startswith("@"):
        return value
    if stripped.startswith(("{", "[")):
        return HIDDEN if SECRET_NAME.search(stripped) else value
    try:
        pairs = shlex.split(stripped)
    except ValueError:
        return HIDDEN
    masked = []
    for pair in pairs:
        key, sep, _ = pair.partition("=")
        masked.append(f"{key}={HIDDEN}" if sep and SECRET_NAME.search(key) else pair)
    return " ".join(masked)
