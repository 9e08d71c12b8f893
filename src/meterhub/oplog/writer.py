"""The writer thread: drains the buffer into batch files, retries disk errors with backoff.

Why a thread and not an asyncio task: serialising and writing a batch is CPU and blocking
I/O; in a task it would stall the event loop for the whole batch. A dedicated thread pops
what is queued, joins it outside any lock and releases the GIL in its system calls, so
recorders keep running while the disk works. Every such call is also a GIL hand-over that
briefly stalls a recorder, so a file costs as few as possible: open (``O_DSYNC``), one
``writev``, close, rename, and one fsync of the kept-open directory per flush.

Flush triggers: ``max_batch_size`` records waiting, ``flush_interval`` elapsed, or stop.
A file never holds more than ``max_batch_size`` records; a flush caused by a full batch
writes only full batches and leaves the tail queued, so files stay large under load.

A disk error (full disk, read-only directory, vanished directory) is never raised to a
recorder: the batch stays in memory, still counted against the buffer bounds, and is
retried after a backoff that doubles from 50 ms up to ``max_backoff``. Order is kept:
nothing newer is written before it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .buffer import Record, RecordBuffer
from .files import BatchIds, encode_batch, write_group

__all__ = ["BatchWriter", "WriterState"]

log = logging.getLogger("meterhub.oplog")

MIN_BACKOFF = 0.05
GROUP_FILES = 16
"""Batch files committed together: written durably, renamed in order, one directory fsync."""


@dataclass
class WriterState:
    """Counters the writer updates (read by ``OperationLog.stats()``); one writer at a time."""

    persisted: int = 0
    batches: int = 0
    write_errors: int = 0
    abandoned: int = 0
    last_flush: float | None = None
    last_error: str | None = None
    ids: BatchIds = field(default_factory=BatchIds)


class BatchWriter:
    """Runs the flush loop in a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        directory: Path,
        buffer: RecordBuffer,
        state: WriterState,
        *,
        flush_interval: float,
        fsync: bool,
        max_backoff: float,
        on_persisted: Callable[[int], None],
        on_error: Callable[[], None],
        housekeeping: Callable[[], None] | None = None,
        housekeeping_interval: float = 3600.0,
    ) -> None:
        self._dir = directory
        self._buffer = buffer
        self._state = state
        self._interval = flush_interval
        self._fsync = fsync
        self._max_backoff = max_backoff
        self._on_persisted = on_persisted
        self._on_error = on_error
        self._housekeeping = housekeeping
        self._housekeeping_interval = housekeeping_interval
        self._wake = threading.Event()
        self._stopping = False
        self._abandon = False
        self._backlog: deque[list[Record]] = deque()
        self._backoff = 0.0
        self._retry_at = 0.0
        self._dir_fd: int | None = None
        self._thread = threading.Thread(target=self._run, name="meterhub-oplog-writer", daemon=True)

    # -- control ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Called by recorders when a full batch is waiting."""
        self._wake.set()

    def stop(self, timeout: float | None) -> bool:
        """Flush everything and end the thread; False if *timeout* passed first.

        After a timeout the records still in memory are abandoned (counted) and the
        thread ends promptly.
        """
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            return True
        self._abandon = True
        self._wake.set()
        self._thread.join(max(1.0, self._max_backoff))
        return False

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # a bug, not a disk error: never die silently
            self._state.last_error = f"writer crashed: {type(exc).__name__}: {exc}"
            log.exception("meterhub oplog: the writer thread for %s crashed", self._dir)
            raise
        finally:
            self._close_directory()

    def _loop(self) -> None:
        buffer = self._buffer
        next_flush = time.monotonic() + self._interval
        # Without housekeeping this must not be a past time, or the loop would never sleep.
        next_housekeeping = time.monotonic() if self._housekeeping is not None else math.inf
        while not self._abandon:
            now = time.monotonic()
            if self._housekeeping is not None and now >= next_housekeeping:
                next_housekeeping = now + self._housekeeping_interval
                self._housekeeping()
            if self._backlog and now < self._retry_at:
                self._sleep(self._retry_at - now)
                continue
            due = self._stopping or now >= next_flush
            if not due and not self._backlog and buffer.queued() < buffer.batch_size:
                self._sleep(min(next_flush, next_housekeeping) - now)
                continue
            self._flush(whole_batches_only=not due)
            if due:
                next_flush = time.monotonic() + self._interval
                if self._stopping and not (self._backlog or buffer.queued()):
                    break
        self._give_up()

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(max(seconds, 0.0))
        self._wake.clear()

    def _flush(self, whole_batches_only: bool) -> None:
        """Write the backlog, then what is queued, as files of at most ``batch_size``."""
        if not self._backlog:
            buffer = self._buffer
            size = buffer.batch_size
            count = buffer.queued()
            if whole_batches_only:
                count -= count % size
            taken = buffer.take(count)
            if count <= size:
                if taken:
                    self._backlog.append(taken)
            else:
                self._backlog.extend(taken[i : i + size] for i in range(0, count, size))
        wrote = False
        while self._backlog:
            group = list(itertools.islice(self._backlog, GROUP_FILES))
            committed, error = self._write(group)
            if committed:
                done = size = 0
                for _ in range(committed):
                    batch = self._backlog.popleft()
                    done += len(batch)
                    size += sum(map(len, batch))
                # One release per group, not per file: each wakes the blocked recorders.
                self._buffer.release(done, size)
                self._on_persisted(done)
            wrote = wrote or committed > 0
            if error is not None:
                self._failed(error)
                break
        if wrote and self._fsync:
            self._sync_directory()

    def _sync_directory(self) -> None:
        """Make the renames durable. The directory stays open: one call per flush, not three."""
        if self._dir_fd is None:
            try:
                self._dir_fd = os.open(self._dir, os.O_RDONLY)
            except OSError:
                return  # no directory to sync (or a platform that cannot open one)
        try:
            os.fsync(self._dir_fd)
        except OSError:
            self._close_directory()

    def _close_directory(self) -> None:
        fd, self._dir_fd = self._dir_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _write(self, group: list[list[Record]]) -> tuple[int, OSError | None]:
        state = self._state
        files = []
        for batch in group:
            batch_id, stamp = state.ids.next()
            data = encode_batch(batch, batch_id, stamp)
            files.append((f"metrics_{batch_id}.json", data))
        committed, error = write_group(self._dir, files, fsync=self._fsync)
        if committed:
            state.persisted += sum(len(b) for b in group[:committed])
            state.batches += committed
            state.last_flush = time.time()
            if self._backoff and error is None:
                log.warning("meterhub oplog: writing to %s works again", self._dir)
                self._backoff = 0.0
        return committed, error

    def _failed(self, exc: OSError) -> None:
        self._close_directory()  # the directory may be replaced before the retry
        state = self._state
        state.write_errors += 1
        state.last_error = f"{type(exc).__name__}: {exc}"
        self._on_error()
        if not self._backoff:
            log.warning(
                "meterhub oplog: cannot write a batch to %s (%s); records stay buffered and "
                "the write is retried with backoff",
                self._dir,
                state.last_error,
            )
        self._backoff = min(max(self._backoff * 2, MIN_BACKOFF), self._max_backoff)
        self._retry_at = time.monotonic() + self._backoff

    def _give_up(self) -> None:
        """After an abandoned stop: count and release what could not be written."""
        batches = [*self._backlog, self._buffer.take(self._buffer.queued())]
        self._backlog.clear()
        lost = sum(map(len, batches))
        if lost:
            self._state.abandoned += lost
            self._buffer.release(lost, sum(sum(map(len, b)) for b in batches))
            log.error(
                "meterhub oplog: stop timed out; %d records could not be written to %s",
                lost,
                self._dir,
            )
