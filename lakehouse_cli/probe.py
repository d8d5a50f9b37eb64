"""One HTTPS request, trusting only the contract's CA: bounded (5 s), never retried."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

TIMEOUT = 5.0


@dataclass(frozen=True)
class Reply:
    status: int | None  # None: no HTTP answer at all
    detail: str  # the reason phrase, an S3 error code, or why there was no answer


def context(ca: Path | None) -> ssl.SSLContext:
    if ca is None:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=str(ca))


def get(url: str, ca: Path | None, timeout: float = TIMEOUT) -> Reply:
    if not url.startswith(("https://", "http://")):
        return Reply(None, f"not an HTTP URL: {url}")
    try:
        tls = context(ca) if url.startswith("https://") else None
    except (OSError, ssl.SSLError) as err:
        return Reply(None, f"CA {ca} unusable: {getattr(err, 'strerror', None) or err}")
    request = urllib.request.Request(url, method="GET")  # noqa: S310 (scheme checked above)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=tls) as response:  # noqa: S310
            return Reply(response.status, response.reason or "")
    except urllib.error.HTTPError as err:
        body = err.read(4096).decode("utf-8", "replace")
        return Reply(err.code, _s3_code(body) or err.reason or "")
    except urllib.error.URLError as err:
        return Reply(None, str(err.reason))
    except (OSError, ValueError) as err:
        return Reply(None, str(err) or type(err).__name__)


def _s3_code(body: str) -> str:
    start, end = body.find("<Code>"), body.find("</Code>")
    return body[start + len("<Code>") : end] if 0 <= start < end else ""


def health(url: str | None, ca: Path | None) -> tuple[bool, str]:
    """(healthy, text for the table)."""
    if not url:
        return False, "unknown (no readiness URL)"
    if ca is not None and not ca.is_file():
        return False, f"unknown (CA {ca} missing)"
    reply = get(url, ca)
    if reply.status == 200:
        return True, "healthy"
    if reply.status is None:
        return False, f"unreachable ({reply.detail})"
    return False, f"unhealthy ({reply.status} {reply.detail})".rstrip()
