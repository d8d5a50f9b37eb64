#!/usr/bin/python

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lakehouse_minio_user
short_description: Manage a MinIO user and the policies attached to it
description:
  - Creates, updates or deletes a user of MinIO's built-in identity provider through the
    MinIO admin API, enables or disables it, and makes the set of policies attached to it
    equal to O(policies).
  - MinIO never returns a user's secret. With O(update_secret=on_create) the secret is only
    set when the user is created. With O(update_secret=always) the module signs a request as
    the user to find out whether the secret is already right, and only sets it when it is not
    (or when the user is disabled, since a disabled user cannot sign requests).
options:
  name:
    description:
      - Access key (user name) of the user.
    type: str
    required: true
  secret:
    description:
      - Secret key of the user. Never logged, returned or shown in a diff.
      - Required to create the user, and with O(update_secret=always).
    type: str
  policies:
    description:
      - Names of the policies attached to the user. Policies not listed are detached.
      - Omit it to leave the attached policies as they are; V([]) detaches all of them.
      - The policies must exist (see M(lakehouse_minio_policy)).
    type: list
    elements: str
  update_secret:
    description:
      - V(on_create) sets the secret only when the user is created.
      - V(always) also resets it on an existing user whose secret differs from O(secret).
    type: str
    choices: [on_create, always]
    default: on_create
  enabled:
    description:
      - Whether the user may sign requests.
    type: bool
    default: true
  state:
    description:
      - V(present) creates or updates the user, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - lakehouse_s3
seealso:
  - module: lakehouse_minio_policy
  - module: lakehouse_s3_bucket
author: Lakehouse bootstrap maintainers
"""

EXAMPLES = r"""
- name: Create the Trino service user with read/write access to the warehouse
  lakehouse_minio_user:
    endpoint: https://minio-1.lakehouse.test:9000
    access_key: "{{ minio_root_user }}"
    secret_key: "{{ minio_root_password }}"
    ca_path: /etc/lakehouse/pki/ca.crt
    name: trino
    secret: "{{ trino_s3_secret }}"
    policies: [warehouse-rw]

- name: Rotate the Spark user's secret to the one in the vault
  lakehouse_minio_user:
    endpoint: https://minio-1.lakehouse.test:9000
    access_key: "{{ minio_root_user }}"
    secret_key: "{{ minio_root_password }}"
    ca_path: /etc/lakehouse/pki/ca.crt
    name: spark
    secret: "{{ spark_s3_secret }}"
    update_secret: always

- name: Lock out a user without deleting it
  lakehouse_minio_user:
    endpoint: https://minio-1.lakehouse.test:9000
    access_key: "{{ minio_root_user }}"
    secret_key: "{{ minio_root_password }}"
    ca_path: /etc/lakehouse/pki/ca.crt
    name: legacy-etl
    enabled: false
"""

RETURN = r"""
name:
  description: Access key (user name) of the user.
  returned: always
  type: str
  sample: trino
enabled:
  description: Whether the user is enabled after the run.
  returned: when O(state=present)
  type: bool
  sample: true
policies:
  description: Sorted names of the policies attached to the user after the run.
  returned: when O(state=present)
  type: list
  elements: str
  sample: [warehouse-rw]
secret_updated:
  description: Whether the user's secret was set (or, in check mode, would be set).
  returned: always
  type: bool
  sample: false
"""

import json

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.lakehouse_s3 import (
    HAS_MINIO,
    MINIO_IMPORT_ERROR,
    admin_client,
    admin_error_code,
    client_errors,
    s3_argument_spec,
)

if HAS_MINIO:
    from minio.error import MinioAdminException

# Answers to a request signed as the user that mean "not this secret" rather than a fault.
SECRET_MISMATCH_CODES = (
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "XMinioAccessKeyDisabled",
)


def read_user(admin, name):
    """The user as the module's state dict (never with its secret)."""
    try:
        info = json.loads(admin.user_info(name))
    except MinioAdminException as exc:
        if admin_error_code(exc) == "XMinioAdminNoSuchUser":
            return {"name": name, "state": "absent"}
        raise
    policies = sorted(p for p in info.get("policyName", "").split(",") if p)
    return {
        "name": name,
        "state": "present",
        "enabled": info.get("status") == "enabled",
        "policies": policies,
    }


def secret_matches(module, name, secret):
    """Whether `secret` is the user's current secret, found by signing a request as the user."""
    user = admin_client(module, access_key=name, secret_key=secret)
    try:
        # accountinfo is open to every authenticated user, whatever their policies.
        user.account_info()
    except MinioAdminException as exc:
        if admin_error_code(exc) in SECRET_MISMATCH_CODES:
            return False
        raise
    return True


def main():
    argument_spec = s3_argument_spec()
    argument_spec.update(
        name={"type": "str", "required": True},
        secret={"type": "str", "no_log": True},
        policies={"type": "list", "elements": "str"},
        update_secret={
            "type": "str",
            "default": "on_create",
            "choices": ["on_create", "always"],
            "no_log": False,
        },
        enabled={"type": "bool", "default": True},
        state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("update_secret", "always", ["secret"])],
        supports_check_mode=True,
    )
    if not HAS_MINIO:
        module.fail_json(
            msg=missing_required_lib("minio"),
            exception=MINIO_IMPORT_ERROR,
        )

    params = module.params
    name = params["name"]
    admin = admin_client(module)
    result = {"changed": False, "name": name, "secret_updated": False}

    with client_errors(module, f"reading user {name}"):
        before = read_user(admin, name)
    exists = before["state"] == "present"

    if params["state"] == "absent":
        after = {"name": name, "state": "absent"}
        if exists and not module.check_mode:
            with client_errors(module, f"deleting user {name}"):
                admin.user_remove(name)
    else:
        policies = before.get("policies", [])
        if params["policies"] is not None:
            policies = sorted(set(params["policies"]))
        after = {
            "name": name,
            "state": "present",
            "enabled": params["enabled"],
            "policies": policies,
        }
        if not exists and not params["secret"]:
            module.fail_json(msg=f"creating user {name} needs secret")
        set_secret = not exists
        if exists and params["update_secret"] == "always":  # noqa: S105 (a mode, not a secret)
            # A disabled user cannot sign requests, so its secret cannot be checked: set it.
            with client_errors(module, f"checking the secret of user {name}"):
                secret = params["secret"]
                matches = before["enabled"] and secret_matches(module, name, secret)
            set_secret = not matches
        result.update(
            enabled=after["enabled"],
            policies=policies,
            secret_updated=set_secret,
        )

        if not module.check_mode:
            with client_errors(module, f"updating user {name}"):
                # add-user creates the user or overwrites its secret; it keeps the attached
                # policies but always enables the user, hence the status step after it.
                if set_secret:
                    admin.user_add(name, params["secret"])
                is_enabled = set_secret or before["enabled"]
                if after["enabled"] != is_enabled:
                    if after["enabled"]:
                        admin.user_enable(name)
                    else:
                        admin.user_disable(name)
                attached, wanted = set(before.get("policies", [])), set(policies)
                # Attach before detaching so a client of this user never loses access mid-change.
                if wanted - attached:
                    admin.attach_policy(sorted(wanted - attached), user=name)
                if attached - wanted:
                    admin.detach_policy(sorted(attached - wanted), user=name)

    result["changed"] = before != after or result["secret_updated"]
    if module._diff:
        # The secret is deliberately absent from both sides.
        result["diff"] = {"before": before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
