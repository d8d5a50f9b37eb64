"""Role entry checks against the controller itself: bad input fails before any change.

Each case applies a role to a throw-away host that is the controller (connection local), with
one bad variable, and expects a clear message and a recap of zero changed tasks. The secret
store and state directory point into a temporary directory, so nothing outside it is touched.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture
def apply_role(tmp_path):
    def apply(role: str, extra_vars: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, str]:
        playbook = tmp_path / "play.yml"
        playbook.write_text(
            textwrap.dedent(f"""\
            - hosts: all
              gather_facts: false
              roles:
                - role: {role}
            """)
        )
        (tmp_path / "vars.yml").write_text(textwrap.dedent(extra_vars) or "{}\n")
        result = subprocess.run(
            [
                str(BIN / "ansible-playbook"),
                "-i",
                "preflight.lakehouse.test,",
                "-c",
                "local",
                "-e",
                f"@{tmp_path / 'vars.yml'}",
                str(playbook),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={
                **os.environ,
                "LAKEHOUSE_SECRETS_DIR": str(tmp_path / "secrets"),
                "LAKEHOUSE_STATE_DIR": str(tmp_path / "state"),
                "ANSIBLE_NOCOLOR": "1",
                **(env or {}),
            },
        )
        return result, result.stdout + result.stderr

    return apply


def assert_refused_before_any_change(apply_role, tmp_path, role, extra_vars, env, message):
    result, output = apply_role(role, extra_vars, env)
    assert result.returncode != 0
    assert message in output
    assert changed_count(output) == 0
    assert not (tmp_path / "secrets" / "pki").exists(), "the CA must not be created before preflight passed"


def changed_count(output: str) -> int:
    match = re.search(r"preflight\.lakehouse\.test\s+: ok=\d+\s+changed=(\d+)", output)
    assert match, output
    return int(match.group(1))


@pytest.mark.parametrize(
    ("extra_vars", "env", "message"),
    [
        pytest.param("minio_server_name: 192.0.2.10\n", {}, "IP literals are not allowed", id="ip-literal-endpoint"),
        pytest.param(
            "minio_extra_names: ['[2001:db8::5]']\n", {}, "IP literals are not allowed", id="ipv6-literal-san"
        ),
        pytest.param(
            "", {"LAKEHOUSE_SECRET_MINIO_ROOT_PASSWORD": "minioadmin"}, "well-known default", id="default-password"
        ),
        pytest.param("minio_root_user: minioadmin\n", {}, "well-known default", id="default-user"),
        pytest.param(
            "minio_tls_cert_path: /nonexistent/minio.crt\nminio_tls_key_path: /nonexistent/minio.key\n",
            {},
            "minio_tls_cert_path /nonexistent/minio.crt, minio_tls_key_path /nonexistent/minio.key",
            id="missing-tls-files",
        ),
        pytest.param("minio_buckets: [{name: Bad_Bucket}]\n", {}, "S3 naming rules", id="bad-bucket-name"),
        pytest.param(
            "minio_buckets: [{name: b1, versioning: on}]\n",
            {},
            "value of versioning must be one of",
            id="arg-spec-choice",
        ),
        pytest.param(
            "minio_buckets: [{state: present}]\n", {}, "missing required arguments: name", id="arg-spec-required"
        ),
        pytest.param("minio_s3_port: many\n", {}, "minio_s3_port", id="arg-spec-type"),
        pytest.param("lakehouse_host_name: 198.51.100.7\n", {}, "not an IP literal", id="ip-literal-host"),
        pytest.param("minio_replicas: 2\n", {}, "and 1 on a metal host", id="replicas-on-metal"),
    ],
)
def test_minio_bad_input_fails_before_any_change(apply_role, tmp_path, extra_vars, env, message):
    assert_refused_before_any_change(apply_role, tmp_path, "minio", extra_vars, env, message)


def test_minio_default_password_is_never_printed(apply_role):
    _, output = apply_role("minio", "", {"LAKEHOUSE_SECRET_MINIO_ROOT_PASSWORD": "minioadmin"})
    assert "well-known default" in output
    assert "minioadmin" not in output.replace("(minioadmin)", "")


def test_delivery_engine_refuses_to_run_alone(apply_role):
    result, output = apply_role("delivery", "")
    assert result.returncode != 0
    assert "'delivery_service' is undefined" in output
    assert changed_count(output) == 0


@pytest.mark.parametrize(
    ("extra_vars", "env", "message"),
    [
        pytest.param(
            "postgresql_server_name: 192.0.2.20\n", {}, "IP literals are not allowed", id="ip-literal-server-name"
        ),
        pytest.param(
            "",
            {"LAKEHOUSE_SECRET_POSTGRESQL_POSTGRES_PASSWORD": "postgres"},
            "well-known default",
            id="default-password",
        ),
        pytest.param(
            "postgresql_client_networks: ['10.0.0.0/33']\n", {}, "invalid CIDR is refused: 10.0.0.0/33", id="bad-cidr"
        ),
        pytest.param(
            "postgresql_client_networks: ['192.0.2.10']\n",
            {},
            "a single host (bare address, /32, /128) or an invalid CIDR is refused: 192.0.2.10",
            id="single-host-ip",
        ),
        pytest.param(
            "postgresql_users: [{name: postgres}]\n", {}, "the superuser `postgres`", id="superuser-as-declared-user"
        ),
        pytest.param(
            "postgresql_client_networks: [everyone]\n", {}, "invalid CIDR is refused: everyone", id="not-a-range"
        ),
        pytest.param("postgresql_port: many\n", {}, "postgresql_port", id="arg-spec-type"),
    ],
)
def test_postgresql_bad_input_fails_before_any_change(apply_role, tmp_path, extra_vars, env, message):
    assert_refused_before_any_change(apply_role, tmp_path, "postgresql", extra_vars, env, message)


def test_postgresql_default_password_is_never_printed(apply_role):
    _, output = apply_role("postgresql", "", {"LAKEHOUSE_SECRET_POSTGRESQL_POSTGRES_PASSWORD": "postgres"})
    assert "well-known default" in output
    assert "LAKEHOUSE_SECRET_POSTGRESQL_POSTGRES_PASSWORD" not in output
    assert "'postgres'" not in output


# An external object storage and catalog database, declared in the inventory as contracts: the
# catalog role needs nothing else (no host of those groups).
EXTERNAL_CONTRACTS = """\
lakehouse_contracts:
  object_storage:
    schema_version: 1
    service: object_storage
    implementation: s3
    url: https://s3.storage.lakehouse.test
    endpoints:
      - {name: s3, url: "https://s3.storage.lakehouse.test", scheme: https, host: s3.storage.lakehouse.test, port: 443}
    health:
      readiness: {tcp: {host: s3.storage.lakehouse.test, port: 443}}
    region: eu-west-1
    path_style: true
    buckets: [warehouse]
    credentials:
      lakehouse-app: {user: lakehouse-app, secret_ref: "lakehouse_secret:s3/users/lakehouse-app", kind: s3_secret_key}
  catalog_db:
    schema_version: 1
    service: catalog_db
    implementation: postgresql
    url: postgresql://db.lakehouse.test:5432/
    endpoints:
      - name: postgresql
        url: postgresql://db.lakehouse.test:5432/
        scheme: postgresql
        host: db.lakehouse.test
        port: 5432
    health:
      readiness: {tcp: {host: db.lakehouse.test, port: 5432, protocol: postgresql}}
    sslmode: verify-full
    tls: {ca_ref: /nonexistent/ca.crt}
    databases: [iceberg_catalog]
    credentials:
      iceberg: {user: iceberg, secret_ref: "lakehouse_secret:postgresql/users/iceberg", kind: password}
