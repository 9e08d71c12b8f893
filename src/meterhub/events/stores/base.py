"""The event store interface and the buffered background writer the database stores share.

Contract of every store:

* ``add()`` never blocks and never raises: the event goes into a bounded in-memory buffer
  (``max_buffer`` events) that a background thread writes in batches. A full buffer drops
  the event and counts it (``dropped["buffer_full"]``); ``add()`` then returns False. So does
  an invalid event (``dropped["invalid"]``: timestamp not finite or outside years 1-9999,
  event type not a str).
* ``flush(timeout)`` waits until every event added before the call is durable.
* ``close(timeout)`` flushes and stops the writer; events still buffered when the timeout
  expires are counted in ``dropped["closed"]``.
* A write that fails (server down) is retried with backoff, the batch kept; events keep
  being buffered meanwhile, up to the bound. A row the database refuses (a constraint, a
  value it cannot take) is dropped alone (``dropped["rejected"]``) so it cannot block the
  rows behind it.
* Queries (``counts``, ``latest``) read durable rows only (``flush()`` first to see your own
  writes); they run on their own connection and may raise the database's errors.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import datetime as dt
import json
import logging
import os
import threading
import time
import weakref
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


# the datetime range (years 1-9999): every database and from_epoch() accept these
_MIN_TS = -62_135_596_800.0
_MAX_TS = 253_402_300_799.0


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
        if type(user_id) is not str:
            user_id = str(user_id)
        if not user_id.isascii() or "\x00" in user_id:
            user_id = _clean(user_id)
    if not event_type.isascii() or "\x00" in event_type:
        event_type = _clean(event_type)
    return (timestamp, user_id, event_type, payload)


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
        self._reset_writer()
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
            self._drop("closed" if self._closed else "buffer_full")
            return False
        try:
            valid = _MIN_TS < timestamp < _MAX_TS and type(event_type) is str  # NaN fails too
        except TypeError:
            valid = False
        if not valid:
            self._drop("invalid")
            return False
        buf.append(encode_event(timestamp, user_id, event_type, data))
        if self._thread is None:
            self._start()
        elif len(buf) >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        return True

    def _reset_writer(self) -> None:
        """Fresh buffer, locks and no writer thread: at construction and in a forked child
        (which inherits the parent's buffer - the parent writes it - but not its thread)."""
        self._buf: collections.deque[Row] = collections.deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._pending: list[Row] = []  # the batch being written (kept across retries)
        # True while the writer holds events that are in neither _buf nor _pending
        self._draining = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        _STORES.add(self)

    def _drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.dropped[reason] += n

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                t = threading.Thread(target=self._run, name=f"meterhub-{self.name}", daemon=True)
                self._thread = t
                t.start()
                # the writer is a daemon thread: write what is buffered when the app exits
                atexit.register(_close_at_exit, weakref.ref(self))

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
                if conn is not None and self._is_permanent(exc):
                    # a row the database refuses must not block the rows behind it forever
                    conn = self._write_one_by_one(conn)
                    continue
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

    def _is_permanent(self, exc: Exception) -> bool:
        """True if retrying the same batch cannot succeed (the data, not the connection)."""
        return isinstance(exc, (ValueError, TypeError, OverflowError))

    def _write_one_by_one(self, conn: Any) -> Any:
        """Write the pending batch row by row, dropping (and counting) the refused rows.

        Returns the connection, or None if it failed meanwhile (the rest is retried later).
        """
        pending = self._pending
        for i, r in enumerate(pending):
            try:
                self._write(conn, [r])
            except Exception as exc:
                if not self._is_permanent(exc):
                    self._pending = pending[i:]
                    self._safe_close(conn)
                    return None
                self._drop("rejected")
                log.warning("meterhub: %s refused an event (dropped): %s", self.name, exc)
            else:
                self._written += 1
        self._pending = []
        return conn

    def _safe_close(self, conn: Any) -> None:
        try:
            self._close_conn(conn)
        except Exception:
            pass


_STORES: weakref.WeakSet[BatchingStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        if not store._closed:
            store._reset_writer()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _close_at_exit(ref: weakref.ref[BatchingStore]) -> None:
    store = ref()
    if store is not None:
        store.close(timeout=5.0)
