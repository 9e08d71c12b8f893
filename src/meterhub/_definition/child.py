"""One series of a metric (:class:`Child`) and how it changes cells without losing an update.

The per-type children (``CounterChild``, ``HistogramChild``, ...) subclass :class:`Child`;
:class:`~meterhub._definition.base.MetricBase` creates, caches and removes them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import DefinitionError
from ..store.base import Cell

if TYPE_CHECKING:
    from .base import MetricBase

__all__ = ["Child", "SeriesWatcher", "encodable", "keyword_key", "move_cell"]


def encodable(values: tuple[str, ...]) -> bool:
    """True if every value can be written as UTF-8 (no lone surrogates)."""
    try:
        for v in values:
            v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def keyword_key(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """``labels(**kw)``'s key of a child: the values in label-name order (KeyError for a
    missing name), in one C call where itemgetter allows it."""
    if len(names) > 1:
        return operator.itemgetter(*names)
    if names:
        name = names[0]
        return lambda kw: (kw[name],)  # itemgetter of one name returns the bare value
    return lambda kw: ()  # never called: labels(**kw) of a metric without labels fails len


class SeriesWatcher(Protocol):
    """Code that caches metric children (hot paths skipping ``labels()``).

    A removed series' child keeps updating a cell nobody exports, so such a cache registers
    with :meth:`MetricBase.watch_series` and is emptied on ``remove()`` / ``clear()``.
    """

    def series_forgotten(self) -> None: ...


class Child:
    """One series of a metric: its label values and its cell.

    ``child.active_cell`` is the cell recording goes to now: the store's cell, or a scratch
    list while the metric's switch is off. It is the seam for code that writes a child's
    fast path out inline (:mod:`meterhub.events.compile`, the operation log): read it at
    every update (never keep it), write it with the slots of :mod:`meterhub.store.layout`.
    It is the very slot the child's own methods use, so reading it costs the same.

    Example::

        >>> from meterhub import Counter, Registry
        >>> child = Counter("hits", "Hits.", ["page"], registry=Registry()).labels("home")
        >>> child.active_cell[0] += 1.0  # CounterLayout.TOTAL: what child.inc() does
    """

    __slots__ = ("_cell", "_key", "_metric", "_v")

    active_cell: Cell  # the slot "_v" under its public name (set after the class)

    def __init__(self, metric: MetricBase[Any], key: tuple[str, ...], cell: Cell) -> None:
        self._metric = metric
        self._key = key
        self._cell = cell
        self._v = cell if metric._recording else [0.0] * len(cell)

    def _switch(self, on: bool) -> None:
        self._v = self._cell if on else [0.0] * len(self._cell)

    def _drop(self) -> None:
        self._metric._store.remove(self._metric._desc, self._key)

    def labels(self, *values: Any, **kwargs: Any) -> Any:
        """A series has no labels left to choose: always a ``ValueError``."""
        raise DefinitionError(
            f"metric {self._metric._desc.name!r}: labels() called on a series, which has "
            "its label values already"
        )


# The public name shares the slot's descriptor: no property call on inlined hot paths.
Child.active_cell = Child.__dict__["_v"]


def move_cell(child: Child, old: Cell, new: Cell, summed: bool) -> None:
    """Move *child* from cell *old* to *new* with no update lost to a racing thread.

    A recording reads ``_v`` and updates it with no call or loop in between, so no thread
    switch falls inside it (the contract of :mod:`meterhub.store.base`): once ``_v`` is
    swapped, nothing writes *old* any more. Summed values (counters, histograms,
    summaries) are swapped first and then added in; set values (gauges, enums, at most
    two slots) are copied and swapped with no switch point in between.
    """
    if summed:
        new[-1] = old[-1]  # created: written once, at creation
        child._cell = new
        if child._v is old:
            child._v = new
        for i in range(len(old) - 1):
            new[i] += old[i]
    elif len(old) == 1:
        new[0] = old[0]
        child._cell = new
        if child._v is old:
            child._v = new
    else:
        new[0] = old[0]
        new[1] = old[1]
        child._cell = new
        if child._v is old:
            child._v = new