"""


@pytest.mark.parametrize(
    ("extra_vars", "message"),
    [
        pytest.param("iceberg_catalog_type: nessie\n", "value of iceberg_catalog_type must be one of", id="bad-type"),
        pytest.param("iceberg_catalog_type: hive\n", "needs iceberg_catalog_hive_metastore_uri", id="hive-no-uri"),
        pytest.param(
            "iceberg_catalog_type: hive\niceberg_catalog_hive_metastore_uri: thrift://192.0.2.5:9083\n",
            "IP literals are refused",
            id="hive-ip-literal",
        ),
        pytest.param("iceberg_catalog_type: glue\n", "needs iceberg_catalog_glue_region", id="glue-no-region"),
        pytest.param(
            "iceberg_catalog_type: rest\n", "needs the database nessie and the login role nessie", id="rest-no-db"
        ),
        pytest.param("iceberg_catalog_bucket: lake\n", "must list the bucket lake", id="unknown-bucket"),
    ],
)
def test_catalog_bad_input_fails_before_any_change(apply_role, tmp_path, extra_vars, message):
    assert_refused_before_any_change(
        apply_role, tmp_path, "iceberg_catalog", EXTERNAL_CONTRACTS + extra_vars, {}, message
    )


def test_catalog_without_an_object_storage_contract_names_what_is_missing(apply_role, tmp_path):
    assert_refused_before_any_change(
        apply_role, tmp_path, "iceberg_catalog", "", {}, "no object_storage contract; run the play of the"
    )


def test_glue_catalog_publishes_its_contract_and_installs_nothing(apply_role, tmp_path):
    glue = "iceberg_catalog_type: glue\niceberg_catalog_glue_region: eu-west-1\n"
    glue += f"ansible_python_interpreter: {sys.executable}\n"  # modules run on the controller
    result, output = apply_role("iceberg_catalog", EXTERNAL_CONTRACTS + glue)
    assert result.returncode == 0, output[-3000:]
    contract = json.loads((tmp_path / "state" / "contracts" / "preflight.lakehouse.test" / "catalog.json").read_text())
    assert contract["type"] == "glue" and contract["glue"] == {"region": "eu-west-1", "catalog_id": ""}
    assert contract["object_storage"]["endpoint"] == "https://s3.storage.lakehouse.test"
    assert "lakehouse-nessie" not in output and not (tmp_path / "secrets" / "nessie").exists()


def test_trino_without_a_catalog_contract_names_what_is_missing(apply_role, tmp_path):
    assert_refused_before_any_change(apply_role, tmp_path, "trino", "", {}, "no catalog contract; run the play of")


def test_trino_reads_a_catalog_contract_only_in_the_schema_shape(apply_role, tmp_path):
    # The shape before schema_version 1: a JDBC password reference in the jdbc section.
    old = "lakehouse_contracts:\n  catalog: {service: catalog, type: jdbc, url: 'postgresql://db.lakehouse.test/x'}\n"
    assert_refused_before_any_change(
        apply_role,
        tmp_path,
        "trino",
        old,
        {},
        "the catalog contract of the inventory (lakehouse_contracts.catalog) is invalid: schema_version: is required",
    )


# --- contracts: every role's, rendered from its defaults, has its layer's shape -------------------

sys.path.insert(0, str(REPO))
from module_utils import lakehouse_contract  # noqa: E402

# The contract variables of each role and the layer each is published as.
CONTRACT_VARIABLES = [
    ("minio", "minio_contract", "object_storage", {}),
    ("postgresql", "postgresql_contract", "catalog_db", {}),
    ("iceberg_catalog", "iceberg_catalog_contract", "catalog", {"iceberg_catalog_type": "rest"}),
    ("iceberg_catalog", "iceberg_catalog_contract", "catalog", {"iceberg_catalog_type": "jdbc"}),
    (
        "iceberg_catalog",
        "iceberg_catalog_contract",
        "catalog",
        {
            "iceberg_catalog_type": "hive",
            "iceberg_catalog_hive_metastore_uri": "thrift://metastore.lakehouse.test:9083",
        },
    ),
    (
        "iceberg_catalog",
        "iceberg_catalog_contract",
        "catalog",
        {"iceberg_catalog_type": "glue", "iceberg_catalog_glue_region": "eu-west-1"},
    ),
    ("trino", "trino_contract", "query", {}),
    ("trino", "trino_worker_contract", "query_worker", {}),
]


def the_layers_read(base: dict) -> dict:
    """External contracts for what the roles read: the object storage, the catalog database, a catalog."""
    import yaml

    contracts = yaml.safe_load(base)["lakehouse_contracts"]
    nessie = {"user": "nessie", "secret_ref": "lakehouse_secret:postgresql/users/nessie", "kind": "password"}
    contracts["catalog_db"]["credentials"]["nessie"] = nessie
    contracts["catalog_db"]["databases"].append("nessie")
    contracts["catalog"] = {
        "schema_version": 1,
        "service": "catalog",
        "implementation": "aws-glue",
        "url": "https://glue.eu-west-1.amazonaws.com",
        "endpoints": [
            {
                "name": "glue",
                "url": "https://glue.eu-west-1.amazonaws.com",
                "scheme": "https",
                "host": "glue.eu-west-1.amazonaws.com",
                "port": 443,
            }
        ],
        "health": {"readiness": {"tcp": {"host": "glue.eu-west-1.amazonaws.com", "port": 443}}},
        "type": "glue",
        "name": "lakehouse",
        "warehouse": "s3://warehouse/glue",
        "glue": {"region": "eu-west-1", "catalog_id": ""},
        "object_storage": {
            "endpoint": "https://s3.storage.lakehouse.test",
            "region": "eu-west-1",
            "path_style": True,
            "credentials": contracts["object_storage"]["credentials"]["lakehouse-app"],
        },
    }
    return {"lakehouse_contracts": contracts}


@pytest.fixture(scope="module", params=["systemd", "helm"])
def rendered_contracts(request, tmp_path_factory):
    """Every contract variable of CONTRACT_VARIABLES, rendered by Ansible from the roles' defaults and vars."""
    tmp = tmp_path_factory.mktemp(f"contracts-{request.param}")
    files = [
        "roles/lakehouse/defaults/main/site.yml",
        "roles/lakehouse/defaults/main/artifacts.yml",
        "roles/lakehouse/vars/main.yml",
        "roles/pki/defaults/main.yml",
        "roles/pki/vars/main.yml",
    ]
    roles = dict.fromkeys(role for role, *_ in CONTRACT_VARIABLES)
    files += [f"roles/{role}/{kind}/main.yml" for role in roles for kind in ("defaults", "vars")]
    tasks = [
        {
            "name": f"Render {variable} {index}",
            "ansible.builtin.copy": {"content": f"{{{{ {variable} | to_nice_json }}}}", "dest": f"{tmp}/{index}.json"},
            "vars": extra,
        }
        for index, (_, variable, _, extra) in enumerate(CONTRACT_VARIABLES)
    ]
    play = [{"hosts": "all", "gather_facts": False, "vars_files": [str(REPO / f) for f in files], "tasks": tasks}]
    (tmp / "play.yml").write_text(json.dumps(play))
    (tmp / "hosts.yml").write_text(
        json.dumps({"all": {"children": {"query_coordinator": {"hosts": {"preflight.lakehouse.test": {}}}}}})
    )
    settings = {"lakehouse_delivery": request.param, "ansible_python_interpreter": sys.executable}
    (tmp / "vars.json").write_text(json.dumps(the_layers_read(EXTERNAL_CONTRACTS) | settings))
    result = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(tmp / "hosts.yml"),
            "-c",
            "local",
            "-e",
            f"@{tmp / 'vars.json'}",
            str(tmp / "play.yml"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "LAKEHOUSE_SECRETS_DIR": str(tmp / "secrets"), "ANSIBLE_NOCOLOR": "1"},
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return request.param, [json.loads((tmp / f"{index}.json").read_text()) for index in range(len(CONTRACT_VARIABLES))]


