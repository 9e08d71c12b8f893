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
              the count is the last (``+Inf``) bucket
summary       ``(count, sum)`` plus ``Series.quantiles``
============  ==========================================================

``MetricFamily.samples`` gives the flat prometheus_client-style view
(:class:`Sample` NamedTuples) for tests and for code written against prometheus_client.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import NamedTuple

__all__ = [
    "CollectOptions",
    "Exemplar",
    "MetricFamily",
    "MetricType",
    "Sample",
    "Series",
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


class Exemplar(NamedTuple):
    """A sampled observation with its trace labels, attached to a counter or a bucket."""

    labels: Mapping[str, str]
    value: float
    timestamp: float | None = None


class Sample(NamedTuple):
    """One line of exposition: the flat view of prometheus_client's ``Sample``."""

    name: str
    labels: Mapping[str, str]
    value: float
    timestamp: float | Timestamp | None = None
    exemplar: Exemplar | None = None


class Series(NamedTuple):
    """One label set of a family and its values (layout in the module docstring)."""

    labels: LabelPairs
    values: tuple[float, ...]
    exemplars: tuple[Exemplar | None, ...] = ()
    created: float | None = None
    timestamp: float | None = None
    quantiles: tuple[tuple[float, float], ...] = ()


class MetricFamily(NamedTuple):
    """One metric at one moment: metadata and series. Immutable; renderers take these."""

    name: str
    documentation: str
    type: MetricType
    unit: str = ""
    series: tuple[Series, ...] = ()
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
