"""The event store interface and the buffered background writer the database stores share.

Contract of every store:

* ``add()`` never blocks and never raises: the event goes into a bounded in-memory buffer
  (``max_buffer`` events) that a background thread writes in batches. A full buffer drops
  the event and counts it (``dropped["buffer_full"]``); ``add()`` then returns False.
* ``flush(timeout)`` waits until every event added before the call is durable.
* ``close(timeout)`` flushes and stops the writer; events still buffered when the timeout
  expires are counted in ``dropped["closed"]``.
* A write that fails (server down) is retried with backoff, the batch kept; events keep
  being buffered meanwhile, up to the bound.
* Queries (``counts``, ``latest``) read durable rows only (``flush()`` first to see your own
  writes); they run on their own connection and may raise the database's errors.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

__all__ = ["BatchingStore", "EventCount", "EventStore", "Row", "StoredEvent", "encode_event"]

log = logging.getLogger("meterhub.events")

Row = tuple[float, "str | None", str, str]
"""A buffered event: (UTC epoch seconds, user_id, event_type, JSON payload)."""


class StoredEvent(NamedTuple):
    """One event as read back from a store."""

    timestamp: dt.datetime  # timezone-aware, UTC
    user_id: str | None
    event_type: str
    data: Any  # the payload as decoded from JSON (normally a dict)


@dataclasses.dataclass(frozen=True)
class EventCount:
    """How many events of *event_type* happened in the bucket starting at *bucket_start*."""

    bucket_start: dt.datetime  # timezone-aware, UTC
    event_type: str
    count: int


@runtime_checkable
class EventStore(Protocol):
    """What :class:`~meterhub.events.EventRouter` needs from a store."""

    def add(self, timestamp: float, user_id: str | None, event_type: str, data: Any) -> bool:
        """Buffer one event (UTC epoch seconds); never blocks; False if it was dropped."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until buffered events are durable; False on timeout."""
        ...

    def close(self, timeout: float | None = 10.0) -> None: ...

    def counts(
        self, bucket_seconds: int = 3600, since: dt.datetime | float | None = None
    ) -> list[EventCount]:
        """Events per event type per time bucket, oldest bucket first."""
        ...

    def latest(self, n: int = 20) -> list[StoredEvent]:
        """The *n* most recent events, newest first."""
        ...

    def stats(self) -> Mapping[str, float]:
        """Counters: ``written``, ``buffered``, ``dropped_<reason>``, ``write_errors``."""
        ...


def _clean(text: str) -> str:
    """A str every database accepts (no NUL, no lone surrogates)."""
    if text.isascii() and "\x00" not in text:
        return text
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


_encode = json.JSONEncoder(default=str, separators=(",", ":")).encode  # built once: fast


def encode_event(
    timestamp: float, user_id: Any, event_type: str, data: Any
) -> tuple[float, str | None, str, str]:
    """Normalise one event into a :data:`Row` (payload as ASCII JSON: any str survives)."""
    try:
        payload = _encode(data)
    except (TypeError, ValueError):  # circular structures, keys that are not str
        payload = _encode(str(data))
    if user_id is not None:
        user_id = _clean(user_id if type(user_id) is str else str(user_id))
    return (timestamp, user_id, _clean(event_type), payload)


def to_epoch(since: dt.datetime | float | None) -> float:
    if since is None:
        return float("-inf")
    if isinstance(since, dt.datetime):
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.timezone.utc)
        return since.timestamp()
    return float(since)


