"""The operation log: record every operation without waiting on disk.

``record_operation`` validates and buffers a record in O(1); a writer thread turns the
buffer into atomic JSON batch files (``metrics_YYYYMMDD_HHMMSS_ffffff.json``, docs/oplog.md
"Batch files"). ``read_batches``/``summarize`` read them back; ``cleanup`` applies retention;
``track_operation`` times blocks and functions.

Example::

    >>> import asyncio, tempfile
    >>> from meterhub import Registry
    >>> from meterhub.oplog import OperationLog, summarize
    >>> async def main(path):
    ...     async with OperationLog(path, registry=Registry(self_metrics=False)) as log:
    ...         await log.record_operation("db_query", "SELECT users", 15.3)
    >>> path = tempfile.mkdtemp(); asyncio.run(main(path))
    >>> summarize(path)[("db_query", "SELECT users")].count
    1
"""

from __future__ import annotations

from .files import have_orjson
from .log import OperationLog, QueuePolicy
from .read import Batch, OperationSummary, cleanup, read_batches, summarize
from .stats import OplogStats
from .track import TrackedOperation, track_operation

__all__ = [
    "Batch",
    "OperationLog",
    "OperationSummary",
    "OplogStats",
    "QueuePolicy",
    "TrackedOperation",
    "cleanup",
    "have_orjson",
    "read_batches",
    "summarize",
    "track_operation",
]
