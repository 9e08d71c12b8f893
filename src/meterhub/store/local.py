"""In-process storage: one ``list`` of floats per series."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence

from .._forksafe import renew_locks_after_fork
from ..samples import CollectOptions, Exemplar, SeriesColumns
from .base import Cell, LocalCell, MetricDesc, SeriesData
from .layout import cell_width, layout_of

__all__ = ["LocalStore"]

_NO_EXEMPLARS: dict[int, Exemplar] = {}  # shared, never mutated
_new = tuple.__new__
_TAIL = tuple(SeriesData._field_defaults[f] for f in SeriesData._fields[3:])
_DEFAULT = CollectOptions()


class LocalStore:
    """Cells in this process's memory (the default store).

    A cell is a plain ``list`` held by the metric child that records into it; the store
    keeps no index of its own (collection reads the metric's cells), which halves the
    bookkeeping per series. Exemplars, which are rare, are kept here. Recording into a
    cell takes no lock (see :mod:`meterhub.store.base`).

    Example::

        >>> from meterhub import Counter, Registry
        >>> from meterhub.store import LocalStore
        >>> reg = Registry(store=LocalStore(), self_metrics=False)
        >>> Counter("hits", "Hits.", registry=reg).inc()
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exemplars: dict[str, dict[tuple[str, ...], dict[int, Exemplar]]] = {}
        renew_locks_after_fork(self)

    def _renew_locks(self) -> None:
        self._lock = threading.Lock()  # in a forked child (see meterhub._forksafe)

    def cell(self, desc: MetricDesc, key: tuple[str, ...]) -> Cell:
        return [0.0] * cell_width(desc)

    def remove(self, desc: MetricDesc, key: tuple[str, ...]) -> None:
        with self._lock:
            self._exemplars.get(desc.name, {}).pop(key, None)

    def clear(self, desc: MetricDesc) -> None:
        with self._lock:
            self._exemplars.pop(desc.name, None)

    def set_exemplar(
        self, desc: MetricDesc, key: tuple[str, ...], slot: int, exemplar: Exemplar
    ) -> None:
        with self._lock:
            self._exemplars.setdefault(desc.name, {}).setdefault(key, {})[slot] = exemplar

    def read(
        self, desc: MetricDesc, local: Iterable[LocalCell], options: CollectOptions = _DEFAULT
    ) -> Iterator[SeriesData]:
        with self._lock:
            exemplars = {k: dict(v) for k, v in self._exemplars.get(desc.name, {}).items()}
        for key, cell in local:
            # list(cell) is one C call: a consistent copy even while other threads record.
            # (tuple.__new__: SeriesData's Python-level __new__ costs more than the copy)
            yield _new(SeriesData, (key, list(cell), exemplars.get(key, _NO_EXEMPLARS), *_TAIL))

    def read_columns(
        self,
        desc: MetricDesc,
        keys: Sequence[tuple[str, ...]],
        cells: Sequence[Cell],
        options: CollectOptions = _DEFAULT,
    ) -> SeriesColumns | None:
        """The series of *cells* (this process's, aligned with *keys*) as columns, when
        *desc*'s layout has a columnar form (counters), else ``None`` (then
        :meth:`read`). What a large scrape costs: no object per series."""
        layout = layout_of(desc)
        if not layout.columnar:
            return None
        with self._lock:
            mine = self._exemplars.get(desc.name)
            exemplars = {k: dict(v) for k, v in mine.items()} if mine else {}
        return layout.columns(desc, keys, cells, exemplars, options.created)
