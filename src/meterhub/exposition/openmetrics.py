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

Names outside the legacy grammar are escaped per *escaping*, as in
:mod:`meterhub.exposition.text`; with ``METERHUB_COMPAT=prometheus_client`` the output is
byte-identical to prometheus_client's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..naming import METRIC_NAME_RE
from ..samples import (
    Exemplar,
    MetricFamily,
    MetricType,
    Sample,
    Series,
    SeriesColumns,
    format_le,
    state_label,
)
from ._columns import COLUMN_TYPES, column_chunks, columns_ok
from .escaping import (
    ALLOWUTF8,
    DOTS,
    UNDERSCORES,
    VALUES,
    escape_label_name,
    escape_metric_name,
    escape_quoted,
    escape_sample_name_compat,
)
from .text import (
    _FORMATTED,
    Formatter,
    _raw,
    _samples,
    bucket_labels,
    compat_mode,
    escape_label_value,
    families_of,
    fast_path_ok,
    format_go_float,
    format_value,
    label_prefix,
    sorted_labels,
)

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = [
    "ALLOWUTF8",
    "CONTENT_TYPE_LATEST",
    "CONTENT_TYPE_OPENMETRICS",
    "DOTS",
    "EXEMPLAR_MAX_CHARS",
    "UNDERSCORES",
    "VALUES",
    "escape_label_name",
    "escape_metric_name",
    "generate_latest",
    "generate_latest_openmetrics",
    "render_openmetrics",
]

CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
"""The ``Content-Type`` of :func:`render_openmetrics`'s output."""
CONTENT_TYPE_LATEST = CONTENT_TYPE_OPENMETRICS
"""prometheus_client's name (in ``prometheus_client.openmetrics.exposition``)."""

EXEMPLAR_MAX_CHARS = 128
"""OpenMetrics' limit on the combined length of an exemplar's label names and values."""

