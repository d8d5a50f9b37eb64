"""Shared pytest fixtures for every test tier."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from unittest import mock

import ansible.module_utils
import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

REPO = Path(__file__).resolve().parent.parent
# Plain helper modules: tests/ (controlplane.py, sites.py) and tests/unit (minio_server.py).
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "unit")]
CACHE = Path(os.environ.get("LAKEHOUSE_CACHE", Path.home() / ".cache" / "lakehouse"))


def load_source(relative: str | Path, name: str | None = None):
    """A Python file of the repository (a plugin, a module, a program) loaded as a module."""
    path = REPO / relative
    name = name or f"lakehouse_test_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# Our module_utils are shipped by Ansible as ansible.module_utils.<name>; mirror that in-process.
ansible.module_utils.__path__.append(str(REPO / "module_utils"))


# The background builds of `make test` (scripts/setup.sh) that a test file or tier waits for.
BUILDS_NEEDED = {
    REPO / "tests" / "test_terraform.py": ("tofu",),
    REPO / "tests" / "test_end_to_end.py": ("tofu",),
    REPO / "tests" / "helm": ("tofu", "controlplane"),  # tests/helm/test_provision_cluster.py needs tofu
    REPO / "tests" / "node": ("controlplane", "flux"),
}


# `make test` runs two pytest-xdist workers. The real tiers that start many services (Molecule's
# hosts, the end-to-end site, the real node) run one after another on one worker: side by side on
# two cores, their JVMs starve each other past their timeouts. Every other module, each a group of
# its own (its fixtures, a control plane or a site, start once), runs on the other worker meanwhile,
# the longest first: the upgrade's one-host site while Molecule creates and converges its hosts.
TIER_GROUPS = {"tests/test_molecule.py": "real", "tests/test_end_to_end.py": "real", "tests/node/": "real"}
LONGEST_FIRST = ("real", "tests/test_upgrade.py")


def tier_group(nodeid: str) -> str:
    """The group a test runs in: its tier's (TIER_GROUPS), else its module's path."""
    module = nodeid.split("::")[0]
    return next((group for prefix, group in TIER_GROUPS.items() if module.startswith(prefix)), module)


def pytest_xdist_make_scheduler(config, log):
    """xdist's scope scheduling, with our groups as its scopes (one scope is never split)."""
    from xdist.scheduler import LoadScopeScheduling

    class TierScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return tier_group(nodeid)

    return TierScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """On a worker, the longest groups first (a stable sort: pytest.ini's order otherwise); the
    scheduler hands out groups in this order (make test: --no-loadscope-reorder)."""
    if hasattr(config, "workerinput"):
        rank = {group: position for position, group in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(tier_group(item.nodeid), len(rank)))


def pytest_runtest_setup(item):
    """A test waits, once, for the background builds it needs."""
    path = Path(item.fspath)
    for needed_by, builds in BUILDS_NEEDED.items():
        if path == needed_by or needed_by in path.parents:
            from controlplane import wait_for_build

            for build in builds:
                wait_for_build(build)


class ModuleExit(Exception):
    """Raised in place of AnsibleModule.exit_json/fail_json; carries the result."""

    def __init__(self, result: dict, failed: bool):
        super().__init__(result.get("msg", ""))
        self.result = result
        self.failed = failed


@pytest.fixture
def run_module():
    """Run a module from library/ in-process: run_module(name, args, check_mode=False) -> result dict.

    A failed module raises ModuleExit with .failed set; the result dict is on the exception.
    """

    def _exit(self, **kwargs):
        raise ModuleExit(kwargs, failed=False)

    def _fail(self, msg, **kwargs):
        raise ModuleExit({"msg": msg, "failed": True, **kwargs}, failed=True)

    def run(name: str, args: dict, check_mode: bool = False, diff: bool = True) -> dict:
        module = load_source(f"library/{name}.py", f"lakehouse_library_{name}")
        args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        with patch_module_args(args), mock.patch.multiple(basic.AnsibleModule, exit_json=_exit, fail_json=_fail):
            try:
                module.main()
            except ModuleExit as done:
                if done.failed:
                    raise
                return done.result
        raise AssertionError(f"{name} returned without exit_json/fail_json")

    return run


@pytest.fixture(scope="session")
def artifact():
    """artifact(name) -> Path of a verified artifact in the controller cache.

    The cache is filled by `playbooks/artifacts.yml` (run by `make test` before pytest); the
    path layout is the one library/lakehouse_artifact.py writes.
    """
    import yaml

    table = yaml.safe_load((REPO / "roles/lakehouse/defaults/main/artifacts.yml").read_text())["lakehouse_artifacts"]

    def path(name: str, arch: str = "amd64") -> Path:
        entry = table[name]
        found = CACHE / "artifacts" / name / entry["version"] / arch / entry["filename"]
        if not found.is_file():
            pytest.fail(f"artifact {name} is not in the cache ({found}); run: make artifacts")
        return found

    return path


class StateStore:
    """An S3 service for OpenTofu's state (terraform/*: backend "s3"): a MinIO of the artifact
    cache over TLS on loopback, with one bucket."""

    BUCKET = "tofu-state"

    def __init__(self, server):
        import urllib3
        from minio import Minio

        self.server = server
        self.client = Minio(
            server.endpoint.removeprefix("https://"),
            access_key=server.root_user,
            secret_key=server.root_password,
            http_client=urllib3.PoolManager(ca_certs=str(server.ca_path)),
        )
        self.client.make_bucket(self.BUCKET)
        # What the backend reads its credentials from.
        self.credentials = {"AWS_ACCESS_KEY_ID": server.root_user, "AWS_SECRET_ACCESS_KEY": server.root_password}

    def backend(self, key: str) -> dict:
        """provision_backend for the state object `key`."""
        return {
            "bucket": self.BUCKET,
            "key": key,
            "endpoint": self.server.endpoint,
            "ca_file": str(self.server.ca_path),
        }

    def state(self, key: str) -> dict:
        """The state object `key`, as OpenTofu wrote it."""
        return json.loads(self.client.get_object(self.BUCKET, key).read())


@pytest.fixture(scope="module")
def state_store(artifact, tmp_path_factory):
    """A StateStore for the module."""
    from minio_server import MinioServer

    server = MinioServer(artifact("minio"), tmp_path_factory.mktemp("tofu-state"), tls=True).start()
    yield StateStore(server)
    server.stop()


@pytest.fixture(scope="module")
def cp():
    """A real Kubernetes control plane (tests/controlplane.py) for the test module."""
    from controlplane import ControlPlane

    with ControlPlane() as plane:
        yield plane


@pytest.fixture(scope="module")
def api(cp):
    """An admin API client of the module's control plane."""
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=str(cp.kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture(scope="session")
def node():
    """A real single-node cluster (tests/node.py) shared by the whole session, started on first use.

    Its teardown must leave the machine as it found it; the fixture fails the session if not.
    """
    from node import COMPARED_STATE, RealNode, machine_state

    with RealNode() as real:
        yield real
    after = machine_state()
    changed = {key: (real.before[key], after[key]) for key in COMPARED_STATE if real.before[key] != after[key]}
    assert not real.teardown_errors and not changed, (real.teardown_errors, changed)


@pytest.fixture(scope="session")
def node_api(node):
    """An admin API client of the session's real node."""
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=str(node.kubeconfig))
    yield api_client
    api_client.close()
