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
    "EventCount",
    "EventStore",
    "OperationLogEventStore",
    "PostgresEventStore",
    "SQLiteEventStore",
    "StoredEvent",
]
