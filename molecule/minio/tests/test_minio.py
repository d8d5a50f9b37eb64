"""MinIO distributed over two systemd test hosts, checked from the hosts and from the controller.

Controller-side checks use only the published object storage contract and the secret store,
as any consumer would.
"""

from __future__ import annotations

import io
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import urllib3
from minio import Minio

sys.path.insert(0, os.environ["MOLECULE_PROJECT_DIRECTORY"])
from lakehouse_cli.contracts import resolve_secret  # noqa: E402
from module_utils import lakehouse_contract  # noqa: E402

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
SECRETS = EPHEMERAL / "secrets"
HOST = "minio-1.molecule.lakehouse.test"


@pytest.fixture(scope="module")
def contract():
    data = json.loads((EPHEMERAL / "state" / "contracts" / HOST / "object_storage.json").read_text())
    lakehouse_contract.check(data, "object_storage")
    return data


def s3_endpoint(contract) -> dict:
    [endpoint] = contract["endpoints"]
    assert endpoint["name"] == "s3"
    return endpoint


def secret(ref: str) -> str:
    """Resolve a credential reference as every consumer does (the lakehouse command's resolver)."""
    return resolve_secret(ref, SECRETS)


@pytest.fixture(scope="module")
def tls(contract):
    return ssl.create_default_context(cafile=contract["tls"]["ca_ref"])


def status(url: str, context: ssl.SSLContext, headers: dict | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def client(contract, access_key: str, secret_key: str) -> Minio:
    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=contract["tls"]["ca_ref"], retries=1)
    return Minio(
        f"{s3_endpoint(contract)['host']}:{s3_endpoint(contract)['port']}",
        access_key=access_key,
        secret_key=secret_key,
        secure=True,
        region=contract["region"],
        http_client=pool,
    )


def root_client(contract) -> Minio:
    admin = contract["credentials"]["admin"]
    assert admin["kind"] == "s3_secret_key"
    return client(contract, secret(admin["user_ref"]), secret(admin["secret_ref"]))


def test_unit_is_active_and_enabled(host):
    unit = host.service("lakehouse-minio")
    assert unit.is_running
    assert unit.is_enabled


def test_unit_passes_systemd_verification_and_is_hardened(host):
    verify = host.run("systemd-analyze verify /etc/systemd/system/lakehouse-minio.service")
    assert verify.rc == 0, verify.stderr
    score = host.check_output("systemd-analyze security lakehouse-minio.service --no-pager | tail -n 1")
    exposure = float(score.split("level for lakehouse-minio.service:")[1].split()[0])
    assert exposure <= 2.0, score


def test_runs_as_its_own_user_with_private_secrets(host):
    assert host.process.get(comm="minio").user == "minio"
    for path in ("/etc/minio/minio.env", "/etc/minio/certs/private.key"):
        secret_file = host.file(path)
        assert secret_file.user == "minio"
        assert secret_file.mode == 0o600, path


def test_tls_port_listening_and_plain_http_refused(host, contract):
    port = s3_endpoint(contract)["port"]
    assert host.socket(f"tcp://{port}").is_listening
    plain = host.run(f"curl -s -o /dev/null -w '%{{http_code}}' http://{HOST}:{port}/minio/health/live")
    assert plain.stdout.strip() in ("000", "400"), "plain HTTP must not be served"


def test_health_endpoints_answer_without_credentials(contract, tls):
    assert status(contract["health"]["liveness"]["url"], tls) == 200
    assert status(contract["health"]["readiness"]["url"], tls) == 200


def test_certificate_is_issued_for_the_dns_name(contract, tls):
    wrong_name = contract["url"].replace(HOST, "localhost")
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(wrong_name + "/minio/health/live", context=tls, timeout=10)


def test_anonymous_request_is_refused(contract, tls):
    assert status(f"{contract['url']}/warehouse/", tls) == 403
    assert status(f"{contract['url']}/", tls) == 403


def test_default_credentials_are_refused(contract):
    with pytest.raises(Exception, match="InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied"):
        client(contract, "minioadmin", "minioadmin").list_buckets()


def test_authenticated_round_trip_with_generated_credentials(contract):
    s3 = root_client(contract)
    key = f"molecule/{uuid.uuid4()}.txt"
    payload = b"lakehouse round trip\n"
    s3.put_object("warehouse", key, io.BytesIO(payload), len(payload))
    try:
        assert s3.get_object("warehouse", key).read() == payload
    finally:
        s3.remove_object("warehouse", key)


