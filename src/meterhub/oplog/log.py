"""``OperationLog``: record every operation without waiting on disk.

Recording validates the operation, updates the Prometheus metrics, and appends the
record to a bounded in-memory buffer (:mod:`.buffer`); a writer thread (:mod:`.writer`)
turns the buffer into atomic JSON batch files (:mod:`.files`). ``record_operation`` (async)
and ``record_operation_nowait`` (threads, sync code) share all of that; they differ only
in how they wait when the buffer is full under the ``"block"`` policy.
"""

from __future__ import annotations

import asyncio
import atexit
import math
import os
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from ..errors import QueueFullError
from ..registry import REGISTRY, Registry
from .buffer import Record, RecordBuffer
from .files import DirectoryLock, encode_record, fast_dumps, remove_stale_temp_files
from .instruments import OplogInstruments
from .read import cleanup
from .validate import make_record
from .writer import BatchWriter, WriterState

__all__ = ["OperationLog", "OplogStats", "QueuePolicy"]

QueuePolicy = Literal["drop", "block", "raise"]
_POLICIES = ("drop", "block", "raise")

# Logs still running when the interpreter exits are flushed (the writer is a daemon thread).
_running: weakref.WeakSet[OperationLog] = weakref.WeakSet()
EXIT_FLUSH_TIMEOUT = 5.0


@atexit.register
def _flush_at_exit() -> None:
    for log in list(_running):
        try:
            log.stop_sync(EXIT_FLUSH_TIMEOUT)
        except Exception:  # exiting anyway; the writer already logged what went wrong
            pass


@dataclass(frozen=True)
class OplogStats:
    """A snapshot of an :class:`OperationLog`'s counters."""

    total_recorded: int
    total_persisted: int
    total_dropped: int
    queue_size: int
    batches_written: int
    last_flush_timestamp: datetime | None
    avg_batch_size: float
    is_running: bool
    write_errors: int = 0
    total_abandoned: int = 0
    last_error: str | None = None


