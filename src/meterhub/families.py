"""Builders for custom collectors, with prometheus_client's signatures.

A custom collector is any object with ``collect()`` yielding these (or prometheus_client's
own ``Metric`` objects, or meterhub :class:`~meterhub.samples.MetricFamily` snapshots).
The registry turns each into an immutable ``MetricFamily`` with :func:`to_family`.

Example::

    >>> from meterhub import CounterMetricFamily, Registry
    >>> class QueueCollector:
    ...     def collect(self):
    ...         c = CounterMetricFamily("jobs_done", "Jobs done.", labels=["queue"])
    ...         c.add_metric(["mail"], 12)
    ...         yield c
    >>> reg = Registry(self_metrics=False)
    >>> reg.register(QueueCollector())
    >>> reg.get_sample_value("jobs_done_total", {"queue": "mail"})
    12.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import DefinitionError
from .naming import validate_metric_name
from .samples import Exemplar, MetricFamily, MetricType, Sample, Series, Timestamp, state_label

__all__ = [
    "CounterMetricFamily",
    "GaugeMetricFamily",
    "HistogramMetricFamily",
    "InfoMetricFamily",
    "Metric",
    "StateSetMetricFamily",
    "SummaryMetricFamily",
    "UnknownMetricFamily",
    "to_family",
]


class Metric:
    """A mutable family of samples, as prometheus_client's ``Metric``."""

    def __init__(self, name: str, documentation: str, typ: str, unit: str = "") -> None:
        validate_metric_name(name)
        if unit and not name.endswith("_" + unit):
            name = f"{name}_{unit}"
        try:
            self.type = MetricType(typ).value
        except ValueError:
            raise DefinitionError(f"metric {name!r}: unknown metric type {typ!r}") from None
        self.name = name
        self.documentation = documentation
        self.unit = unit
        self.samples: list[Sample] = []

    def add_sample(
        self,
        name: str,
        labels: Mapping[str, str],
        value: float,
        timestamp: float | Timestamp | None = None,
        exemplar: Exemplar | None = None,
        native_histogram: Any = None,
    ) -> None:
        """Append one sample."""
        self.samples.append(Sample(name, dict(labels), float(value), timestamp, exemplar))

    def _labels(self, names: Sequence[str], values: Sequence[str]) -> dict[str, str]:
        if len(names) != len(values):
            raise ValueError(
                f"metric {self.name!r}: {len(values)} label values for {len(names)} label names"
            )
        return dict(zip(names, (str(v) for v in values)))

    def __repr__(self) -> str:
        return f"Metric({self.name!r}, {self.documentation!r}, {self.type!r}, {self.samples!r})"


class _Family(Metric):
    _type = MetricType.UNKNOWN

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] | None,
        unit: str = "",
        has_value: bool = False,
    ) -> None:
        super().__init__(name, documentation, self._type.value, unit)
        if labels is not None and has_value:
            raise ValueError(f"metric {name!r}: give either a value or label names, not both")
        self._labelnames = tuple(labels or ())


class UnknownMetricFamily(_Family):
    """A family of untyped samples."""

    _type = MetricType.UNKNOWN

    def __init__(
        self,
        name: str,
        documentation: str,
        value: float | None = None,
        labels: Sequence[str] | None = None,
        unit: str = "",
    ) -> None:
        super().__init__(name, documentation, labels, unit, value is not None)
        if value is not None:
            self.add_metric([], value)

    def add_metric(
        self, labels: Sequence[str], value: float, timestamp: float | None = None
    ) -> None:
        self.add_sample(self.name, self._labels(self._labelnames, labels), value, timestamp)


class GaugeMetricFamily(UnknownMetricFamily):
    """A family of gauge samples."""

    _type = MetricType.GAUGE


