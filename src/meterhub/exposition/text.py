"""The Prometheus text exposition format, version 0.0.4 (and 1.0.0: UTF-8 names).

Pure functions of snapshots: no I/O, no registry state. Output matches prometheus_client's
``generate_latest`` (family names, sample order, ``_created`` as separate gauge families)
except that integral values print without a spurious ``.0``; with
``METERHUB_COMPAT=prometheus_client`` it is byte-identical (``.0``, labels sorted).

Names outside the legacy grammar are escaped per *escaping*
(:mod:`meterhub.exposition.escaping`; underscores unless the scraper asked otherwise).
Families that need it (such names, and in compat mode unsorted labels or timestamps) take
a slower, sample-by-sample path; everything else takes the fast one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .._config import get_config
from ..naming import LABEL_NAME_RE, METRIC_NAME_RE
from ..samples import (
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
    escape_label_name,
    escape_metric_name,
    escape_quoted,
)

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = [
    "CONTENT_TYPE_LATEST",
    "CONTENT_TYPE_PLAIN_0_0_4",
    "CONTENT_TYPE_PLAIN_1_0_0",
    "families_of",
    "floatToGoString",
    "format_go_float",
    "format_value",
    "generate_latest",
    "render_text",
]

CONTENT_TYPE_PLAIN_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"
"""The ``Content-Type`` of the text format 0.0.4 (legacy names only)."""
CONTENT_TYPE_PLAIN_1_0_0 = "text/plain; version=1.0.0; charset=utf-8"
"""The ``Content-Type`` of the text format 1.0.0 (UTF-8 names, with ``; escaping=...``)."""
CONTENT_TYPE_LATEST = CONTENT_TYPE_PLAIN_1_0_0
"""prometheus_client 0.26's name for the latest text format (1.0.0, as there). Without a
UTF-8 name the bytes of 0.0.4 and 1.0.0 are the same; scrapes that do not ask for 1.0.0
are answered ``CONTENT_TYPE_PLAIN_0_0_4``."""

Formatter = Callable[[float], str]

_INF = math.inf
_TEXT_TYPES = {
    MetricType.COUNTER: "counter",
    MetricType.GAUGE: "gauge",
    MetricType.HISTOGRAM: "histogram",
    MetricType.SUMMARY: "summary",
    MetricType.INFO: "gauge",
    MetricType.STATESET: "gauge",
    MetricType.GAUGEHISTOGRAM: "histogram",
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


def format_go_float(value: float) -> str:
    """A value as prometheus_client (and Go) write it: ``3.0``, ``0.25``, ``1e+06``.

    Example::

        >>> format_go_float(3), format_go_float(1234567.0), format_go_float(float("nan"))
        ('3.0', '1.234567e+06', 'NaN')
    """
    if value == 0:  # 0.0 and -0.0 are equal keys, but prometheus_client writes "-0.0"
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    text = _GO_FORMATTED.get(value)
    if text is None:
        text = _format_go_float(value)
        if len(_GO_FORMATTED) < _FORMATTED_MAX:
            _GO_FORMATTED[value] = text
    return text


_GO_FORMATTED: dict[float, str] = {}


def _format_go_float(value: float) -> str:
    d = float(value)
    if d == _INF:
        return "+Inf"
    if d == -_INF:
        return "-Inf"
    if d != d:
        return "NaN"
    text = repr(d)
    dot = text.find(".")
    if d > 0 and dot > 6:  # Go switches to exponents sooner than Python
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


floatToGoString = format_go_float
"""prometheus_client's name for :func:`format_go_float`."""


def compat_mode() -> bool:
    """Whether output must be byte-identical to prometheus_client's (``METERHUB_COMPAT``)."""
    return get_config().compat is not None


def formatter() -> Formatter:
    """The value formatter of the current mode: :func:`format_value` or :func:`format_go_float`."""
    return format_go_float if get_config().compat is not None else format_value


# Label names already seen to be in the legacy grammar (bounded; names repeat).
_LEGACY_LABELS: set[str] = set()
_LEGACY_LABELS_MAX = 4096
# The label a type adds to its series' labels, which prometheus_client sorts in with them.
# (Histograms' "le" is placed among them by bucket_labels() instead.)
_SPECIAL_LABEL = {MetricType.SUMMARY: "quantile"}


