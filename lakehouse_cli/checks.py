"""`lakehouse verify`: checks run against every published contract, chosen by the contract's service.

A layer adds its checks with the decorator, e.g. for the catalog:

    @check("catalog", "namespace round trip")
    def catalog_round_trip(contract, ctx):
        ...
        yield Outcome(endpoint, ok, detail)

Every contract also gets the common readiness check. A check yields one or more outcomes; an
exception fails the check with its message. Messages never carry credentials: any secret value
handed out through VerifyContext.secret is also masked in what a check reports.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg2
import pyarrow as pa
import urllib3
from minio import Minio
from minio.error import S3Error
from pyiceberg.table import Table
from trino.dbapi import Connection

from lakehouse_cli import LakehouseError, clients, monitoring, orchestrator, probe
from lakehouse_cli.contracts import Contract, resolve_secret, secrets_dir
from module_utils import lakehouse_jobs

REPO = Path(__file__).resolve().parent.parent

# How long a node that has just become ready may take to appear among the coordinator's nodes.
WORKERS_JOIN_SECONDS = 30
# How long a target that Prometheus has just been given may take until its first scrape.
FIRST_SCRAPE_SECONDS = 60
ACTIVE_NODES = "SELECT count(*) FROM system.runtime.nodes WHERE state = 'active'"

# Well-known defaults (MinIO, PostgreSQL, Trino); a published endpoint must refuse them.
DEFAULT_ACCESS_KEY = "minioadmin"
DEFAULT_SECRET_KEY = "minioadmin"  # noqa: S105 (the default that must be refused, not a credential)
DEFAULT_PG_USER = "postgres"
DEFAULT_PG_PASSWORD = "postgres"  # noqa: S105 (idem)
DEFAULT_TRINO_USER = "admin"
DEFAULT_TRINO_PASSWORD = "admin"  # noqa: S105 (idem)
HIDDEN = "<hidden>"


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
    # Every contract of the inventory, for the checks that span services (query -> catalog).
    contracts: list[Contract] = field(default_factory=list)
    revealed: set[str] = field(default_factory=set, repr=False)  # the secret values handed out

    def secret(self, contract: Contract, ref: str) -> str:
        value = resolve_secret(ref, secrets_dir(contract.site, self.env), self.env)
        self.revealed.add(value)
        return value

    def user(self, contract: Contract, credential: Mapping) -> str:
        """A credential's user name: as written, or behind user_ref when the name is itself secret."""
        return credential["user"] if "user" in credential else self.secret(contract, credential["user_ref"])

    def redact(self, text: str) -> str:
        """`text` without any secret value handed out, plain or URL-quoted (as in a database URI)."""
        for value in sorted(self.revealed, key=len, reverse=True):
            text = text.replace(value, HIDDEN).replace(quote(value, safe=""), HIDDEN)
        return text


CheckFunction = Callable[[Contract, VerifyContext], Iterable[Outcome]]


def always(contract: Contract) -> bool:
    return True


@dataclass(frozen=True)
class Check:
    name: str
    run: CheckFunction
    when: Callable[[Contract], bool] = always  # for contracts of one service that differ, e.g. by catalog type


COMMON_CHECKS: list[Check] = []
CHECKS: dict[str, list[Check]] = {}


