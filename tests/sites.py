"""A lakehouse site under test: an inventory, its environment, and the lakehouse command and
playbooks run against it. Plain helper module, not a conftest.

    site = Site(inventory_dir, env, hosts=[...])
    site.lakehouse("up", "-e", "iceberg_catalog_type=jdbc")     # the CLI, as a user runs it
    site.playbook("playbooks/site.yml", "--check", "--diff")     # plain ansible-playbook
    results = site.verify()                                      # every check must pass
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lakehouse_cli import contracts  # noqa: E402


def helm_revisions(env: dict[str, str], namespace: str) -> dict[str, int]:
    """Each Helm release of `namespace` and its revision."""
    out = subprocess.run(
        ["helm", "list", "-n", namespace, "-o", "json"], env=env, capture_output=True, text=True, check=True
    ).stdout
    return {release["name"]: int(release["revision"]) for release in json.loads(out)}


ROUND_TRIP = ["pyiceberg → trino: 3 rows equal", "trino → pyiceberg: 4 rows equal"]


class Site:
    def __init__(self, inventory: Path, env: dict[str, str], hosts: list[str], site: str):
        self.inventory, self.env, self.hosts, self.name = inventory, env, hosts, site

    def _run(self, command: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            command, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=2400, check=False
        )

    def lakehouse(self, command: str, *args: str) -> subprocess.CompletedProcess:
        return self._run([sys.executable, "-m", "lakehouse_cli", command, "-i", str(self.inventory), *args])

    def playbook(self, name: str = "playbooks/site.yml", *args: str) -> subprocess.CompletedProcess:
        playbook = str(Path(sys.executable).parent / "ansible-playbook")
        return self._run([playbook, "-i", str(self.inventory), name, *args])

    def contracts(self) -> list[contracts.Contract]:
        return contracts.find_contracts(Path(self.env["LAKEHOUSE_STATE_DIR"]), self.hosts, site=self.name)

    def verify(self) -> str:
        """`lakehouse verify` in a process of its own (pyarrow's S3 client keeps the first CA bundle
        it reads for the life of a process, and every site has its own CA); every check must pass."""
        result = self.lakehouse("verify")
        assert result.returncode == 0 and re.search(r"all \d+ checks passed", result.stdout), (
            result.stdout[-6000:] + result.stderr[-2000:]
        )
        return result.stdout

    def query_contract(self) -> contracts.Contract:
        """The published query contract (its CA is what clients.ca_bundle_env needs for trino())."""
        return next(c for c in self.contracts() if c.service == "query")

    def trino(self, sql: str) -> list[tuple]:
        """One query as the site's admin, through the published query contract, as the lakehouse
        command's checks run it (inside clients.ca_bundle_env, which the caller holds)."""
        from lakehouse_cli import clients

        query = self.query_contract()
        admin = query.credential("admin")
        password = contracts.resolve_secret(admin["secret_ref"], Path(self.env["LAKEHOUSE_SECRETS_DIR"]), self.env)
        connection = clients.trino(query, admin["user"], password)
        try:
            return clients.trino_rows(connection, sql)
        finally:
            connection.close()


