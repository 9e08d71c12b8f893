"""The bounded, thread-safe buffer between recorders and the writer thread.

Recorders (event-loop tasks and threads alike) append under one short lock: a length
check, a ``deque.append`` and two integer updates, never any I/O. The writer takes the
whole deque at once by swapping it for an empty one, so it holds the lock for O(1) too.

The bound counts every record not yet persisted: queued *and* in the writer's hands
(being written or waiting for a retry after a disk error). Memory is therefore bounded
by ``max_size`` records whatever the disk does.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable

__all__ = ["RecordBuffer"]

Record = str
"""A record as the writer gets it: its JSON text (see ``files.encode_record``)."""


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class RecordBuffer:
    """FIFO of records with a bound on records not yet persisted.

    Example::

        >>> buf = RecordBuffer(max_size=2, batch_size=2, on_batch_ready=lambda: None)
        >>> buf.open()
        >>> buf.offer('{"n":1}', drop=True), buf.offer('{"n":2}', drop=True)
        (True, True)
        >>> buf.offer('{"n":3}', drop=True), buf.dropped
        (False, 1)
        >>> taken = buf.take(); buf.release(len(taken)); buf.pending
        0
    """

    def __init__(self, max_size: int, batch_size: int, on_batch_ready: Callable[[], None]) -> None:
        self.max_size = max_size
        self.batch_size = batch_size
        self._on_batch_ready = on_batch_ready
        self._queue: deque[Record] = deque()
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._sync_waiters = 0
        self.is_open = False
        """Whether records are accepted (a plain attribute: read on every record)."""
        self.pending = 0
        """Records accepted and not yet persisted (queued or in the writer's hands)."""
        self.recorded = 0
        self.dropped = 0

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        with self._lock:
            self.is_open = True

    def close(self) -> None:
        """Refuse new records from now on and wake everyone waiting for space."""
        with self._lock:
            self.is_open = False
        self._notify_space()

    # -- recorders -------------------------------------------------------------------------

    def offer(self, record: Record, drop: bool) -> bool:
        """Append *record* unless the buffer is full; count a drop if *drop* and full.

        Raises ``RuntimeError`` once the buffer is closed (the log is not running).
        """
        with self._lock:
            if not self.is_open:
                raise RuntimeError("OperationLog is not running: call start() first")
            if self.pending >= self.max_size:
                if drop:
                    self.dropped += 1
                return False
            queue = self._queue
            queue.append(record)
            self.pending += 1
            self.recorded += 1
            ready = len(queue) == self.batch_size
        if ready:
            self._on_batch_ready()
        return True

    def wait_for_space(self, timeout: float | None) -> None:
        """Block the calling thread until a record may fit (or the buffer closes)."""
        with self._space:
            self._sync_waiters += 1
            try:
                if self.is_open and self.pending >= self.max_size:
                    self._space.wait(timeout)
            finally:
                self._sync_waiters -= 1

    async def wait_for_space_async(self) -> None:
        """Suspend the calling task, never the event loop, until a record may fit."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if not self.is_open or self.pending < self.max_size:
                return
            self._async_waiters.append((loop, fut))
        await fut

    # -- writer ----------------------------------------------------------------------------

    def queued(self) -> int:
        """Records waiting in the queue (not yet taken by the writer)."""
        return len(self._queue)

    def take(self) -> deque[Record]:
        """Everything queued, oldest first; the records stay counted in ``pending``."""
        with self._lock:
            taken, self._queue = self._queue, deque()
        return taken

    def release(self, count: int) -> None:
        """*count* taken records are persisted (or abandoned): make room for new ones."""
        with self._lock:
            self.pending -= count
        self._notify_space()

    def _notify_space(self) -> None:
        with self._lock:
            if self._sync_waiters:
                self._space.notify_all()
            waiters, self._async_waiters = self._async_waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_wake, fut)
            except RuntimeError:
                pass  # that event loop is closed: nobody is waiting any more