def check(
    service: str | None, name: str, when: Callable[[Contract], bool] = always
) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check for contracts of `service` (None: for every contract) for which `when` holds."""

    def register(function: CheckFunction) -> CheckFunction:
        (COMMON_CHECKS if service is None else CHECKS.setdefault(service, [])).append(Check(name, function, when))
        return function

    return register


def checks_for(service: str) -> list[Check]:
    return [*COMMON_CHECKS, *CHECKS.get(service, [])]


def run_checks(contracts: Iterable[Contract], ctx: VerifyContext) -> list[CheckResult]:
    results = []
    for contract in contracts:
        for item in checks_for(contract.service):
            if not item.when(contract):
                continue
            label = f"{contract.service} {item.name}"
            try:
                produced = list(item.run(contract, ctx))
            except LakehouseError as err:
                produced = [Outcome(contract.url, False, str(err))]
            except Exception as err:  # a check must not stop the others
                produced = [Outcome(contract.url, False, " ".join(f"{type(err).__name__}: {err}".split()))]
            produced = produced or [Outcome(contract.url, False, "the check produced no result")]
            results += [CheckResult(o.endpoint, o.ok, ctx.redact(o.detail), check=label) for o in produced]
    return results


# --- every contract -------------------------------------------------------------------------


@check(None, "readiness")
def readiness(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    ok, text = probe.health(contract)
    yield Outcome(contract.readiness_url or contract.url, ok, text)


def _http_refused(url: str, reply: probe.Reply, codes: tuple[int, ...]) -> Outcome:
    """A request that must be answered with one of `codes`."""
    answer = f"{reply.status} {reply.detail}".strip()
    if reply.status in codes:
        return Outcome(url, True, answer)
    if reply.status is None:
        return Outcome(url, False, reply.detail)
    if reply.status < 300:
        return Outcome(url, False, f"ACCEPTED ({answer})")
    return Outcome(url, False, f"expected {'/'.join(map(str, codes))}, got {answer}")


def has_authenticated_metrics(contract: Contract) -> bool:
    return any(metric.get("auth") != "none" for metric in contract.data.get("metrics") or [])


@check(None, "metrics refuse an anonymous scrape", when=has_authenticated_metrics)
def metrics_anonymous_refused(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    """Every metrics endpoint whose contract asks for credentials refuses a request without them."""
    for url, (_, target) in monitoring.expected([contract]).items():
        if contract.data["metrics"][target["metric"]]["auth"] != "none":
            yield _http_refused(url, probe.request(url, contract.ca), (401, 403))


@check(None, "metrics refuse a wrong credential", when=has_authenticated_metrics)
def metrics_wrong_credential_refused(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    """Every metrics endpoint with credentials refuses its user with another password (basic auth),
    or a token nobody signed (bearer)."""
    wrong = secrets.token_urlsafe(16)
    for url, (_, target) in monitoring.expected([contract]).items():
        metric = contract.data["metrics"][target["metric"]]
        if metric["auth"] == "basic":
            headers = probe.basic_auth(ctx.user(contract, metric["credentials"]), wrong)
        elif metric["auth"] == "bearer":
            headers = {"Authorization": f"Bearer {wrong}"}
        else:
            continue
        yield _http_refused(url, probe.request(url, contract.ca, headers=headers), (401, 403))


def tls_endpoints(contract: Contract) -> dict[tuple[str, int], str]:
    """The (host, port) of every TLS endpoint the contract names (its endpoints, readiness and metrics
    URLs), each with its scheme: https, or postgresql (TLS after PostgreSQL's SSLRequest). Only for
    services of the lakehouse: a contract with the lakehouse CA, not a cloud provider's service."""
    if contract.ca is None or contract.data.get("implementation") == "aws-glue":
        return {}
    urls = [endpoint["url"] for endpoint in contract.data.get("endpoints") or []]
    urls += [contract.readiness_url or ""] + [metric["url"] for metric in contract.data.get("metrics") or []]
    found = {}
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("https", "postgresql") and parts.hostname:
            default = 443 if parts.scheme == "https" else 5432
            found.setdefault((parts.hostname, parts.port or default), parts.scheme)
    if server := contract.postgresql:
        found.setdefault(server, "postgresql")
    return found


def _tls_outcomes(contract: Contract, test: Callable[..., tuple[bool, str]], schemes: tuple[str, ...]):
    for (host, port), scheme in sorted(tls_endpoints(contract).items()):
        if scheme in schemes:
            ok, detail = test(host, port, postgresql=scheme == "postgresql")
            yield Outcome(f"{scheme}://{host}:{port}", ok, detail)


@check(None, "TLS 1.1 and below refused", when=lambda contract: bool(tls_endpoints(contract)))
def old_tls_refused(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    yield from _tls_outcomes(contract, probe.old_tls_refused, ("https", "postgresql"))


@check(None, "certificate refused without the lakehouse CA", when=lambda contract: bool(tls_endpoints(contract)))
def untrusted_without_ca(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    yield from _tls_outcomes(contract, probe.untrusted_without_ca, ("https", "postgresql"))


@check(None, "plain HTTP refused", when=lambda contract: "https" in tls_endpoints(contract).values())
def plain_http_refused(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    yield from _tls_outcomes(contract, probe.plain_http_refused, ("https",))


# --- object storage (S3) ---------------------------------------------------------------------


def _buckets(contract: Contract) -> list[str]:
    buckets = [str(b) for b in contract.data.get("buckets") or []]
    if not buckets:
        raise LakehouseError("the contract lists no bucket")
    return buckets


def _s3_client(contract: Contract, access_key: str, secret_key: str) -> Minio:
    return _minio(contract.url, contract.ca, contract.data.get("region"), access_key, secret_key)


def _minio(endpoint: str, ca: Path | None, region: str | None, access_key: str, secret_key: str) -> Minio:
    url = urlsplit(endpoint)
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
        region=str(region or "us-east-1"),
        http_client=http,
    )


def _s3_refusal(err: S3Error) -> str:
    status = err.response.status if err.response is not None else "?"
    return f"{status} {err.code}"


@check("object_storage", "anonymous access refused")
def anonymous_refused(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    for bucket in _buckets(contract):
        url = f"{contract.url.rstrip('/')}/{bucket}"
        yield _http_refused(url, probe.request(url, contract.ca), (403,))


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
    admin = contract.credential("admin")
    client = _s3_client(contract, ctx.user(contract, admin), ctx.secret(contract, admin["secret_ref"]))
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


# --- PostgreSQL: catalog_db, and the database of a JDBC catalog ------------------------------


def is_jdbc(contract: Contract) -> bool:
    return contract.data.get("type") == "jdbc"


def is_rest(contract: Contract) -> bool:
    return contract.data.get("type") == "rest"


def _pg_server(contract: Contract) -> tuple[str, int]:
    if contract.postgresql is None:
        raise LakehouseError(f"the {contract.service} contract of {contract.host} names no PostgreSQL server")
    return contract.postgresql


def _pg_endpoint(contract: Contract, user: str, sslmode: str = "verify-full") -> str:
    host, port = _pg_server(contract)
    return f"postgresql://{user}@{host}:{port}" + ("" if sslmode == "verify-full" else f"?sslmode={sslmode}")


def _pg_refused(
    contract: Contract, user: str, password: str = "", sslmode: str = "verify-full", expect: str | None = None
) -> Outcome:
    """A login that the server must refuse (only by `expect`: "password" or "pg_hba", when given)."""
    endpoint = _pg_endpoint(contract, user, sslmode)
    try:
        probe.postgresql_connect(*_pg_server(contract), contract.ca, user, password, sslmode).close()
    except psycopg2.Error as err:
        kind, reason = probe.postgresql_refusal(err), probe.postgresql_reason(err)
        if kind is not None and expect not in (None, kind):
            return Outcome(endpoint, False, f"{reason} (expected a {expect} refusal)")
        return Outcome(endpoint, kind is not None, reason)
    return Outcome(endpoint, False, f"{user} is ACCEPTED")


def _pg_users(contract: Contract) -> list[str]:
    """The superuser and every login role the contract names (a JDBC catalog's: its client's)."""
    named = [credential.get("user") for credential in (contract.data.get("credentials") or {}).values()]
    return list(dict.fromkeys([DEFAULT_PG_USER, *filter(None, named)]))


@check("catalog_db", "anonymous access refused")
@check("catalog", "anonymous access refused", when=is_jdbc)
def postgresql_anonymous_refused(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    for user in _pg_users(contract):
        yield _pg_refused(contract, user)


@check("catalog_db", "default credentials refused")
@check("catalog", "default credentials refused", when=is_jdbc)
def postgresql_default_credentials_refused(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    yield _pg_refused(contract, DEFAULT_PG_USER, DEFAULT_PG_PASSWORD)


@check("catalog_db", "plain-text connection refused")
def postgresql_plain_text_refused(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    # Without a password, so nothing is sent in clear even if the server let the connection through.
    yield _pg_refused(contract, DEFAULT_PG_USER, sslmode="disable", expect="pg_hba")


@check("catalog_db", "authenticated round trip")
def postgresql_round_trip(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    admin = contract.credential("admin")
    user, password = ctx.user(contract, admin), ctx.secret(contract, admin["secret_ref"])
    endpoint = _pg_endpoint(contract, user)
    try:
        connection = probe.postgresql_connect(*_pg_server(contract), contract.ca, user, password)
    except psycopg2.Error as err:
        yield Outcome(endpoint, False, probe.postgresql_reason(err))
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            (one,) = cursor.fetchone()
            cursor.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            tls, version = cursor.fetchone()
    finally:
        connection.close()
    yield Outcome(endpoint, one == 1 and tls is True, f"SELECT 1 = {one}, ssl = {tls} {version or ''}".rstrip())


# --- Iceberg REST catalog (Nessie) -----------------------------------------------------------


def _rest_config_url(contract: Contract) -> str:
    return f"{str(contract.require('rest.uri')).rstrip('/')}/v1/config"


@check("catalog", "anonymous access refused", when=is_rest)
def rest_catalog_anonymous_refused(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    # The catalog requires a bearer token; a TLS refusal (a server asking for client certificates) counts too.
    url = _rest_config_url(contract)
    reply = probe.request(url, contract.ca)
    if probe.tls_refused(reply):
        yield Outcome(url, True, f"refused in the TLS handshake: {reply.detail}")
    else:
        yield _http_refused(url, reply, (401, 403))


@check("catalog", "forged token refused", when=is_rest)
def rest_catalog_forged_token_refused(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    # A well-formed token with plausible claims, signed by a key the catalog does not trust.
    url = _rest_config_url(contract)
    reply = probe.request(url, contract.ca, headers={"Authorization": f"Bearer {clients.forged_token()}"})
    yield _http_refused(url, reply, (401, 403))


# --- query (Trino) ---------------------------------------------------------------------------

VERIFY_NAMESPACE = "lakehouse_verify"
WRITTEN = [(1, "one"), (2, "two"), (3, "three")]  # by pyiceberg
INSERTED = (4, "four")  # by Trino
ROUND_TRIP_SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("ts", pa.timestamp("us"))])


def _trino_refused(contract: Contract, user: str, password: str | None = None) -> Outcome:
    """A statement that the coordinator must refuse with 401."""
    headers = {"X-Trino-User": user}
    if password is not None:
        headers |= probe.basic_auth(user, password)
    url = f"{contract.url.rstrip('/')}/v1/statement"
    return _http_refused(url, probe.request(url, contract.ca, "POST", headers, b"SELECT 1"), (401,))


def _trino(contract: Contract, ctx: VerifyContext, catalog: str | None = None) -> Connection:
    admin = contract.credential("admin")
    return clients.trino(contract, ctx.user(contract, admin), ctx.secret(contract, admin["secret_ref"]), catalog)


@check("query", "anonymous access refused")
def trino_anonymous_refused(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    admin = (contract.data.get("credentials") or {}).get("admin") or {}
    yield _trino_refused(contract, admin.get("user") or DEFAULT_TRINO_USER)


@check("query", "default credentials refused")
def trino_default_credentials_refused(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    yield _trino_refused(contract, DEFAULT_TRINO_USER, DEFAULT_TRINO_PASSWORD)


@check("query", "workers registered")
def trino_workers_registered(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    """Every worker of the contract is an active node. A node announces itself as it starts and the
    coordinator reads the announcements every few seconds, so a node that has just become ready may
    be missing for a moment: the count is read again, bounded in time, until it matches."""
    expected = 1 + len(contract.data.get("workers") or [])  # the coordinator is a node too
    deadline = time.monotonic() + WORKERS_JOIN_SECONDS
    with clients.ca_bundle_env([contract.ca]), _trino(contract, ctx) as connection:
        while True:
            [(active,)] = clients.trino_rows(connection, ACTIVE_NODES)
            if active == expected or time.monotonic() > deadline:
                break
            time.sleep(1)
    yield Outcome(contract.url, active == expected, f"{active} active nodes, expected {expected}")


def _catalog_of(query: Contract, ctx: VerifyContext) -> Contract:
    """The Iceberg catalog behind the query contract's Trino catalog (both carry the same name)."""
    name = query.require("catalog")
    for contract in ctx.contracts:
        if contract.service == "catalog" and contract.data.get("name") == name:
            return contract
    raise LakehouseError(f"no published catalog contract is named {name!r}, the query contract's catalog")


def _remove_everything(s3: Minio, location: str) -> None:
    """Every object under an s3:// location, each version too (the warehouse bucket may be versioned).

    Dropping the table is not enough: Nessie keeps the files of a purged table, and pyarrow leaves
    empty "directory" objects behind the files it deletes.
    """
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    for item in s3.list_objects(bucket, prefix=f"{prefix.rstrip('/')}/", recursive=True, include_version=True):
        s3.remove_object(bucket, item.object_name, version_id=item.version_id)


def _same_rows(direction: str, endpoint: str, expected: list[tuple], seen: list[tuple]) -> Outcome:
    if seen == expected:
        return Outcome(endpoint, True, f"{direction}: {len(seen)} rows equal")
    return Outcome(endpoint, False, f"{direction}: wrote {expected}, read {seen}")


@contextlib.contextmanager
def scratch_table(contract: Contract, ctx: VerifyContext, schema: pa.Schema) -> Iterator[tuple[str, Table, Contract]]:
    """A new Iceberg table in the verify namespace of the query contract's catalog, made through
    pyiceberg, with every CA the two need trusted; dropped with every object it wrote afterwards.
    Yields its name, the table and the catalog's contract."""
    catalog = _catalog_of(contract, ctx)
    storage = catalog.require("object_storage")
    s3 = _minio(
        catalog.require("object_storage.endpoint"),
        catalog.ca,
        storage.get("region"),
        ctx.user(catalog, catalog.require("object_storage.credentials")),
        ctx.secret(catalog, catalog.require("object_storage.credentials.secret_ref")),
    )
    name = f"{VERIFY_NAMESPACE}.t_{secrets.token_hex(6)}"
    with (
        clients.ca_bundle_env([contract.ca, catalog.ca]),
        clients.iceberg_catalog(catalog, lambda ref: ctx.secret(catalog, ref)) as iceberg,
    ):
        iceberg.create_namespace_if_not_exists(VERIFY_NAMESPACE)
        table = iceberg.create_table(name, schema=schema)

        def remove() -> None:
            iceberg.drop_table(name)
            _remove_everything(s3, table.location())

        try:
            yield name, table, catalog
        except BaseException:
            with contextlib.suppress(Exception):  # the first failure is the one to report
                remove()
            raise
        remove()


@check("query", "Iceberg round trip")
def iceberg_round_trip(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    """pyiceberg writes a table, Trino reads it and adds a row, pyiceberg reads that back; then it is removed."""
    with scratch_table(contract, ctx, ROUND_TRIP_SCHEMA) as (name, table, catalog):
        now = datetime.datetime.now()
        ids, names = zip(*WRITTEN, strict=True)
        table.append(pa.table([ids, names, [now] * len(ids)], schema=ROUND_TRIP_SCHEMA))
        # The table name is made here, not taken from input: formatting it into SQL is safe.
        with _trino(contract, ctx, catalog=contract.require("catalog")) as trino:
            seen = clients.trino_rows(trino, f"SELECT id, name FROM {name} ORDER BY id")  # noqa: S608
            first = _same_rows("pyiceberg → trino", contract.url, WRITTEN, seen)
            insert = f"INSERT INTO {name} VALUES ({INSERTED[0]}, '{INSERTED[1]}', localtimestamp)"  # noqa: S608
            clients.trino_rows(trino, insert)
        rows = table.refresh().scan().to_arrow().sort_by("id")
        back = list(zip(rows["id"].to_pylist(), rows["name"].to_pylist(), strict=True))
        second = _same_rows("trino → pyiceberg", catalog.url, [*WRITTEN, INSERTED], back)
    yield from (first, second)


# --- observability: Prometheus ------------------------------------------------------------------


@check("observability", "every published metrics endpoint scraped and up")
def prometheus_targets_up(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    """Every metrics endpoint of every contract of the inventory is an active target of Prometheus,
    and up. Right after a start or a reload a target may not be listed, scraped or up yet (a
    service that has just restarted), so the targets are read again, bounded in time, until every
    one is up; what is not by then fails."""
    admin = contract.credential("admin")
    user, password = ctx.user(contract, admin), ctx.secret(contract, admin["secret_ref"])
    wanted = monitoring.expected(ctx.contracts)
    deadline = time.monotonic() + FIRST_SCRAPE_SECONDS
    while True:
        active = monitoring.active_targets(contract, user, password)
        states = {url: monitoring.describe(published, target, active) for url, (published, target) in wanted.items()}
        if time.monotonic() > deadline or all(state == "up" for state, _ in states.values()):
            break
        time.sleep(2)
    for url, (state, text) in sorted(states.items()):
        yield Outcome(url, state == "up", text)


# --- orchestrator: Airflow or Dagster -----------------------------------------------------------

# The sample job that verify runs through the orchestrator, for a fixed day (a re-run replaces it).
SAMPLE_JOB = REPO / "jobs" / "daily_ingest.yml"
SAMPLE_DAY = datetime.date(2026, 1, 1)
SAMPLE_JOB_SECONDS = 600
DEFAULT_ORCHESTRATOR_USERS = (("admin", "admin"), ("airflow", "airflow"), ("dagster", "dagster"))


def _orchestrator_refused(contract: Contract, user: str | None, password: str | None) -> Outcome:
    """The orchestrator's API must refuse a request without credentials, or with these."""
    url, answer = orchestrator.access(contract, user, password)
    return _http_refused(url, probe.Reply(answer.status, answer.detail), (401, 403))


@check("orchestrator", "anonymous access refused")
def orchestrator_anonymous_refused(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    yield _orchestrator_refused(contract, None, None)


@check("orchestrator", "default credentials refused")
def orchestrator_default_credentials_refused(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    for user, password in DEFAULT_ORCHESTRATOR_USERS:
        yield _orchestrator_refused(contract, user, password)


def has_sample_job(contract: Contract) -> bool:
    return "daily_ingest" in (contract.data.get("jobs") or [])


@check("orchestrator", "sample job run and read back", when=has_sample_job)
def orchestrator_sample_job(contract: Contract, ctx: VerifyContext) -> Iterator[Outcome]:
    """daily_ingest, triggered through the orchestrator's API for SAMPLE_DAY, finishes; Trino then
    reads exactly the rows it loads for that day."""
    spec = lakehouse_jobs.load_spec(str(SAMPLE_JOB))
    expected = int(spec["env"]["ROWS"])
    admin = contract.credential("admin")
    user, password = ctx.user(contract, admin), ctx.secret(contract, admin["secret_ref"])
    state = orchestrator.run_job(contract, spec["name"], SAMPLE_DAY, user, password, SAMPLE_JOB_SECONDS)
    rows = ingested_rows(ctx, SAMPLE_DAY)
    yield Outcome(contract.url, rows == expected, f"run {state}; {rows} rows for {SAMPLE_DAY}, expected {expected}")


def ingested_rows(ctx: VerifyContext, day: datetime.date) -> int:
    """How many rows the sample job's table holds for `day`, read with Trino."""
    query = next((c for c in ctx.contracts if c.service == "query"), None)
    if query is None:
        raise LakehouseError("no published query contract to read the sample job's rows with")
    statement = f"SELECT count(*) FROM ingest.daily_events WHERE event_date = DATE '{day.isoformat()}'"  # noqa: S608
    with clients.ca_bundle_env([query.ca]), _trino(query, ctx, catalog=query.require("catalog")) as trino:
        [(rows,)] = clients.trino_rows(trino, statement)
    return rows
