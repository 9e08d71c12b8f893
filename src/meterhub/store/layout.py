"""Cell layouts: what each float slot of a series' cell holds, per metric type.

This module is the one owner of the layout. A *cell* is a flat sequence of floats (a
``list``, or a ``memoryview`` of doubles in the multi-process store; concurrency contract in
:mod:`meterhub.store.base`). Its width and the meaning of each slot follow from the
metric's definition (:class:`~meterhub.store.base.MetricDesc`):

=========  ============================================================================
type       cell (``width`` slots)
=========  ============================================================================
counter    ``[total, created]``
gauge      ``[value]``, or ``[value, timestamp]`` in the ``mostrecent`` modes
histogram  ``[sum, bucket_0 .. bucket_n-1, created]`` (buckets *not* cumulative)
native     a histogram with ``native_histogram_bucket_factor``:
histogram  ``[sum, bucket_0 .. bucket_n-1, gen, zero, reduced, plo, pn, nlo, nn,``
           ``b_0 .. b_cap-1, created]`` (:class:`NativeHistogramLayout`)
summary    ``[count, sum, created]``
info       ``[1.0]`` - the info pairs are encoded in the series key (see ``Info``)
enum       ``[state index]``
=========  ============================================================================

A native histogram's cell is the classic one (a native-only histogram has the ``+Inf``
bucket alone, so it still holds the count) with the native region inserted before
``created``, at :meth:`NativeHistogramLayout.start` (offsets ``N_*``): ``gen`` a sequence
number, odd while the window is rewritten (for readers in other processes); the zero
bucket's count; ``reduced`` how many times the schema was lowered from
``MetricDesc.native.schema`` (0 in a fresh, zeroed cell); the positive window (``pn``
buckets from key ``plo``) stored from ``b_0`` up, the negative window (``nn`` buckets from
key ``nlo``) from ``b_cap-1`` down; ``pn + nn <= cap = MetricDesc.native.max_buckets``.
Its exemplar slots are the classic bucket indexes (only with ``buckets=``) and
``len(buckets)`` for the native histogram. It is not summed slot by slot across
processes: :func:`meterhub.store.nativecell.merge_native` merges it.

``created`` is the series' creation time, or ``0.0`` when it was not recorded (it is
stamped only while ``_created`` samples are on). Exemplar slots (``ValueStore.set_exemplar``)
are the counter's ``0`` and the histogram's bucket index.

Who reads this table:

* stores size new cells with :func:`cell_width`;
* the multi-process merge adds up every slot of a :attr:`~CellLayout.summed` layout but
  :meth:`~CellLayout.created_slot`, which keeps the earliest non-zero value;
* collection (``MetricBase.collect``, the directory collector of
  :mod:`meterhub.multiprocess`) turns a read-back cell into a snapshot
  :class:`~meterhub.samples.Series` with :meth:`~CellLayout.to_series`.

The recording hot paths write slots as constants, because a table lookup per increment
would cost as much as the increment: the children's methods (``CounterChild.inc``,
``HistogramChild.observe``, ...), the source :mod:`meterhub.events.compile` generates (it
formats the slot constants below into it) and the operation log's inline updates.
``tests/test_cell_layout.py`` checks each of them against this table, so a layout change
(other buckets, a native-histogram cell) is made here and the test names what must follow.

To add a layout: subclass :class:`CellLayout`, give it its slot constants, ``width``,
``created_slot`` and ``to_series``, and return it from :func:`layout_of` (a layout that
depends on more than the type is chosen there too).

Example::

    >>> from meterhub.samples import MetricType
    >>> from meterhub.store.base import MetricDesc
    >>> desc = MetricDesc("latency", "Latency.", MetricType.HISTOGRAM, buckets=(0.1, 1.0))
    >>> layout_of(desc).width(desc), HistogramLayout.SUM, HistogramLayout.FIRST_BUCKET
    (4, 0, 1)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar

from ..samples import Exemplar, LabelPairs, MetricType, Series, SeriesColumns

if TYPE_CHECKING:
    from .base import MetricDesc, SeriesData

# A plain counter's Series is built once per series and scrape: tuple.__new__ with the
# defaults of Series's other fields skips NamedTuple's Python-level __new__.
_new = tuple.__new__
_SERIES_DEFAULTS = tuple(Series._field_defaults[f] for f in Series._fields[2:])

__all__ = [
    "COUNTER",
    "ENUM",
    "GAUGE",
    "HISTOGRAM",
    "INFO",
    "LAYOUTS",
    "NATIVE_HISTOGRAM",
    "SUMMARY",
    "CellLayout",
    "CounterLayout",
    "EnumLayout",
    "GaugeLayout",
    "HistogramLayout",
    "InfoLayout",
    "NativeHistogramLayout",
    "SummaryLayout",
    "cell_width",
    "created_value",
    "layout_of",
]


def created_value(value: float, on: bool) -> float | None:
    """The ``created`` of a snapshot series: ``None`` when off or never recorded (0.0)."""
    return value if on and value else None


class CellLayout:
    """The cell layout of one metric type: its width, its slots, and cell -> snapshot.

    One instance per type (``COUNTER``, ``HISTOGRAM``, ...); methods take the metric's
    desc for what depends on the definition (the number of buckets, the gauge mode).
    """

    __slots__ = ()

    type: ClassVar[MetricType]
    summed: ClassVar[bool] = False
    """Whether the slots add up across processes (the created slot keeps the earliest)."""
    columnar: ClassVar[bool] = False
    """Whether :meth:`columns` reads this layout's cells into a columnar snapshot."""

    def width(self, desc: MetricDesc) -> int:
        """How many float slots one series of *desc* needs."""
        return 1

    def created_slot(self, desc: MetricDesc) -> int | None:
        """The slot of the creation time, or ``None`` for types that have none."""
        return None

    def to_series(
        self, desc: MetricDesc, labels: LabelPairs, data: SeriesData, created: bool
    ) -> Series:
        """Series *data* (a cell read back) in the snapshot layout of :mod:`meterhub.samples`;
        *labels* are its label pairs, *created* whether ``_created`` samples are rendered."""
        return Series(labels, (data.values[0],))

    def columns(
        self,
        desc: MetricDesc,
        keys: Sequence[tuple[str, ...]],
        cells: Sequence[Sequence[float]],
        exemplars: Mapping[tuple[str, ...], Mapping[int, Exemplar]],
        created: bool,
    ) -> SeriesColumns | None:
        """The series of *cells* (live cells, aligned with *keys*) as one
        :class:`~meterhub.samples.SeriesColumns`, read slot by slot; ``None`` for a layout
        whose snapshot needs a consistent copy of a whole cell (or has no columnar form)."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class CounterLayout(CellLayout):
    """``[total, created]``."""

    __slots__ = ()
    type = MetricType.COUNTER
    summed = True
    columnar = True
    TOTAL: ClassVar[int] = 0
    CREATED: ClassVar[int] = 1

    def width(self, desc: MetricDesc) -> int:
        return 2

    def created_slot(self, desc: MetricDesc) -> int | None:
        return self.CREATED

    def to_series(
        self, desc: MetricDesc, labels: LabelPairs, data: SeriesData, created: bool
    ) -> Series:
        values = data.values
        if not data.exemplars and not created:  # the common case, kept cheap
            return _new(Series, (labels, (values[0],), *_SERIES_DEFAULTS))
        ex = data.exemplars.get(0)
        return Series(labels, (values[0],), (ex,) if ex else (), created_value(values[1], created))

    def columns(
        self,
        desc: MetricDesc,
        keys: Sequence[tuple[str, ...]],
        cells: Sequence[Sequence[float]],
        exemplars: Mapping[tuple[str, ...], Mapping[int, Exemplar]],
        created: bool,
    ) -> SeriesColumns:
        # The total and the created stamp are independent slots: reading them one by one
        # is as consistent as copying the cell (each read is atomic, see store/base.py).
        totals = [cell[0] for cell in cells]
        stamps = [cell[1] or None for cell in cells] if created else None
        ex = {k: e[0] for k, e in exemplars.items() if 0 in e} if exemplars else None
        return SeriesColumns(desc.labelnames, keys, totals, stamps, ex)


class GaugeLayout(CellLayout):
    """``[value]``, or ``[value, timestamp]`` in the ``mostrecent`` modes."""

    __slots__ = ()
    type = MetricType.GAUGE
    VALUE: ClassVar[int] = 0
    TIMESTAMP: ClassVar[int] = 1
    """Only in the ``mostrecent`` modes: the time of the last write (the merge keeps the
    value with the latest one)."""

    def width(self, desc: MetricDesc) -> int:
        return 2 if desc.multiprocess_mode.endswith("mostrecent") else 1


class HistogramLayout(CellLayout):
    """``[sum, bucket_0 .. bucket_n-1, created]``: bucket *i* at ``FIRST_BUCKET + i``."""

    __slots__ = ()
    type = MetricType.HISTOGRAM
    summed = True
    SUM: ClassVar[int] = 0
    FIRST_BUCKET: ClassVar[int] = 1

    def width(self, desc: MetricDesc) -> int:
        return len(desc.buckets) + 2

    def created_slot(self, desc: MetricDesc) -> int | None:
        return len(desc.buckets) + 1

    def to_series(
        self, desc: MetricDesc, labels: LabelPairs, data: SeriesData, created: bool
    ) -> Series:
        values = data.values  # [sum, buckets..., created]
        cumulative: list[float] = [values[0]]
        total = 0.0
        for count in values[1:-1]:
            total += count
            cumulative.append(total)
        ex = data.exemplars
        exemplars = tuple(ex.get(i) for i in range(len(values) - 2)) if ex else ()
        # created_value(), inlined: this runs once per histogram series and scrape
        stamp = values[-1] if created and values[-1] else None
        return Series(labels, tuple(cumulative), exemplars, stamp)


# Offsets inside a native histogram's region (from NativeHistogramLayout.start).
N_GEN, N_ZERO, N_REDUCED, N_PLO, N_PN, N_NLO, N_NN, N_BUCKETS = range(8)


class NativeHistogramLayout(HistogramLayout):
    """A classic histogram's cell with the native region before ``created`` (see above)."""

    __slots__ = ()
    summed = False  # merged by meterhub.store.nativecell.merge_native
    GEN: ClassVar[int] = N_GEN
    ZERO: ClassVar[int] = N_ZERO
    REDUCED: ClassVar[int] = N_REDUCED
    PLO: ClassVar[int] = N_PLO
    PN: ClassVar[int] = N_PN
    NLO: ClassVar[int] = N_NLO
    NN: ClassVar[int] = N_NN
    BUCKETS: ClassVar[int] = N_BUCKETS

    def start(self, desc: MetricDesc) -> int:
        """Where the native region starts (after sum and the classic buckets)."""
        return 1 + len(desc.buckets)

    def width(self, desc: MetricDesc) -> int:
        assert desc.native is not None
        return len(desc.buckets) + 2 + N_BUCKETS + desc.native.max_buckets

    def created_slot(self, desc: MetricDesc) -> int | None:
        return self.width(desc) - 1

    def to_series(
        self, desc: MetricDesc, labels: LabelPairs, data: SeriesData, created: bool
    ) -> Series:
        from .nativecell import native_from_cell

        values = data.values
        n = len(desc.buckets)
        cumulative: list[float] = [values[0]]
        total = 0.0
        for count in values[1 : n + 1]:
            total += count
            cumulative.append(total)
        ex = data.exemplars
        native_ex = ex.get(n) if ex else None
        native = native_from_cell(desc, values, (native_ex,) if native_ex else ())
        # a native-only histogram's exemplar belongs to its native buckets
        exemplars = tuple(ex.get(i) for i in range(n)) if ex and n > 1 else ()
        stamp = values[-1] if created and values[-1] else None
        return Series(labels, tuple(cumulative), exemplars, stamp, native=native)