@pytest.mark.parametrize(
    "index",
    range(len(CONTRACT_VARIABLES)),
    ids=lambda i: "-".join(
        [CONTRACT_VARIABLES[i][1], *CONTRACT_VARIABLES[i][3].get("iceberg_catalog_type", "").split()]
    ),
)
def test_every_role_contract_matches_its_layer_schema(rendered_contracts, index):
    delivery, contracts = rendered_contracts
    _, _, layer, _ = CONTRACT_VARIABLES[index]
    contract = contracts[index]
    assert lakehouse_contract.problem(contract, layer) is None, contract
    assert contract["schema_version"] == 1 and contract["service"] == layer
    assert contract["url"] == contract["endpoints"][0]["url"]
    if delivery == "helm" and layer != "catalog":
        # A cluster publishes its Service's DNS name.
        assert contract["endpoints"][0]["host"].endswith(".lakehouse.svc.cluster.local"), contract["endpoints"]


def test_publishing_refuses_a_contract_of_another_shape_before_writing_it(tmp_path):
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          tasks:
            - ansible.builtin.include_role:
                name: lakehouse
                tasks_from: publish
              vars:
                lakehouse_contract_service: query_worker
                lakehouse_contract:
                  schema_version: 1
                  service: query_worker
                  implementation: trino
                  url: https://worker-1.lakehouse.test:8443
                  endpoints:
                    - name: https
                      url: https://worker-1.lakehouse.test:8443
                      scheme: https
                      host: 192.0.2.8
                      port: 8443
                  health: {readiness: {url: "https://worker-1.lakehouse.test:8443/v1/info"}}
                  coordinator: https://coordinator-1.lakehouse.test:8443
        """)
    )
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "preflight.lakehouse.test,", "-c", "local", str(playbook)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "LAKEHOUSE_STATE_DIR": str(tmp_path / "state"), "ANSIBLE_NOCOLOR": "1"},
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        "The query_worker contract of preflight.lakehouse.test does not match"
        " roles/lakehouse/files/contracts/query_worker.schema.json:"
        " endpoints[0].host: must be a DNS name (an IP literal is refused) (got '192.0.2.8')" in output
    ), output[-3000:]
    # Refused by the task that would publish it: neither a host fact nor a file on the controller.
    assert "TASK [lakehouse : Publish as a host fact the contract of query_worker]" in output
    assert not (tmp_path / "state").exists()
