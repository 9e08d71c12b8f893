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

A native histogram's bucket keys move: its window of buckets grows, shifts, or merges
pairs when the schema is lowered (and all counts are zeroed by a reset). That can't tear a
bucket either. The child keeps each sign's window as a table of its bucket bounds (a
list, replaced - never mutated - when the window moves). ``observe()`` reads the table,
computes the key from ``log2`` (calls: a thread switch may happen here), then, with no
call in between, checks that the value lies between the table's bounds at that index and
that the child still holds *that* table object, and adds to sum, classic bucket and
native bucket - or else takes the child's lock (the slow path). A structural change runs
under that lock: it first swaps in an empty table (one store: every fast path that starts
or resumes now misses and queues on the lock, so no one else writes a native bucket),
computes the new window from the cell, writes the whole native region back with one
slice assignment (one C call: an in-process reader's copy holds the old window or the new
one, never a mix), and installs the new tables last. A fast path that read the old table
fails the identity check, so it never adds into a bucket that has moved. A reset replaces
everything but ``created`` the same way, in one assignment. Readers in other processes,
which the GIL does not order, see ``gen`` odd during the rewrite and read again.

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

__all__ = [
    "Cell",
    "LocalCell",
    "MetricDesc",
    "NativeSpec",
    "SeriesData",
    "ValueStore",
    "cell_width",
]

Cell = MutableSequence[float]
"""A series' values: ``list[float]`` or a ``memoryview`` of doubles."""


LocalCell = tuple[tuple[str, ...], Cell]
"""A series key and the cell a metric child records into."""


class NativeSpec(NamedTuple):
    """A histogram's native-bucket settings (``Histogram(native_histogram_*=...)``)."""

    schema: int
    """The finest schema (from the bucket factor); lowered when over *max_buckets*."""
    zero_threshold: float
    max_buckets: int
    min_reset_duration: float = 0.0
    """Seconds after the last reset before going over budget resets instead (0: never)."""


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
    native: NativeSpec | None = None


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