def from_epoch(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def check_query_args(bucket_seconds: Any = 3600, n: Any = 20) -> None:
    for name, v in (("bucket_seconds", bucket_seconds), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")


class BatchingStore:
    """A bounded buffer drained in batches by one background thread.

    Subclasses implement ``_open()`` (return a connection), ``_write(conn, rows)`` (write one
    batch durably or raise) and ``_close_conn(conn)``. The thread starts on first ``add()``.
    """

    name = "store"

    def __init__(
        self, *, max_buffer: int = 100_000, batch_size: int = 5_000, interval: float = 0.05
    ) -> None:
        for label, v in (("max_buffer", max_buffer), ("batch_size", batch_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{label} must be a positive int, got {v!r}")
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self.max_buffer = max_buffer
        self.batch_size = batch_size
        self.interval = interval
        self._buf: collections.deque[Row] = collections.deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._pending: list[Row] = []  # the batch being written (kept across retries)
        # True while the writer holds events that are in neither _buf nor _pending
        self._draining = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._closed = False
        self._written = 0
        self._write_errors = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self.last_error: BaseException | None = None

    # -- producer side (the application's threads) -----------------------------------------

    def add(self, timestamp: float, user_id: Any, event_type: str, data: Any) -> bool:
        """Buffer one event; never blocks. Example: ``store.add(time.time(), "u1", "x", {})``."""
        buf = self._buf
        if len(buf) >= self.max_buffer or self._closed:
            with self._lock:
                self.dropped["closed" if self._closed else "buffer_full"] += 1
            return False
        buf.append(encode_event(timestamp, user_id, event_type, data))
        if self._thread is None:
            self._start()
        elif len(buf) >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        return True

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                t = threading.Thread(target=self._run, name=f"meterhub-{self.name}", daemon=True)
                self._thread = t
                t.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every buffered event is written; False if *timeout* expired first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._buf or self._pending or self._draining:
                if self._thread is None or not self._thread.is_alive():
                    return not (self._buf or self._pending or self._draining)
                self._wake.set()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(0.1 if left is None else min(left, 0.1))
        return True

    def close(self, timeout: float | None = 10.0) -> None:
        """Flush (up to *timeout* seconds), stop the writer and release the connection."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._closing = True
        self._wake.set()
        t = self._thread
        if t is not None:
            t.join(5.0)
        with self._lock:
            lost = len(self._buf) + len(self._pending)
            if lost:
                self.dropped["closed"] += lost
            self._buf.clear()

    def __enter__(self) -> BatchingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, float]:
        """Counters for monitoring; also exported by the router as metrics."""
        out: dict[str, float] = {
            "written": float(self._written),
            "buffered": float(len(self._buf) + len(self._pending)),
            "write_errors": float(self._write_errors),
        }
        with self._lock:
            for reason, n in self.dropped.items():
                out[f"dropped_{reason}"] = float(n)
        return out

    # -- the writer thread -------------------------------------------------------------------

    def _open(self) -> Any:
        raise NotImplementedError

    def _write(self, conn: Any, rows: list[Row]) -> None:
        raise NotImplementedError

    def _close_conn(self, conn: Any) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        conn: Any = None
        backoff = 0.05
        buf = self._buf
        while True:
            if not self._pending:
                self._draining = True
                n = min(len(buf), self.batch_size)
                self._pending = [buf.popleft() for _ in range(n)]
            if not self._pending:
                self._draining = False
                with self._idle:
                    self._idle.notify_all()
                if self._closing:
                    break
                self._wake.wait(self.interval)
                self._wake.clear()
                continue
            try:
                if conn is None:
                    conn = self._open()
                self._write(conn, self._pending)
            except Exception as exc:
                self._write_errors += 1
                if self.last_error is None or type(exc) is not type(self.last_error):
                    log.warning("meterhub: %s write failed (will retry): %s", self.name, exc)
                self.last_error = exc
                if conn is not None:
                    self._safe_close(conn)
                    conn = None
                if self._closing:
                    break  # close() counts what is left as dropped
                self._wake.wait(backoff)
                self._wake.clear()
                backoff = min(backoff * 2, 1.0)
                continue
            backoff = 0.05
            self._written += len(self._pending)
            self._pending = []
        if conn is not None:
            self._safe_close(conn)
        with self._idle:
            self._idle.notify_all()

    def _safe_close(self, conn: Any) -> None:
        try:
            self._close_conn(conn)
        except Exception:
            pass
