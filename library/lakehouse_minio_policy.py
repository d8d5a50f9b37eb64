#!/usr/bin/python

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lakehouse_minio_policy
short_description: Manage a MinIO IAM policy
description:
  - Creates, updates or deletes a named IAM policy (a "canned policy") on a MinIO server
    through the MinIO admin API.
  - The stored document is compared with O(policy) after normalization (key order, a single
    string versus a one-element list, the order of actions and resources, duplicate
    statements, condition values as strings), so MinIO's own rewriting of a document does
    not show up as a change.
options:
  name:
    description:
      - Name of the policy.
    type: str
    required: true
  policy:
    description:
      - The IAM policy document, as a dictionary.
      - Required when O(state=present).
    type: dict
  state:
    description:
      - V(present) creates or updates the policy, V(absent) deletes it.
      - MinIO refuses to delete a policy that is still attached to a user or group.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - lakehouse_s3
seealso:
  - module: lakehouse_minio_user
  - module: lakehouse_s3_bucket
author: Lakehouse bootstrap maintainers
"""

EXAMPLES = r"""
- name: Let the Trino service read and write the warehouse bucket
  lakehouse_minio_policy:
    endpoint: https://minio-1.lakehouse.test:9000
    access_key: "{{ minio_root_user }}"
    secret_key: "{{ minio_root_password }}"
    ca_path: /etc/lakehouse/pki/ca.crt
    name: warehouse-rw
    policy:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Action: ["s3:ListBucket", "s3:GetBucketLocation"]
          Resource: ["arn:aws:s3:::warehouse"]
        - Effect: Allow
          Action: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
          Resource: ["arn:aws:s3:::warehouse/*"]

- name: Delete a policy that is no longer attached to anyone
  lakehouse_minio_policy:
    endpoint: https://minio-1.lakehouse.test:9000
    access_key: "{{ minio_root_user }}"
    secret_key: "{{ minio_root_password }}"
    ca_path: /etc/lakehouse/pki/ca.crt
    name: legacy-rw
    state: absent
"""

RETURN = r"""
name:
  description: Name of the policy.
  returned: always
  type: str
  sample: warehouse-rw
policy:
  description: The normalized policy document after the run.
  returned: when O(state=present)
  type: dict
  sample:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Action: ["s3:GetObject"]
        Resource: ["arn:aws:s3:::warehouse/*"]
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

# Statement keys whose value may be a string or a list of strings, in any order.
LIST_KEYS = ("Action", "NotAction", "Resource", "NotResource")


def _string(value):
    # MinIO stores condition values as strings: false -> "false", 10 -> "10".
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sorted_strings(value):
    values = value if isinstance(value, list) else [value]
    return sorted({_string(item) for item in values})


def _normalize_statement(statement):
    statement = dict(statement)
    for key in LIST_KEYS:
        if key in statement:
            statement[key] = _sorted_strings(statement[key])
    if "Condition" in statement:
        statement["Condition"] = {
            operator: {key: _sorted_strings(value) for key, value in values.items()}
            for operator, values in statement["Condition"].items()
        }
    return statement


def normalize(document):
    """A canonical form of an IAM policy document, for comparison only."""
    document = dict(document)
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    # Statements are an unordered set in IAM evaluation, and MinIO drops duplicates.
    unique = {json.dumps(_normalize_statement(s), sort_keys=True) for s in statements}
    document["Statement"] = [json.loads(s) for s in sorted(unique)]
    return document


def read_policy(admin, name):
    """The stored policy document, or None when there is no such policy."""
    try:
        return json.loads(admin.policy_info(name))
    except MinioAdminException as exc:
        if admin_error_code(exc) == "XMinioAdminNoSuchPolicy":
            return None
        raise


def main():
    argument_spec = s3_argument_spec()
    argument_spec.update(
        name={"type": "str", "required": True},
        policy={"type": "dict"},
        state={"type": "str", "default": "present", "choices": ["present", "absent"]},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ["policy"])],
        supports_check_mode=True,
    )
    if not HAS_MINIO:
        module.fail_json(
            msg=missing_required_lib("minio"),
            exception=MINIO_IMPORT_ERROR,
        )

    name = module.params["name"]
    state = module.params["state"]
    admin = admin_client(module)
    result = {"changed": False, "name": name}

    with client_errors(module, f"reading policy {name}"):
        stored = read_policy(admin, name)
    before = {"name": name, "state": "absent"}
    if stored is not None:
        before = {"name": name, "state": "present", "policy": normalize(stored)}

    if state == "absent":
        after = {"name": name, "state": "absent"}
        if stored is not None and not module.check_mode:
            with client_errors(module, f"deleting policy {name}"):
                admin.policy_remove(name)
    else:
        document = dict(module.params["policy"])
        # IAM allows a lone statement object; MinIO only accepts a list.
        if isinstance(document.get("Statement"), dict):
            document["Statement"] = [document["Statement"]]
        try:
            wanted = normalize(document)
        except (AttributeError, TypeError, ValueError) as exc:
            module.fail_json(msg=f"policy is not an IAM policy document: {exc}")
        after = {"name": name, "state": "present", "policy": wanted}
        if after != before and not module.check_mode:
            # Otherwise sent as given: MinIO validates it and stores its own canonical form.
            with client_errors(module, f"writing policy {name}"):
                admin.policy_add(name, policy=document)
        result["policy"] = after["policy"]

    result["changed"] = before != after
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
