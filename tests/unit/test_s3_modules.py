"""lakehouse_s3_bucket, lakehouse_minio_user and lakehouse_minio_policy against a real MinIO.

A MinIO server (the cached `minio` artifact) runs on 127.0.0.1 for the whole session; a second
one with TLS from a test CA checks ca_path and validate_certs. Every test reads the server's
state with the minio library directly, so a module that reports a change it did not make (or
makes one in check mode) fails.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from unittest import mock

import pytest
import yaml
from ansible.module_utils import basic
from conftest import ModuleExit, load_source
from minio import Minio, MinioAdmin
from minio.credentials import StaticProvider
from minio.error import MinioAdminException
from minio_server import MinioServer, free_port

LIBRARY = Path(__file__).resolve().parents[2] / "library"
BUCKET = "lakehouse_s3_bucket"
USER = "lakehouse_minio_user"
POLICY = "lakehouse_minio_policy"


def read_doc(bucket):
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            },
        ],
    }


def unique(prefix):
    """A fresh bucket/user/policy name, so tests sharing one server never collide."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def new_secret(prefix="s3cret"):
    """A fresh user secret (MinIO wants 8 to 40 characters)."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
def minio_server(artifact, tmp_path_factory):
    server = MinioServer(artifact("minio"), tmp_path_factory.mktemp("minio")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_server(artifact, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("minio-tls")
    server = MinioServer(artifact("minio"), workdir, tls=True)
    yield server.start()
    server.stop()


@pytest.fixture
def conn(minio_server):
    """Connection arguments for the modules, as the root user."""
    return {
        "endpoint": minio_server.endpoint,
        "access_key": minio_server.root_user,
        "secret_key": minio_server.root_password,
    }


def _netloc(endpoint):
    return endpoint.split("://", 1)[1]


@pytest.fixture
def s3(minio_server):
    """An independent S3 client to observe what the modules did."""
    return Minio(
        _netloc(minio_server.endpoint),
        access_key=minio_server.root_user,
        secret_key=minio_server.root_password,
        secure=False,
    )


def admin_as(server, access_key, secret_key):
    return MinioAdmin(
        endpoint=_netloc(server.endpoint),
        credentials=StaticProvider(access_key, secret_key),
        secure=False,
    )


@pytest.fixture
def admin(minio_server):
    return admin_as(minio_server, minio_server.root_user, minio_server.root_password)


def run_failing(run_module, name, args, **kwargs):
    """Run a module that must fail; return its result."""
    with pytest.raises(ModuleExit) as caught:
        run_module(name, args, **kwargs)
    assert caught.value.failed
    return caught.value.result


def user_info(admin, name):
    """The user as MinIO reports it, or None."""
    try:
        info = json.loads(admin.user_info(name))
    except MinioAdminException as exc:
        if "XMinioAdminNoSuchUser" in exc._body:
            return None
        raise
    policies = sorted(p for p in info.get("policyName", "").split(",") if p)
    return {"status": info["status"], "policies": policies}


def can_sign_in(server, name, secret):
    """Whether MinIO accepts a request signed with these credentials."""
    try:
        admin_as(server, name, secret).account_info()
    except MinioAdminException:
        return False
    return True


def policy_exists(admin, name):
    try:
        admin.policy_info(name)
    except MinioAdminException as exc:
        if "XMinioAdminNoSuchPolicy" in exc._body:
            return False
        raise
    return True


# --- documentation ---------------------------------------------------------------------


class _SpecCaptured(Exception):
    pass


@pytest.mark.parametrize("name", [BUCKET, USER, POLICY])
def test_documentation_matches_argument_spec(name):
    module = load_source(LIBRARY / f"{name}.py")
    captured = {}

    def capture(self, argument_spec, supports_check_mode=False, **kwargs):
        captured.update(argument_spec, _check_mode=supports_check_mode)
        raise _SpecCaptured

    patched = mock.patch.object(basic.AnsibleModule, "__init__", capture)
    with patched, pytest.raises(_SpecCaptured):
        module.main()
    assert captured.pop("_check_mode") is True

    doc = yaml.safe_load(module.DOCUMENTATION)
    # Shared options come from the documentation fragment, as ansible-doc merges them.
    for fragment in doc.get("extends_documentation_fragment", []):
        path = LIBRARY.parent / "plugins" / "doc_fragments" / f"{fragment}.py"
        fragment_module = load_source(path)
        doc["options"].update(yaml.safe_load(fragment_module.ModuleDocFragment.DOCUMENTATION)["options"])
    assert doc["module"] == name
    assert doc["author"] == "Lakehouse bootstrap maintainers"
    assert set(doc["options"]) == set(captured)
    for option, arg in captured.items():
        documented = doc["options"][option]
        assert documented["type"] == arg.get("type", "str"), option
        assert documented.get("default") == arg.get("default"), option
        assert documented.get("required", False) == arg.get("required", False), option
        assert documented.get("choices") == arg.get("choices"), option
        assert documented.get("elements") == arg.get("elements"), option
    assert yaml.safe_load(module.RETURN)
    for task in yaml.safe_load(module.EXAMPLES):
        assert set(task[name]) <= set(captured), task["name"]


# --- lakehouse_s3_bucket -----------------------------------------------------------------


def test_bucket_create_check_mode_then_create_then_unchanged(run_module, conn, s3):
    name = unique("create")
    args = {**conn, "name": name}

    checked = run_module(BUCKET, args, check_mode=True)
    assert checked["changed"] is True
    assert checked["diff"] == {
        "before": {"name": name, "state": "absent"},
        "after": {"name": name, "state": "present", "versioning": "off"},
    }
    assert not s3.bucket_exists(name), "check mode created the bucket"

    created = run_module(BUCKET, args)
    assert created["changed"] is True
    assert created["versioning"] == "off"
    assert created["diff"] == checked["diff"]
    assert s3.bucket_exists(name)

    again = run_module(BUCKET, args)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]


def test_bucket_create_with_versioning(run_module, conn, s3):
    name = unique("versioned")
    result = run_module(BUCKET, {**conn, "name": name, "versioning": "enabled"})
    assert result["changed"] is True
    assert result["versioning"] == "enabled"
    assert s3.get_bucket_versioning(name).status == "Enabled"


def test_bucket_versioning_changes(run_module, conn, s3):
    name = unique("versioning")
    run_module(BUCKET, {**conn, "name": name})
    enable = {**conn, "name": name, "versioning": "enabled"}

    checked = run_module(BUCKET, enable, check_mode=True)
    assert checked["changed"] is True
    assert checked["diff"]["before"]["versioning"] == "off"
    assert checked["diff"]["after"]["versioning"] == "enabled"
    assert s3.get_bucket_versioning(name).status is None, "check mode changed it"

    assert run_module(BUCKET, enable)["changed"] is True
    assert s3.get_bucket_versioning(name).status == "Enabled"
    assert run_module(BUCKET, enable)["changed"] is False

    suspended = run_module(BUCKET, {**conn, "name": name, "versioning": "suspended"})
    assert suspended["changed"] is True
    assert suspended["diff"]["before"]["versioning"] == "enabled"
    assert suspended["diff"]["after"]["versioning"] == "suspended"
    assert s3.get_bucket_versioning(name).status == "Suspended"

    # Omitting versioning leaves it alone.
    untouched = run_module(BUCKET, {**conn, "name": name})
    assert untouched["changed"] is False
    assert untouched["versioning"] == "suspended"
    assert s3.get_bucket_versioning(name).status == "Suspended"


def test_bucket_absent(run_module, conn, s3):
    name = unique("absent")
    s3.make_bucket(name)
    args = {**conn, "name": name, "state": "absent"}

    checked = run_module(BUCKET, args, check_mode=True)
    assert checked["changed"] is True
    assert checked["diff"]["after"] == {"name": name, "state": "absent"}
    assert s3.bucket_exists(name), "check mode deleted the bucket"

    removed = run_module(BUCKET, args)
    assert removed["changed"] is True
    assert removed["objects_deleted"] == 0
    assert not s3.bucket_exists(name)

    again = run_module(BUCKET, args)
    assert again["changed"] is False
    assert again["diff"] == {
        "before": {"name": name, "state": "absent"},
        "after": {"name": name, "state": "absent"},
    }


def test_bucket_absent_refuses_non_empty_bucket_unless_forced(run_module, conn, s3):
    name = unique("nonempty")
    run_module(BUCKET, {**conn, "name": name, "versioning": "enabled"})
    s3.put_object(name, "keep/live.txt", io.BytesIO(b"live"), 4)
    # A deleted object leaves a version and a delete marker: invisible to a plain listing.
    s3.put_object(name, "gone.txt", io.BytesIO(b"gone"), 4)
    s3.remove_object(name, "gone.txt")
    args = {**conn, "name": name, "state": "absent"}

    failed = run_failing(run_module, BUCKET, args)
    # S3 lists keys in sorted order, so the first one found is gone.txt.
    assert "not empty (it holds 'gone.txt'" in failed["msg"]
    assert "force=true" in failed["msg"]
    assert s3.bucket_exists(name)
    assert s3.stat_object(name, "keep/live.txt").size == 4

    checked = run_module(BUCKET, {**args, "force": True}, check_mode=True)
    assert checked["changed"] is True
    assert checked["objects_deleted"] == 3
    assert s3.stat_object(name, "keep/live.txt").size == 4, "check mode deleted objects"

    forced = run_module(BUCKET, {**args, "force": True})
    assert forced["changed"] is True
    assert forced["objects_deleted"] == 3
    assert not s3.bucket_exists(name)


def test_bucket_absent_refuses_bucket_with_only_old_versions(run_module, conn, s3):
    name = unique("versions")
    run_module(BUCKET, {**conn, "name": name, "versioning": "enabled"})
    s3.put_object(name, "old.txt", io.BytesIO(b"old"), 3)
    s3.remove_object(name, "old.txt")
    assert not list(s3.list_objects(name, recursive=True)), "should look empty"

    failed = run_failing(run_module, BUCKET, {**conn, "name": name, "state": "absent"})
    assert "not empty" in failed["msg"]
    assert s3.bucket_exists(name)


@pytest.mark.parametrize("known_key", [True, False], ids=["bad-secret", "bad-key"])
def test_bucket_bad_credentials(run_module, conn, s3, known_key):
    name = unique("badcreds")
    secret = new_secret("wrong")
    access_key = conn["access_key"] if known_key else unique("nokey")
    args = {**conn, "access_key": access_key, "secret_key": secret, "name": name}

    failed = run_failing(run_module, BUCKET, args)
    # The bucket lookup is a HEAD request: S3 sends no error body, only 403 AccessDenied.
    assert f"reading bucket {name} failed: AccessDenied" in failed["msg"]
    assert "check access_key and secret_key" in failed["msg"]
    assert name in failed["msg"]
    assert secret not in json.dumps(failed)
    assert not s3.bucket_exists(name)


def test_bucket_unreachable_endpoint_fails_clearly(run_module, conn):
    # Nothing listens on a fresh free port: the bounded retries must end in a clear failure.
    args = {
        **conn,
        "endpoint": f"http://127.0.0.1:{free_port()}",
        "name": unique("nowhere"),
    }
    failed = run_failing(run_module, BUCKET, args)
    assert "cannot reach the endpoint" in failed["msg"]
    assert conn["secret_key"] not in json.dumps(failed)


def test_endpoint_with_credentials_is_refused_without_leaking_them(run_module, conn):
    secret = conn["secret_key"]
    endpoint = conn["endpoint"].replace("://", f"://{conn['access_key']}:{secret}@")
    args = {**conn, "endpoint": endpoint, "name": unique("x")}
    failed = run_failing(run_module, BUCKET, args)
    assert "endpoint must be a URL" in failed["msg"]
    assert "********" in failed["msg"]
    assert secret not in failed["msg"]


# --- lakehouse_minio_policy --------------------------------------------------------------


def test_policy_create_check_mode_then_create_then_unchanged(run_module, conn, admin):
    name = unique("policy")
    document = read_doc("warehouse")
    args = {**conn, "name": name, "policy": document}

    checked = run_module(POLICY, args, check_mode=True)
    assert checked["changed"] is True
    assert checked["diff"]["before"] == {"name": name, "state": "absent"}
    assert checked["diff"]["after"]["policy"] == document
    assert not policy_exists(admin, name), "check mode created the policy"

    created = run_module(POLICY, args)
    assert created["changed"] is True
    assert json.loads(admin.policy_info(name))["Statement"] == document["Statement"]

    assert run_module(POLICY, args)["changed"] is False


def test_policy_comparison_is_normalized(run_module, conn, admin):
    name = unique("normalized")
    stored = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": ["arn:aws:s3:::a/*", "arn:aws:s3:::b/*"],
                "Condition": {"Bool": {"aws:SecureTransport": ["true"]}},
            },
        ],
    }
    run_module(POLICY, {**conn, "name": name, "policy": stored})
    # The same policy spelled differently: a lone statement, strings, another order, a bool.
    respelled = {
        "Statement": {
            "Condition": {"Bool": {"aws:SecureTransport": True}},
            "Resource": ["arn:aws:s3:::b/*", "arn:aws:s3:::a/*"],
            "Action": ["s3:PutObject", "s3:GetObject"],
            "Effect": "Allow",
        },
        "Version": "2012-10-17",
    }
    result = run_module(POLICY, {**conn, "name": name, "policy": respelled})
    assert result["changed"] is False, result["diff"]


def test_policy_update(run_module, conn, admin):
    name = unique("update")
    run_module(POLICY, {**conn, "name": name, "policy": read_doc("warehouse")})
    wider = read_doc("warehouse")
    wider["Statement"][0]["Action"] = ["s3:GetObject", "s3:PutObject"]
    args = {**conn, "name": name, "policy": wider}

    checked = run_module(POLICY, args, check_mode=True)
    assert checked["changed"] is True
    before, after = checked["diff"]["before"], checked["diff"]["after"]
    assert before["policy"]["Statement"][0]["Action"] == ["s3:GetObject"]
    assert after["policy"]["Statement"][0]["Action"] == ["s3:GetObject", "s3:PutObject"]
    stored = json.loads(admin.policy_info(name))
    assert stored["Statement"][0]["Action"] == ["s3:GetObject"], "check mode updated it"

    assert run_module(POLICY, args)["changed"] is True
    stored = json.loads(admin.policy_info(name))
    assert sorted(stored["Statement"][0]["Action"]) == ["s3:GetObject", "s3:PutObject"]
    assert run_module(POLICY, args)["changed"] is False


def test_policy_absent(run_module, conn, admin):
    name = unique("gone")
    run_module(POLICY, {**conn, "name": name, "policy": read_doc("warehouse")})
    args = {**conn, "name": name, "state": "absent"}

    checked = run_module(POLICY, args, check_mode=True)
    assert checked["changed"] is True
    assert policy_exists(admin, name), "check mode deleted the policy"

    removed = run_module(POLICY, args)
    assert removed["changed"] is True
    assert removed["diff"]["after"] == {"name": name, "state": "absent"}
    assert not policy_exists(admin, name)

    assert run_module(POLICY, args)["changed"] is False


def test_policy_rejected_document_fails_clearly(run_module, conn, admin):
    name = unique("bad")
    bad = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Maybe", "Action": ["s3:*"]}],
    }
    failed = run_failing(run_module, POLICY, {**conn, "name": name, "policy": bad})
    assert f"writing policy {name} failed" in failed["msg"]
    assert "XMinioMalformedIAMPolicy" in failed["msg"]
    assert not policy_exists(admin, name)


def test_policy_bad_credentials(run_module, conn, admin):
    name = unique("badcreds")
    secret = new_secret("wrong")
    args = {**conn, "secret_key": secret, "name": name, "policy": read_doc("x")}
    failed = run_failing(run_module, POLICY, args)
    assert "SignatureDoesNotMatch" in failed["msg"]
    assert "check access_key and secret_key" in failed["msg"]
    assert secret not in json.dumps(failed)
    assert not policy_exists(admin, name)


# --- lakehouse_minio_user ----------------------------------------------------------------


@pytest.fixture
def policies(run_module, conn):
    """Two fresh policies to attach."""
    names = [unique("pol-a"), unique("pol-b")]
    for name in names:
        run_module(POLICY, {**conn, "name": name, "policy": read_doc(name)})
    return names


def test_user_create_check_mode_then_create_then_unchanged(
    run_module,
    conn,
    admin,
    minio_server,
    policies,
):
    name = unique("user")
    secret = new_secret()
    args = {**conn, "name": name, "secret": secret, "policies": [policies[0]]}

    checked = run_module(USER, args, check_mode=True)
    assert checked["changed"] is True
    assert checked["secret_updated"] is True
    assert checked["diff"] == {
        "before": {"name": name, "state": "absent"},
        "after": {
            "name": name,
            "state": "present",
            "enabled": True,
            "policies": [policies[0]],
        },
    }
    assert user_info(admin, name) is None, "check mode created the user"

    created = run_module(USER, args)
    assert created["changed"] is True
    assert created["policies"] == [policies[0]]
    assert secret not in json.dumps(created), "the secret leaked into the result"
    assert user_info(admin, name) == {"status": "enabled", "policies": [policies[0]]}
    assert can_sign_in(minio_server, name, secret)

    again = run_module(USER, args)
    assert again["changed"] is False
    assert again["secret_updated"] is False
    assert again["diff"]["before"] == again["diff"]["after"]


def test_user_policies_are_made_equal_to_the_list(run_module, conn, admin, policies):
    name = unique("user")
    base = {**conn, "name": name, "secret": new_secret()}
    run_module(USER, {**base, "policies": [policies[0]]})

    swap = {**base, "policies": [policies[1]]}
    checked = run_module(USER, swap, check_mode=True)
    assert checked["changed"] is True
    assert checked["diff"]["before"]["policies"] == [policies[0]]
    assert checked["diff"]["after"]["policies"] == [policies[1]]
    assert user_info(admin, name)["policies"] == [policies[0]], "check mode changed it"

    assert run_module(USER, swap)["changed"] is True
    assert user_info(admin, name)["policies"] == [policies[1]]

    both = {**base, "policies": [policies[1], policies[0], policies[1]]}
    assert run_module(USER, both)["changed"] is True
    assert user_info(admin, name)["policies"] == sorted(policies)
    assert run_module(USER, both)["changed"] is False

    # Omitted: left alone. Empty list: all detached.
    assert run_module(USER, base)["changed"] is False
    assert user_info(admin, name)["policies"] == sorted(policies)
    assert run_module(USER, {**base, "policies": []})["changed"] is True
    assert user_info(admin, name)["policies"] == []


def test_user_enabled(run_module, conn, admin, minio_server):
    name = unique("user")
    secret = new_secret()
    base = {**conn, "name": name, "secret": secret}
    run_module(USER, base)

    disable = {**base, "enabled": False}
    checked = run_module(USER, disable, check_mode=True)
    assert checked["changed"] is True
    assert checked["diff"]["after"]["enabled"] is False
    assert user_info(admin, name)["status"] == "enabled", "check mode disabled the user"

    assert run_module(USER, disable)["changed"] is True
    assert user_info(admin, name)["status"] == "disabled"
    assert not can_sign_in(minio_server, name, secret)
    assert run_module(USER, disable)["changed"] is False

    assert run_module(USER, base)["changed"] is True
    assert user_info(admin, name)["status"] == "enabled"
    assert can_sign_in(minio_server, name, secret)


def test_user_secret_on_create_and_always(
    run_module,
    conn,
    admin,
    minio_server,
    policies,
):
    name = unique("user")
    old, new = new_secret("old"), new_secret("new")
    base = {**conn, "name": name, "policies": [policies[0]]}
    run_module(USER, {**base, "secret": old})

    # on_create (the default) never touches an existing user's secret.
    kept = run_module(USER, {**base, "secret": new})
    assert kept["changed"] is False
    assert kept["secret_updated"] is False
    assert can_sign_in(minio_server, name, old)

    # always with the current secret: verified by signing as the user, so unchanged.
    same = run_module(USER, {**base, "secret": old, "update_secret": "always"})
    assert same["changed"] is False
    assert same["secret_updated"] is False

    rotate = {**base, "secret": new, "update_secret": "always"}
    checked = run_module(USER, rotate, check_mode=True)
    assert checked["changed"] is True
    assert checked["secret_updated"] is True
    assert checked["diff"]["before"] == checked["diff"]["after"]
    assert new not in json.dumps(checked)
    assert old not in json.dumps(checked)
    assert can_sign_in(minio_server, name, old), "check mode changed the secret"

    rotated = run_module(USER, rotate)
    assert rotated["changed"] is True
    assert rotated["secret_updated"] is True
    assert can_sign_in(minio_server, name, new)
    assert not can_sign_in(minio_server, name, old)
    # Setting the secret keeps the attached policies.
    assert user_info(admin, name)["policies"] == [policies[0]]
    assert run_module(USER, rotate)["changed"] is False


def test_user_secret_always_keeps_disabled_user_disabled(
    run_module,
    conn,
    admin,
    minio_server,
):
    name = unique("user")
    args = {
        **conn,
        "name": name,
        "secret": new_secret(),
        "enabled": False,
        "update_secret": "always",
    }
    assert run_module(USER, args)["changed"] is True
    assert user_info(admin, name)["status"] == "disabled"
    # A disabled user's secret cannot be verified, so it is set again: changed, still disabled.
    again = run_module(USER, args)
    assert again["changed"] is True
    assert again["secret_updated"] is True
    assert user_info(admin, name)["status"] == "disabled"
    assert not can_sign_in(minio_server, name, args["secret"])


def test_user_absent(run_module, conn, admin, policies):
    name = unique("user")
    base = {**conn, "name": name}
    run_module(USER, {**base, "secret": new_secret(), "policies": policies})
    args = {**base, "state": "absent"}

    checked = run_module(USER, args, check_mode=True)
    assert checked["changed"] is True
    assert checked["diff"]["before"]["policies"] == sorted(policies)
    assert user_info(admin, name) is not None, "check mode deleted the user"

    assert run_module(USER, args)["changed"] is True
    assert user_info(admin, name) is None

    again = run_module(USER, args)
    assert again["changed"] is False
    assert again["diff"]["before"] == {"name": name, "state": "absent"}


def test_user_create_needs_secret(run_module, conn, admin):
    name = unique("user")
    failed = run_failing(run_module, USER, {**conn, "name": name})
    assert "needs secret" in failed["msg"]
    assert user_info(admin, name) is None


def test_user_unknown_policy_fails_clearly(run_module, conn, admin):
    name = unique("user")
    missing = unique("nosuchpolicy")
    args = {**conn, "name": name, "secret": new_secret(), "policies": [missing]}
    failed = run_failing(run_module, USER, args)
    assert f"updating user {name} failed" in failed["msg"]
    assert "XMinioAdminNoSuchPolicy" in failed["msg"]
    assert args["secret"] not in json.dumps(failed)


def test_attached_policy_cannot_be_deleted(run_module, conn, admin, policies):
    name = unique("user")
    user = {**conn, "name": name, "secret": new_secret(), "policies": policies}
    run_module(USER, user)
    remove = {**conn, "name": policies[0], "state": "absent"}
    failed = run_failing(run_module, POLICY, remove)
    assert "XMinioIAMPolicyInUse" in failed["msg"]
    assert policy_exists(admin, policies[0])


def test_user_bad_credentials(run_module, conn, admin):
    name = unique("user")
    bad_root, user_secret = new_secret("wrong"), new_secret()
    args = {**conn, "secret_key": bad_root, "name": name, "secret": user_secret}
    failed = run_failing(run_module, USER, args)
    assert f"reading user {name} failed" in failed["msg"]
    assert "SignatureDoesNotMatch" in failed["msg"]
    dumped = json.dumps(failed)
    assert bad_root not in dumped
    assert user_secret not in dumped
    assert user_info(admin, name) is None


# --- TLS ---------------------------------------------------------------------------------


def tls_conn(server, **extra):
    return {
        "endpoint": server.endpoint,
        "access_key": server.root_user,
        "secret_key": server.root_password,
        **extra,
    }


def test_tls_with_ca_path(run_module, tls_server):
    assert tls_server.endpoint.startswith("https://localhost:")
    args = tls_conn(tls_server, ca_path=str(tls_server.ca_path), name=unique("tls"))
    assert run_module(BUCKET, args)["changed"] is True
    assert run_module(BUCKET, args)["changed"] is False

    policy = unique("tls-policy")
    doc = {**tls_conn(tls_server, ca_path=str(tls_server.ca_path)), "name": policy}
    assert run_module(POLICY, {**doc, "policy": read_doc("tls")})["changed"] is True
    user = {**doc, "name": unique("tls-user"), "secret": new_secret()}
    # update_secret=always signs a request as the user, through the same TLS settings.
    user.update(policies=[policy], update_secret="always")
    assert run_module(USER, user)["changed"] is True
    assert run_module(USER, user)["changed"] is False


def test_tls_untrusted_certificate_fails_clearly(run_module, tls_server):
    # Without ca_path the system trust store is used, which does not know the test CA.
    args = tls_conn(tls_server, name=unique("untrusted"))
    failed = run_failing(run_module, BUCKET, args)
    assert "CERTIFICATE_VERIFY_FAILED" in failed["msg"]
    assert tls_server.root_password not in json.dumps(failed)


def test_tls_validate_certs_false(run_module, tls_server):
    args = tls_conn(tls_server, validate_certs=False, name=unique("insecure"))
    assert run_module(BUCKET, args)["changed"] is True


def test_ca_path_must_exist(run_module, tls_server, tmp_path):
    args = tls_conn(tls_server, ca_path=str(tmp_path / "missing.crt"), name=unique("x"))
    failed = run_failing(run_module, BUCKET, args)
    assert "is not a file" in failed["msg"]