def _positive(name: str, value: object, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"OperationLog: {name} must be a number, got {value!r}")
    if kind is int and not isinstance(value, int):
        raise TypeError(f"OperationLog: {name} must be an int, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"OperationLog: {name} must be a positive finite number, got {value!r}")
    return value


class OperationLog:
    """A durable log of operations: non-blocking records, atomic JSON batch files.

    Example::

        >>> import asyncio, tempfile
        >>> from meterhub import Registry
        >>> async def main(path):
        ...     log = OperationLog(path, registry=Registry(self_metrics=False))
        ...     await log.start()
        ...     await log.record_operation("api_request", "GET /api/users", 42.5,
        ...                                metadata={"status_code": 200})
        ...     await log.stop()
        ...     return (await log.get_stats()).total_persisted
        >>> asyncio.run(main(tempfile.mkdtemp()))
        1

    Args:
        storage_path: directory of the batch files (created if missing; one log per directory).
        flush_interval_seconds: the writer flushes at least this often.
        max_batch_size: records per file at most; a full batch is written at once.
        max_queue_size: records held in memory at most (queued or being written).
        queue_full_policy: ``"drop"`` (count and drop), ``"block"`` (wait for space) or
            ``"raise"`` (:class:`~meterhub.errors.QueueFullError`).
        retention_days: when set, the writer deletes batch files older than this, hourly.
        registry: where the ``meterhub_operations_*`` / ``meterhub_oplog_*`` metrics live
            (``None``: not registered).
        operation_names: operation names allowed as an ``operation_name`` label (others
            become ``__other__``); by default names are not a label (they are unbounded).
        fsync: fsync each file and the directory (turn off only for throwaway logs).
        max_backoff_seconds: the longest wait between retries after a disk error.
    """

    def __init__(
        self,
        storage_path: str | os.PathLike[str],
        flush_interval_seconds: float = 5.0,
        max_batch_size: int = 1000,
        max_queue_size: int = 10000,
        *,
        queue_full_policy: QueuePolicy = "drop",
        retention_days: float | None = None,
        registry: Registry | None = REGISTRY,
        operation_names: Iterable[str] | None = None,
        fsync: bool = True,
        max_backoff_seconds: float = 5.0,
    ) -> None:
        if not isinstance(storage_path, (str, os.PathLike)) or not os.fspath(storage_path):
            raise TypeError(f"OperationLog: storage_path must be a path, got {storage_path!r}")
        self.path = Path(storage_path)
        self.flush_interval = float(
            _positive("flush_interval_seconds", flush_interval_seconds, float)
        )
        self.max_batch_size: int = _positive("max_batch_size", max_batch_size, int)
        self.max_queue_size: int = _positive("max_queue_size", max_queue_size, int)
        if self.max_batch_size > self.max_queue_size:
            raise ValueError(
                f"OperationLog: max_batch_size ({max_batch_size}) must not exceed "
                f"max_queue_size ({max_queue_size})"
            )
        if queue_full_policy not in _POLICIES:
            raise ValueError(
                f"OperationLog: queue_full_policy must be one of {_POLICIES}, "
                f"got {queue_full_policy!r}"
            )
        self.policy: QueuePolicy = queue_full_policy
        self._drop = queue_full_policy == "drop"
        self._fast_json = fast_dumps is not None
        self.retention_days = (
            None if retention_days is None else _positive("retention_days", retention_days, float)
        )
        self._fsync = bool(fsync)
        self._max_backoff = float(_positive("max_backoff_seconds", max_backoff_seconds, float))
        self._metrics = OplogInstruments(registry, operation_names)
        self._buffer = RecordBuffer(self.max_queue_size, self.max_batch_size, self._wake_writer)
        self._state = WriterState()
        self._lifecycle = threading.Lock()
        self._writer: BatchWriter | None = None
        self._dir_lock = DirectoryLock(self.path)
        self._metrics.track_queue(self)

    def __repr__(self) -> str:
        state = "running" if self._buffer.is_open else "stopped"
        return f"<OperationLog {str(self.path)!r} {state} pending={self._buffer.pending}>"

    # -- lifecycle -------------------------------------------------------------------------

    def start_sync(self) -> None:
        """Start the writer thread (the synchronous twin of :meth:`start`)."""
        with self._lifecycle:
            if self._writer is not None:
                raise RuntimeError("OperationLog is already running")
            self.path.mkdir(parents=True, exist_ok=True)
            self._dir_lock = DirectoryLock(self.path)
            self._dir_lock.acquire()
            try:
                remove_stale_temp_files(self.path)
                self._writer = BatchWriter(
                    self.path,
                    self._buffer,
                    self._state,
                    flush_interval=self.flush_interval,
                    fsync=self._fsync,
                    max_backoff=self._max_backoff,
                    on_persisted=self._metrics.persisted.inc,
                    on_error=self._metrics.write_errors.inc,
                    housekeeping=self._apply_retention if self.retention_days else None,
                )
                self._buffer.open()
                self._writer.start()
                _running.add(self)
            except BaseException:
                self._writer = None
                self._buffer.close()
                self._dir_lock.release()
                raise

    def stop_sync(self, timeout: float | None = 10.0) -> None:
        """Refuse new records, flush everything buffered, end the writer.

        Raises ``TimeoutError`` if the flush did not finish within *timeout* seconds (the
        disk kept failing); the records not written are counted in ``total_abandoned``.
        """
        with self._lifecycle:
            writer = self._writer
            if writer is None:
                return
            self._buffer.close()
            _running.discard(self)
            try:
                finished = writer.stop(timeout)
            finally:
                self._writer = None
                self._dir_lock.release()
        if not finished:
            raise TimeoutError(
                f"OperationLog.stop: flushing to {self.path} took longer than {timeout} s; "
                f"{self._state.abandoned} records were abandoned"
            )

    async def start(self) -> None:
        """Create the directory and start the writer thread.

        Raises ``RuntimeError`` if the log is already running (or another running log
        holds the directory).
        """
        await asyncio.get_running_loop().run_in_executor(None, self.start_sync)

    async def stop(self, timeout: float | None = 10.0) -> None:
        """Flush everything still buffered and stop; the event loop keeps running meanwhile."""
        await asyncio.get_running_loop().run_in_executor(None, self.stop_sync, timeout)

    @property
    def is_running(self) -> bool:
        return self._buffer.is_open

    def __enter__(self) -> OperationLog:
        self.start_sync()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_sync()

    async def __aenter__(self) -> OperationLog:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- recording -------------------------------------------------------------------------

    def _accept(
        self,
        operation_type: str,
        operation_name: str,
        duration_ms: float,
        success: bool,
        error_message: str | None,
        metadata: dict[str, Any] | None,
    ) -> Record:
        if not self._buffer.is_open:
            raise RuntimeError("OperationLog is not running: call start() first")
        record = make_record(
            operation_type, operation_name, duration_ms, success, error_message, metadata
        )
        self._metrics.observe(
            record["operation_type"], record["operation_name"], success, record["duration_ms"]
        )
        dumps = fast_dumps
        if dumps is not None and self._fast_json:  # encode_record(), inlined: the hot path
            try:
                return dumps(record).decode()
            except TypeError:
                pass
        return encode_record(record, fast=False)

    def _full(self, record: Record) -> bool:
        """The policy for a full buffer, except ``"block"``'s waiting: False means dropped."""
        if self.policy == "raise":
            raise QueueFullError(
                f"OperationLog buffer is full ({self.max_queue_size} records not yet persisted)"
            )
        self._metrics.dropped.inc()
        return False

    def record_operation_nowait(
        self,
        operation_type: str,
        operation_name: str,
        duration_ms: float,
        success: bool = True,
        error_message: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        """Record one operation from any thread; True if buffered, False if dropped.

        Under the ``"block"`` policy a full buffer makes the calling *thread* wait; called
        on a thread that runs an event loop it raises
        :class:`~meterhub.errors.QueueFullError` instead of blocking the loop (use
        ``await record_operation(...)`` there).
        """
        record = self._accept(
            operation_type, operation_name, duration_ms, success, error_message, metadata
        )
        buffer = self._buffer
        if buffer.offer(record, self._drop):
            return True
        if self.policy != "block":
            return self._full(record)
        if _in_event_loop():
            raise QueueFullError(
                "OperationLog buffer is full and record_operation_nowait would block the "
                "event loop; use `await record_operation(...)` in async code"
            )
        while not buffer.offer(record, False):
            buffer.wait_for_space(1.0)
        return True

    async def record_operation(
        self,
        operation_type: str,
        operation_name: str,
        duration_ms: float,
        success: bool = True,
        error_message: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        """Record one operation: O(1), never waits on I/O; True if buffered, False if dropped.

        Raises :class:`~meterhub.errors.RecordingError` (a ``ValueError``) for an invalid
        operation (empty type/name, negative or non-finite duration, metadata that is not
        JSON or has a PII key), ``RuntimeError`` if the log is not running, and
        :class:`~meterhub.errors.QueueFullError` when full under the ``"raise"`` policy.
        Under ``"block"`` it waits (suspending this task only) until the writer makes room.
        """
        record = self._accept(
            operation_type, operation_name, duration_ms, success, error_message, metadata
        )
        buffer = self._buffer
        if buffer.offer(record, self._drop):
            return True
        if self.policy != "block":
            return self._full(record)
        while not buffer.offer(record, False):
            await buffer.wait_for_space_async()
        return True

    # -- reading ---------------------------------------------------------------------------

    def stats(self) -> OplogStats:
        """The counters now (the synchronous twin of :meth:`get_stats`)."""
        buffer, state = self._buffer, self._state
        batches = state.batches
        return OplogStats(
            total_recorded=buffer.recorded,
            total_persisted=state.persisted,
            total_dropped=buffer.dropped,
            queue_size=buffer.pending,
            batches_written=batches,
            last_flush_timestamp=(
                None
                if state.last_flush is None
                else datetime.fromtimestamp(state.last_flush, timezone.utc)
            ),
            avg_batch_size=state.persisted / batches if batches else 0.0,
            is_running=buffer.is_open,
            write_errors=state.write_errors,
            total_abandoned=state.abandoned,
            last_error=state.last_error,
        )

    async def get_stats(self) -> OplogStats:
        """The counters now: recorded, persisted, dropped, queue size, batches, ..."""
        return self.stats()

    def cleanup(self, older_than_days: float = 30) -> int:
        """Delete this log's batch files older than *older_than_days*; returns how many."""
        return cleanup(self.path, older_than_days=older_than_days)

    # -- internals -------------------------------------------------------------------------

    def _wake_writer(self) -> None:
        writer = self._writer
        if writer is not None:
            writer.wake()

    def _apply_retention(self) -> None:
        if self.retention_days:
            try:
                self.cleanup(self.retention_days)
            except OSError:
                pass  # retried at the next housekeeping round


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
