"""Parse the Prometheus text format (0.0.4, OpenMetrics tolerated) into snapshots.

The inverse of :mod:`meterhub.exposition.text`: a pure function from text to
:class:`~meterhub.samples.MetricFamily` tuples in the per-type value layout of
:mod:`meterhub.samples`, so the same code (``meterhub top``, ``meterhub lint``) works on
a live registry, a scraped ``/metrics`` page or a node_exporter textfile.

Tolerated beyond 0.0.4: ``# EOF``, ``# UNIT``, OpenMetrics exemplars (`` # {..} v ts``),
``info``/``stateset``/``gaugehistogram`` types, samples without any ``# TYPE`` (untyped
families of their own), and ``X_created`` gauge families folded back into family ``X``.
Timestamps are milliseconds in 0.0.4 and seconds in OpenMetrics (detected by ``# EOF``).

Example::

    >>> fams = parse_text('# TYPE jobs_total counter\\njobs_total{queue="a"} 3\\n')
    >>> fams[0].name, fams[0].type.value, fams[0].series[0].values
    ('jobs', 'counter', (3.0,))
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..errors import ParseError
from ..samples import Exemplar, MetricFamily, MetricType, Series, state_label
from ._lexer import parse_float, parse_sample, unescape_help

__all__ = ["ParsedExposition", "parse_text", "parse_text_located"]

LabelPairs = tuple[tuple[str, str], ...]

# "# HELP name text": the text starts after exactly one blank, so leading spaces survive.
_COMMENT = re.compile(r"#[ \t]*(HELP|TYPE|UNIT)[ \t]+(\S+)(?:[ \t](.*))?\Z", re.DOTALL)

_TYPES = {
    "counter": MetricType.COUNTER,
    "gauge": MetricType.GAUGE,
    "histogram": MetricType.HISTOGRAM,
    "gaugehistogram": MetricType.HISTOGRAM,
    "summary": MetricType.SUMMARY,
    "untyped": MetricType.UNKNOWN,
    "unknown": MetricType.UNKNOWN,
    "info": MetricType.INFO,
    "stateset": MetricType.STATESET,
}
# Sample-name suffixes each type owns, longest first so "_bucket" wins over nothing.
_SUFFIXES: dict[MetricType, tuple[str, ...]] = {
    MetricType.COUNTER: ("_total", "_created", ""),
    MetricType.HISTOGRAM: ("_bucket", "_count", "_sum", "_created", "_gcount", "_gsum"),
    MetricType.SUMMARY: ("_count", "_sum", "_created", ""),
    MetricType.INFO: ("_info", ""),
    MetricType.GAUGE: ("",),
    MetricType.UNKNOWN: ("",),
    MetricType.STATESET: ("",),
}


@dataclass
class _Builder:
    """Mutable accumulation of one family while its lines are read."""

    name: str
    type: MetricType
    line: int
    help: str = ""
    unit: str = ""
    order: list[LabelPairs] = field(default_factory=list)
    # per series: suffix/le/quantile/state key -> value
    values: dict[LabelPairs, dict[str, float]] = field(default_factory=dict)
    exemplars: dict[LabelPairs, dict[str, Exemplar]] = field(default_factory=dict)
    timestamps: dict[LabelPairs, float] = field(default_factory=dict)
    lines: dict[LabelPairs, int] = field(default_factory=dict)

    def slot(self, labels: LabelPairs, lineno: int) -> dict[str, float]:
        slot = self.values.get(labels)
        if slot is None:
            slot = self.values[labels] = {}
            self.order.append(labels)
            self.lines[labels] = lineno
        return slot


@dataclass(frozen=True)
class ParsedExposition:
    """Families plus where each came from: ``family_lines[name]`` and
    ``series_lines[(name, labels)]`` are 1-based line numbers (for lint findings)."""

    families: tuple[MetricFamily, ...]
    family_lines: dict[str, int]
    series_lines: dict[tuple[str, LabelPairs], int]
    bare_counters: frozenset[str] = frozenset()
    """Counters whose samples were written without the ``_total`` suffix."""


def parse_text(text: str) -> list[MetricFamily]:
    """Parse exposition *text* into families; raises :class:`~meterhub.errors.ParseError`."""
    return list(parse_text_located(text).families)


def parse_text_located(text: str) -> ParsedExposition:
    """Like :func:`parse_text`, keeping the line number of every family and series."""
    if not isinstance(text, str):
        raise ParseError(f"exposition must be str, got {type(text).__name__}")
    openmetrics = "\n# EOF" in "\n" + text
    builders: dict[str, _Builder] = {}
    order: list[str] = []
    current: _Builder | None = None
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if line.startswith("#"):
            current = _comment(line, lineno, builders, order, current)
            continue
        name, labels, value, ts, exemplar = parse_sample(line, lineno, openmetrics)
        fam = _owner(name, current, builders)
        if fam is None:
            fam = builders.get(name)
            if fam is None:
                fam = builders[name] = _Builder(name, MetricType.UNKNOWN, lineno)
                order.append(name)
        current = fam
        _record(fam, name, labels, value, ts, exemplar, lineno)
    built = [_build(builders[n]) for n in order]
    families = _fold_created(built)
    family_lines = {builders[n].name: builders[n].line for n in order}
    series_lines = {(b.name, lab): ln for b in builders.values() for lab, ln in b.lines.items()}
    bare = frozenset(
        b.name
        for b in builders.values()
        if b.type is MetricType.COUNTER and any("" in slot for slot in b.values.values())
    )
    return ParsedExposition(tuple(families), family_lines, series_lines, bare)


# -- lines ------------------------------------------------------------------------------


def _comment(
    line: str,
    lineno: int,
    builders: dict[str, _Builder],
    order: list[str],
    current: _Builder | None,
) -> _Builder | None:
    match = _COMMENT.match(line)
    if match is None:
        return current  # a plain comment, or "# EOF"
    keyword, name, rest = match.group(1), match.group(2), match.group(3) or ""
    if keyword == "TYPE":
        kind = _TYPES.get(rest.strip())
        if kind is None:
            raise ParseError(f"line {lineno}: unknown metric type {rest.strip()!r} for {name}")
        base = _base_name(name, kind)
        existing = builders.get(base)
        if existing is not None and existing.values:
            raise ParseError(f"line {lineno}: TYPE for {name} after its samples")
        if existing is None:
            existing = builders[base] = _Builder(base, kind, lineno)
            order.append(base)
        else:
            existing.type = kind
        pending = builders.pop(name, None) if name != base else None
        if pending is not None:  # "# HELP x_total" came before "# TYPE x_total counter"
            order.remove(name)
            existing.help = existing.help or pending.help
            existing.line = min(existing.line, pending.line)
        return existing
    fam = builders.get(name) or _find_base(name, builders)
    if fam is None:
        fam = builders[name] = _Builder(name, MetricType.UNKNOWN, lineno)
        order.append(name)
    if keyword == "HELP":
        fam.help = unescape_help(rest)
    else:
        fam.unit = rest.strip()
    return fam


def _base_name(name: str, kind: MetricType) -> str:
    if kind is MetricType.COUNTER and name.endswith("_total"):
        return name[: -len("_total")]
    if kind is MetricType.INFO and name.endswith("_info"):
        return name[: -len("_info")]
    return name


def _find_base(name: str, builders: dict[str, _Builder]) -> _Builder | None:
    for suffix in ("_total", "_info"):
        if name.endswith(suffix):
            fam = builders.get(name[: -len(suffix)])
            if fam is not None and fam.type in (MetricType.COUNTER, MetricType.INFO):
                return fam
    return None


def _owner(name: str, current: _Builder | None, builders: dict[str, _Builder]) -> _Builder | None:
    candidates = [current] if current is not None else []
    for cut in ("_total", "_bucket", "_count", "_sum", "_created", "_info", "_gcount", "_gsum"):
        if name.endswith(cut):
            fam = builders.get(name[: -len(cut)])
            if fam is not None:
                candidates.append(fam)
    exact = builders.get(name)
    if exact is not None:
        candidates.append(exact)
    for fam in candidates:
        for suffix in _SUFFIXES[fam.type]:
            if name == fam.name + suffix:
                return fam
    return None


def _record(
    fam: _Builder,
    name: str,
    labels: list[tuple[str, str]],
    value: float,
    ts: float | None,
    exemplar: Exemplar | None,
    lineno: int,
) -> None:
    suffix = name[len(fam.name) :]
    key = suffix
    special = {
        MetricType.HISTOGRAM: "le",
        MetricType.SUMMARY: "quantile",
        MetricType.STATESET: fam.name,
    }.get(fam.type)
    if special is not None and (fam.type is not MetricType.HISTOGRAM or suffix == "_bucket"):
        for i, (k, v) in enumerate(labels):
            if k == special or (fam.type is MetricType.STATESET and k == state_label(special)):
                key = f"{suffix}@{v}" if fam.type is not MetricType.STATESET else f"@{v}"
                del labels[i]
                break
        else:
            if fam.type is MetricType.HISTOGRAM:
                raise ParseError(f"line {lineno}: {name} bucket without an le label")
    pairs = tuple(labels)
    slot = fam.slot(pairs, lineno)
    if key in slot:
        raise ParseError(f"line {lineno}: duplicate sample {name}{dict(pairs)}")
    slot[key] = value
    if ts is not None:
        fam.timestamps[pairs] = ts
    if exemplar is not None:
        fam.exemplars.setdefault(pairs, {})[key] = exemplar


# -- building ---------------------------------------------------------------------------


def _build(b: _Builder) -> MetricFamily:
    series: list[Series] = []
    if b.type is MetricType.HISTOGRAM:
        return _build_histogram(b)
    states: tuple[str, ...] = ()
    if b.type is MetricType.STATESET:
        seen: dict[str, None] = {}
        for lab in b.order:
            for k in b.values[lab]:
                seen.setdefault(k[1:], None)
        states = tuple(seen)
    for lab in b.order:
        slot = b.values[lab]
        created = slot.get("_created")
        ts = b.timestamps.get(lab)
        ex = b.exemplars.get(lab, {})
        if b.type is MetricType.COUNTER:
            key = "_total" if "_total" in slot else ""
            exemplar = ex.get(key)
            series.append(
                Series(lab, (slot.get(key, 0.0),), (exemplar,) if exemplar else (), created, ts)
            )
        elif b.type is MetricType.SUMMARY:
            qs = tuple(
                (parse_float(k.split("@", 1)[1], b.lines[lab]), v)
                for k, v in slot.items()
                if k.startswith("@")
            )
            pair = (slot.get("_count", 0.0), slot.get("_sum", 0.0))
            series.append(Series(lab, pair, (), created, ts, qs))
        elif b.type is MetricType.STATESET:
            values = tuple(slot.get("@" + s, 0.0) for s in states)
            series.append(Series(lab, values, (), None, ts))
        else:
            value = slot.get("_info", slot.get("", math.nan))
            series.append(Series(lab, (value,), (), created, ts))
    unit = b.unit
    return MetricFamily(b.name, b.help, b.type, unit, tuple(series), (), states)


def _build_histogram(b: _Builder) -> MetricFamily:
    bounds: set[float] = set()
    for lab in b.order:
        for k in b.values[lab]:
            if k.startswith("_bucket@"):
                bounds.add(parse_float(k.split("@", 1)[1], b.lines[lab]))
    if not bounds or max(bounds) != math.inf:
        bounds.add(math.inf)
    ordered = tuple(sorted(bounds))
    series: list[Series] = []
    for lab in b.order:
        slot = b.values[lab]
        per_bound = {
            parse_float(k.split("@", 1)[1], 0): v
            for k, v in slot.items()
            if k.startswith("_bucket@")
        }
        ex = b.exemplars.get(lab, {})
        ex_by_bound = {
            parse_float(k.split("@", 1)[1], 0): e for k, e in ex.items() if k.startswith("_bucket@")
        }
        counts: list[float] = []
        last = 0.0
        for bound in ordered:
            if bound == math.inf and bound not in per_bound:
                last = slot.get("_count", last)
            else:
                last = per_bound.get(bound, last)
            counts.append(last)
        exemplars: tuple[Exemplar | None, ...] = ()
        if ex_by_bound:
            exemplars = tuple(ex_by_bound.get(bound) for bound in ordered)
        series.append(
            Series(
                lab,
                (slot.get("_sum", 0.0), *counts),
                exemplars,
                slot.get("_created"),
                b.timestamps.get(lab),
            )
        )
    return MetricFamily(b.name, b.help, b.type, b.unit, tuple(series), ordered)


def _fold_created(families: list[MetricFamily]) -> list[MetricFamily]:
    """Fold the text format's separate ``X_created`` gauge families back into family X."""
    by_name = {f.name: i for i, f in enumerate(families)}
    out = list(families)
    drop: set[int] = set()
    for i, fam in enumerate(families):
        if not fam.name.endswith("_created") or fam.type is not MetricType.GAUGE:
            continue
        target = by_name.get(fam.name[: -len("_created")])
        if target is None:
            continue
        owner = out[target]
        if owner.type not in (MetricType.COUNTER, MetricType.HISTOGRAM, MetricType.SUMMARY):
            continue
        created = {s.labels: s.values[0] for s in fam.series}
        if not set(created) <= {s.labels for s in owner.series}:
            continue
        out[target] = owner._replace(
            series=tuple(s._replace(created=created.get(s.labels, s.created)) for s in owner.series)
        )
        drop.add(i)
    return [f for i, f in enumerate(out) if i not in drop]
