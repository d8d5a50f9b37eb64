#!/usr/bin/env python3
"""The sample job daily_ingest (jobs/daily_ingest.yml): loads one day's partition of the Iceberg table
<catalog>.ingest.daily_events through the query contract (Trino's HTTP protocol), replacing that day
rather than adding to it, so a re-run of a day leaves the same rows.

Standard library only. Reads from the environment (the query contract):
LAKEHOUSE_QUERY_URL (https://host:port), LAKEHOUSE_QUERY_USER, LAKEHOUSE_QUERY_CATALOG,
LAKEHOUSE_CA_FILE (the CA that signed Trino's certificate) and LAKEHOUSE_QUERY_PASSWORD_FILE (a
mounted file holding the password; default /run/lakehouse/secrets/query-password); ROWS (rows per
day, default 1000) and LAKEHOUSE_QUERY_TIMEOUT (seconds per statement, default 600).

Usage: daily_ingest.py --date YYYY-MM-DD [--rows N]. Prints one JSON line per step to stdout and
exits non-zero, with Trino's message, when a statement fails or the day's count is not N.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.request

SCHEMA = "ingest"
TABLE = "daily_events"
MAX_ROWS = 10_000_000
CHUNK = 10_000  # Trino's sequence() yields at most 10,000 elements
KINDS = ("view", "click", "purchase", "refund")
DEFAULT_PASSWORD_FILE = "/run/lakehouse/secrets/query-password"  # noqa: S105 (a path, not a password)
MAX_POLLS = 100_000
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


class QueryError(RuntimeError):
    """A statement Trino refused or did not finish."""


def parse_args(argv=None, environ=None) -> argparse.Namespace:
    """--date (YYYY-MM-DD, required) and --rows (default: env ROWS, else 1000; 1 to 10,000,000)."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(description="Load one day of ingest.daily_events, replacing it.")
    parser.add_argument("--date", required=True, type=_day, help="the day to load, YYYY-MM-DD")
    parser.add_argument("--rows", type=int, default=None, help="rows for the day (default: env ROWS, else 1000)")
    arguments = parser.parse_args(argv)
    if arguments.rows is None:
        text = environ.get("ROWS", "1000")
        try:
            arguments.rows = int(text)
        except ValueError:
            parser.error(f"ROWS={text!r} is not an integer")
    if not 1 <= arguments.rows <= MAX_ROWS:
        parser.error(f"rows must be 1 to {MAX_ROWS}, not {arguments.rows}")
    return arguments


def _day(text: str) -> datetime.date:
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a day YYYY-MM-DD")
    try:
        return datetime.date.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None


def table_name(catalog: str) -> str:
    if not _IDENTIFIER.match(catalog):
        raise ValueError(f"catalog {catalog!r} is not a plain identifier")
    return f'"{catalog}"."{SCHEMA}"."{TABLE}"'


def statements(catalog: str, day: datetime.date, rows: int) -> list[tuple[str, str]]:
    """The (step, SQL) sequence that replaces `day` in the table with `rows` deterministic rows:
    event_id = yyyymmdd * 10^8 + n for n in 1..rows, so ids never collide across days. The text
    holds only a checked identifier, a date and integers (hence the noqa: S608 below)."""
    table = table_name(catalog)
    literal = f"DATE '{day.isoformat()}'"
    base = int(day.strftime("%Y%m%d")) * 100_000_000
    kinds = ", ".join(f"'{kind}'" for kind in KINDS)
    chunks = (rows - 1) // CHUNK
    return [
        ("create_schema", f'CREATE SCHEMA IF NOT EXISTS "{catalog}"."{SCHEMA}"'),
        (
            "create_table",
            f"CREATE TABLE IF NOT EXISTS {table} "
            "(event_date date, event_id bigint, kind varchar, amount double) "
            "WITH (partitioning = ARRAY['event_date'])",
        ),
        ("delete_day", f"DELETE FROM {table} WHERE event_date = {literal}"),  # noqa: S608
        (
            "insert_day",
            f"INSERT INTO {table} (event_date, event_id, kind, amount) "  # noqa: S608
            f"SELECT {literal}, CAST({base} + n AS bigint), "
            f"element_at(ARRAY[{kinds}], CAST(n % {len(KINDS)} + 1 AS integer)), "
            "CAST((n * 37) % 10000 AS double) / 100 "
            f"FROM (SELECT c * {CHUNK} + i AS n FROM UNNEST(sequence(0, {chunks})) AS a(c) "
            f"CROSS JOIN UNNEST(sequence(1, {CHUNK})) AS b(i)) WHERE n <= {rows}",
        ),
        ("count_day", f"SELECT count(*) FROM {table} WHERE event_date = {literal}"),  # noqa: S608
    ]


