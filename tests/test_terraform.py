"""The OpenTofu configurations of terraform/: formatted, valid against their pinned providers, and
each with the provisioning contract's output.

`tofu validate` runs after `tofu init -backend=false`, with the providers of the filesystem
mirror that scripts/tofu/build.sh fills: what can be checked of a cloud configuration here (it is
never applied). The local configuration is applied for real in tests/test_end_to_end.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from controlplane import build_env

REPO = Path(__file__).resolve().parent.parent
CONFIGURATIONS = sorted(path.parent for path in (REPO / "terraform").glob("*/versions.tf"))


def tofu_env(data_dir: Path) -> tuple[Path, dict[str, str]]:
    """The tofu binary and an environment that reads the provider mirror and keeps its working data
    in `data_dir`, as the provision role's."""
    build = build_env("tofu")
    env = {**os.environ, "TF_CLI_CONFIG_FILE": build["TF_CLI_CONFIG_FILE"], "TF_DATA_DIR": str(data_dir)}
    return Path(build["BIN_DIR"]) / "tofu", env


def tofu(config: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    binary, env = tofu_env(tmp_path / "data")
    return subprocess.run(
        [binary, f"-chdir={config}", *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_there_is_a_local_and_a_cloud_configuration():
    assert {"local", "openstack"} <= {config.name for config in CONFIGURATIONS}


@pytest.mark.parametrize("config", CONFIGURATIONS, ids=lambda config: config.name)
def test_configuration_is_formatted_and_valid(config, tmp_path):
    formatted = tofu(config, tmp_path, "fmt", "-check", "-diff", "-recursive")
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    initialized = tofu(config, tmp_path, "init", "-backend=false", "-input=false", "-no-color")
    assert initialized.returncode == 0, initialized.stdout + initialized.stderr
    validated = tofu(config, tmp_path, "validate", "-json", "-no-color")
    report = json.loads(validated.stdout)
    assert report["valid"] and not report["warning_count"], report


def test_the_shared_modules_are_formatted(tmp_path):
    formatted = tofu(REPO / "terraform" / "modules", tmp_path, "fmt", "-check", "-diff", "-recursive")
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


@pytest.mark.parametrize("config", CONFIGURATIONS, ids=lambda config: config.name)
def test_configuration_outputs_the_contract_and_keeps_state_in_s3(config):
    outputs = (config / "outputs.tf").read_text()
    assert 'source = "../modules/contract"' in outputs
    assert 'output "lakehouse"' in outputs and "value       = module.contract.lakehouse" in outputs
    contract = (REPO / "terraform/modules/contract/main.tf").read_text()
    assert 'contract       = "lakehouse.provisioning/v1"' in contract
    versions = (config / "versions.tf").read_text()
    assert 'backend "s3"' in versions
