"""Python clients built from the contracts: pyiceberg for the Iceberg catalog, the trino DB-API for the
coordinator, and the CA trust both need (the recipe: docs/design/query-path.md)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pyiceberg.catalog import Catalog, load_catalog
from trino.auth import BasicAuthentication
from trino.dbapi import Connection
from trino.dbapi import connect as trino_connect

from lakehouse_cli.contracts import Contract

# requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override an explicit `verify` (pyiceberg REST, trino),
# pyarrow's S3 reads only SSL_CERT_FILE and s3fs (botocore) only AWS_CA_BUNDLE: the bundle goes in all.
CA_ENV = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE")

Secret = Callable[[str], str]  # the value behind a lakehouse_secret: reference


@contextmanager
def ca_bundle_env(cas: Iterable[Path | None], bundles: Path | None = None) -> Iterator[Path]:
    """For the block, every Python client trusts the system CAs plus `cas` (through CA_ENV).

    Yields the bundle; the environment is restored as it was afterwards. The bundle is
    content-addressed under `bundles` (default: the lakehouse cache) and kept: pyarrow's S3
    client reads its CA path once per process, so a later block must find it again.
    """
    system = ssl.get_default_verify_paths().cafile
    files = [Path(system)] if system else []
    files += dict.fromkeys(ca for ca in cas if ca)  # each CA once, in order
    text = "".join(file.read_text().rstrip("\n") + "\n" for file in files)
    bundles = bundles or Path(os.environ.get("LAKEHOUSE_CACHE") or Path.home() / ".cache" / "lakehouse") / "ca-bundles"
    bundles.mkdir(parents=True, exist_ok=True)
    bundle = bundles / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.pem"
    if not bundle.exists():
        partial = bundle.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(text)
        partial.replace(bundle)  # atomic: a concurrent reader never sees half a bundle
    saved = {name: os.environ.get(name) for name in CA_ENV}
    os.environ.update(dict.fromkeys(CA_ENV, str(bundle)))
    try:
        yield bundle
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_token() -> str:
    """An RS256 JWT that looks like the catalog's tokens but is signed by a throw-away key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT"}
    claims = {"iss": "lakehouse", "sub": "lakehouse-clients", "iat": now, "exp": now + 3600}
    signed = ".".join(_b64url(json.dumps(part).encode()) for part in (header, claims))
    return f"{signed}.{_b64url(key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256()))}"


def iceberg_properties(catalog: Contract, secret: Secret) -> dict:
    """pyiceberg properties for a published catalog: REST (Nessie), or SQL on the JDBC catalog's database."""
    storage = catalog.require("object_storage")
    properties = {
        "s3.endpoint": catalog.require("object_storage.endpoint"),
        "s3.region": storage.get("region") or "us-east-1",
        "s3.access-key-id": catalog.require("object_storage.credentials.user"),
        "s3.secret-access-key": secret(catalog.require("object_storage.credentials.secret_ref")),
        "s3.force-virtual-addressing": "false" if storage.get("path_style", True) else "true",
    }
    if catalog.data.get("type") == "jdbc":
        jdbc = catalog.require("jdbc")
        client = catalog.credential("client")  # the database login role
        user = quote(client["user"], safe="")
        password = quote(secret(client["secret_ref"]), safe="")
        server = f"{catalog.require('jdbc.host')}:{jdbc.get('port') or 5432}/{catalog.require('jdbc.database')}"
        tls = {"sslmode": jdbc.get("sslmode") or "verify-full"}
        if catalog.ca:
            tls["sslrootcert"] = str(catalog.ca)
        return properties | {
            "type": "sql",
            "uri": f"postgresql+psycopg2://{user}:{password}@{server}?{urlencode(tls)}",
            "init_catalog_tables": "false",  # the bootstrap owns the DDL (Trino's JDBC catalog never creates it)
            "warehouse": catalog.require("warehouse"),
        }
    rest = catalog.require("rest")
    tls = {"cabundle": str(catalog.ca)} if catalog.ca else {}
    if rest.get("auth") == "bearer":
        properties["token"] = secret(catalog.credential("client")["secret_ref"])
    return properties | {
        "type": "rest",
        "uri": catalog.require("rest.uri"),
        "warehouse": catalog.require("rest.warehouse"),
        "ssl": tls,
    }


def iceberg_catalog(catalog: Contract, secret: Secret) -> Catalog:
    """The published catalog through pyiceberg (call inside ca_bundle_env)."""
    return load_catalog(str(catalog.require("name")), **iceberg_properties(catalog, secret))


def trino(query: Contract, user: str, password: str, catalog: str | None = None) -> Connection:
    """A DB-API connection to the coordinator: HTTPS, basic auth (call inside ca_bundle_env)."""
    url = urlsplit(query.url)
    return trino_connect(
        host=url.hostname,
        port=url.port or 443,
        user=user,
        auth=BasicAuthentication(user, password),
        http_scheme="https",
        catalog=catalog,
        verify=str(query.ca) if query.ca else True,
    )


def trino_rows(connection: Connection, sql: str) -> list[tuple]:
    """Run one statement to its end (an INSERT too) and return its rows as tuples."""
    cursor = connection.cursor()
    try:
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()
