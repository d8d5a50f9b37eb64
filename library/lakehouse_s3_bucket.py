#!/usr/bin/python

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lakehouse_s3_bucket
short_description: Manage an S3 bucket and its versioning
description:
  - Creates or deletes a bucket on an S3-compatible endpoint (MinIO, Ceph RGW, AWS S3, ...) and
    sets its versioning state.
  - Uses the plain S3 API only, so it works against any S3-compatible endpoint.
  - Deleting a bucket that still holds objects (or object versions, or delete markers) fails
    unless O(force=true), so nothing is lost by accident.
options:
  name:
    description:
      - Name of the bucket.
    type: str
    required: true
  state:
    description:
      - V(present) creates the bucket if it does not exist, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  versioning:
    description:
      - Versioning state of the bucket. Omit it to leave versioning as it is.
      - A bucket on which versioning was never enabled reports V(off); requesting V(suspended)
        for it sets the suspended state once.
    type: str
    choices: [enabled, suspended]
  force:
    description:
      - With O(state=absent), delete every object version and delete marker in the bucket
        before deleting the bucket itself.
      - Without it, deleting a non-empty bucket fails and nothing is deleted.
    type: bool
    default: false
extends_documentation_fragment:
  - lakehouse_s3
seealso:
  - module: lakehouse_minio_policy
  - module: lakehouse_minio_user
author: Lakehouse bootstrap maintainers
"""

EXAMPLES = r"""
- name: Create the warehouse bucket with versioning enabled
  lakehouse_s3_bucket:
    endpoint: https://minio-1.lakehouse.test:9000
    access_key: "{{ minio_root_user }}"
    secret_key: "{{ minio_root_password }}"
    ca_path: /etc/lakehouse/pki/ca.crt
    name: warehouse
    versioning: enabled

- name: Delete a scratch bucket and everything in it
  lakehouse_s3_bucket:
    endpoint: https://minio-1.lakehouse.test:9000
    access_key: "{{ minio_root_user }}"
    secret_key: "{{ minio_root_password }}"
    ca_path: /etc/lakehouse/pki/ca.crt
    name: scratch
    state: absent
    force: true
"""

RETURN = r"""
name:
  description: Name of the bucket.
  returned: always
  type: str
  sample: warehouse
versioning:
  description: Versioning state of the bucket after the run (V(off) if never enabled).
  returned: when O(state=present)
  type: str
  sample: enabled
objects_deleted:
  description: Number of object versions and delete markers deleted (or, in check mode, to delete).
  returned: when O(state=absent)
  type: int
  sample: 0
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.lakehouse_s3 import (
    HAS_MINIO,
    MINIO_IMPORT_ERROR,
    client_errors,
    s3_argument_spec,
    s3_client,
)

if HAS_MINIO:
    from minio.deleteobjects import DeleteObject
    from minio.versioningconfig import ENABLED, SUSPENDED, VersioningConfig

    TO_S3 = {"enabled": ENABLED, "suspended": SUSPENDED}


def read_bucket(client, name):
    """The bucket as the module's state dict."""
    if not client.bucket_exists(name):
        return {"name": name, "state": "absent"}
    # status is None for a bucket on which versioning was never enabled.
    status = client.get_bucket_versioning(name).status
    return {"name": name, "state": "present", "versioning": (status or "off").lower()}


def object_versions(client, name):
    """Every object version and delete marker: a versioned bucket can look empty without them."""
    return client.list_objects(name, recursive=True, include_version=True)


def delete_all(module, client, name, objects):
    # remove_objects is lazy and yields only the per-object errors.
    for error in client.remove_objects(name, objects):
        module.fail_json(
            msg=f"deleting object {error.name} from bucket {name} failed: {error.code}: {error.message}",
        )


def main():
    argument_spec = s3_argument_spec()
    argument_spec.update(
        name={"type": "str", "required": True},
        state={"type": "str", "default": "present", "choices": ["present", "absent"]},
        versioning={"type": "str", "choices": ["enabled", "suspended"]},
        force={"type": "bool", "default": False},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_MINIO:
        module.fail_json(
            msg=missing_required_lib("minio"),
            exception=MINIO_IMPORT_ERROR,
        )

    name = module.params["name"]
    state = module.params["state"]
    versioning = module.params["versioning"]
    client = s3_client(module)
    result = {"changed": False, "name": name}

    with client_errors(module, f"reading bucket {name}"):
        before = read_bucket(client, name)

    if state == "absent":
        after = {"name": name, "state": "absent"}
        result["objects_deleted"] = 0
        if before["state"] == "present":
            with client_errors(module, f"listing the objects of bucket {name}"):
                listing = object_versions(client, name)
                # One object is enough to refuse; no need to list a large bucket in full.
                first = next(listing, None)
                if first is not None and not module.params["force"]:
                    module.fail_json(
                        msg=f"bucket {name} is not empty (it holds {first.object_name!r}, maybe more); "
                        "refusing to delete it: set force=true to delete the bucket with all its objects",
                    )
                found = [first, *listing] if first is not None else []
                objects = [DeleteObject(o.object_name, o.version_id) for o in found]
            result["objects_deleted"] = len(objects)
            if not module.check_mode:
                with client_errors(module, f"deleting bucket {name}"):
                    delete_all(module, client, name, objects)
                    client.remove_bucket(name)
    else:
        after = {
            "name": name,
            "state": "present",
            "versioning": before.get("versioning", "off"),
        }
        if versioning:
            after["versioning"] = versioning
        if not module.check_mode:
            if before["state"] == "absent":
                with client_errors(module, f"creating bucket {name}"):
                    client.make_bucket(name, location=module.params["region"])
            if after["versioning"] != before.get("versioning", "off"):
                with client_errors(module, f"setting versioning on bucket {name}"):
                    config = VersioningConfig(TO_S3[versioning])
                    client.set_bucket_versioning(name, config)
        result["versioning"] = after["versioning"]

    result["changed"] = before != after
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
