"""`lakehouse verify`: checks run against every published contract, chosen by the contract's service.

A layer adds its checks with the decorator, e.g. for the catalog:

    @check("catalog", "namespace round trip")
    def catalog_round_trip(contract, ctx):
        ...
        yield Outcome(endpoint, ok, detail)

Every contract also gets the common readiness check. A check yields one or more outcomes; an
exception fails the check with its message (messages never carry credentials).
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import S3Error

from lakehouse_cli import LakehouseError, probe
from lakehouse_cli.contracts import Contract, resolve_secret, secrets_dir

# The well-known MinIO default; a published endpoint must refuse it.
DEFAULT_ACCESS_KEY = "minioadmin"
DEFAULT_SECRET_KEY = "minioadmin"  # noqa: S105 (the default that must be refused, not a credential)


@dataclass(frozen=True)
class Outcome:
    """What one check found at one endpoint."""

    endpoint: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class CheckResult(Outcome):
    check: str = ""

    @property
    def result(self) -> str:
        word = "pass" if self.ok else "FAIL"
        return f"{word} ({self.detail})" if self.detail else word


@dataclass
class VerifyContext:
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def secret(self, contract: Contract, ref: str) -> str:
        return resolve_secret(ref, secrets_dir(contract.site, self.env), self.env)


CheckFunction = Callable[[Contract, VerifyContext], Iterable[Outcome]]


@dataclass(frozen=True)
class Check:
    name: str
    run: CheckFunction


COMMON_CHECKS: list[Check] = []
CHECKS: dict[str, list[Check]] = {}


def check(service: str | None, name: str) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check for contracts of `service` (None: for every contract)."""

    def register(function: CheckFunction) -> CheckFunction:
        (COMMON_CHECKS if service is None else CHECKS.setdefault(service, [])).append(Check(name, function))
        return function

    return register


def checks_for(service: str) -> list[Check]:
    return [*COMMON_CHECKS, *CHECKS.get(service, [])]


def run_checks(contracts: Iterable[Contract], ctx: VerifyContext) -> list[CheckResult]:
    results = []
    for contract in contracts:
        for item in checks_for(contract.service):
            label = f"{contract.service} {item.name}"
            try:
                produced = list(item.run(contract, ctx))
            except LakehouseError as err:
                produced = [Outcome(contract.url, False, str(err))]
            except Exception as err:  # a check must not stop the others
                produced = [Outcome(contract.url, False, f"{type(err).__name__}: {err}")]
            produced = produced or [Outcome(contract.url, False, "the check produced no result")]
            results += [CheckResult(o.endpoint, o.ok, o.detail, check=label) for o in produced]
    return results


# --- every contract -------------------------------------------------------------------------


@check(None, "readiness")
def readiness(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    url = contract.readiness_url
    if not url:
        yield Outcome(contract.url, False, "the contract has no readiness URL")
        return
    reply = probe.get(url, contract.ca)
    detail = f"{reply.status} {reply.detail}".strip() if reply.status else reply.detail
    yield Outcome(url, reply.status == 200, detail)


# --- object storage (S3) ---------------------------------------------------------------------


def _buckets(contract: Contract) -> list[str]:
    buckets = [str(b) for b in contract.data.get("buckets") or []]
    if not buckets:
        raise LakehouseError("the contract lists no bucket")
    return buckets


def _s3_client(contract: Contract, access_key: str, secret_key: str) -> Minio:
    url = urlsplit(contract.url)
    ca = contract.ca
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=probe.TIMEOUT, read=probe.TIMEOUT),
        retries=urllib3.Retry(total=0, redirect=0, raise_on_status=False),
        cert_reqs="CERT_REQUIRED",
        ca_certs=str(ca) if ca else None,
    )
    return Minio(
        url.netloc,
        access_key=access_key,
        secret_key=secret_key,
        secure=url.scheme == "https",
        region=str(contract.data.get("region") or "us-east-1"),
        http_client=http,
    )


def _s3_refusal(err: S3Error) -> str:
    status = err.response.status if err.response is not None else "?"
    return f"{status} {err.code}"


@check("object_storage", "anonymous access refused")
def anonymous_refused(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    for bucket in _buckets(contract):
        url = f"{contract.url.rstrip('/')}/{bucket}"
        reply = probe.get(url, contract.ca)
        if reply.status == 403:
            yield Outcome(url, True, f"403 {reply.detail}".strip())
        elif reply.status is None:
            yield Outcome(url, False, reply.detail)
        else:
            detail = f"expected 403, got {reply.status} {reply.detail}".strip()
            yield Outcome(url, False, detail)


@check("object_storage", "default credentials refused")
def default_credentials_refused(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    try:
        _s3_client(contract, DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY).list_buckets()
    except S3Error as err:
        status = err.response.status if err.response is not None else None
        yield Outcome(contract.url, status == 403, _s3_refusal(err))
        return
    yield Outcome(contract.url, False, f"{DEFAULT_ACCESS_KEY} is ACCEPTED")


@check("object_storage", "put/get/delete round trip")
def round_trip(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    refs = contract.data.get("credentials_ref") or {}
    if not {"access_key", "secret_key"} <= refs.keys():
        raise LakehouseError("the contract references no access_key/secret_key")
    client = _s3_client(contract, ctx.secret(contract, refs["access_key"]), ctx.secret(contract, refs["secret_key"]))
    bucket = _buckets(contract)[0]
    key = f"lakehouse-verify/{secrets.token_hex(8)}"
    payload = f"lakehouse verify {secrets.token_hex(16)}\n".encode()
    endpoint = f"{contract.url.rstrip('/')}/{bucket}"
    try:
        written = client.put_object(bucket, key, io.BytesIO(payload), len(payload), content_type="text/plain")
    except S3Error as err:
        yield Outcome(endpoint, False, f"put refused: {_s3_refusal(err)}")
        return
    version = written.version_id  # in a versioned bucket, deleting this version leaves no trace
    try:
        response = client.get_object(bucket, key, version_id=version)
        try:
            body = response.read()
        finally:
            response.close()
            response.release_conn()
    finally:
        client.remove_object(bucket, key, version_id=version)
    if body != payload:
        yield Outcome(endpoint, False, "the object read back differs from the one written")
        return
    try:
        client.stat_object(bucket, key)
    except S3Error as err:
        if err.code not in ("NoSuchKey", "NoSuchVersion"):
            raise
    else:
        yield Outcome(endpoint, False, "the object is still there after delete")
        return
    yield Outcome(endpoint, True, f"{len(payload)} bytes")
