"""The immutable snapshot types that collection produces and renderers consume.

A :class:`MetricFamily` is one metric at one moment: its metadata and a tuple of
:class:`Series`. A series holds its label pairs once and its values in a layout fixed
by the metric type, which lets renderers format each series' labels once instead of
once per sample:

============  ==========================================================
type          ``Series.values``
============  ==========================================================
counter       ``(total,)``
gauge         ``(value,)``
unknown       ``(value,)``
info          ``(1.0,)`` - the info pairs are part of ``Series.labels``
stateset      one ``1.0``/``0.0`` per entry of ``MetricFamily.states``
histogram     ``(sum, cumulative bucket counts...)``, one per ``MetricFamily.buckets``;
              the count is the last (``+Inf``) bucket; a native histogram also has
              ``Series.native`` (a :class:`NativeHistogram`), and a native-only one
              has just the ``+Inf`` bucket
gaugehistogram the same as histogram, exposed as ``_gsum``/``_gcount``
summary       ``(count, sum)`` plus ``Series.quantiles``
============  ==========================================================

``MetricFamily.series`` is a tuple of :class:`Series`, except for meterhub's own counters
(and any family built that way) collected from a process's memory: there it is a
:class:`SeriesColumns`, the same series held column by column (one object per family
rather than several per series, which keeps a scrape of a million series free of
garbage-collector work). It behaves as the tuple would (``len``, indexing, slicing,
iteration, ``==`` with the tuple, ``+``), building each :class:`Series` when asked; the
renderers read its columns directly.

``MetricFamily.samples`` gives the flat prometheus_client-style view
(:class:`Sample` NamedTuples) for tests and for code written against prometheus_client.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple, overload

__all__ = [
    "BucketSpan",
    "CollectOptions",
    "Exemplar",
    "MetricFamily",
    "MetricType",
    "NativeHistogram",
    "Sample",
    "Series",
    "SeriesColumns",
    "Timestamp",
    "state_label",
]

LabelPairs = tuple[tuple[str, str], ...]


class MetricType(str, enum.Enum):
    """The kind of a metric family, with the spelling used in ``# TYPE`` lines."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"
    SUMMARY = "summary"
    INFO = "info"
    STATESET = "stateset"
    GAUGEHISTOGRAM = "gaugehistogram"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


class CollectOptions(NamedTuple):
    """How a collection renders what it reads; the registry decides (``Registry(options=)``).

    Example::

        >>> from meterhub import CollectOptions, Counter, Registry
        >>> reg = Registry(self_metrics=False, options=CollectOptions(created=True))
        >>> Counter("jobs", "Jobs.", registry=reg).inc()
        >>> reg.get_sample_value("jobs_created") is not None
        True
    """

    created: bool = False
    """Add the ``_created`` sample (creation time) of counters, histograms and summaries."""


class Timestamp(NamedTuple):
    """A timestamp split into seconds and nanoseconds (prometheus_client compatible)."""

    sec: int
    nsec: int

    def __float__(self) -> float:
        return self.sec + self.nsec / 1e9

    def __str__(self) -> str:
        return f"{self.sec}.{self.nsec:09d}"


class Exemplar(NamedTuple):
    """A sampled observation with its trace labels, attached to a counter or a bucket."""

    labels: Mapping[str, str]
    value: float
    timestamp: float | None = None


class BucketSpan(NamedTuple):
    """A run of consecutive native-histogram buckets (prometheus_client compatible):
    *offset* is the gap since the previous span's end (for the first span, its first key)."""

    offset: int
    length: int