def recap(output: str, host: str) -> dict[str, int]:
    """The PLAY RECAP counters of one host."""
    match = re.search(rf"{re.escape(host)}\s+:\s+(.*)", output)
    assert match, output[-3000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def scraped(verified: str) -> dict[str, str]:
    """The metrics endpoints `lakehouse verify` found scraped and up: {URL: what Prometheus said}."""
    rows = re.findall(
        r"^observability every published metrics endpoint scraped and up\s+(\S+)\s+pass \((.*)\)", verified, re.M
    )
    return dict(rows)


def refused_anonymously(verified: str) -> list[str]:
    """The metrics endpoints that refused an anonymous scrape in `lakehouse verify`."""
    return re.findall(r"^\S+ metrics refuse an anonymous scrape\s+(\S+)\s+pass\b", verified, re.M)


def passed(verified: str, check: str) -> re.Match | None:
    """The row of a check that passed: its endpoint is the match's group 1."""
    return re.search(rf"^{re.escape(check)}\s+(\S+)\s+pass\b", verified, re.M)


def round_trip(verified: str) -> list[str]:
    """The Iceberg round trips `lakehouse verify` reported, in its order."""
    return re.findall(r"^query Iceberg round trip\s+\S+\s+pass \((.*)\)\s*$", verified, re.M)


# The size of the node's PersistentVolumes that a site creates, and of every volume it asks for.
VOLUME_SIZE = "1Gi"


def volume_size_options() -> list[str]:
    """Every role option that sizes a volume (`<role>_volume_size`), from the roles' defaults: a
    service that gains a volume is sized for the node without a change here."""
    import yaml

    return sorted(
        name
        for defaults in REPO.glob("roles/*/defaults/main.yml")
        for name in yaml.safe_load(defaults.read_text()) or {}
        if name.endswith("_volume_size")
    )


def node_site(
    root: Path, node, site: str, namespace: str, groups: dict[str, list[str]], metal=(), cluster_vars=None
) -> Site:
    """A site on the real node from the sandbox's variables (inventories/sandbox/group_vars).

    `groups` maps each service group to its hosts; a host in `metal` is a sandbox container (a
    systemd test host that playbooks/sandbox.yml creates), any other stands for the node's cluster,
    with `cluster_vars` on top of those every cluster host here gets. The controller finds the
    cluster's Services in /etc/hosts (lakehouse_k8s_hosts_file).
    """
    import yaml

    inventory = sandbox_inventory(root, site)
    # In group_vars/, since the copied group_vars/all would win over variables in hosts.yml.
    cluster_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "lakehouse_delivery": "helm",
        "lakehouse_k8s_kubeconfig": str(node.kubeconfig),
        "lakehouse_k8s_namespace": namespace,
        "lakehouse_k8s_containerd_socket": str(node.containerd_socket),
        "lakehouse_k8s_hosts_file": "/etc/hosts",
        "trino_heap_size": "1G",
        "trino_resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "trino_worker_replicas": 1,
        # Every role's volumes fit the node's small PersistentVolumes (a claim larger than every
        # free volume never binds, and its pod stays Pending).
        **dict.fromkeys(volume_size_options(), VOLUME_SIZE),
        **(cluster_vars or {}),
    }
    (inventory / "group_vars" / "clusters.yml").write_text(yaml.safe_dump(cluster_vars))
    every = {host for hosts in groups.values() for host in hosts}
    children = {group: {"hosts": dict.fromkeys(hosts)} for group, hosts in groups.items()}
    children["clusters"] = {"hosts": dict.fromkeys(sorted(every - set(metal)))}
    if metal:
        children["sandbox"] = {"hosts": dict.fromkeys(metal)}
    else:
        (inventory / "group_vars" / "sandbox.yml").unlink()
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": children}}))
    # One volume per stateful pod: MinIO, PostgreSQL, Prometheus, the Trino coordinator and two
    # workers; spares for a site that places more.
    node.volumes(8, VOLUME_SIZE, prefix=site)
    return Site(inventory, site_env(root, node.env), sorted(every), site)


def metal_site(root: Path, site: str, groups: dict[str, list[str]]) -> Site:
    """A site of sandbox containers (systemd test hosts that `lakehouse up` creates with
    playbooks/sandbox.yml) from the sandbox's variables; `groups` maps each service group to its
    hosts. `lakehouse down` removes them."""
    import yaml

    inventory = sandbox_inventory(root, site)
    every = sorted({host for hosts in groups.values() for host in hosts})
    children = {group: {"hosts": dict.fromkeys(hosts)} for group, hosts in {**groups, "sandbox": every}.items()}
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": children}}))
    return Site(inventory, site_env(root), every, site)


def sandbox_inventory(root: Path, site: str) -> Path:
    """root/inventory with the sandbox's group variables, renamed to `site` on a network of its own
    (hosts.yml is the caller's)."""
    import shutil

    inventory = root / "inventory"
    shutil.copytree(REPO / "inventories" / "sandbox" / "group_vars", inventory / "group_vars")
    main = inventory / "group_vars" / "all" / "main.yml"
    main.write_text(main.read_text().replace("lakehouse_site: sandbox", f"lakehouse_site: {site}"))
    with main.open("a") as extra:
        extra.write(f"sandbox_network: lakehouse-{site}\n")
    return inventory


def site_env(root: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a site under test: its secret store and state directory under root,
    none of the caller's secrets."""
    import os

    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_SECRET_")},
        **(extra or {}),
        "LAKEHOUSE_SECRETS_DIR": str(root / "secrets"),
        "LAKEHOUSE_STATE_DIR": str(root / "state"),
        "ANSIBLE_NOCOLOR": "1",
    }


def forget_cluster_names(site: str, hosts_file: Path = Path("/etc/hosts")) -> None:
    """Remove the Service names the Helm engine wrote for `site`."""
    text = hosts_file.read_text()
    hosts_file.write_text(re.sub(rf"# BEGIN lakehouse {site} .*?# END lakehouse {site} [^\n]*\n", "", text, flags=re.S))
