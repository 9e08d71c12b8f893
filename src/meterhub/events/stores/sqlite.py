"""The embedded default event store: one SQLite file in WAL mode.

Schema (created on first use)::

    CREATE TABLE meterhub_events (
        id INTEGER PRIMARY KEY, ts REAL NOT NULL,      -- UTC epoch seconds
        user_id TEXT, event_type TEXT NOT NULL, data TEXT NOT NULL);  -- data: JSON
    CREATE INDEX meterhub_events_ts ON meterhub_events (ts);
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from pathlib import Path
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

__all__ = ["SQLiteEventStore"]

_IDENT = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,62}$")


def check_table(table: str) -> str:
    if not isinstance(table, str) or not _IDENT.match(table):
        raise ValueError(f"table must be a plain SQL identifier, got {table!r}")
    return table


class SQLiteEventStore(BatchingStore):
    """Events in a SQLite file: WAL, batched inserts on a background thread, bounded buffer.

    ``synchronous`` is SQLite's pragma: ``"NORMAL"`` (default; WAL makes each batch survive an
    application crash) or ``"FULL"`` (also survives power loss).

    Example::

        >>> import tempfile, time, os
        >>> path = os.path.join(tempfile.mkdtemp(), "events.db")
        >>> with SQLiteEventStore(path) as store:
        ...     _ = store.add(time.time(), "u1", "user_logged_in", {"auth_method": "email"})
        ...     _ = store.flush(5)
        ...     [e.event_type for e in store.latest(1)]
        ['user_logged_in']
    """

    name = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        table: str = "meterhub_events",
        max_buffer: int = 100_000,
        batch_size: int = 5_000,
        interval: float = 0.05,
        synchronous: str = "NORMAL",
    ) -> None:
        super().__init__(max_buffer=max_buffer, batch_size=batch_size, interval=interval)
        if not isinstance(path, (str, Path)) or not str(path):
            raise ValueError(f"path must be a file path, got {path!r}")
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF/NORMAL/FULL/EXTRA, got {synchronous!r}")
        self.path = str(path)
        self.table = check_table(table)
        self.synchronous = synchronous
        self._insert = (
            f"INSERT INTO {self.table} (ts, user_id, event_type, data) VALUES (?, ?, ?, ?)"
        )
        # Fail at construction (not in the background) if the file cannot be opened.
        self._close_conn(self._open())

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        with conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (id INTEGER PRIMARY KEY, "
                "ts REAL NOT NULL, user_id TEXT, event_type TEXT NOT NULL, data TEXT NOT NULL)"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_ts ON {self.table} (ts)")
        return conn

    def _write(self, conn: sqlite3.Connection, rows: list[Row]) -> None:
        with conn:
            conn.executemany(self._insert, rows)

    def _close_conn(self, conn: Any) -> None:
        conn.close()

    def _is_permanent(self, exc: Exception) -> bool:
        refused = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError)
        return isinstance(exc, refused) or super()._is_permanent(exc)

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        conn = self._open()
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def counts(
        self, bucket_seconds: int = 3600, since: dt.datetime | float | None = None
    ) -> list[EventCount]:
        """Events per type per *bucket_seconds* bucket since *since*, oldest bucket first."""
        check_query_args(bucket_seconds=bucket_seconds)
        rows = self._query(
            f"SELECT CAST(ts / ? AS INTEGER) * ? AS b, event_type, COUNT(*) FROM {self.table} "
            "WHERE ts >= ? GROUP BY b, event_type ORDER BY b, event_type",
            (bucket_seconds, bucket_seconds, max(to_epoch(since), -1e18)),
        )
        return [EventCount(from_epoch(b), t, int(c)) for b, t, c in rows]

    def latest(self, n: int = 20) -> list[StoredEvent]:
        """The *n* most recent events, newest first."""
        check_query_args(n=n)
        rows = self._query(
            f"SELECT ts, user_id, event_type, data FROM {self.table} "
            "ORDER BY ts DESC, id DESC LIMIT ?",
            (n,),
        )
        return [StoredEvent(from_epoch(ts), u, t, json.loads(d)) for ts, u, t, d in rows]

    def row_count(self) -> int:
        """How many events the table holds (durable rows)."""
        return int(self._query(f"SELECT COUNT(*) FROM {self.table}", ())[0][0])
