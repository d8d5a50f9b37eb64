"""JSON Web Tokens, signed deterministically: the same key and claims give the same token on every
run, so a file holding one changes only when its key or claims do."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _encode(alg: str, claims: dict, sign) -> str:
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signing_input = f"{header}.{payload}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


def rs256(claims: dict, private_key_pem: str) -> str:
    """Signed with an RSA key (PKCS#1 v1.5 signatures are deterministic)."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    return _encode("RS256", claims, lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256()))


def hs512(claims: dict, secret: str) -> str:
    """Signed with a shared secret (HMAC-SHA512), as MinIO checks its metrics tokens."""
    return _encode("HS512", claims, lambda data: hmac.new(secret.encode(), data, hashlib.sha512).digest())
