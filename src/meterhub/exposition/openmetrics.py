"""The OpenMetrics 1.0 text format.

Pure functions of :class:`~meterhub.samples.MetricFamily` snapshots, like
:mod:`meterhub.exposition.text`, with the differences OpenMetrics asks for:

* metadata names the *family* (``# TYPE jobs counter`` for the ``jobs_total`` sample),
  ``# UNIT`` when the metric has a unit, ``"`` escaped in ``# HELP`` too;
* ``info`` and ``stateset`` keep their own types, untyped metrics are ``unknown``;
* ``_created`` samples belong to their family (seconds since the epoch), written only
  when the snapshot carries them (``METERHUB_CREATED=true``);
* exemplars follow counter and histogram-bucket samples:
  ``jobs_total 3 # {trace_id="abc"} 1 1700000000.5``. An exemplar whose labels are longer
  than the 128 characters OpenMetrics allows (possible only from a custom collector;
  meterhub's own metrics refuse them when recorded) is left out, because Prometheus would
  reject the whole scrape for it;
* ``_sum`` is a counter in OpenMetrics: it "MUST NOT be NaN or negative", and a histogram
  with a negative bucket threshold "MUST NOT contain a sum value". So a histogram series
  whose family has a negative bound, or whose sum is negative or NaN (negative
  observations), is written without ``_sum`` and ``_count`` (the ``+Inf`` bucket is the
  count; ``_count`` without ``_sum`` is not allowed either); a summary series loses only
  its ``_sum``. The Prometheus text format keeps both (it has no such rule);
* timestamps are seconds, and the output ends with ``# EOF``.

``le`` and ``quantile`` label values are canonical floats (``"1.0"``, ``"+Inf"``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..samples import Exemplar, MetricFamily, MetricType, Series, format_le, state_label
from .text import escape_label_value, format_value, label_prefix

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = [
    "CONTENT_TYPE_OPENMETRICS",
    "EXEMPLAR_MAX_CHARS",
    "generate_latest_openmetrics",
    "render_openmetrics",
]

CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
"""The ``Content-Type`` of :func:`render_openmetrics`'s output."""

EXEMPLAR_MAX_CHARS = 128
"""OpenMetrics' limit on the combined length of an exemplar's label names and values."""

_OM_TYPES = {
    MetricType.COUNTER: "counter",
    MetricType.GAUGE: "gauge",
    MetricType.HISTOGRAM: "histogram",
    MetricType.SUMMARY: "summary",
    MetricType.INFO: "info",
    MetricType.STATESET: "stateset",
    MetricType.UNKNOWN: "unknown",
}


def escape_help(text: str) -> str:
    """Escape ``\\``, newlines and ``"`` in OpenMetrics HELP text."""
    if "\\" in text or "\n" in text or '"' in text:
        return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return text


def _ts(value: float | None) -> str:
    return "" if value is None else " " + format_value(value)


def format_exemplar(ex: Exemplar | None) -> str:
    """`` # {a="b"} value [timestamp]`` for *ex*, or ``""`` when absent or over the limit."""
    if ex is None:
        return ""
    labels = ex.labels
    if sum(len(k) + len(v) for k, v in labels.items()) > EXEMPLAR_MAX_CHARS:
        return ""
    inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items())
    return f" # {{{inner}}} {format_value(ex.value)}{_ts(ex.timestamp)}"


def _close(prefix: str) -> str:
    return "" if prefix == "{" else prefix[:-1] + "}"