def test_declared_buckets_policies_and_users(contract):
    s3 = root_client(contract)
    assert s3.bucket_exists("warehouse")
    assert s3.bucket_exists("scratch")
    assert s3.get_bucket_versioning("warehouse").status == "Enabled"
    assert sorted(contract["buckets"]) == ["scratch", "warehouse"]
    payload = b"readable by reader\n"
    s3.put_object("warehouse", "shared/reader.txt", io.BytesIO(payload), len(payload))
    reader = client(contract, "reader", (SECRETS / "minio" / "users" / "reader").read_text().strip())
    try:
        assert reader.get_object("warehouse", "shared/reader.txt").read() == payload
        with pytest.raises(Exception, match="AccessDenied"):
            reader.put_object("warehouse", "denied.txt", io.BytesIO(b"x"), 1)
        with pytest.raises(Exception, match="AccessDenied"):
            reader.list_objects("scratch").__next__()
    finally:
        s3.remove_object("warehouse", "shared/reader.txt")


def test_metrics_need_a_bearer_token(host, contract, tls):
    [metrics] = contract["metrics"]
    assert metrics["auth"] == "bearer"
    assert status(metrics["url"], tls) == 403
    # The token is signed with the credential the contract names for the scraper.
    credentials = metrics["credentials"]
    user = credentials["user"] if "user" in credentials else secret(credentials["user_ref"])
    password = secret(metrics["credentials"]["secret_ref"])
    # mc on the host is the documented way to mint a scrape token (ephemeral test credentials).
    alias = f"MC_HOST_lakehouse=https://{user}:{password}@{HOST}:{s3_endpoint(contract)['port']}"
    generated = host.run(f"{alias} mc --json admin prometheus generate lakehouse")
    assert generated.rc == 0, "mc admin prometheus generate failed"
    token = json.loads(generated.stdout)["bearerToken"]
    assert status(metrics["url"], tls, {"Authorization": f"Bearer {token}"}) == 200


def test_rendered_config_names_hosts_not_addresses(host):
    files = "/etc/minio/minio.env /etc/systemd/system/lakehouse-minio.service"
    rendered = host.run(rf"grep -rhoE '([0-9]{{1,3}}\.){{3}}[0-9]{{1,3}}' {files}")
    assert rendered.stdout.strip() == "", f"IP literal in rendered config: {rendered.stdout}"


# --- one deployment across the two hosts ---------------------------------------------------------

SECOND = "minio-2.molecule.lakehouse.test"
LOST_DRIVE = "/var/lib/minio/data2"


def on(host_name: str, command: str) -> subprocess.CompletedProcess:
    """A command on a scenario host (its container), outside the service's own view."""
    return subprocess.run(["docker", "exec", host_name, "sh", "-c", command], capture_output=True, text=True)


def test_both_hosts_serve_one_deployment_across_four_drives(contract):
    admin = contract["credentials"]["admin"]
    alias = f"MC_HOST_pool=https://{secret(admin['user_ref'])}:{secret(admin['secret_ref'])}@{HOST}:{s3_endpoint(contract)['port']}"
    info = on(HOST, f"{alias} mc --json admin info pool")
    assert info.returncode == 0, info.stderr
    servers = json.loads(info.stdout)["info"]["servers"]
    assert sorted(s["endpoint"].split(":")[0] for s in servers) == [HOST, SECOND]
    drives = [d for s in servers for d in s["drives"]]
    assert len(drives) == 4 and {d["state"] for d in drives} == {"ok"}, drives
    # An object written through one host is read through the other.
    payload = b"one deployment\n"
    root_client(contract).put_object("scratch", "pool.txt", io.BytesIO(payload), len(payload))
    other = json.loads(json.dumps(contract).replace(HOST, SECOND))
    try:
        assert root_client(other).get_object("scratch", "pool.txt").read() == payload
    finally:
        root_client(contract).remove_object("scratch", "pool.txt")


def test_a_lost_drive_loses_no_object_and_heals(contract):
    """A drive of the second host replaced by an empty one: every object still reads back whole
    (erasure coding), and MinIO heals the new drive by itself (bounded wait; the time is printed)."""
    s3 = root_client(contract)
    objects = {f"heal/{i:02d}.bin": os.urandom(64 * 1024) for i in range(20)}
    for key, data in objects.items():
        s3.put_object("scratch", key, io.BytesIO(data), len(data))
    try:
        emptied = on(SECOND, f"find {LOST_DRIVE} -mindepth 1 -delete")
        assert emptied.returncode == 0, emptied.stderr
        lost_at = time.monotonic()
        other = root_client(json.loads(json.dumps(contract).replace(HOST, SECOND)))
        assert {key: other.get_object("scratch", key).read() for key in objects} == objects
        present = " && ".join(f"test -e {LOST_DRIVE}/scratch/{key}/xl.meta" for key in objects)
        deadline = lost_at + 300
        while on(SECOND, present).returncode != 0:
            assert time.monotonic() < deadline, "the replaced drive was not healed within 300 s"
            time.sleep(2)
        print(f"lost drive healed in {time.monotonic() - lost_at:.1f} s ({len(objects)} objects, none lost)")
    finally:
        for key in objects:
            s3.remove_object("scratch", key)
