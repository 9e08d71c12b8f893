"""The seam between metric children and their storage.

Concurrency contract
--------------------
A child never takes a lock to record. It writes its cell with one of

* ``cell[i] += x`` (counters, histogram buckets and sums, gauge inc/dec),
* ``cell[i] = x`` (gauge set, enum state),

where ``cell`` is a ``list`` of floats or a ``memoryview`` of C doubles. In CPython
(3.10 and later, with the GIL) the interpreter only switches threads at calls and
backward jumps; the subscript, the float addition and the store above contain neither
(no Python-level ``__add__`` or ``__setitem__`` runs for floats, lists or memoryviews),
so each update is atomic with respect to other threads, and so is a run of them with no
call in between. That is what makes histogram ``observe`` consistent: the bucket index
is computed first, then sum and bucket are updated with no call between them, and a
reader copies the whole cell with one C-level call (``list(cell)`` / ``cell.tolist()``).

This holds only when ``x`` is an exact ``float`` or ``int``: a ``Fraction``, a float
subclass or a numpy scalar brings its own Python-level ``__radd__``. So the recording
methods pass only those two types straight through and convert anything else to a
``float`` first (``meterhub._definition.values.checked_number``).

``tests/test_concurrency.py`` checks exactness with 8 threads and a 1 µs switch
interval. Free-threaded builds (``python3.13t``) do not give this guarantee without the
GIL; :func:`meterhub.store.require_gil` refuses to run there unless the GIL is enabled
(``PYTHON_GIL=1``), until meterhub has a per-cell locking store.

The layout of a cell (its width, which slot holds what, how it becomes a snapshot
series) is owned by :mod:`meterhub.store.layout`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableSequence, Sequence
from typing import NamedTuple, Protocol

from ..samples import CollectOptions, Exemplar, MetricType
from .layout import cell_width

__all__ = ["Cell", "LocalCell", "MetricDesc", "SeriesData", "ValueStore", "cell_width"]

Cell = MutableSequence[float]
"""A series' values: ``list[float]`` or a ``memoryview`` of doubles."""


LocalCell = tuple[tuple[str, ...], Cell]
"""A series key and the cell a metric child records into."""


class MetricDesc(NamedTuple):
    """Immutable metadata of one metric; two definitions are identical iff their descs are equal."""

    name: str
    documentation: str
    type: MetricType
    unit: str = ""
    labelnames: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    states: tuple[str, ...] = ()
    multiprocess_mode: str = ""


class SeriesData(NamedTuple):
    """One series as read back from a store: its key, a copy of its cell, its exemplars."""

    key: tuple[str, ...]
    values: Sequence[float]
    exemplars: dict[int, Exemplar]
    extra_labels: tuple[tuple[str, str], ...] = ()
    """Labels a store adds after the metric's own (the multi-process store's ``pid``)."""


_DEFAULT = CollectOptions()


class ValueStore(Protocol):
    """What a registry needs from storage (``LocalStore``, ``MultiProcessStore``)."""

    def cell(self, desc: MetricDesc, key: tuple[str, ...]) -> Cell:
        """The cell of series *key* (label values) of *desc*, created zeroed if new."""
        ...

    def remove(self, desc: MetricDesc, key: tuple[str, ...]) -> None:
        """Forget series *key*; its cell is no longer read."""
        ...

    def clear(self, desc: MetricDesc) -> None:
        """Forget every series of *desc*."""
        ...

    def set_exemplar(
        self, desc: MetricDesc, key: tuple[str, ...], slot: int, exemplar: Exemplar
    ) -> None:
        """Keep *exemplar* as the latest one of *slot* (a counter value or a bucket)."""
        ...

    def read(
        self, desc: MetricDesc, local: Iterable[LocalCell], options: CollectOptions = _DEFAULT
    ) -> Iterator[SeriesData]:
        """Every series of *desc*, merged across processes where that applies.

        *local* is the ``(key, cell)`` pairs this process's metric holds. ``LocalStore``
        reads exactly those (keeping no second index of its own saves memory per series);
        a store that keeps its own record of every cell, like the multi-process one,
        ignores it. *options* say what collection renders (a store may skip merging the
        ``created`` slot when it is not).
        """
        ...