class CounterMetricFamily(_Family):
    """A family of counter samples; a ``_total`` suffix on *name* is optional."""

    _type = MetricType.COUNTER

    def __init__(
        self,
        name: str,
        documentation: str,
        value: float | None = None,
        labels: Sequence[str] | None = None,
        created: float | None = None,
        unit: str = "",
        exemplar: Exemplar | None = None,
    ) -> None:
        if name.endswith("_total"):
            name = name[: -len("_total")]
        super().__init__(name, documentation, labels, unit, value is not None)
        if value is not None:
            self.add_metric([], value, created, exemplar=exemplar)

    def add_metric(
        self,
        labels: Sequence[str],
        value: float,
        created: float | None = None,
        timestamp: float | None = None,
        exemplar: Exemplar | None = None,
    ) -> None:
        pairs = self._labels(self._labelnames, labels)
        self.add_sample(self.name + "_total", pairs, value, timestamp, exemplar)
        if created is not None:
            self.add_sample(self.name + "_created", pairs, created, timestamp)


class SummaryMetricFamily(_Family):
    """A family of summaries (count and sum)."""

    _type = MetricType.SUMMARY

    def __init__(
        self,
        name: str,
        documentation: str,
        count_value: float | None = None,
        sum_value: float | None = None,
        labels: Sequence[str] | None = None,
        unit: str = "",
    ) -> None:
        super().__init__(name, documentation, labels, unit, count_value is not None)
        if count_value is not None:
            if sum_value is None:
                raise ValueError(f"metric {name!r}: sum_value is required with count_value")
            self.add_metric([], count_value, sum_value)

    def add_metric(
        self,
        labels: Sequence[str],
        count_value: float,
        sum_value: float,
        timestamp: float | None = None,
    ) -> None:
        pairs = self._labels(self._labelnames, labels)
        self.add_sample(self.name + "_count", pairs, count_value, timestamp)
        self.add_sample(self.name + "_sum", pairs, sum_value, timestamp)


class HistogramMetricFamily(_Family):
    """A family of histograms: *buckets* is a list of ``(le, cumulative_count[, exemplar])``."""

    _type = MetricType.HISTOGRAM

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[Sequence[Any]] | None = None,
        sum_value: float | None = None,
        labels: Sequence[str] | None = None,
        unit: str = "",
    ) -> None:
        super().__init__(name, documentation, labels, unit, buckets is not None)
        if buckets is not None:
            self.add_metric([], buckets, sum_value)

    def add_metric(
        self,
        labels: Sequence[str],
        buckets: Sequence[Sequence[Any]],
        sum_value: float | None,
        timestamp: float | None = None,
    ) -> None:
        pairs = self._labels(self._labelnames, labels)
        for bucket in buckets:
            le, value = bucket[0], bucket[1]
            exemplar = bucket[2] if len(bucket) > 2 else None
            self.add_sample(
                self.name + "_bucket", {**pairs, "le": str(le)}, value, timestamp, exemplar
            )
        if sum_value is not None:
            self.add_sample(self.name + "_count", pairs, buckets[-1][1], timestamp)
            self.add_sample(self.name + "_sum", pairs, sum_value, timestamp)


class InfoMetricFamily(_Family):
    """A family of info metrics: each series is a dict of string pairs."""

    _type = MetricType.INFO

    def __init__(
        self,
        name: str,
        documentation: str,
        value: Mapping[str, str] | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, documentation, labels, "", value is not None)
        if value is not None:
            self.add_metric([], value)

    def add_metric(
        self, labels: Sequence[str], value: Mapping[str, str], timestamp: float | None = None
    ) -> None:
        pairs = {**self._labels(self._labelnames, labels), **value}
        self.add_sample(self.name + "_info", pairs, 1.0, timestamp)


