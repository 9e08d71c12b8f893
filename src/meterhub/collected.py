"""What a collector yielded, turned into an immutable snapshot (:func:`to_family`).

Accepts meterhub :class:`~meterhub.samples.MetricFamily` snapshots as they are, and anything
shaped like prometheus_client's ``Metric`` (the builders of :mod:`meterhub.families`,
prometheus_client's own families): their samples are regrouped into series.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ._config import get_config
from .samples import (
    BucketSpan,
    MetricFamily,
    MetricType,
    NativeHistogram,
    Sample,
    Series,
    state_label,
)

__all__ = ["CollectedFamily", "to_family"]


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
