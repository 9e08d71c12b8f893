"""How the multi-process store merges one metric across files.

Merging rules (every process's file plus the archive)
-----------------------------------------------------
* counters, histograms, summaries: slots add up; ``created`` is the earliest (merged
  only when the collection renders it, ``CollectOptions.created``); the exemplar of a
  slot is the most recent one of any process.
* gauges, by ``multiprocess_mode``: ``all`` one series per process with a ``pid`` label;
  ``sum``/``max``/``min``; ``mostrecent`` the value written last (timestamp slot); the
  ``live*`` variants look at live processes only.
* Info: the union of the distinct info label sets of all processes.
* Enum: one series per process with a ``pid`` label, like gauges in ``all`` mode.

A dead process's file is compacted into the archive (steps and crash safety in
:mod:`.directory`): its sums are kept (series that never left zero are not), its gauges in
``sum``/``max``/``min``/``mostrecent`` modes are merged, and everything describing a live
process (``all``/``live*`` gauges, Info, Enum) is dropped - which keeps the directory and
the scrape flat however many workers come and go.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat
from operator import add
from typing import NamedTuple

from ...samples import Exemplar, MetricType
from ..base import MetricDesc, SeriesData
from ..layout import LAYOUTS, cell_width
from .format import KIND_ARCHIVE
from .view import FileView

__all__ = [
    "FileState",
    "SUMMED",
    "Summed",
    "merge",
    "merge_reduced",
    "merge_summed",
    "summed_columns",
]

SUMMED = tuple(kind for kind, layout in LAYOUTS.items() if layout.summed)
"""Types whose values add up across processes (their ``created`` slot, the last: min)."""

FileState = tuple[FileView, bool]
"""A file and whether its process is alive (an archive counts as not alive)."""


_NONE: dict[int, Exemplar] = {}
"""Shared by every series without exemplars (never mutated)."""


def latest_exemplars(into: dict[int, Exemplar], other: dict[int, Exemplar]) -> None:
    for slot, ex in other.items():
        cur = into.get(slot)
        if cur is None or (ex.timestamp or 0.0) >= (cur.timestamp or 0.0):
            into[slot] = ex


def _earliest(a: float, b: float) -> float:
    return b if b and (not a or b < a) else a


class Summed(NamedTuple):
    """A summed metric, column-wise: ``cols[j][n]`` is slot *j* of series ``keys[n]``."""

    keys: Sequence[tuple[str, ...]]
    cols: list[Sequence[float]]
    exemplars: dict[tuple[str, ...], dict[int, Exemplar]]


def summed_columns(
    desc: MetricDesc, files: Iterable[FileState], *, created: bool = False
) -> Summed:
    """Sums, column by column: files with the same series in the same order (workers of
    one app) are added with C-level ``map``; other layouts fall back to a dict merge.
    The ``created`` slot (the last) is merged only when *created* (it is rendered)."""
    width, name = cell_width(desc), desc.name
    groups: dict[int, list[tuple[tuple[tuple[str, ...], ...], list[Sequence[float]]]]] = {}
    exemplars: dict[tuple[str, ...], dict[int, Exemplar]] = {}
    for view, _ in files:
        layout = view.columns(name, width)
        keys = layout.keys
        if not keys:
            continue
        cols = view.read_columns(layout)
        same = groups.setdefault(layout.sig, [])
        acc = next((c for k, c in same if k is keys or k == keys), None)
        if acc is None:
            same.append((keys, cols))
        else:
            for j in range(width - 1):
                acc[j] = list(map(add, acc[j], cols[j]))
            if created:
                acc[-1] = [_earliest(a, b) for a, b in zip(acc[-1], cols[-1])]
        with_ex = view.exemplars.get(name)
        if with_ex:
            for key in with_ex:
                latest_exemplars(exemplars.setdefault(key, {}), view.exemplars_of(name, key))
    flat = [group for same in groups.values() for group in same]
    if len(flat) == 1:
        keys, cols = flat[0]
        return Summed(keys, list(cols), exemplars)
    merged: dict[tuple[str, ...], list[float]] = {}
    for keys, cols in flat:
        for key, row in zip(keys, zip(*cols)):
            cur = merged.get(key)
            if cur is None:
                merged[key] = list(row)
                continue
            for j in range(width - 1):
                cur[j] += row[j]
            cur[-1] = _earliest(cur[-1], row[-1])
    columns: list[Sequence[float]] = (
        list(zip(*merged.values())) if merged else [[] for _ in range(width)]
    )
    return Summed(list(merged), columns, exemplars)


def merge_summed(
    desc: MetricDesc, files: Iterable[FileState], *, created: bool = False
) -> Iterator[SeriesData]:
    """Series of *desc* added up across *files* (counters, histograms, summaries)."""
    keys, cols, exemplars = summed_columns(desc, files, created=created)
    if exemplars:
        exs: Iterable[dict[int, Exemplar]] = (exemplars.get(k, _NONE) for k in keys)
    else:
        exs = repeat(_NONE)
    return map(SeriesData._make, zip(keys, zip(*cols), exs, repeat(())))


def merge_reduced(desc: MetricDesc, files: Iterable[FileState], how: str) -> Iterator[SeriesData]:
    """Series of gauge-like *desc* reduced across *files* by *how* (a gauge's multiprocess mode)."""
    width = cell_width(desc)
    acc: dict[tuple[str, ...], list[float]] = {}
    for view, _ in files:
        for key, values in view.read_series(desc.name, width):
            cur = acc.get(key)
            if cur is None:
                acc[key] = list(values)
            elif how == "sum":
                cur[0] += values[0]
            elif how == "max":
                cur[0] = max(cur[0], values[0])
            elif how == "min":
                cur[0] = min(cur[0], values[0])
            elif values[1] > cur[1]:  # mostrecent: the write with the latest timestamp wins
                cur[:] = values
    for key, merged in acc.items():
        yield SeriesData(key, merged, {})


def _per_process(desc: MetricDesc, files: Iterable[FileState]) -> Iterator[SeriesData]:
    width = cell_width(desc)
    for view, _ in sorted(files, key=lambda f: f[0].pid):
        if view.kind == KIND_ARCHIVE:
            continue
        pid = (("pid", str(view.pid)),)
        for key, values in view.read_series(desc.name, width):
            yield SeriesData(key, values, {}, pid)


def _union(desc: MetricDesc, files: Iterable[FileState]) -> Iterator[SeriesData]:
    seen: set[tuple[str, ...]] = set()
    for view, _ in files:
        if view.kind == KIND_ARCHIVE:
            continue
        for key, values in view.read_series(desc.name, 1):
            if key not in seen and values[0]:
                seen.add(key)
                yield SeriesData(key, [1.0], {})


def merge(
    desc: MetricDesc, files: list[FileState], *, created: bool = False
) -> Iterator[SeriesData]:
    """Every series of *desc* merged across *files* by the rules of its type and mode (the
    ``created`` slot only when *created*: it is rendered)."""
    kind = desc.type
    if desc.native is not None:
        from .native import native_summed

        return native_summed(desc, files)
    if kind in SUMMED:
        return merge_summed(desc, files, created=created)
    if kind is MetricType.INFO:
        return _union(desc, files)
    mode = desc.multiprocess_mode or "all"
    if mode.startswith("live"):
        files = [f for f in files if f[1]]
        mode = mode[4:]
    if kind is MetricType.STATESET or mode == "all":
        return _per_process(desc, files)
    return merge_reduced(desc, files, mode)
