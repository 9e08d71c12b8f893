"""In-process storage: one ``list`` of floats per series."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from ..samples import Exemplar
from .base import Cell, MetricDesc, SeriesData, cell_width

__all__ = ["LocalStore"]

_NO_EXEMPLARS: dict[int, Exemplar] = {}  # shared, never mutated


class LocalStore:
    """Cells in this process's memory (the default store).

    Creating, removing and reading series take a lock; recording into a cell does not
    (see :mod:`meterhub.store.base`).

    Example::

        >>> from meterhub import Counter, Registry
        >>> from meterhub.store import LocalStore
        >>> reg = Registry(store=LocalStore(), self_metrics=False)
        >>> Counter("hits", "Hits.", registry=reg).inc()
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[str, dict[tuple[str, ...], list[float]]] = {}
        self._exemplars: dict[str, dict[tuple[str, ...], dict[int, Exemplar]]] = {}

    def cell(self, desc: MetricDesc, key: tuple[str, ...]) -> Cell:
        with self._lock:
            series = self._cells.setdefault(desc.name, {})
            cell = series.get(key)
            if cell is None:
                cell = series[key] = [0.0] * cell_width(desc)
            return cell

    def remove(self, desc: MetricDesc, key: tuple[str, ...]) -> None:
        with self._lock:
            self._cells.get(desc.name, {}).pop(key, None)
            self._exemplars.get(desc.name, {}).pop(key, None)

    def clear(self, desc: MetricDesc) -> None:
        with self._lock:
            self._cells.pop(desc.name, None)
            self._exemplars.pop(desc.name, None)

    def set_exemplar(
        self, desc: MetricDesc, key: tuple[str, ...], slot: int, exemplar: Exemplar
    ) -> None:
        with self._lock:
            self._exemplars.setdefault(desc.name, {}).setdefault(key, {})[slot] = exemplar

    def read(self, desc: MetricDesc) -> Iterator[SeriesData]:
        with self._lock:
            items = list(self._cells.get(desc.name, {}).items())
            exemplars = {k: dict(v) for k, v in self._exemplars.get(desc.name, {}).items()}
        for key, cell in items:
            # list(cell) is one C call: a consistent copy even while other threads record.
            yield SeriesData(key, list(cell), exemplars.get(key, _NO_EXEMPLARS))
