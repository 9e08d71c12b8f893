"""Builders for custom collectors, with prometheus_client's signatures.

A custom collector is any object with ``collect()`` yielding these (or prometheus_client's
own ``Metric`` objects, or meterhub :class:`~meterhub.samples.MetricFamily` snapshots).
The registry turns each into an immutable ``MetricFamily`` with :func:`to_family`
(:mod:`meterhub.collected`).

Example::

    >>> from meterhub import CounterMetricFamily, Registry
    >>> class QueueCollector:
    ...     def collect(self):
    ...         c = CounterMetricFamily("jobs_done", "Jobs done.", labels=["queue"])
    ...         c.add_metric(["mail"], 12)
    ...         yield c
    >>> reg = Registry(self_metrics=False)
    >>> reg.register(QueueCollector())
    >>> reg.get_sample_value("jobs_done_total", {"queue": "mail"})  # as given (an int)
    12
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import DefinitionError
from .naming import validate_metric_name
from .samples import (
    Exemplar,
    MetricType,
    NativeHistogram,
    Sample,
    Timestamp,
)

__all__ = [
    "CounterMetricFamily",
    "GaugeHistogramMetricFamily",
    "GaugeMetricFamily",
    "HistogramMetricFamily",
    "InfoMetricFamily",
    "Metric",
    "StateSetMetricFamily",
    "SummaryMetricFamily",
    "UnknownMetricFamily",
    "UntypedMetricFamily",
    "to_family",
]

from .collected import to_family


class Metric:
    """A mutable family of samples, as prometheus_client's ``Metric``.

    Samples keep the values they were given; converting them (``float()``) happens when
    the registry collects, and an error then names the family (as prometheus_client's
    ``generate_latest`` does: the metric is the exception's last argument). Two families
    are equal when their name, help, type, unit and samples are.
    """

    def __init__(self, name: str, documentation: str, typ: str, unit: str = "") -> None:
        if unit and not name.endswith("_" + unit):
            name = f"{name}_{unit}"
        validate_metric_name(name)
        if typ == "untyped":
            typ = "unknown"
        try:
            self.type = MetricType(typ).value
        except ValueError:
            raise DefinitionError(f"metric {name!r}: Invalid metric type {typ!r}") from None
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
        native_histogram: NativeHistogram | None = None,
    ) -> None:
        """Append one sample."""
        self.samples.append(Sample(name, labels, value, timestamp, exemplar, native_histogram))

    def _labels(self, names: Sequence[str], values: Sequence[str]) -> dict[str, str]:
        values = list(values)
        if len(names) != len(values):
            raise ValueError(
                f"metric {self.name!r}: {len(values)} label values for {len(names)} label names"
            )
        return dict(zip(names, values))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Metric)
            and self.name == other.name
            and self.documentation == other.documentation
            and self.type == other.type
            and self.unit == other.unit
            and self.samples == other.samples
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Metric({self.name}, {self.documentation}, {self.type}, {self.unit}, {self.samples})"
        )


def _one_of(name: str, value: object, labels: object) -> None:
    if labels is not None and value is not None:
        raise ValueError(f"metric {name!r}: Can only specify at most one of value and labels.")


class _Family(Metric):
    _type = MetricType.UNKNOWN

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Iterable[str] | None,
        unit: str = "",
        has_value: bool = False,
    ) -> None:
        super().__init__(name, documentation, self._type.value, unit)
        _one_of(name, True if has_value else None, labels)
        self._labelnames = tuple(labels or ())


class UnknownMetricFamily(_Family):
    """A family of untyped samples (``UntypedMetricFamily`` is the same class)."""

    _type = MetricType.UNKNOWN

    def __init__(
        self,
        name: str,
        documentation: str,
        value: float | None = None,
        labels: Iterable[str] | None = None,
        unit: str = "",
    ) -> None:
        super().__init__(name, documentation, labels, unit, value is not None)
        if value is not None:
            self.add_metric([], value)

    def add_metric(
        self, labels: Sequence[str], value: float, timestamp: float | Timestamp | None = None
    ) -> None:
        self.add_sample(self.name, self._labels(self._labelnames, labels), value, timestamp)


UntypedMetricFamily = UnknownMetricFamily
"""prometheus_client's older name for :class:`UnknownMetricFamily`."""


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
        labels: Iterable[str] | None = None,
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
        timestamp: float | Timestamp | None = None,
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
        labels: Iterable[str] | None = None,
        unit: str = "",
    ) -> None:
        if (sum_value is None) != (count_value is None):
            raise ValueError(
                f"metric {name!r}: count_value and sum_value must be provided together."
            )
        super().__init__(name, documentation, labels, unit, count_value is not None)
        if count_value is not None and sum_value is not None:
            self.add_metric([], count_value, sum_value)

    def add_metric(
        self,
        labels: Sequence[str],
        count_value: float,
        sum_value: float,
        timestamp: float | Timestamp | None = None,
    ) -> None:
        pairs = self._labels(self._labelnames, labels)
        self.add_sample(self.name + "_count", pairs, count_value, timestamp)
        self.add_sample(self.name + "_sum", pairs, sum_value, timestamp)


