"""A query loop on the published query contract: what a change or a failure costs the lakehouse's clients.

    with QueryLoop(query, ctx) as loop:
        ...  # restart, upgrade, kill something
    print(loop.summary())  # queries answered, failed, the fewest active workers seen

The loop reads an Iceberg table of its own (made and removed by checks.scratch_table) through the
coordinator, again and again in a thread, for as long as the block runs (bounded by
`limit_seconds`). A query that fails or answers wrong is a failure; between two queries the loop
reads how many workers the coordinator lists as active.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

import pyarrow as pa

from lakehouse_cli import checks, clients
from lakehouse_cli.contracts import Contract

ROWS = 10_000
SCHEMA = pa.schema([("id", pa.int64())])
EXPECTED = (ROWS, ROWS * (ROWS - 1) // 2)  # count(*) and sum(id) of ids 0 .. ROWS-1
ACTIVE_WORKERS = "SELECT count(*) FROM system.runtime.nodes WHERE state = 'active' AND NOT coordinator"
RETRY_PAUSE_SECONDS = 0.5  # after a failed query, so a coordinator that refuses is not flooded
JOIN_SECONDS = 60  # a query under way when the block ends may take this long to finish


@dataclass
class QueryLoop:
    query: Contract
    ctx: checks.VerifyContext
    limit_seconds: float = 1800
    answered: int = 0
    failures: list[str] = field(default_factory=list)
    fewest_active_workers: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _exits: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __enter__(self) -> QueryLoop:
        name, table, _ = self._exits.enter_context(checks.scratch_table(self.query, self.ctx, SCHEMA))
        table.append(pa.table([pa.array(range(ROWS), pa.int64())], schema=SCHEMA))
        self._statement = f"SELECT count(*), sum(id) FROM {name}"  # noqa: S608 (a name made here)
        admin = self.query.require("credentials.admin")
        self._connect = lambda: clients.trino(
            self.query,
            self.ctx.user(self.query, admin),
            self.ctx.secret(self.query, admin["secret_ref"]),
            self.query.require("catalog"),
        )
        self._thread = threading.Thread(target=self._run, name="query-loop", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(JOIN_SECONDS)
        self._exits.close()

    @property
    def failed(self) -> int:
        return len(self.failures)

    def summary(self) -> str:
        first = f"; first failure: {self.failures[0]}" if self.failures else ""
        return (
            f"{self.failed} failed of {self.answered + self.failed} queries, "
            f"at least {self.fewest_active_workers} active workers at every moment{first}"
        )

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit_seconds
        with self._connect() as connection:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    [row] = clients.trino_rows(connection, self._statement)
                    if tuple(row) != EXPECTED:
                        raise ValueError(f"answered {tuple(row)}, expected {EXPECTED}")
                    self.answered += 1
                except Exception as err:  # noqa: BLE001 (every failure is counted and reported)
                    self.failures.append(self.ctx.redact(f"{type(err).__name__}: {err}")[:500])
                    self._stop.wait(RETRY_PAUSE_SECONDS)
                with contextlib.suppress(Exception):  # a sample missed is not a query failed
                    [(active,)] = clients.trino_rows(connection, ACTIVE_WORKERS)
                    seen = self.fewest_active_workers
                    self.fewest_active_workers = active if seen is None else min(seen, active)