def render_family(family: MetricFamily, out: list[str]) -> None:
    """Append the OpenMetrics lines of *family* to *out* (no ``# EOF``)."""
    name, kind = family.name, family.type
    meta = f"# HELP {name} {escape_help(family.documentation)}\n# TYPE {name} {_OM_TYPES[kind]}\n"
    if family.unit and name.endswith("_" + family.unit):
        # Prometheus refuses the whole scrape when the unit is not the name's suffix;
        # a custom collector could produce that, meterhub's own metrics cannot.
        meta += f"# UNIT {name} {family.unit}\n"
    out.append(meta)
    fmt = format_value
    if kind is MetricType.HISTOGRAM:
        les = [f'le="{format_le(b)}"}} ' for b in family.buckets]
        negative_bounds = bool(family.buckets) and family.buckets[0] < 0
        for s in family.series:
            prefix = label_prefix(s.labels)
            labels = _close(prefix)
            ts = _ts(s.timestamp)
            v = s.values
            exs = s.exemplars
            if exs:
                for le, count, ex in zip(les, v[1:], exs):
                    out.append(f"{name}_bucket{prefix}{le}{fmt(count)}{ts}{format_exemplar(ex)}\n")
            else:
                for le, count in zip(les, v[1:]):
                    out.append(f"{name}_bucket{prefix}{le}{fmt(count)}{ts}\n")
            if v[0] >= 0 and not negative_bounds:
                out.append(
                    f"{name}_count{labels} {fmt(v[-1])}{ts}\n{name}_sum{labels} {fmt(v[0])}{ts}\n"
                )
            _created(name, labels, s, out)
    elif kind is MetricType.COUNTER:
        for s in family.series:
            labels = _close(label_prefix(s.labels))
            exstr = format_exemplar(s.exemplars[0]) if s.exemplars else ""
            out.append(f"{name}_total{labels} {fmt(s.values[0])}{_ts(s.timestamp)}{exstr}\n")
            _created(name, labels, s, out)
    elif kind is MetricType.SUMMARY:
        for s in family.series:
            prefix = label_prefix(s.labels)
            labels = _close(prefix)
            ts = _ts(s.timestamp)
            for q, qv in s.quantiles:
                out.append(f'{name}{prefix}quantile="{format_le(q)}"}} {fmt(qv)}{ts}\n')
            out.append(f"{name}_count{labels} {fmt(s.values[0])}{ts}\n")
            if s.values[1] >= 0:
                out.append(f"{name}_sum{labels} {fmt(s.values[1])}{ts}\n")
            _created(name, labels, s, out)
    elif kind is MetricType.STATESET:
        key = state_label(name)
        states = [f'{key}="{escape_label_value(st)}"}} ' for st in family.states]
        for s in family.series:
            prefix = label_prefix(s.labels)
            ts = _ts(s.timestamp)
            for state, on in zip(states, s.values):
                out.append(f"{name}{prefix}{state}{fmt(on)}{ts}\n")
    else:
        head = name + "_info" if kind is MetricType.INFO else name
        for s in family.series:
            out.append(
                f"{head}{_close(label_prefix(s.labels))} {fmt(s.values[0])}{_ts(s.timestamp)}\n"
            )


def _created(name: str, labels: str, s: Series, out: list[str]) -> None:
    if s.created is not None:
        out.append(f"{name}_created{labels} {format_value(s.created)}{_ts(s.timestamp)}\n")


def render_openmetrics(families: Iterable[MetricFamily]) -> str:
    """Render snapshots in the OpenMetrics 1.0 text format, ending with ``# EOF``.

    Example::

        >>> from meterhub.samples import MetricFamily, MetricType, Series
        >>> jobs = (Series((), (3.0,)),)
        >>> fam = MetricFamily("jobs", "Jobs run.", MetricType.COUNTER, series=jobs)
        >>> print(render_openmetrics([fam]), end="")
        # HELP jobs Jobs run.
        # TYPE jobs counter
        jobs_total 3
        # EOF
    """
    out: list[str] = []
    for family in families:
        render_family(family, out)
    out.append("# EOF\n")
    return "".join(out)


def generate_latest_openmetrics(registry: Registry | None = None) -> bytes:
    """Collect *registry* (default ``REGISTRY``) and render it as OpenMetrics, UTF-8.

    Example::

        >>> from meterhub import Counter, Registry
        >>> reg = Registry(self_metrics=False)
        >>> Counter("jobs", "Jobs run.", registry=reg).inc(exemplar={"trace_id": "abc"})
        >>> b'jobs_total 1 # {trace_id="abc"} 1' in generate_latest_openmetrics(reg)
        True
    """
    if registry is None:
        from ..registry import REGISTRY

        registry = REGISTRY
    return render_openmetrics(registry.collect()).encode("utf-8", "replace")
