"""The ``meterhub_multiprocess_*`` self-metrics, shared by the store and the collector."""

from __future__ import annotations

from collections.abc import Iterator

from ...samples import MetricFamily, MetricType, Series
from .directory import corrupt_count

__all__ = ["directory_self_metrics"]


def _family(name: str, doc: str, kind: MetricType, value: float) -> MetricFamily:
    return MetricFamily(name, doc, kind, series=(Series((), (value,)),))


def directory_self_metrics(
    directory: str,
    files: int,
    seconds: float,
    archive_generation: int,
    archived: int,
    unreadable: int = 0,
    pending: int = 0,
) -> Iterator[MetricFamily]:
    """The ``meterhub_multiprocess_*`` self-metrics (shared by the store and the collector)."""
    c, g = MetricType.COUNTER, MetricType.GAUGE
    yield _family(
        "meterhub_multiprocess_files_merged",
        "Files (processes and archive) merged by this process's last collection.",
        g,
        files,
    )
    yield _family(
        "meterhub_multiprocess_merge_seconds",
        "Time this process spent reading and merging multi-process files.",
        c,
        seconds,
    )
    yield _family(
        "meterhub_multiprocess_compactions",
        "Compactions of dead processes' files into the archive (directory-wide).",
        c,
        archive_generation,
    )
    yield _family(
        "meterhub_multiprocess_files_compacted",
        "Dead processes' files merged into the archive (directory-wide).",
        c,
        archived,
    )
    yield _family(
        "meterhub_multiprocess_files_corrupt",
        "Damaged multi-process files moved aside into corrupt/ (directory-wide).",
        c,
        corrupt_count(directory),
    )
    yield _family(
        "meterhub_multiprocess_files_unreadable",
        "Files this process's last collection skipped: not readable by it (permissions, "
        "I/O errors), or damaged and not movable aside by it.",
        g,
        unreadable,
    )
    yield _family(
        "meterhub_multiprocess_series_pending",
        "Series of this process recording into process-local cells (not collected yet) "
        "until its file can grow again.",
        g,
        pending,
    )
