"""terraform/local on a cluster: `lakehouse provision` prepares the test control plane.

The configuration is applied with no metal host and the control plane as its cluster, state in a
MinIO over TLS on loopback: the namespace, the deployer's account, Role and RoleBinding exist, the
account may deploy in that namespace and nowhere else (the API server's own authorizer says so),
the written inventory names the cluster host with its kubeconfig and namespace, and the contract
in the state names the API server of the kubeconfig. A second provision changes nothing; a destroy
removes the namespace and the inventory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from controlplane import wait_for
from kubernetes import client
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[2]
SITE = "kwokprov"
CLUSTER = f"cluster-1.{SITE}.lakehouse.test"
NAMESPACE = "provisioned"
STATE_KEY = f"{SITE}/terraform.tfstate"
DEPLOYER = f"system:serviceaccount:{NAMESPACE}:lakehouse-deployer"


@pytest.fixture(scope="module")
def environment(cp, state_store, tmp_path_factory):
    directory = tmp_path_factory.mktemp("kwok-environment")
    inputs = {
        "provision_config": "terraform/local",
        "provision_variables": {
            "site": SITE,
            "cluster": {"name": "cluster-1", "kubeconfig": str(cp.kubeconfig), "namespace": NAMESPACE,
                        "groups": ["object_storage"]},
        },
        "provision_backend": state_store.backend(STATE_KEY),
    }  # fmt: skip
    (directory / "provision.yml").write_text(yaml.safe_dump(inputs))
    env = {
        **os.environ,
        **state_store.credentials,
        "ANSIBLE_NOCOLOR": "1",
    }

    def provision(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lakehouse_cli", "provision", "-i", str(directory), *args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip

    applied = provision()
    assert applied.returncode == 0, (applied.stdout + applied.stderr)[-4000:]
    yield {"directory": directory, "provision": provision}
    provision("--destroy")


def allowed(api, namespace: str) -> bool:
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=DEPLOYER,
            groups=["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"],
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace, verb="create", group="apps", resource="statefulsets"
            ),
        )
    )
    return client.AuthorizationV1Api(api).create_subject_access_review(review).status.allowed


def test_the_namespace_and_the_deployer_exist_and_may_deploy_there_only(environment, api):
    namespace = client.CoreV1Api(api).read_namespace(NAMESPACE)
    assert namespace.metadata.labels["lakehouse.site"] == SITE
    assert client.CoreV1Api(api).read_namespaced_service_account("lakehouse-deployer", NAMESPACE)
    assert client.RbacAuthorizationV1Api(api).read_namespaced_role_binding("lakehouse-deployer", NAMESPACE)
    assert allowed(api, NAMESPACE) and not allowed(api, "default")


def test_the_inventory_names_the_cluster_host_and_the_contract_its_api_server(environment, state_store, cp):
    written = yaml.safe_load((environment["directory"] / "hosts.yml").read_text())["all"]
    host = written["hosts"][CLUSTER]
    assert host["lakehouse_delivery"] == "helm" and host["lakehouse_k8s_namespace"] == NAMESPACE
    assert host["lakehouse_k8s_kubeconfig"] == str(cp.kubeconfig)
    assert set(written["children"]["object_storage"]["hosts"]) == {CLUSTER}
    state = state_store.state(STATE_KEY)
    contract = state["outputs"]["lakehouse"]["value"]
    kubeconfig = yaml.safe_load(cp.kubeconfig.read_text())
    assert contract["kubernetes"]["api_server"] == kubeconfig["clusters"][0]["cluster"]["server"]
    assert contract["kubernetes"]["ca_certificate"].startswith("-----BEGIN CERTIFICATE-----")


def test_a_second_provision_changes_nothing_and_a_destroy_removes_the_namespace(environment, api):
    again = environment["provision"]()
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]
    destroyed = environment["provision"]("--destroy")
    assert destroyed.returncode == 0, (destroyed.stdout + destroyed.stderr)[-3000:]
    assert not (environment["directory"] / "hosts.yml").exists()

    def gone() -> bool:
        try:
            client.CoreV1Api(api).read_namespace(NAMESPACE)
        except ApiException as err:
            return err.status == 404
        return False

    wait_for(f"namespace {NAMESPACE} removed", gone, timeout=120)
