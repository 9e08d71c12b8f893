"""``OperationLog``: record every operation without waiting on disk.

Recording validates the operation, updates the Prometheus metrics, and appends the
record to a bounded in-memory buffer (:mod:`.buffer`); a writer thread (:mod:`.writer`)
turns the buffer into atomic JSON batch files (:mod:`.files`). ``record_operation`` (async)
and ``record_operation_nowait`` (threads, sync code) share all of that; they differ only
in how they wait when the buffer is full under the ``"block"`` policy.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable
from pathlib import Path
from time import time_ns
from types import TracebackType
from typing import Any

from .. import naming
from .._config import get_config
from ..registry import REGISTRY, Registry
from .buffer import POLICIES, QueuePolicy, Record, RecordBuffer, WouldBlockLoop
from .exitflush import RUNNING
from .fastpath import LearnedNames
from .files import (
    DirectoryLock,
    encode_record,
    fast_dumps,
    remove_stale_temp_files,
)
from .instruments import OplogInstruments
from .read import cleanup
from .stats import OplogStats, snapshot
from .validate import (
    MAX_ERROR_MESSAGE_CHARS,
    MICROS_UTC,
    make_record,
    millisecond_stamp,
    positive_setting,
    record_too_large,
    text_size,
)
from .writer import BatchWriter, WriterState

__all__ = ["OperationLog", "OplogStats", "QueuePolicy"]


_INF = math.inf
_EXACT_INT = 2**53  # ints a float holds exactly
_CLEAN_KEYS = naming.KNOWN_CLEAN_NAMES
_NO_METADATA: dict[str, Any] = {}  # only ever read
_LONG_TEXT = 4096  # metadata text longer than this takes the full path (its size pre-check)
# Only called when fast_dumps is set (OperationLog._fast); the stand-in keeps the type exact.
_orjson_dumps: Callable[[Any], bytes] = fast_dumps if fast_dumps is not None else bytes
# The one-pass path writes a record as text around one small orjson dict: the quoted type
# and name come from its caches, then these; then {error_message,} duration_ms, metadata
# (the key order of make_record, so both paths write the same text).
_OK_NO_ERROR = b'","success":true,"error_message":null,'
_FAILED_NO_ERROR = b'","success":false,"error_message":null,'
_OK = b'","success":true,'
_FAILED = b'","success":false,'


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
        max_queue_bytes: bytes of record JSON held in memory at most (default 64 MiB,
            ``METERHUB_OPLOG_MAX_BYTES``); beyond it the policy applies as for the count.
        max_record_bytes: the largest record's JSON (default 1 MiB,
            ``METERHUB_OPLOG_MAX_RECORD_BYTES``); larger raises ``RecordingError``.
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
        max_queue_bytes: int | None = None,
        max_record_bytes: int | None = None,
    ) -> None:
        if not isinstance(storage_path, (str, os.PathLike)) or not os.fspath(storage_path):
            raise TypeError(f"OperationLog: storage_path must be a path, got {storage_path!r}")
        self.path = Path(storage_path)
        self.flush_interval = float(
            positive_setting("flush_interval_seconds", flush_interval_seconds, float)
        )
        self.max_batch_size: int = positive_setting("max_batch_size", max_batch_size, int)
        self.max_queue_size: int = positive_setting("max_queue_size", max_queue_size, int)
        if self.max_batch_size > self.max_queue_size:
            raise ValueError(
                f"OperationLog: max_batch_size ({max_batch_size}) must not exceed "
                f"max_queue_size ({max_queue_size})"
            )
        cfg = get_config()
        self.max_queue_bytes: int = positive_setting(
            "max_queue_bytes",
            cfg.oplog_max_bytes if max_queue_bytes is None else max_queue_bytes,
            int,
        )
        self.max_record_bytes: int = positive_setting(
            "max_record_bytes",
            cfg.oplog_max_record_bytes if max_record_bytes is None else max_record_bytes,
            int,
        )
        if self.max_record_bytes > self.max_queue_bytes:
            raise ValueError(
                f"OperationLog: max_record_bytes ({self.max_record_bytes}) must not exceed "
                f"max_queue_bytes ({self.max_queue_bytes})"
            )
        if queue_full_policy not in POLICIES:
            raise ValueError(
                f"OperationLog: queue_full_policy must be one of {POLICIES}, "
                f"got {queue_full_policy!r}"
            )
        # The one-pass path of record_operation_nowait() needs orjson for metadata; with
        # operation names as a label it would need a cache per (type, name), so those logs
        # take the full path.
        self._fast = fast_dumps is not None and operation_names is None
        self.retention_days = (
            None
            if retention_days is None
            else positive_setting("retention_days", retention_days, float)
        )
        self._fsync = bool(fsync)
        self._max_backoff = float(
            positive_setting("max_backoff_seconds", max_backoff_seconds, float)
        )
        self._metrics = OplogInstruments(registry, operation_names)
        # Seen (validated) types with their series: counter children of success="true" and
        # "false", the duration histogram's child, its bucket bounds and the record's text
        # up to the name; seen names with their text up to the timestamp.
        self._learned = LearnedNames(self._metrics, _orjson_dumps)
        self._kinds = self._learned.kinds  # read directly on the one-pass path
        self._names = self._learned.names
        self._millisecond: tuple[int, bytes] = (0, b"")  # see millisecond_stamp
        self._buffer = RecordBuffer(
            self.max_queue_size,
            self.max_batch_size,
            self._wake_writer,
            queue_full_policy,
            self._metrics.dropped.inc,
            self.max_queue_bytes,
        )
        self._queue = self._buffer.queue
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
                RUNNING.add(self)
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
            RUNNING.discard(self)
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
    def policy(self) -> QueuePolicy:
        """What recording does when the buffer is full (``queue_full_policy``)."""
        return self._buffer.policy

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
        # The hot path of both twins (record_operation delegates here): validate, count and
        # buffer, with no call that is not needed.
        buffer = self._buffer
        if not buffer.is_open:
            raise RuntimeError("OperationLog is not running: call start() first")
        # The common case in one pass: type and name seen before (so already validated),
        # a plain float duration, flat metadata of known-clean keys and finite scalars.
        # Anything else takes _slow_line(), which validates in full and words the errors.
        kind = self._kinds.get(operation_type) if operation_type.__class__ is str else None
        if duration_ms.__class__ is int and 0 <= duration_ms <= _EXACT_INT:
            duration_ms = float(duration_ms)  # as make_record does: durations are floats
        line: Record | None = None
        if (
            kind is not None
            and operation_name.__class__ is str
            and (name := self._names.get(operation_name)) is not None
            and duration_ms.__class__ is float
            and 0.0 <= duration_ms < _INF
            and (success is True or success is False)
            and (
                error_message is None
                or (
                    error_message.__class__ is str and len(error_message) <= MAX_ERROR_MESSAGE_CHARS
                )
            )
        ):
            meta: dict[str, Any] | None = _NO_METADATA
            if metadata is not None:
                meta = None
                if (
                    metadata.__class__ is dict
                    and len(metadata) <= 64
                    and _CLEAN_KEYS.issuperset(metadata)
                ):
                    meta = metadata
                    for v in metadata.values():
                        cls = v.__class__
                        if not (
                            (cls is str and len(v) <= _LONG_TEXT)  # a long one: the size check
                            or cls is int  # beyond 64 bits orjson raises: the full path
                            or cls is bool
                            or v is None
                            or (cls is float and v - v == 0.0)  # finite
                        ):
                            meta = None
                            break
            if meta is not None:
                now = time_ns()
                stamp = self._millisecond
                us = (now - stamp[0]) // 1000
                if not 0 <= us < 1000:
                    stamp = self._millisecond = millisecond_stamp(now)
                    us = (now - stamp[0]) // 1000
                try:
                    if error_message is None:
                        flags = _OK_NO_ERROR if success else _FAILED_NO_ERROR
                        body = _orjson_dumps({"duration_ms": duration_ms, "metadata": meta})
                    else:
                        flags = _OK if success else _FAILED
                        body = _orjson_dumps(
                            {
                                "error_message": error_message,
                                "duration_ms": duration_ms,
                                "metadata": meta,
                            }
                        )
                except TypeError:  # an integer beyond 64 bits or a lone surrogate
                    pass
                else:
                    # body[1:]: without its "{", and a copy (orjson's bytes keep 4 KiB each).
                    line = b"".join((kind[4], name, stamp[1], MICROS_UTC[us], flags, body[1:]))
                    # CounterChild.inc and HistogramChild.observe, written out on their
                    # active cells (lock-free, see meterhub.store.base): two calls saved.
                    # Slots: CounterLayout.TOTAL; HistogramLayout.SUM and FIRST_BUCKET + i
                    # (meterhub.store.layout; tests/test_cell_layout.py checks this copy).
                    (kind[0] if success else kind[1]).active_cell[0] += 1.0
                    seconds = duration_ms / 1000.0
                    i = bisect_left(kind[3], seconds)
                    v = kind[2].active_cell
                    v[0] += seconds
                    v[i + 1] += 1.0
        if line is None:
            line = self._slow_line(
                operation_type, operation_name, duration_ms, success, error_message, metadata
            )
        # RecordBuffer.offer's lock-free append, written out: the hot path.
        size = len(line)
        if size > self.max_record_bytes:
            raise record_too_large(size, self.max_record_bytes, operation_type, operation_name)
        if (
            buffer.accepted - buffer.released >= buffer.max_size
            or buffer.bytes_accepted - buffer.bytes_released + size > buffer.max_bytes
        ):
            return buffer.full(line)
        buffer.accepted += 1
        buffer.bytes_accepted += size
        queue = self._queue
        queue.append(line)
        if not buffer.is_open:
            buffer.withdraw(line)
        if len(queue) >= buffer.batch_size and not buffer.wake_sent:
            buffer.batch_ready()
        return True

    def _slow_line(
        self,
        operation_type: Any,
        operation_name: Any,
        duration_ms: Any,
        success: Any,
        error_message: Any,
        metadata: Any,
    ) -> Record:
        """Any record, validated in full (errors raised here); learns its type and name."""
        record = make_record(
            operation_type, operation_name, duration_ms, success, error_message, metadata
        )
        operation_type = record["operation_type"]
        operation_name = record["operation_name"]
        # Refuse a record that is certainly too large before encoding it: encoding a long
        # string costs many times its size for a moment.
        size = text_size(record)
        if size > self.max_record_bytes:
            raise record_too_large(size, self.max_record_bytes, operation_type, operation_name)
        self._metrics.observe(operation_type, operation_name, success, record["duration_ms"])
        if self._fast:
            self._learned.learn(operation_type, operation_name)
        return encode_record(record)

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
        try:
            return self.record_operation_nowait(
                operation_type, operation_name, duration_ms, success, error_message, metadata
            )
        except WouldBlockLoop as full:
            return await self._buffer.put_async(full.record)

    # -- reading ---------------------------------------------------------------------------

    def stats(self) -> OplogStats:
        """The counters now (the synchronous twin of :meth:`get_stats`)."""
        return snapshot(self._buffer, self._state)

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