def sorted_labels(family: MetricFamily) -> MetricFamily:
    """*family* with each series' label pairs sorted by name, as prometheus_client writes
    them (compat mode); the same object when they already are."""
    series = family.series
    if not series:
        return family
    if family.type is MetricType.INFO:  # info pairs differ per series
        out = [s._replace(labels=tuple(sorted(s.labels))) for s in series]
        return family._replace(series=tuple(out))
    # The series of a metric share their label names: one permutation sorts them all.
    names = [k for k, _v in series[0].labels]
    if names == sorted(names):
        return family
    perm = sorted(range(len(names)), key=names.__getitem__)
    new = tuple.__new__
    return family._replace(
        series=tuple(new(Series, (tuple([s.labels[i] for i in perm]), *s[1:])) for s in series)
    )


def fast_path_ok(family: MetricFamily, compat: bool) -> bool:
    """Whether the fast renderers write *family* exactly (no escaping, nothing to sort)."""
    if METRIC_NAME_RE.match(family.name) is None:
        return False
    if family.type is MetricType.GAUGEHISTOGRAM:
        return False
    known = _LEGACY_LABELS
    special = family.name if family.type is MetricType.STATESET else None
    special = _SPECIAL_LABEL.get(family.type, special)
    series = family.series
    if not compat and family.type is not MetricType.INFO:
        # The series of a family share their label names (a metric's label names, checked
        # once; custom collectors' families take the sample path): the first one tells.
        series = series[:1]
    for s in series:
        prev = ""
        for k, _v in s.labels:
            if k not in known:
                if LABEL_NAME_RE.match(k) is None:
                    return False
                if len(known) < _LEGACY_LABELS_MAX:
                    known.add(k)
            if compat:
                if k < prev:
                    return False
                prev = k
        if compat and (s.timestamp is not None or (special is not None and prev > special)):
            return False
    return True


def bucket_labels(s: Series, les: list[str], compat: bool) -> tuple[str, list[str]]:
    """``(label prefix, le texts)`` of a histogram series' buckets. In compat mode the
    ``le`` pair goes where sorting puts it (after labels that sort before ``le``)."""
    if not compat or not s.labels or s.labels[-1][0] < "le":
        return label_prefix(s.labels), les
    before = tuple(p for p in s.labels if p[0] < "le")
    after = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in s.labels if k > "le")
    return label_prefix(before), [le[:-2] + "," + after + "} " for le in les]


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


def _render_columns(
    family: MetricFamily, cols: SeriesColumns, head: str, out: list[str], fmt: Formatter,
    compat: bool,
) -> None:  # fmt: skip
    created = cols.created
    if created is not None and all(c is None for c in created):
        created = None
    name = family.name
    stamps: list[str] = []
    memo = _FORMATTED if fmt is format_value else None
    for lo, labels, values in column_chunks(cols, compat, fmt, memo):
        out.append("".join([f"{head}{t} {v}\n" for t, v in zip(labels, values)]))
        if created is not None:
            part = zip(labels, created[lo : lo + len(labels)])
            lines = [f"{name}_created{t} {fmt(c)}\n" for t, c in part if c is not None]
            stamps.append("".join(lines))
    if created is not None:
        doc = escape_help(family.documentation)
        out.append(f"# HELP {name}_created {doc}\n# TYPE {name}_created gauge\n")
        out.extend(stamps)


def _close(prefix: str) -> str:
    return "" if prefix == "{" else prefix[:-1] + "}"


def _timestamp(s: Series) -> str:
    return "" if s.timestamp is None else f" {round(s.timestamp * 1000)}"


def _raw(family: MetricFamily) -> bool:
    return bool(getattr(family, "raw_samples", None))


def _samples(family: MetricFamily) -> Iterable[Sample]:
    """The samples as a prometheus_client-style collector gave them, else the snapshot's."""
    raw: tuple[Sample, ...] | None = getattr(family, "raw_samples", None)
    return raw if raw else family.samples


def _sample_line(s: Sample, fmt: Formatter, escaping: str, sort: bool = True) -> str:
    pairs = sorted(s.labels.items()) if sort else s.labels.items()
    labels = ",".join(
        f'{escape_label_name(k, escaping)}="{escape_quoted(str(v))}"' for k, v in pairs
    )
    ts = "" if s.timestamp is None else f" {int(float(s.timestamp) * 1000):d}"
    value = fmt(float(s.value))
    if escaping != ALLOWUTF8 or METRIC_NAME_RE.match(s.name):
        labels = f"{{{labels}}}" if labels else ""
        return f"{escape_metric_name(s.name, escaping)}{labels} {value}{ts}\n"
    comma = "," if labels else ""
    return f"{{{escape_metric_name(s.name, escaping)}{comma}{labels}}} {value}{ts}\n"


