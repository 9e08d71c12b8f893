"""The Prometheus text exposition format, version 0.0.4.

Pure functions of snapshots: no I/O, no registry state. Output matches prometheus_client's
``generate_latest`` (family names, sample order, ``_created`` as separate gauge families)
except that integral values print without a spurious ``.0``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..samples import MetricFamily, MetricType, Series, format_le, state_label

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = ["CONTENT_TYPE_LATEST", "format_value", "generate_latest", "render_text"]

CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"
"""The ``Content-Type`` of :func:`generate_latest`'s output."""

_INF = math.inf
_TEXT_TYPES = {
    MetricType.COUNTER: "counter",
    MetricType.GAUGE: "gauge",
    MetricType.HISTOGRAM: "histogram",
    MetricType.SUMMARY: "summary",
    MetricType.INFO: "gauge",
    MetricType.STATESET: "gauge",
    MetricType.UNKNOWN: "untyped",
}


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it: ``+Inf``, ``-Inf``, ``NaN``, ``3``, ``0.25``.

    Example::

        >>> format_value(3.0), format_value(0.25), format_value(float("inf"))
        ('3', '0.25', '+Inf')
    """
    text = _FORMATTED.get(value)
    if text is None:
        text = _format_value(value)
        if len(_FORMATTED) < _FORMATTED_MAX:
            _FORMATTED[value] = text
    return text


# Bucket counts, zeros and small totals repeat across series and scrapes: a bounded memo
# of their text saves most of the formatting work (NaN never hits: it is unequal to itself).
_FORMATTED: dict[float, str] = {}
_FORMATTED_MAX = 8192


def _format_value(value: float) -> str:
    try:
        integral = value.is_integer()  # False for NaN and the infinities
    except AttributeError:  # an int (int.is_integer needs Python 3.12)
        integral = True
    if integral and -1e15 < value < 1e15:
        return str(int(value))
    if value != value:
        return "NaN"
    if value == _INF:
        return "+Inf"
    if value == -_INF:
        return "-Inf"
    return repr(float(value))


def escape_label_value(value: str) -> str:
    """Escape ``\\``, ``"`` and newlines in a label value."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
    return value


def escape_help(text: str) -> str:
    """Escape ``\\`` and newlines in HELP text."""
    if "\\" in text or "\n" in text:
        return text.replace("\\", r"\\").replace("\n", r"\n")
    return text


def label_prefix(pairs: Sequence[tuple[str, str]]) -> str:
    """``'{a="x",b="y",'`` for a series' labels (``'{'`` when there are none).

    Callers close it with ``'}'`` (after trimming the comma) or append one more pair.
    """
    esc = escape_label_value
    if len(pairs) == 1:  # the common shapes, without building a list
        ((k, v),) = pairs
        return f'{{{k}="{esc(v)}",'
    if len(pairs) == 2:
        (k1, v1), (k2, v2) = pairs
        return f'{{{k1}="{esc(v1)}",{k2}="{esc(v2)}",'
    return "{" + "".join([f'{k}="{esc(v)}",' for k, v in pairs])


def _close(prefix: str) -> str:
    return "" if prefix == "{" else prefix[:-1] + "}"


def _timestamp(s: Series) -> str:
    return "" if s.timestamp is None else f" {round(s.timestamp * 1000)}"


def render_family(family: MetricFamily, out: list[str]) -> None:
    """Append the text lines of *family* to *out*."""
    name, kind = family.name, family.type
    head = name
    if kind is MetricType.COUNTER:
        head = name + "_total"
    elif kind is MetricType.INFO:
        head = name + "_info"
    out.append(
        f"# HELP {head} {escape_help(family.documentation)}\n# TYPE {head} {_TEXT_TYPES[kind]}\n"
    )
    fmt = format_value
    created: list[str] = []
    if kind is MetricType.HISTOGRAM:
        les = [f'le="{format_le(b)}"}} ' for b in family.buckets]
        for s in family.series:
            prefix = label_prefix(s.labels)
            labels = _close(prefix)
            ts = _timestamp(s)
            v = s.values
            for le, count in zip(les, v[1:]):
                out.append(f"{name}_bucket{prefix}{le}{fmt(count)}{ts}\n")
            out.append(
                f"{name}_count{labels} {fmt(v[-1])}{ts}\n{name}_sum{labels} {fmt(v[0])}{ts}\n"
            )
            if s.created is not None:
                created.append(f"{name}_created{labels} {fmt(s.created)}{ts}\n")
    elif kind is MetricType.SUMMARY:
        for s in family.series:
            prefix = label_prefix(s.labels)
            labels = _close(prefix)
            ts = _timestamp(s)
            for q, qv in s.quantiles:
                out.append(f'{name}{prefix}quantile="{format_le(q)}"}} {fmt(qv)}{ts}\n')
            out.append(
                f"{name}_count{labels} {fmt(s.values[0])}{ts}\n"
                f"{name}_sum{labels} {fmt(s.values[1])}{ts}\n"
            )
            if s.created is not None:
                created.append(f"{name}_created{labels} {fmt(s.created)}{ts}\n")
    elif kind is MetricType.STATESET:
        key = state_label(name)
        for s in family.series:
            prefix = label_prefix(s.labels)
            ts = _timestamp(s)
            for state, on in zip(family.states, s.values):
                out.append(f'{name}{prefix}{key}="{escape_label_value(state)}"}} {fmt(on)}{ts}\n')
    else:
        for s in family.series:
            labels = _close(label_prefix(s.labels)) if s.labels else ""
            ts = "" if s.timestamp is None else _timestamp(s)
            out.append(f"{head}{labels} {fmt(s.values[0])}{ts}\n")
            if s.created is not None:
                created.append(f"{name}_created{labels} {fmt(s.created)}\n")
    if created:
        out.append(
            f"# HELP {name}_created {escape_help(family.documentation)}\n"
            f"# TYPE {name}_created gauge\n"
        )
        out.extend(created)


def render_text(families: Iterable[MetricFamily]) -> str:
    """Render snapshots in the text format 0.0.4.

    Example::

        >>> from meterhub.samples import MetricFamily, MetricType, Series
        >>> fam = MetricFamily("up", "Is it up.", MetricType.GAUGE, series=(Series((), (1.0,)),))
        >>> print(render_text([fam]), end="")
        # HELP up Is it up.
        # TYPE up gauge
        up 1
    """
    out: list[str] = []
    for family in families:
        render_family(family, out)
    return "".join(out)


def generate_latest(registry: Registry | None = None) -> bytes:
    """Collect *registry* (default ``REGISTRY``) and render it in the text format, UTF-8.

    Example::

        >>> from meterhub import Counter, Registry, generate_latest
        >>> reg = Registry(self_metrics=False)
        >>> Counter("jobs", "Jobs run.", registry=reg).inc()
        >>> print(generate_latest(reg).decode(), end="")
        # HELP jobs_total Jobs run.
        # TYPE jobs_total counter
        jobs_total 1
    """
    if registry is None:
        from ..registry import REGISTRY

        registry = REGISTRY
    return render_text(registry.collect()).encode("utf-8")
