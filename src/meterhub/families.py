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
    >>> reg.get_sample_value("jobs_done_total", {"queue": "mail"})  # as given (an int)
    12
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._config import get_config
from .errors import DefinitionError
from .naming import validate_metric_name
from .samples import (
    BucketSpan,
    Exemplar,
    MetricFamily,
    MetricType,
    NativeHistogram,
    Sample,
    Series,
    Timestamp,
    state_label,
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

_SUFFIXES = {
    MetricType.COUNTER: ("_total", "_created"),
    MetricType.HISTOGRAM: ("_bucket", "_count", "_sum", "_created"),
    MetricType.GAUGEHISTOGRAM: ("_bucket", "_gcount", "_gsum"),
    MetricType.SUMMARY: ("_count", "_sum", "_created"),
    MetricType.INFO: ("_info",),
}
_BUCKETED = (MetricType.HISTOGRAM, MetricType.GAUGEHISTOGRAM)


class CollectedFamily(MetricFamily):
    """A snapshot converted from a prometheus_client-style family; ``raw_samples`` keeps
    the samples as the collector gave them (order, label text such as ``quantile="0"``,
    a family cut down to some samples), which the renderers write as they are."""

    raw_samples: tuple[Sample, ...] = ()


def to_family(obj: Any) -> MetricFamily:
    """Turn what a collector yielded into an immutable :class:`MetricFamily`.

    Accepts meterhub snapshots as they are, and anything shaped like prometheus_client's
    ``Metric`` (``name``, ``documentation``, ``type``, ``unit``, ``samples``). A value that
    is not a number raises ``TypeError``/``ValueError``, a label value that is not text
    ``AttributeError``, each with *obj* appended to the exception's ``args``.
    """
    if isinstance(obj, MetricFamily):
        return obj
    try:
        name, doc, typ = obj.name, obj.documentation, obj.type
        samples: Iterable[Any] = obj.samples
    except AttributeError:
        raise TypeError(f"collector yielded {obj!r}, which is not a metric family") from None
    try:
        kind = MetricType("unknown" if typ == "untyped" else typ)
    except ValueError:
        kind = MetricType.UNKNOWN
    try:
        raw = list(samples)
        family = CollectedFamily(
            *_from_samples(name, doc, kind, getattr(obj, "unit", "") or "", raw)
        )
        # A native histogram's sample has no text form of its own: outside compat mode it is
        # written from the snapshot (count, sum, +Inf bucket) instead of sample by sample.
        if get_config().compat is not None or not any(
            getattr(s, "native_histogram", None) for s in raw
        ):
            family.raw_samples = tuple(raw)
        return family
    except (TypeError, ValueError, AttributeError) as exc:
        exc.args = (*(exc.args or ("",)), obj)
        raise


def _label_text(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise AttributeError(f"label value {value!r} is not a str")


def _checked(samples: list[Any]) -> list[tuple[Any, dict[str, str], float]]:
    """``(sample, labels, float value)`` of each sample, checked in order."""
    out = []
    for s in samples:
        labels = {k: _label_text(v) for k, v in s.labels.items()}
        out.append((s, labels, float(s.value)))
    return out


def _from_samples(
    name: str, doc: str, kind: MetricType, unit: str, samples: list[Any]
) -> MetricFamily:
    groups: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    buckets: set[float] = set()
    states: list[str] = []
    for s, labels, value in _checked(samples):
        suffix = s.name[len(name) :] if s.name.startswith(name) else ""
        if suffix not in _SUFFIXES.get(kind, ()):
            suffix = ""
        extra_key = {"": None, "_bucket": "le"}.get(suffix)
        if kind is MetricType.SUMMARY and suffix == "":
            extra_key = "quantile"
        if kind is MetricType.STATESET:  # prometheus_client's states: a label named `name`
            extra_key = name if name in labels else state_label(name)
        extra = labels.pop(extra_key, None) if extra_key else None
        ts = None if s.timestamp is None else float(s.timestamp)
        g = groups.setdefault(tuple(sorted(labels.items())), {"ts": ts})
        g["labels"] = tuple(labels.items())
        native = getattr(s, "native_histogram", None)
        if native is not None and kind is MetricType.HISTOGRAM:
            # prometheus_client's native histogram sample (its value is not a count)
            g["native"] = _native_of(native)
            buckets.add(math.inf)
            continue
        if suffix == "_created":
            g["created"] = value
        elif suffix == "_bucket":
            le = float(extra) if extra is not None else math.inf
            buckets.add(le)
            g.setdefault("buckets", {})[le] = (value, s.exemplar)
        elif extra is not None and kind is MetricType.SUMMARY:
            g.setdefault("quantiles", []).append((float(extra), value))
        elif extra is not None and kind is MetricType.STATESET:
            if extra not in states:
                states.append(extra)
            g.setdefault("states", {})[extra] = value
        else:
            g[suffix or "value"] = value
            if s.exemplar is not None:
                g["exemplar"] = s.exemplar
    bounds = tuple(sorted(buckets))
    series = []
    for g in groups.values():
        if kind in _BUCKETED:
            native = g.get("native")
            total = g.get("_sum", g.get("_gsum", native.sum_value if native else 0.0))
            values, exemplars, last = [total], [], 0.0
            per = g.get("buckets", {})
            if native is not None and math.inf not in per:
                per[math.inf] = (native.count_value, None)
            for b in bounds:
                last, ex = per.get(b, (last, None))
                values.append(last)
                exemplars.append(ex)
            exs = tuple(exemplars) if any(e is not None for e in exemplars) else ()
            series.append(
                Series(g["labels"], tuple(values), exs, g.get("created"), g["ts"], native=native)
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


def _native_of(nh: Any) -> NativeHistogram:
    """prometheus_client's (or anyone's) ``NativeHistogram`` as meterhub's."""
    exemplars = getattr(nh, "nh_exemplars", None)
    return NativeHistogram(
        float(nh.count_value),
        float(nh.sum_value),
        int(nh.schema),
        float(nh.zero_threshold),
        float(nh.zero_count),
        tuple(BucketSpan(int(o), int(n)) for o, n in nh.pos_spans or ()),
        tuple(BucketSpan(int(o), int(n)) for o, n in nh.neg_spans or ()),
        tuple(int(d) for d in nh.pos_deltas or ()),
        tuple(int(d) for d in nh.neg_deltas or ()),
        tuple(exemplars) if exemplars else None,
    )