class StateSetMetricFamily(_Family):
    """A family of state sets: each series maps state names to booleans."""

    _type = MetricType.STATESET

    def __init__(
        self,
        name: str,
        documentation: str,
        value: Mapping[str, bool] | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        super().__init__(name, documentation, labels, "", value is not None)
        if value is not None:
            self.add_metric([], value)

    def add_metric(
        self, labels: Sequence[str], value: Mapping[str, bool], timestamp: float | None = None
    ) -> None:
        pairs = self._labels(self._labelnames, labels)
        for state, on in value.items():
            self.add_sample(self.name, {**pairs, self.name: state}, 1.0 if on else 0.0, timestamp)


# ----------------------------------------------------------------------------- conversion

_SUFFIXES = {
    MetricType.COUNTER: ("_total", "_created"),
    MetricType.HISTOGRAM: ("_bucket", "_count", "_sum", "_created"),
    MetricType.SUMMARY: ("_count", "_sum", "_created"),
    MetricType.INFO: ("_info",),
}


def to_family(obj: Any) -> MetricFamily:
    """Turn what a collector yielded into an immutable :class:`MetricFamily`.

    Accepts meterhub snapshots as they are, and anything shaped like prometheus_client's
    ``Metric`` (``name``, ``documentation``, ``type``, ``unit``, ``samples``).
    """
    if isinstance(obj, MetricFamily):
        return obj
    try:
        name, doc, typ = obj.name, obj.documentation, obj.type
        samples: Iterable[Any] = obj.samples
    except AttributeError:
        raise TypeError(f"collector yielded {obj!r}, which is not a metric family") from None
    try:
        kind = MetricType(typ)
    except ValueError:
        kind = MetricType.UNKNOWN  # gaugehistogram and other OpenMetrics-only types
    return _from_samples(name, doc, kind, getattr(obj, "unit", "") or "", samples)


def _from_samples(
    name: str, doc: str, kind: MetricType, unit: str, samples: Iterable[Any]
) -> MetricFamily:
    groups: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    buckets: set[float] = set()
    states: list[str] = []
    for s in samples:
        suffix = s.name[len(name) :] if s.name.startswith(name) else ""
        if suffix not in _SUFFIXES.get(kind, ()):
            suffix = ""
        labels = dict(s.labels)
        extra_key = {"": None, "_bucket": "le"}.get(suffix)
        if kind is MetricType.SUMMARY and suffix == "":
            extra_key = "quantile"
        if kind is MetricType.STATESET:  # prometheus_client's states: a label named `name`
            extra_key = name if name in labels else state_label(name)
        extra = labels.pop(extra_key, None) if extra_key else None
        ts = None if s.timestamp is None else float(s.timestamp)
        g = groups.setdefault(tuple(sorted(labels.items())), {"ts": ts})
        g["labels"] = tuple(labels.items())
        if suffix == "_created":
            g["created"] = float(s.value)
        elif suffix == "_bucket":
            le = float(extra) if extra is not None else math.inf
            buckets.add(le)
            g.setdefault("buckets", {})[le] = (float(s.value), s.exemplar)
        elif extra is not None and kind is MetricType.SUMMARY:
            g.setdefault("quantiles", []).append((float(extra), float(s.value)))
        elif extra is not None and kind is MetricType.STATESET:
            if extra not in states:
                states.append(extra)
            g.setdefault("states", {})[extra] = float(s.value)
        else:
            g[suffix or "value"] = float(s.value)
            if s.exemplar is not None:
                g["exemplar"] = s.exemplar
    bounds = tuple(sorted(buckets))
    series = []
    for g in groups.values():
        if kind is MetricType.HISTOGRAM:
            values, exemplars, last = [g.get("_sum", 0.0)], [], 0.0
            per = g.get("buckets", {})
            for b in bounds:
                last, ex = per.get(b, (last, None))
                values.append(last)
                exemplars.append(ex)
            series.append(
                Series(g["labels"], tuple(values), tuple(exemplars), g.get("created"), g["ts"])
            )
            continue
        if kind is MetricType.SUMMARY:
            values = [g.get("_count", 0.0), g.get("_sum", 0.0)]
        elif kind is MetricType.STATESET:
            values = [g.get("states", {}).get(st, 0.0) for st in states]
        else:
            values = [g.get("value", g.get("_total", g.get("_info", 0.0)))]
        exemplar = g.get("exemplar")
        series.append(
            Series(
                g["labels"],
                tuple(values),
                (exemplar,) if exemplar is not None else (),
                g.get("created"),
                g["ts"],
                tuple(g.get("quantiles", ())),
            )
        )
    return MetricFamily(name, doc, kind, unit, tuple(series), bounds, tuple(states))