class NativeHistogram(NamedTuple):
    """A native histogram's state, in the wire's sparse form (prometheus_client compatible).

    ``pos_deltas``/``neg_deltas`` are each bucket's count minus the previous bucket's, in
    the order the spans list them (see :mod:`meterhub._native`). ``nh_exemplars`` are the
    exemplars of the native histogram (they carry timestamps).

    Example::

        >>> NativeHistogram(3, 6.5, 0, 0.001, 1, pos_spans=(BucketSpan(0, 2),)).schema
        0
    """

    count_value: float
    sum_value: float
    schema: int
    zero_threshold: float
    zero_count: float
    pos_spans: Sequence[BucketSpan] | None = None
    neg_spans: Sequence[BucketSpan] | None = None
    pos_deltas: Sequence[int] | None = None
    neg_deltas: Sequence[int] | None = None
    nh_exemplars: Sequence[Exemplar] | None = None


class Sample(NamedTuple):
    """One line of exposition: the flat view of prometheus_client's ``Sample``."""

    name: str
    labels: Mapping[str, str]
    value: float
    timestamp: float | Timestamp | None = None
    exemplar: Exemplar | None = None
    native_histogram: NativeHistogram | None = None


class Series(NamedTuple):
    """One label set of a family and its values (layout in the module docstring)."""

    labels: LabelPairs
    values: tuple[float, ...]
    exemplars: tuple[Exemplar | None, ...] = ()
    created: float | None = None
    timestamp: float | None = None
    quantiles: tuple[tuple[float, float], ...] = ()
    native: NativeHistogram | None = None
    """A histogram's native (exponential) buckets, when it has them."""


_new = tuple.__new__
_NO_EXEMPLARS: Mapping[tuple[str, ...], Exemplar] = {}