class Trino:
    """A minimal client of Trino's HTTP protocol: POST /v1/statement, then follow nextUri."""

    def __init__(self, url, user, password, catalog, cafile, timeout=600.0):
        if not url.startswith("https://"):
            raise ValueError(f"LAKEHOUSE_QUERY_URL {url!r} is not https://")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=cafile)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.headers = {
            "Authorization": f"Basic {token}",
            "X-Trino-User": user,
            "X-Trino-Catalog": catalog,
            "X-Trino-Source": "lakehouse-daily-ingest",
        }

    def _request(self, method, url, body=None):
        # The URL is https:// (checked in __init__) or a nextUri Trino returned.
        request = urllib.request.Request(url, data=body, method=method, headers=self.headers)  # noqa: S310
        for attempt in range(5):
            try:
                with urllib.request.urlopen(request, context=self.context, timeout=60) as response:  # noqa: S310
                    return json.load(response)
            except urllib.error.HTTPError as error:
                if error.code in (429, 502, 503, 504) and attempt < 4:
                    time.sleep(0.5 * 2**attempt)
                    continue
                detail = error.read().decode("utf-8", "replace")[:500]
                raise QueryError(f"HTTP {error.code} from {method} {url}: {detail}") from None
        raise AssertionError("unreachable")

    def execute(self, sql: str) -> list[list]:
        """The rows `sql` returns; QueryError with Trino's message when it fails or outlasts the timeout."""
        deadline = time.monotonic() + self.timeout
        result = self._request("POST", f"{self.url}/v1/statement", sql.encode())
        rows = []
        for _ in range(MAX_POLLS):
            if result.get("error"):
                error = result["error"]
                raise QueryError(f"{error.get('errorName', 'ERROR')}: {error.get('message', error)}")
            rows.extend(result.get("data") or [])
            next_uri = result.get("nextUri")
            if not next_uri:
                return rows
            if time.monotonic() > deadline:
                self._cancel(next_uri)
                raise QueryError(f"no result within {self.timeout:.0f} s (query {result.get('id')})")
            result = self._request("GET", next_uri)
        raise QueryError(f"no result after {MAX_POLLS} polls (query {result.get('id')})")

    def _cancel(self, next_uri):
        with contextlib.suppress(QueryError, OSError, ValueError):
            self._request("DELETE", next_uri)


def log(**fields):
    print(json.dumps(fields, sort_keys=True), flush=True)


def main(argv=None) -> int:
    arguments = parse_args(argv)
    day = arguments.date.isoformat()
    try:
        catalog = os.environ["LAKEHOUSE_QUERY_CATALOG"]
        password_file = os.environ.get("LAKEHOUSE_QUERY_PASSWORD_FILE", DEFAULT_PASSWORD_FILE)
        with open(password_file, encoding="utf-8") as handle:
            password = handle.read().strip()
        client = Trino(
            os.environ["LAKEHOUSE_QUERY_URL"],
            os.environ["LAKEHOUSE_QUERY_USER"],
            password,
            catalog,
            os.environ["LAKEHOUSE_CA_FILE"],
            timeout=float(os.environ.get("LAKEHOUSE_QUERY_TIMEOUT", "600")),
        )
        steps = statements(catalog, arguments.date, arguments.rows)
    except KeyError as error:
        log(step="configure", status="failed", date=day, error=f"{error.args[0]} is not set")
        return 2
    except (OSError, ValueError) as error:
        log(step="configure", status="failed", date=day, error=str(error))
        return 2
    count = None
    for step, sql in steps:
        started = time.monotonic()
        try:
            rows = client.execute(sql)
        except (QueryError, OSError) as error:
            log(step=step, status="failed", date=day, error=str(error))
            return 1
        seconds = round(time.monotonic() - started, 3)
        if step == "count_day":
            count = int(rows[0][0])
            log(step=step, status="ok", date=day, rows=count, seconds=seconds)
        else:
            log(step=step, status="ok", date=day, seconds=seconds)
    if count != arguments.rows:
        log(step="check", status="failed", date=day, rows=count, expected=arguments.rows)
        return 1
    log(step="done", status="ok", date=day, table=f"{catalog}.{SCHEMA}.{TABLE}", rows=count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
