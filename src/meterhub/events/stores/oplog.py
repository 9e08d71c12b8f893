"""The operation log as an event store: each event becomes one operation record.

Records are ``{operation_type: "event", operation_name: <event_type>, duration_ms: 0,
success: true, metadata: {event_data, timestamp}}`` in the operation log's JSON batch files.
The user id is *not* written: the operation log's PII guard refuses personal data in
metadata (use the SQLite or PostgreSQL store to keep it). An event the log refuses (a PII key
in the payload, NaN, log not running, buffer full) is counted in ``dropped["log_refused"]``.

The log owns durability and retention (``flush()`` is a no-op: stop the log to flush it);
this adapter keeps the last ``keep`` events in memory to answer ``counts()``/``latest()``
(a window, not the full history; ``meterhub.oplog.read_batches`` reads the files).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import threading
from typing import Any

from .base import EventCount, StoredEvent, check_query_args, encode_event, from_epoch, to_epoch

__all__ = ["OperationLogEventStore"]


class OperationLogEventStore:
    """Send events to a :class:`meterhub.OperationLog`.

    Example::

        log = OperationLog("/var/lib/app/oplog")
        log.start_sync()
        router = EventRouter(hub=hub, store=OperationLogEventStore(log, close_log=True))
    """

    name = "oplog"

    def __init__(self, log: Any, *, keep: int = 10_000, close_log: bool = False) -> None:
        if not callable(getattr(log, "record_operation_nowait", None)):
            raise TypeError(
                f"log must be a meterhub.OperationLog (with record_operation_nowait), got {log!r}"
            )
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be a positive int, got {keep!r}")
        self.log = log
        self.close_log = close_log
        self._recent: collections.deque[tuple[float, str | None, str, str]] = collections.deque(
            maxlen=keep
        )
        self._lock = threading.Lock()
        self._written = 0
        self.dropped: collections.Counter[str] = collections.Counter()

    def add(self, timestamp: float, user_id: Any, event_type: str, data: Any) -> bool:
        row = encode_event(timestamp, user_id, event_type, data)
        metadata = {
            "event_data": json.loads(row[3]),
            "timestamp": from_epoch(timestamp).isoformat(),
        }
        try:
            accepted = self.log.record_operation_nowait(
                operation_type="event",
                operation_name=row[2],
                duration_ms=0.0,
                success=True,
                metadata=metadata,
            )
        except Exception:
            accepted = False
        if accepted is False:
            with self._lock:
                self.dropped["log_refused"] += 1
            return False
        self._recent.append((row[0], None, row[2], row[3]))
        self._written += 1
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """The log flushes on its own schedule (``flush_interval_seconds``) and on stop."""
        return True

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop the log (flushing it) if this store was given ``close_log=True``."""
        if self.close_log:
            stop = getattr(self.log, "stop_sync", None)
            if callable(stop):
                stop(timeout)

    def counts(
        self, bucket_seconds: int = 3600, since: dt.datetime | float | None = None
    ) -> list[EventCount]:
        """Counts over the events still held in memory (the last ``keep``)."""
        check_query_args(bucket_seconds=bucket_seconds)
        start = to_epoch(since)
        tally: collections.Counter[tuple[int, str]] = collections.Counter()
        for ts, _, event_type, _ in list(self._recent):
            if ts >= start:
                tally[(int(ts // bucket_seconds) * bucket_seconds, event_type)] += 1
        return [EventCount(from_epoch(b), t, c) for (b, t), c in sorted(tally.items())]

    def latest(self, n: int = 20) -> list[StoredEvent]:
        check_query_args(n=n)
        rows = list(self._recent)[-n:]
        rows.reverse()
        return [StoredEvent(from_epoch(ts), u, t, json.loads(d)) for ts, u, t, d in rows]

    def stats(self) -> dict[str, float]:
        out = {"written": float(self._written), "buffered": 0.0, "write_errors": 0.0}
        with self._lock:
            out.update({f"dropped_{r}": float(n) for r, n in self.dropped.items()})
        return out