class SummaryLayout(CellLayout):
    """``[count, sum, created]``."""

    __slots__ = ()
    type = MetricType.SUMMARY
    summed = True
    COUNT: ClassVar[int] = 0
    SUM: ClassVar[int] = 1
    CREATED: ClassVar[int] = 2

    def width(self, desc: MetricDesc) -> int:
        return 3

    def created_slot(self, desc: MetricDesc) -> int | None:
        return self.CREATED

    def to_series(
        self, desc: MetricDesc, labels: LabelPairs, data: SeriesData, created: bool
    ) -> Series:
        v = data.values
        return Series(labels, (v[0], v[1]), (), created_value(v[2], created))


class InfoLayout(CellLayout):
    """``[1.0]``; the key's last element is the info pairs, JSON-encoded."""

    __slots__ = ()
    type = MetricType.INFO
    PRESENT: ClassVar[int] = 0

    def to_series(
        self, desc: MetricDesc, labels: LabelPairs, data: SeriesData, created: bool
    ) -> Series:
        # *labels* pair the label names with the key, so they leave the info pairs out.
        pairs = tuple((str(k), str(v)) for k, v in json.loads(data.key[-1]))
        return Series(labels + pairs, (1.0,))


class EnumLayout(CellLayout):
    """``[state index]``, rendered as one 1.0/0.0 per state (a state set)."""

    __slots__ = ()
    type = MetricType.STATESET
    STATE: ClassVar[int] = 0

    def to_series(
        self, desc: MetricDesc, labels: LabelPairs, data: SeriesData, created: bool
    ) -> Series:
        current = int(data.values[0])
        return Series(labels, tuple(1.0 if i == current else 0.0 for i in range(len(desc.states))))


COUNTER = CounterLayout()
GAUGE = GaugeLayout()
HISTOGRAM = HistogramLayout()
SUMMARY = SummaryLayout()
INFO = InfoLayout()
ENUM = EnumLayout()
NATIVE_HISTOGRAM = NativeHistogramLayout()

LAYOUTS: Mapping[MetricType, CellLayout] = MappingProxyType(
    {layout.type: layout for layout in (COUNTER, GAUGE, HISTOGRAM, SUMMARY, INFO, ENUM)}
)
"""The layout of each metric type (read-only)."""


def layout_of(desc: MetricDesc) -> CellLayout:
    """The layout of *desc*'s cells (types without a layout of their own store one value).

    The one place a layout is chosen: one that depends on more than the type is picked
    here, before the lookup by type.
    """
    if desc.native is not None:
        return NATIVE_HISTOGRAM
    return LAYOUTS.get(desc.type, GAUGE)


def cell_width(desc: MetricDesc) -> int:
    """How many float slots one series of *desc* needs."""
    return layout_of(desc).width(desc)
