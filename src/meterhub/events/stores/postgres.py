"""The production event store: PostgreSQL through psycopg 3, batches written with ``COPY``.

Schema (created on first use)::

    CREATE TABLE meterhub_events (
        id bigserial PRIMARY KEY, ts timestamptz NOT NULL,
        user_id text, event_type text NOT NULL, data text NOT NULL);  -- data: JSON text
    CREATE INDEX meterhub_events_ts ON meterhub_events (ts);

``data`` is JSON text rather than ``jsonb`` so that any payload (NaN, NUL, lone surrogates,
all escaped) is accepted; query it with ``data::jsonb`` where needed.

Delivery is at-least-once: when the server goes away the batch being written is kept and
retried on a new connection (backoff up to 1 s) while new events queue in the bounded buffer.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from .base import (
    BatchingStore,
    EventCount,
    Row,
    StoredEvent,
    check_query_args,
    from_epoch,
    to_epoch,
)
from .sqlite import check_table

__all__ = ["PostgresEventStore"]

_UTC = dt.timezone.utc


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise ImportError(
            "PostgresEventStore needs psycopg 3: pip install 'meterhub[postgres]'"
        ) from exc
    return psycopg


class PostgresEventStore(BatchingStore):
    """Events in PostgreSQL: batched ``COPY`` on a background thread, reconnects on failure.

    Example::

        store = PostgresEventStore("postgresql://app@db/analytics", max_buffer=200_000)
        router = EventRouter(hub=hub, store=store)
        router.track_event("u1", "user_logged_in", {"auth_method": "email"})
        store.close()                       # flushes
    """

    name = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        table: str = "meterhub_events",
        max_buffer: int = 100_000,
        batch_size: int = 5_000,
        interval: float = 0.05,
        connect_timeout: int = 5,
    ) -> None:
        super().__init__(max_buffer=max_buffer, batch_size=batch_size, interval=interval)
        if not isinstance(dsn, str) or not dsn:
            raise ValueError(f"dsn must be a libpq connection string, got {dsn!r}")
        self._pg = _psycopg()
        self.dsn = dsn
        self.table = check_table(table)
        self.connect_timeout = connect_timeout
        self._copy = f"COPY {self.table} (ts, user_id, event_type, data) FROM STDIN"

    def _open(self) -> Any:
        conn = self._pg.connect(self.dsn, connect_timeout=self.connect_timeout)
        with conn.transaction():
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (id bigserial PRIMARY KEY, "
                "ts timestamptz NOT NULL, user_id text, event_type text NOT NULL, "
                "data text NOT NULL)"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_ts ON {self.table} (ts)")
        return conn

    def _write(self, conn: Any, rows: list[Row]) -> None:
        fromts = dt.datetime.fromtimestamp
        with conn.transaction(), conn.cursor() as cur, cur.copy(self._copy) as copy:
            for ts, user_id, event_type, data in rows:
                copy.write_row((fromts(ts, _UTC), user_id, event_type, data))

    def _close_conn(self, conn: Any) -> None:
        conn.close()

    def _is_permanent(self, exc: Exception) -> bool:
        pg = self._pg
        refused = (pg.DataError, pg.IntegrityError)
        return isinstance(exc, refused) or super()._is_permanent(exc)

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        with self._pg.connect(self.dsn, connect_timeout=self.connect_timeout) as conn:
            self._ensure_table(conn)
            return list(conn.execute(sql, args).fetchall())

    def _ensure_table(self, conn: Any) -> None:
        exists = conn.execute("SELECT to_regclass(%s)", (self.table,)).fetchone()[0]
        if exists is None:
            self._close_conn(self._open())

    def counts(
        self, bucket_seconds: int = 3600, since: dt.datetime | float | None = None
    ) -> list[EventCount]:
        """Events per type per *bucket_seconds* bucket since *since*, oldest bucket first."""
        check_query_args(bucket_seconds=bucket_seconds)
        where, args = "", [float(bucket_seconds), float(bucket_seconds)]
        if since is not None:
            where = "WHERE ts >= to_timestamp(%s) "
            args.append(to_epoch(since))
        rows = self._query(
            "SELECT floor(extract(epoch FROM ts) / %s) * %s AS b, event_type, count(*) "
            f"FROM {self.table} {where}GROUP BY b, event_type ORDER BY b, event_type",
            tuple(args),
        )
        return [EventCount(from_epoch(float(b)), t, int(c)) for b, t, c in rows]

    def latest(self, n: int = 20) -> list[StoredEvent]:
        """The *n* most recent events, newest first."""
        check_query_args(n=n)
        rows = self._query(
            f"SELECT ts, user_id, event_type, data FROM {self.table} "
            "ORDER BY ts DESC, id DESC LIMIT %s",
            (n,),
        )
        return [StoredEvent(ts.astimezone(_UTC), u, t, json.loads(d)) for ts, u, t, d in rows]

    def row_count(self) -> int:
        """How many events the table holds (durable rows)."""
        return int(self._query(f"SELECT count(*) FROM {self.table}", ())[0][0])