_OM_TYPES = {
    MetricType.COUNTER: "counter",
    MetricType.GAUGE: "gauge",
    MetricType.HISTOGRAM: "histogram",
    MetricType.SUMMARY: "summary",
    MetricType.INFO: "info",
    MetricType.STATESET: "stateset",
    MetricType.GAUGEHISTOGRAM: "gaugehistogram",
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
    inner = ",".join(f'{escape_label_name(k)}="{escape_label_value(v)}"' for k, v in labels.items())
    return f" # {{{inner}}} {format_value(ex.value)}{_ts(ex.timestamp)}"


def _close(prefix: str) -> str:
    return "" if prefix == "{" else prefix[:-1] + "}"


def _exemplar_samples(family: MetricFamily, s: Sample) -> bool:
    kind = family.type
    if kind is MetricType.COUNTER:
        return s.name.endswith("_total")
    if kind in (MetricType.HISTOGRAM, MetricType.GAUGEHISTOGRAM):
        return s.name.endswith("_bucket")
    return False


def _sample_exemplar(ex: Exemplar, fmt: Formatter) -> str:
    inner = ",".join(
        f'{escape_label_name(k)}="{escape_quoted(v)}"' for k, v in sorted(ex.labels.items())
    )
    ts = "" if ex.timestamp is None else f" {ex.timestamp}"
    return f" # {{{inner}}} {fmt(ex.value)}{ts}"


def render_family_samples(
    family: MetricFamily, out: list[str], fmt: Formatter = format_value, escaping: str = UNDERSCORES
) -> None:
    """Append *family*'s OpenMetrics lines sample by sample, as prometheus_client writes
    them (escaped names, sorted labels): the path for families the fast one cannot write."""
    name = family.name
    head = escape_metric_name(name, escaping)
    meta = f"# HELP {head} {escape_help(family.documentation)}\n"
    meta += f"# TYPE {head} {_OM_TYPES[family.type]}\n"
    if family.unit:
        meta += f"# UNIT {head} {family.unit}\n"
    out.append(meta)
    sort = compat_mode()  # prometheus_client sorts label pairs; meterhub keeps their order
    for s in _samples(family):
        utf8 = escaping == ALLOWUTF8 and METRIC_NAME_RE.match(s.name) is None
        labels = escape_metric_name(s.name, escaping) if utf8 else ""
        if s.labels:
            labels += "," if labels else ""
            labels += ",".join(
                f'{escape_label_name(k, escaping)}="{escape_quoted(str(v))}"'
                for k, v in (sorted(s.labels.items()) if sort else s.labels.items())
            )
        labels = f"{{{labels}}}" if labels else ""
        exemplar = ""
        if s.exemplar is not None:
            if not _exemplar_samples(family, s):
                raise ValueError(
                    f"Metric {name} has exemplars, but is not a histogram bucket or counter"
                )
            exemplar = _sample_exemplar(s.exemplar, fmt)
        ts = "" if s.timestamp is None else f" {s.timestamp}"
        if utf8:
            sample_name = ""
        elif sort:  # compat mode: prometheus_client's spelling
            sample_name = escape_sample_name_compat(s.name, escaping)
        else:
            sample_name = escape_metric_name(s.name, escaping)
        out.append(f"{sample_name}{labels} {fmt(float(s.value))}{ts}{exemplar}\n")


def render_family(
    family: MetricFamily,
    out: list[str],
    fmt: Formatter = format_value,
    escaping: str = UNDERSCORES,
    compat: bool = False,
) -> None:
    """Append the OpenMetrics lines of *family* to *out* (no ``# EOF``)."""
    fast_escaping = escaping in ((UNDERSCORES, ALLOWUTF8) if compat else _FAST_ESCAPINGS)
    cols = family.series
    if (
        type(cols) is SeriesColumns
        and family.type in COLUMN_TYPES
        and fast_escaping
        and columns_ok(family.name, cols)
        and not (compat and cols.exemplars)
    ):
        _render_columns(family, cols, out, fmt, compat)
        return
    if compat and not _raw(family):
        family = sorted_labels(family)
    if (
        _raw(family)
        or not fast_escaping
        or not fast_path_ok(family, compat)
        or (compat and _has_exemplar(family))
    ):
        render_family_samples(family, out, fmt, escaping)
        return
    name, kind = family.name, family.type
    meta = f"# HELP {name} {escape_help(family.documentation)}\n# TYPE {name} {_OM_TYPES[kind]}\n"
    if family.unit and name.endswith("_" + family.unit):
        # Prometheus refuses the whole scrape when the unit is not the name's suffix;
        # a custom collector could produce that, meterhub's own metrics cannot.
        meta += f"# UNIT {name} {family.unit}\n"
    out.append(meta)
    if kind is MetricType.HISTOGRAM:
        les = [f'le="{format_le(b)}"}} ' for b in family.buckets]
        negative_bounds = bool(family.buckets) and family.buckets[0] < 0
        for s in family.series:
            prefix, s_les = bucket_labels(s, les, compat)
            labels = _close(label_prefix(s.labels)) if s_les is not les else _close(prefix)
            ts = _ts(s.timestamp)
            v = s.values
            exs = s.exemplars
            if exs:
                for le, count, ex in zip(s_les, v[1:], exs):
                    out.append(f"{name}_bucket{prefix}{le}{fmt(count)}{ts}{format_exemplar(ex)}\n")
            else:
                for le, count in zip(s_les, v[1:]):
                    out.append(f"{name}_bucket{prefix}{le}{fmt(count)}{ts}\n")
            if v[0] >= 0 and not negative_bounds:
                out.append(
                    f"{name}_count{labels} {fmt(v[-1])}{ts}\n{name}_sum{labels} {fmt(v[0])}{ts}\n"
                )
            _created(name, labels, s, out, fmt)
    elif kind is MetricType.COUNTER:
        for s in family.series:
            labels = _close(label_prefix(s.labels))
            exstr = format_exemplar(s.exemplars[0]) if s.exemplars else ""
            out.append(f"{name}_total{labels} {fmt(s.values[0])}{_ts(s.timestamp)}{exstr}\n")
            _created(name, labels, s, out, fmt)
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
            _created(name, labels, s, out, fmt)
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


def _render_columns(
    family: MetricFamily, cols: SeriesColumns, out: list[str], fmt: Formatter, compat: bool
) -> None:
    name, kind = family.name, family.type
    meta = f"# HELP {name} {escape_help(family.documentation)}\n# TYPE {name} {_OM_TYPES[kind]}\n"
    if family.unit and name.endswith("_" + family.unit):
        meta += f"# UNIT {name} {family.unit}\n"
    out.append(meta)
    head = name + "_total" if kind is MetricType.COUNTER else name
    created, exemplars, keys = cols.created, cols.exemplars, cols.keys
    memo = _FORMATTED if fmt is format_value else None
    for lo, labels, values in column_chunks(cols, compat, fmt, memo):
        if created is None and not exemplars:
            out.append("".join([f"{head}{t} {v}\n" for t, v in zip(labels, values)]))
            continue
        lines = []
        for i, (t, v) in enumerate(zip(labels, values), lo):
            ex = format_exemplar(exemplars.get(keys[i])) if exemplars else ""
            lines.append(f"{head}{t} {v}{ex}\n")
            c = created[i] if created is not None else None
            if c is not None:
                lines.append(f"{name}_created{t} {fmt(c)}\n")
        out.append("".join(lines))


# Schemes under which a legacy name is written unchanged (dots doubles its underscores).
_FAST_ESCAPINGS = (UNDERSCORES, ALLOWUTF8, VALUES)


def _has_exemplar(family: MetricFamily) -> bool:
    return any(any(e is not None for e in s.exemplars) for s in family.series if s.exemplars)


def _created(name: str, labels: str, s: Series, out: list[str], fmt: Formatter) -> None:
    if s.created is not None:
        out.append(f"{name}_created{labels} {fmt(s.created)}{_ts(s.timestamp)}\n")


def render_openmetrics(
    families: Iterable[MetricFamily], escaping: str = UNDERSCORES, version: str = "1.0.0"
) -> str:
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
    compat = compat_mode()
    fmt = format_go_float if compat else format_value
    for family in families:
        render_family(family, out, fmt, escaping, compat)
    out.append("# EOF\n")
    return "".join(out)


def generate_latest_openmetrics(
    registry: Registry | None = None, escaping: str = UNDERSCORES, version: str = "1.0.0"
) -> bytes:
    """Collect *registry* (default ``REGISTRY``) and render it as OpenMetrics, UTF-8.

    *escaping* says how names outside the legacy grammar are written; *version* is the
    OpenMetrics version asked for (``1.0.0``; ``2.0.0`` is accepted and written the same).

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
    return render_openmetrics(families_of(registry), escaping, version).encode("utf-8", "replace")


generate_latest = generate_latest_openmetrics
"""prometheus_client's name (``prometheus_client.openmetrics.exposition.generate_latest``)."""
