"""Documentation shared by the modules that talk to an S3 or MinIO endpoint."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  endpoint:
    description:
      - URL of the S3 endpoint, scheme, host and port only, for example
        V(https://minio-1.lakehouse.test:9000).
    type: str
    required: true
  access_key:
    description:
      - Access key used to sign the requests (for the admin modules, a MinIO administrator's).
    type: str
    required: true
  secret_key:
    description:
      - Secret key used to sign the requests. Never logged or returned.
    type: str
    required: true
  ca_path:
    description:
      - Path to a PEM CA bundle that signed the endpoint's certificate.
      - When omitted the system trust store is used.
    type: path
  validate_certs:
    description:
      - Verify the endpoint's TLS certificate. Only disable it against throwaway test endpoints.
    type: bool
    default: true
  region:
    description:
      - Region used to sign the requests (and to create buckets in).
    type: str
    default: us-east-1
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode).
    support: full
requirements:
  - minio >= 7.2 (Python library)
"""
