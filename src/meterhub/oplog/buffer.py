"""The bounded buffer between recorders and the writer thread.

Recorders (event-loop tasks and threads alike) append without a lock: a bound check, a
counter increment and a ``deque.append``. That relies on the same CPython guarantee as the
metric cells (see ``store/base.py``): with the GIL, ``self.accepted += 1`` on an int and
``deque.append`` are never interrupted half-way, so the counters stay exact. The writer is
the only consumer; it pops what it takes, so a recorder never appends to a deque the writer
already let go of.

The bounds count every record not yet persisted: queued *and* in the writer's hands
(being written or waiting for a retry after a disk error), i.e. ``accepted - released``
records and ``bytes_accepted - bytes_released`` bytes of their JSON (``len()`` of a
``bytes``: cheap). A record refused at either bound meets the log's policy
(:meth:`RecordBuffer.full`): dropped and counted, waited for, or refused with
``QueueFullError``. The check and the append are two steps, so threads racing at the bound
can overshoot it by at most one record each; memory stays bounded by ``max_bytes`` plus
one record (at most ``max_record_bytes``, checked by the log) per recording thread,
whatever the disk does.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import Literal

from ..errors import QueueFullError

__all__ = ["POLICIES", "QueuePolicy", "Record", "RecordBuffer", "WouldBlockLoop"]

QueuePolicy = Literal["drop", "block", "raise"]
"""What a recorder does when the buffer is full: drop the record (counted), wait for
space, or raise :class:`~meterhub.errors.QueueFullError`."""
POLICIES: tuple[QueuePolicy, ...] = ("drop", "block", "raise")

Record = bytes
"""A record as the writer gets it: its JSON in UTF-8 (see ``files.encode_record``)."""


def _wake(futures: list[asyncio.Future[None]]) -> None:
    for fut in futures:
        if not fut.done():
            fut.set_result(None)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class WouldBlockLoop(QueueFullError):
    """The buffer is full under ``"block"`` and waiting would block a running event loop.

    ``OperationLog.record_operation`` catches it and awaits space for ``record``; from
    ``record_operation_nowait`` it reaches the caller as a ``QueueFullError``.
    """

    def __init__(self, record: Record) -> None:
        super().__init__(
            "OperationLog buffer is full and record_operation_nowait would block the "
            "event loop; use `await record_operation(...)` in async code"
        )
        self.record = record


def _nothing() -> None:
    pass


class RecordBuffer:
    """FIFO of records with a bound on records not yet persisted.

    Example::

        >>> buf = RecordBuffer(max_size=2, batch_size=2, on_batch_ready=lambda: None)
        >>> buf.open()
        >>> buf.offer(b'{"n":1}'), buf.offer(b'{"n":2}'), buf.offer(b'{"n":3}')
        (True, True, False)
        >>> taken = buf.take(buf.queued()); buf.release(len(taken), 14); buf.pending
        0
    """

    def __init__(
        self,
        max_size: int,
        batch_size: int,
        on_batch_ready: Callable[[], None],
        policy: QueuePolicy = "drop",
        on_drop: Callable[[], None] = _nothing,
        max_bytes: int = 64 << 20,
    ) -> None:
        self.max_size = max_size
        self.max_bytes = max_bytes
        self.policy = policy
        self._on_drop = on_drop
        self.batch_size = batch_size
        self._on_batch_ready = on_batch_ready
        self.queue: deque[Record] = deque()
        """The records waiting, oldest first (never replaced: holders of it stay current)."""
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._sync_waiters = 0
        self.wake_sent = False
        self.is_open = False
        """Whether records are accepted (a plain attribute: read on every record)."""
        self.accepted = 0
        """Records accepted since creation (only recorders change it)."""
        self.released = 0
        """Records persisted or abandoned since creation (only the writer changes it)."""
        self.bytes_accepted = 0
        """Bytes of the records accepted (only recorders change it)."""
        self.bytes_released = 0
        """Bytes of the records released (only the writer changes it)."""
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Records accepted and not yet persisted (queued or in the writer's hands)."""
        return self.accepted - self.released

    @property
    def pending_bytes(self) -> int:
        """Bytes of the records accepted and not yet persisted."""
        return self.bytes_accepted - self.bytes_released

    def has_room(self, size: int) -> bool:
        """Whether one more record of *size* bytes fits under both bounds."""
        return (
            self.accepted - self.released < self.max_size
            and self.bytes_accepted - self.bytes_released + size <= self.max_bytes
        )

    @property
    def recorded(self) -> int:
        return self.accepted

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

    def offer(self, record: Record) -> bool:
        """Append *record* unless the buffer is full (False: the caller applies its policy).

        ``OperationLog.record_operation_nowait`` writes the append out (its hot path): change
        both together.
        Raises ``RuntimeError`` once the buffer is closed (the log is not running).
        """
        if not self.is_open:
            raise RuntimeError("OperationLog is not running: call start() first")
        size = len(record)
        if (
            self.accepted - self.released >= self.max_size
            or self.bytes_accepted - self.bytes_released + size > self.max_bytes
        ):
            return False
        self.accepted += 1
        self.bytes_accepted += size
        queue = self.queue
        queue.append(record)
        if not self.is_open:
            self.withdraw(record)
        if len(queue) >= self.batch_size and not self.wake_sent:
            self.batch_ready()
        return True

    def batch_ready(self) -> None:
        """A full batch is waiting: wake the writer (once until it takes the queue)."""
        self.wake_sent = True
        self._on_batch_ready()

    def full(self, record: Record) -> bool:
        """Apply the policy to *record*, refused by the full buffer: False when dropped
        (counted), True once buffered after waiting (``"block"``).

        Raises :class:`~meterhub.errors.QueueFullError` under ``"raise"``, and
        :class:`WouldBlockLoop` under ``"block"`` on a thread running an event loop (see
        :meth:`put_async`).
        """
        if self.policy == "drop":
            with self._lock:
                self.dropped += 1
            self._on_drop()
            return False
        if self.policy == "raise":
            raise QueueFullError(
                f"OperationLog buffer is full ({self.pending} records, {self.pending_bytes} "
                f"bytes not yet persisted; max_queue_size={self.max_size}, "
                f"max_queue_bytes={self.max_bytes})"
            )
        if _in_event_loop():
            raise WouldBlockLoop(record)
        while not self.offer(record):
            self.wait_for_space(1.0, len(record))
        return True

    async def put_async(self, record: Record) -> bool:
        """Buffer *record* once there is space, suspending the calling task meanwhile."""
        while not self.offer(record):
            await self.wait_for_space_async(len(record))
        return True

    def withdraw(self, record: Record) -> None:
        """The log closed while *record* was appended: take it back unless the writer has it.

        Raises ``RuntimeError`` when taken back (the record is not recorded). When the
        writer already took it, its final flush writes it and the offer stands.
        """
        with self._lock:
            try:
                self.queue.remove(record)
            except ValueError:
                return
            self.accepted -= 1
            self.bytes_accepted -= len(record)
        raise RuntimeError("OperationLog is not running: call start() first")

    def wait_for_space(self, timeout: float | None, size: int = 0) -> None:
        """Block the calling thread until a record of *size* bytes may fit (or it closes)."""
        with self._space:
            self._sync_waiters += 1
            try:
                if self.is_open and not self.has_room(size):
                    self._space.wait(timeout)
            finally:
                self._sync_waiters -= 1

    async def wait_for_space_async(self, size: int = 0) -> None:
        """Suspend the calling task, never the event loop, until a record may fit."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if not self.is_open or self.has_room(size):
                return
            self._async_waiters.append((loop, fut))
        await fut

    # -- writer ----------------------------------------------------------------------------

    def queued(self) -> int:
        """Records waiting in the queue (not yet taken by the writer)."""
        return len(self.queue)

    def take(self, count: int) -> list[Record]:
        """The *count* oldest records (at most :meth:`queued`); they stay counted in
        ``pending`` until released.

        Popped one by one (in C: ``iter(popleft, None)`` never meets its sentinel) rather
        than swapping the deque: a recorder that loaded the deque just before a swap could
        still append to the old one after the writer let it go. Recorders only append;
        the lock keeps out :meth:`withdraw`, the one other remover.
        """
        queue = self.queue
        with self._lock:
            taken = list(islice(iter(queue.popleft, None), min(count, len(queue))))
            # After the take: a batch that fills up from now on wakes the writer again.
            self.wake_sent = False
        return taken

    def release(self, count: int, size: int) -> None:
        """*count* taken records of *size* bytes in all are persisted (or abandoned)."""
        self.released += count
        self.bytes_released += size
        self._notify_space()

    def _notify_space(self) -> None:
        with self._lock:
            if self._sync_waiters:
                self._space.notify_all()
            waiters, self._async_waiters = self._async_waiters, []
        # One wake-up per event loop, not per task: each call_soon_threadsafe writes to the
        # loop's self-pipe, a system call that hands the GIL over (and may wait 5 ms to get
        # it back from a busy loop thread).
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for loop, fut in waiters:
            by_loop.setdefault(loop, []).append(fut)
        for loop, futures in by_loop.items():
            try:
                loop.call_soon_threadsafe(_wake, futures)
            except RuntimeError:
                pass  # that event loop is closed: nobody is waiting any more
