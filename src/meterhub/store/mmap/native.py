"""Native histograms in the multi-process store: merged exactly across files.

A process's cell can be mid-rewrite (its window moving) while another process reads it:
the snapshot's copy is checked against the cell read again from the file, and copies are
taken until two successive ones agree on an even ``gen`` (a seqlock, see
:func:`.nativecell.stable_copy`). Then every process's cell of a series is merged by
:func:`.nativecell.merge_native` (lowest schema first, then exact sums).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import cast

from ...samples import Exemplar
from ..base import MetricDesc, SeriesData, cell_width
from ..nativecell import merge_native, native_start, stable_copy
from .merge import latest_exemplars
from .view import FileView

__all__ = ["native_summed"]

_SPIN, _TRIES = 100, 150
"""Re-reads of one cell back to back, then 1 ms apart, before giving up on it for this
collection (a writer that held a rewrite open for ~50 ms)."""


def _cells(
    view: FileView, desc: MetricDesc, width: int, alive: bool
) -> Iterator[tuple[tuple[str, ...], Sequence[float]]]:
    dv = view.doubles()
    start = native_start(desc)
    for key, (at, n) in view.series.get(desc.name, {}).items():
        if n != width:  # another definition (other buckets): not mergeable
            continue

        def copies(at: int = at) -> Iterator[Sequence[float]]:
            # the snapshot's copy first, then the cell read again from the file (the
            # snapshot itself never changes) until it settles
            i = at >> 3
            yield cast("list[float]", dv[i : i + width].tolist())
            for attempt in range(_TRIES):
                if attempt >= _SPIN:  # the writer may be descheduled mid-rewrite: wait
                    time.sleep(0.001)
                again = view.reread(at, width)
                if again is None:
                    return
                yield again

        if not alive:
            # No writer any more (an archive, a dead process): nothing moves. A process
            # killed between its two gen updates left an odd gen on a whole window (the
            # rewrite itself is one copy), so the cell is read as it is.
            i = at >> 3
            yield key, cast("list[float]", dv[i : i + width].tolist())
            continue
        copy = stable_copy(copies(), start)
        if copy is not None:
            yield key, copy
        # else: a writer still mid-rewrite after ~50 ms; the series is read at the next
        # collection (nothing is lost: the file keeps it)


def native_summed(desc: MetricDesc, files: Iterable[tuple[FileView, bool]]) -> Iterator[SeriesData]:
    """Every series of the native histogram *desc*, merged across *files*."""
    width = cell_width(desc)
    per_key: dict[tuple[str, ...], list[Sequence[float]]] = {}
    exemplars: dict[tuple[str, ...], dict[int, Exemplar]] = {}
    for view, alive in files:
        for key, cell in _cells(view, desc, width, alive):
            per_key.setdefault(key, []).append(cell)
        for key in view.exemplars.get(desc.name, {}):
            latest_exemplars(exemplars.setdefault(key, {}), view.exemplars_of(desc.name, key))
    for key, cells in per_key.items():
        values = cells[0] if len(cells) == 1 else merge_native(desc, cells)
        yield SeriesData(key, values, exemplars.get(key, {}))
