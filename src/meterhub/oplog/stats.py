"""``OplogStats``: a snapshot of an operation log's counters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from .buffer import RecordBuffer
from .writer import WriterState

__all__ = ["OplogStats", "snapshot"]


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
    queue_bytes: int = 0
    """Bytes of record JSON held in memory (queued or being written)."""


def snapshot(buffer: RecordBuffer, state: WriterState) -> OplogStats:
    """The counters of a log's buffer and writer, now."""
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
        queue_bytes=buffer.pending_bytes,
    )