def render_family_samples(
    family: MetricFamily, out: list[str], fmt: Formatter = format_value, escaping: str = UNDERSCORES
) -> None:
    """Append *family*'s lines sample by sample, as prometheus_client writes them
    (escaped names, sorted labels): the path for families the fast one cannot write."""
    name, kind = family.name, family.type
    head = name + "_total" if kind is MetricType.COUNTER else name
    if kind is MetricType.INFO:
        head = name + "_info"
    doc = escape_help(family.documentation)
    head = escape_metric_name(head, escaping)
    out.append(f"# HELP {head} {doc}\n# TYPE {head} {_TEXT_TYPES[kind]}\n")
    extra: dict[str, list[str]] = {}
    sort = compat_mode()  # prometheus_client sorts label pairs; meterhub keeps their order
    for s in _samples(family):
        for suffix in ("_created", "_gsum", "_gcount"):
            if s.name == name + suffix:
                extra.setdefault(suffix, []).append(_sample_line(s, fmt, escaping, sort))
                break
        else:
            out.append(_sample_line(s, fmt, escaping, sort))
    for suffix, lines in sorted(extra.items()):
        own = escape_metric_name(name + suffix, escaping)
        out.append(f"# HELP {own} {doc}\n# TYPE {own} gauge\n")
        out.extend(lines)


def render_family(
    family: MetricFamily,
    out: list[str],
    fmt: Formatter = format_value,
    escaping: str = UNDERSCORES,
    compat: bool = False,
) -> None:
    """Append the text lines of *family* to *out*."""
    cols = family.series
    if (
        type(cols) is SeriesColumns
        and family.type in COLUMN_TYPES
        and escaping != DOTS
        and columns_ok(family.name, cols)
    ):
        head = family.name + "_total" if family.type is MetricType.COUNTER else family.name
        out.append(
            f"# HELP {head} {escape_help(family.documentation)}\n"
            f"# TYPE {head} {_TEXT_TYPES[family.type]}\n"
        )
        _render_columns(family, cols, head, out, fmt, compat)
        return
    if compat and not _raw(family):
        family = sorted_labels(family)
    if _raw(family) or escaping == DOTS or not fast_path_ok(family, compat):
        render_family_samples(family, out, fmt, escaping)
        return
    name, kind = family.name, family.type
    head = name
    if kind is MetricType.COUNTER:
        head = name + "_total"
    elif kind is MetricType.INFO:
        head = name + "_info"
    out.append(
        f"# HELP {head} {escape_help(family.documentation)}\n# TYPE {head} {_TEXT_TYPES[kind]}\n"
    )
    created: list[str] = []
    if kind is MetricType.HISTOGRAM:
        les = [f'le="{format_le(b)}"}} ' for b in family.buckets]
        for s in family.series:
            prefix, s_les = bucket_labels(s, les, compat)
            labels = _close(label_prefix(s.labels)) if s_les is not les else _close(prefix)
            ts = _timestamp(s)
            v = s.values
            for le, count in zip(s_les, v[1:]):
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


def render_text(families: Iterable[MetricFamily], escaping: str = UNDERSCORES) -> str:
    """Render snapshots in the text format (0.0.4; 1.0.0 with UTF-8 names and *escaping*).

    Example::

        >>> from meterhub.samples import MetricFamily, MetricType, Series
        >>> fam = MetricFamily("up", "Is it up.", MetricType.GAUGE, series=(Series((), (1.0,)),))
        >>> print(render_text([fam]), end="")
        # HELP up Is it up.
        # TYPE up gauge
        up 1
    """
    out: list[str] = []
    compat = compat_mode()
    fmt = format_go_float if compat else format_value
    for family in families:
        render_family(family, out, fmt, escaping, compat)
    return "".join(out)


def families_of(registry: Any) -> Iterator[MetricFamily]:
    """The snapshots of anything with ``collect()`` (a registry, a restricted view, a
    custom collector), prometheus_client-style families converted on the way."""
    from ..families import to_family

    for family in registry.collect():
        yield family if type(family) is MetricFamily else to_family(family)


def generate_latest(registry: Registry | None = None, escaping: str = UNDERSCORES) -> bytes:
    """Collect *registry* (default ``REGISTRY``) and render it in the text format, UTF-8.

    Names outside the legacy grammar are escaped per *escaping* (see
    :mod:`meterhub.exposition.escaping`).

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
    return render_text(families_of(registry), escaping).encode("utf-8")