class SeriesColumns(Sequence[Series]):
    """Series of one family held by column: one value per series, no other per-series
    object. What meterhub's counters collect into; a sequence of :class:`Series` to
    everyone else (each built when asked, equal to the tuple of them).

    *keys* are the label values of each series, in the order of *labelnames*; *values*
    the one value of each (a counter's total, a gauge's value); *created* each series'
    creation time (``None`` where not recorded), or ``None`` when the family has no
    ``_created`` samples; *exemplars* the exemplar of the series that have one, by key.
    The columns are never changed after construction (read them, do not mutate them).

    Example::

        >>> cols = SeriesColumns(("code",), [("200",), ("500",)], [3.0, 1.0])
        >>> len(cols), cols[1]
        (2, Series(labels=(('code', '500'),), values=(1.0,), exemplars=(), created=None, \
timestamp=None, quantiles=(), native=None))
        >>> cols == tuple(cols)
        True
    """

    __slots__ = ("created", "exemplars", "keys", "labelnames", "values")

    def __init__(
        self,
        labelnames: tuple[str, ...],
        keys: Sequence[tuple[str, ...]],
        values: Sequence[float],
        created: Sequence[float | None] | None = None,
        exemplars: Mapping[tuple[str, ...], Exemplar] | None = None,
    ) -> None:
        if len(keys) != len(values) or (created is not None and len(created) != len(keys)):
            raise ValueError("SeriesColumns: keys, values and created must be equally long")
        self.labelnames = labelnames
        self.keys = keys
        self.values = values
        self.created = created
        self.exemplars = exemplars or _NO_EXEMPLARS

    def _series(self, i: int) -> Series:
        key = self.keys[i]
        ex = self.exemplars.get(key) if self.exemplars else None
        created = self.created[i] if self.created is not None else None
        labels = tuple(zip(self.labelnames, key))
        return _new(
            Series, (labels, (self.values[i],), (ex,) if ex else (), created, None, (), None)
        )

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, i: int) -> Series: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[Series, ...]: ...
    def __getitem__(self, i: int | slice) -> Series | tuple[Series, ...]:
        if isinstance(i, slice):
            return tuple(self._series(j) for j in range(*i.indices(len(self.keys))))
        n = len(self.keys)
        if not -n <= i < n:
            raise IndexError("SeriesColumns index out of range")
        return self._series(i % n)

    def __iter__(self) -> Iterator[Series]:
        for i in range(len(self.keys)):
            yield self._series(i)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SeriesColumns):
            other = tuple(other)
        return isinstance(other, tuple) and tuple(self) == other

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __add__(self, other: Any) -> tuple[Series, ...]:
        return tuple(self) + tuple(other)

    def __radd__(self, other: Any) -> tuple[Series, ...]:
        return tuple(other) + tuple(self)

    def __repr__(self) -> str:
        return repr(tuple(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            SeriesColumns,
            (self.labelnames, self.keys, self.values, self.created, dict(self.exemplars)),
        )


class MetricFamily(NamedTuple):
    """One metric at one moment: metadata and series. Immutable; renderers take these.

    ``series`` is a tuple of :class:`Series` or a :class:`SeriesColumns` (see the module
    docstring); treat it as a sequence."""

    name: str
    documentation: str
    type: MetricType
    unit: str = ""
    series: Sequence[Series] = ()
    buckets: tuple[float, ...] = ()
    states: tuple[str, ...] = ()

    @property
    def samples(self) -> list[Sample]:
        """The prometheus_client-style flat list of samples (``_created`` included when set)."""
        return list(_iter_samples(self))


def _iter_samples(family: MetricFamily) -> list[Sample]:
    out: list[Sample] = []
    name, kind = family.name, family.type
    for s in family.series:
        labels = dict(s.labels)
        ts = s.timestamp
        ex = s.exemplars
        if kind is MetricType.COUNTER:
            out.append(Sample(name + "_total", labels, s.values[0], ts, ex[0] if ex else None))
        elif kind is MetricType.HISTOGRAM:
            for i, bound in enumerate(family.buckets):
                out.append(
                    Sample(
                        name + "_bucket",
                        {**labels, "le": format_le(bound)},
                        s.values[i + 1],
                        ts,
                        ex[i] if ex else None,
                    )
                )
            out.append(Sample(name + "_count", labels, s.values[-1], ts))
            out.append(Sample(name + "_sum", labels, s.values[0], ts))
        elif kind is MetricType.GAUGEHISTOGRAM:
            for i, bound in enumerate(family.buckets):
                out.append(
                    Sample(
                        name + "_bucket",
                        {**labels, "le": format_le(bound)},
                        s.values[i + 1],
                        ts,
                        ex[i] if ex else None,
                    )
                )
            out.append(Sample(name + "_gcount", labels, s.values[-1], ts))
            out.append(Sample(name + "_gsum", labels, s.values[0], ts))
        elif kind is MetricType.SUMMARY:
            for q, v in s.quantiles:
                out.append(Sample(name, {**labels, "quantile": format_le(q)}, v, ts))
            out.append(Sample(name + "_count", labels, s.values[0], ts))
            out.append(Sample(name + "_sum", labels, s.values[1], ts))
        elif kind is MetricType.INFO:
            out.append(Sample(name + "_info", labels, s.values[0], ts))
        elif kind is MetricType.STATESET:
            for state, v in zip(family.states, s.values):
                out.append(Sample(name, {**labels, state_label(name): state}, v, ts))
        else:
            out.append(Sample(name, labels, s.values[0], ts))
        if s.created is not None:
            out.append(Sample(name + "_created", labels, s.created, ts))
    return out


def state_label(name: str) -> str:
    """The label that names a state set's states: the family name with ``:`` made ``_``.

    A metric name may contain ``:`` (recording-rule style), a label name may not.
    meterhub's :class:`~meterhub.Enum` refuses such names; this keeps a custom collector's
    state set valid for Prometheus (prometheus_client also writes ``job_state="idle"``).

    Example::

        >>> state_label("job:state"), state_label("task_state")
        ('job_state', 'task_state')
    """
    return name.replace(":", "_") if ":" in name else name


def format_le(bound: float) -> str:
    """The ``le``/``quantile`` label text of a bound, as prometheus_client writes it."""
    if bound == math.inf:
        return "+Inf"
    if bound == -math.inf:
        return "-Inf"
    return repr(float(bound))
