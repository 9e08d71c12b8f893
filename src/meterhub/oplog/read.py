"""Reading batch files back: iterate batches, summarise operations, apply retention.

Only complete batch files exist under their final names (the writer renames a fsynced
temporary file into place), so a reader never sees a partial batch.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .files import BATCH_FILE_RE

__all__ = ["Batch", "OperationSummary", "batch_files", "cleanup", "read_batches", "summarize"]


@dataclass(frozen=True)
class Batch:
    """One batch file's content."""

    path: Path
    batch_id: str
    batch_timestamp: str
    records: list[dict[str, Any]]

    @property
    def total_records(self) -> int:
        return len(self.records)


@dataclass(frozen=True)
class OperationSummary:
    """Counts and duration percentiles (nearest rank, milliseconds) of one operation."""

    operation_type: str
    operation_name: str
    count: int
    errors: int
    error_rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def _id_time(batch_id: str) -> datetime:
    return datetime.strptime(batch_id, "%Y%m%d_%H%M%S_%f").replace(tzinfo=timezone.utc)


def _as_utc(when: datetime) -> datetime:
    if not isinstance(when, datetime):
        raise TypeError(f"since must be a datetime, got {type(when).__name__}")
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


def batch_files(path: str | os.PathLike[str], since: datetime | None = None) -> list[Path]:
    """The batch files under *path*, oldest first (by batch id), optionally from *since* on.

    A naive *since* is taken as UTC.
    """
    directory = Path(path)
    start = None if since is None else _as_utc(since)
    found: list[tuple[str, Path]] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            match = BATCH_FILE_RE.match(entry.name)
            if match is None:
                continue
            if start is not None and _id_time(match.group(1)) < start:
                continue
            found.append((match.group(1), Path(entry.path)))
    found.sort()
    return [p for _, p in found]


def read_batches(path: str | os.PathLike[str], since: datetime | None = None) -> Iterator[Batch]:
    """Yield the batches under *path*, oldest first, optionally only those from *since* on.

    Raises ``ValueError`` naming the file if one is not a valid batch file (someone
    else wrote it: the writer never leaves a partial file).

    Example::

        >>> import tempfile
        >>> list(read_batches(tempfile.mkdtemp()))
        []
    """
    for file in batch_files(path, since):
        try:
            doc = json.loads(file.read_bytes())
            records = doc["records"]
            if not isinstance(records, list) or doc["total_records"] != len(records):
                raise ValueError("total_records does not match the records")
            batch = Batch(file, str(doc["batch_id"]), str(doc["batch_timestamp"]), records)
        except FileNotFoundError:
            continue  # removed by retention while we were listing
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{file}: not a valid operation-log batch file ({exc})") from exc
        yield batch


def _rank(ordered: list[float], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(
    path: str | os.PathLike[str], since: datetime | None = None
) -> dict[tuple[str, str], OperationSummary]:
    """Per ``(operation_type, operation_name)``: count, error rate, p50/p95/p99 duration.

    Example::

        >>> import tempfile
        >>> summarize(tempfile.mkdtemp())
        {}
    """
    durations: dict[tuple[str, str], list[float]] = {}
    errors: dict[tuple[str, str], int] = {}
    for batch in read_batches(path, since):
        for record in batch.records:
            key = (record["operation_type"], record["operation_name"])
            durations.setdefault(key, []).append(float(record["duration_ms"]))
            if not record["success"]:
                errors[key] = errors.get(key, 0) + 1
    out: dict[tuple[str, str], OperationSummary] = {}
    for key in sorted(durations):
        values = sorted(durations[key])
        failed = errors.get(key, 0)
        out[key] = OperationSummary(
            key[0],
            key[1],
            len(values),
            failed,
            failed / len(values),
            _rank(values, 0.50),
            _rank(values, 0.95),
            _rank(values, 0.99),
            values[-1],
        )
    return out


def cleanup(
    path: str | os.PathLike[str], older_than_days: float = 30, *, now: float | None = None
) -> int:
    """Delete batch files whose batch id is older than *older_than_days*; returns how many.

    The age comes from the file name (the batch time), not the modification time, so
    copying or restoring files does not change what is kept.

    Example::

        >>> import tempfile
        >>> cleanup(tempfile.mkdtemp(), older_than_days=30)
        0
    """
    if isinstance(older_than_days, bool) or not isinstance(older_than_days, (int, float)):
        raise TypeError(f"older_than_days must be a number, got {older_than_days!r}")
    if not older_than_days >= 0 or math.isinf(older_than_days):
        raise ValueError(f"older_than_days must be >= 0 and finite, got {older_than_days!r}")
    cutoff = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc)
    cutoff -= timedelta(days=older_than_days)
    removed = 0
    with os.scandir(Path(path)) as entries:
        for entry in entries:
            match = BATCH_FILE_RE.match(entry.name)
            if match is not None and _id_time(match.group(1)) < cutoff:
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                removed += 1
    return removed
