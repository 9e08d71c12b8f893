"""Event stores: one small interface (:class:`EventStore`), three implementations.

* :class:`SQLiteEventStore` - the embedded default (one file, WAL).
* :class:`PostgresEventStore` - production (psycopg 3, ``COPY``, reconnects); psycopg is
  imported when the store is created (extra ``meterhub[postgres]``).
* :class:`OperationLogEventStore` - events as operation-log records.
"""

from __future__ import annotations

from .base import BatchingStore, EventCount, EventStore, StoredEvent
from .oplog import OperationLogEventStore
from .postgres import PostgresEventStore
from .sqlite import SQLiteEventStore

__all__ = [
    "BatchingStore",
    "open_store",
    "EventCount",
    "EventStore",
    "OperationLogEventStore",
    "PostgresEventStore",
    "SQLiteEventStore",
    "StoredEvent",
]


def open_store(target: str) -> BatchingStore:
    """A store from a URL-ish string (what the CLI's ``--store`` takes).

    ``postgresql://...``/``postgres://...`` (a libpq URL) gives a :class:`PostgresEventStore`;
    ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or a plain file path gives a
    :class:`SQLiteEventStore`.

    Example::

        >>> import os, tempfile
        >>> open_store(os.path.join(tempfile.mkdtemp(), "e.db")).name
        'sqlite'
    """
    if not isinstance(target, str) or not target:
        raise ValueError(f"store must be a database URL or a file path, got {target!r}")
    if target.startswith(("postgresql://", "postgres://")):
        return PostgresEventStore(target)
    if target.startswith("sqlite:///"):  # SQLAlchemy style: sqlite:///rel.db, sqlite:////abs.db
        target = target[len("sqlite:///") :]
    return SQLiteEventStore(target)
