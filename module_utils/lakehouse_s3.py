"""Shared client code for the lakehouse S3 and MinIO modules.

Modules import this as ``ansible.module_utils.lakehouse_s3`` (ansible.cfg sets module_utils),
so it ships to the target together with the module.
"""

from __future__ import annotations

import contextlib
import json
import os
import traceback
from urllib.parse import urlsplit

try:
    import urllib3
    from minio import Minio, MinioAdmin
    from minio.credentials import StaticProvider
    from minio.error import MinioAdminException, MinioException, S3Error, ServerError
    from urllib3.exceptions import HTTPError, InsecureRequestWarning, MaxRetryError
except ImportError:
    HAS_MINIO = False
    MINIO_IMPORT_ERROR = traceback.format_exc()
    # Nothing can be raised by a client that cannot be built.
    CLIENT_ERRORS: tuple = ()
else:
    HAS_MINIO = True
    MINIO_IMPORT_ERROR = None
    # OSError covers ssl.SSLError and unreadable CA files; ValueError covers client-side
    # validation (bucket names, malformed JSON from the server).
    CLIENT_ERRORS = (
        MinioException,
        MinioAdminException,
        HTTPError,
        OSError,
        ValueError,
    )

# Every request is bounded: a dead endpoint fails in about a minute, never hangs a play.
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60
RETRIES = 3
RETRY_BACKOFF = 0.5
RETRY_STATUSES = (500, 502, 503, 504)

# Error codes that mean "these credentials are wrong", worth a hint in the message.
AUTH_ERROR_CODES = (
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "XMinioAccessKeyDisabled",
)

MASK = "********"


def s3_argument_spec():
    """Connection options shared by every lakehouse S3/MinIO module."""
    return {
        "endpoint": {"type": "str", "required": True},
        "access_key": {"type": "str", "required": True, "no_log": False},
        "secret_key": {"type": "str", "required": True, "no_log": True},
        "ca_path": {"type": "path"},
        "validate_certs": {"type": "bool", "default": True},
        "region": {"type": "str", "default": "us-east-1"},
    }


def _endpoint(module):
    """Split the endpoint URL into the host:port the minio library wants and a TLS flag."""
    url = urlsplit(module.params["endpoint"])
    if (
        url.scheme not in ("http", "https")
        or not url.hostname
        or "@" in url.netloc
        or url.path not in ("", "/")
        or url.query
        or url.fragment
    ):
        msg = (
            "endpoint must be a URL like https://minio-1.lakehouse.test:9000 "
            f"(http or https, no path or credentials), got {module.params['endpoint']!r}"
        )
        # Someone may well have pasted credentials into the URL.
        module.fail_json(msg=mask_secrets(module, msg))
    return url.netloc, url.scheme == "https"


def _http_client(module):
    """A PoolManager with bounded timeouts/retries that trusts ca_path when given."""
    ca_path = module.params["ca_path"]
    if ca_path and not os.path.isfile(ca_path):
        module.fail_json(msg=f"ca_path {ca_path} is not a file")
    if module.params["validate_certs"]:
        # ca_certs=None makes urllib3 load the system trust store.
        tls = {"cert_reqs": "CERT_REQUIRED", "ca_certs": ca_path}
    else:
        # The user opted out of verification; a warning per request would only be noise.
        urllib3.disable_warnings(InsecureRequestWarning)
        tls = {"cert_reqs": "CERT_NONE"}
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
        retries=urllib3.Retry(
            total=RETRIES,
            backoff_factor=RETRY_BACKOFF,
            status_forcelist=RETRY_STATUSES,
            # Hand the last error response to minio, which turns it into a readable error.
            raise_on_status=False,
        ),
        maxsize=4,
        **tls,
    )


def s3_client(module):
    """A minio.Minio client for the plain S3 API."""
    netloc, secure = _endpoint(module)
    params = module.params
    with client_errors(module, "creating the S3 client"):
        return Minio(
            netloc,
            access_key=params["access_key"],
            secret_key=params["secret_key"],
            secure=secure,
            # A fixed region spares a GetBucketLocation round trip per bucket.
            region=params["region"],
            http_client=_http_client(module),
        )


def admin_client(module, access_key=None, secret_key=None):
    """A minio.MinioAdmin client; defaults to the module's credentials."""
    netloc, secure = _endpoint(module)
    params = module.params
    credentials = StaticProvider(
        access_key or params["access_key"],
        secret_key or params["secret_key"],
    )
    with client_errors(module, "creating the MinIO admin client"):
        return MinioAdmin(
            endpoint=netloc,
            credentials=credentials,
            region=params["region"],
            secure=secure,
            http_client=_http_client(module),
        )


def admin_error_code(exc):
    """The MinIO error code (e.g. XMinioAdminNoSuchUser) of a MinioAdminException."""
    try:
        return json.loads(exc._body).get("Code", "")
    except (ValueError, AttributeError):
        return ""


def _describe(exc):
    """(code, text) for a client exception, without request ids or host ids."""
    if isinstance(exc, S3Error):
        return exc.code, exc.message
    if isinstance(exc, MinioAdminException):
        try:
            body = json.loads(exc._body)
        except ValueError:
            body = {"Message": exc._body.strip()}
        return body.get("Code", ""), f"{body.get('Message', '')} (HTTP {exc._code})"
    if isinstance(exc, ServerError):
        return "", f"HTTP {exc.status_code}: {exc}"
    if isinstance(exc, MaxRetryError):
        # The reason (refused connection, TLS failure, ...) is the useful part.
        return "", f"cannot reach the endpoint: {exc.reason}"
    return "", str(exc) or type(exc).__name__


def error_message(module, action, exc):
    """A one-line failure message with every no_log value (secrets) masked."""
    code, text = _describe(exc)
    msg = f"{action} failed: {code + ': ' if code else ''}{text}"
    if code in AUTH_ERROR_CODES:
        msg += " (check access_key and secret_key, and that the key may do this)"
    return mask_secrets(module, msg)


def mask_secrets(module, text):
    """`text` with every no_log value (the secrets) masked.

    Ansible masks them in results too, but a message must be safe on its own.
    """
    for secret in sorted(module.no_log_values, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text


@contextlib.contextmanager
def client_errors(module, action):
    """Turn a client exception raised in the block into module.fail_json."""
    try:
        yield
    except CLIENT_ERRORS as exc:
        module.fail_json(msg=error_message(module, action, exc))