class HistogramMetricFamily(_Family):
    """A family of histograms: *buckets* is a list of ``(le, cumulative_count[, exemplar])``,
    sorted, ``+Inf`` last."""

    _type = MetricType.HISTOGRAM

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[Sequence[Any]] | None = None,
        sum_value: float | None = None,
        labels: Iterable[str] | None = None,
        unit: str = "",
    ) -> None:
        if sum_value is not None and buckets is None:
            raise ValueError(f"metric {name!r}: sum value cannot be provided without buckets.")
        super().__init__(name, documentation, labels, unit, buckets is not None)
        if buckets is not None:
            self.add_metric([], buckets, sum_value)

    def add_metric(
        self,
        labels: Sequence[str],
        buckets: Sequence[Sequence[Any]],
        sum_value: float | None,
        timestamp: float | Timestamp | None = None,
    ) -> None:
        pairs = self._labels(self._labelnames, labels)
        for bucket in buckets:
            le, value = bucket[0], bucket[1]
            exemplar = bucket[2] if len(bucket) > 2 else None
            self.add_sample(self.name + "_bucket", {**pairs, "le": le}, value, timestamp, exemplar)
        # no sum (and so no count) when there are negative buckets
        if float(buckets[0][0]) >= 0 and sum_value is not None:
            self.add_sample(self.name + "_count", pairs, buckets[-1][1], timestamp)
            self.add_sample(self.name + "_sum", pairs, sum_value, timestamp)


class GaugeHistogramMetricFamily(_Family):
    """A family of gauge histograms (OpenMetrics): bucket counts that may go down,
    ``_gcount`` and ``_gsum``; *buckets* is a list of ``(le, value)``, ``+Inf`` last."""

    _type = MetricType.GAUGEHISTOGRAM

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[Sequence[Any]] | None = None,
        gsum_value: float | None = None,
        labels: Iterable[str] | None = None,
        unit: str = "",
    ) -> None:
        super().__init__(name, documentation, labels, unit, buckets is not None)
        if buckets is not None:
            self.add_metric([], buckets, gsum_value)

    def add_metric(
        self,
        labels: Sequence[str],
        buckets: Sequence[Sequence[Any]],
        gsum_value: float | None,
        timestamp: float | Timestamp | None = None,
    ) -> None:
        pairs = self._labels(self._labelnames, labels)
        for le, value in buckets:
            self.add_sample(self.name + "_bucket", {**pairs, "le": le}, value, timestamp)
        self.add_sample(self.name + "_gcount", pairs, buckets[-1][1], timestamp)
        self.add_sample(self.name + "_gsum", pairs, gsum_value, timestamp)  # type: ignore[arg-type]


class InfoMetricFamily(_Family):
    """A family of info metrics: each series is a dict of string pairs."""

    _type = MetricType.INFO

    def __init__(
        self,
        name: str,
        documentation: str,
        value: Mapping[str, str] | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        super().__init__(name, documentation, labels, "", value is not None)
        if value is not None:
            self.add_metric([], value)

    def add_metric(
        self,
        labels: Sequence[str],
        value: Mapping[str, str],
        timestamp: float | Timestamp | None = None,
    ) -> None:
        pairs = {**self._labels(self._labelnames, labels), **value}
        self.add_sample(self.name + "_info", pairs, 1, timestamp)


class StateSetMetricFamily(_Family):
    """A family of state sets: each series maps state names to booleans."""

    _type = MetricType.STATESET

    def __init__(
        self,
        name: str,
        documentation: str,
        value: Mapping[str, bool] | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        super().__init__(name, documentation, labels, "", value is not None)
        if value is not None:
            self.add_metric([], value)

    def add_metric(
        self,
        labels: Sequence[str],
        value: Mapping[str, bool],
        timestamp: float | Timestamp | None = None,
    ) -> None:
        pairs = self._labels(self._labelnames, labels)
        for state, on in sorted(value.items()):
            self.add_sample(self.name, {**pairs, self.name: state}, 1 if on else 0, timestamp)


# ----------------------------------------------------------------------------- conversion
