"""What ``meterhub top`` computes: snapshots from a source, rates and quantiles between two.

Pure apart from :func:`read_source` (which does the I/O); the terminal rendering lives in
the CLI. A *source* is a ``/metrics`` URL, a multi-process directory or a textfile.

Example::

    >>> histogram_quantile(0.5, [(0.1, 2.0), (0.5, 6.0), (float("inf"), 6.0)])
    0.2
"""

from __future__ import annotations

import math
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .._native import native_bounds
from ..errors import ParseError
from ..exposition.parser import parse_text
from ..exposition.protobuf import CONTENT_TYPE_PROTOBUF
from ..exposition.protobuf_parser import parse_protobuf
from ..samples import MetricFamily, MetricType, Series

__all__ = [
    "MetricRow",
    "SeriesRate",
    "TopView",
    "collect_directory",
    "compare",
    "fetch_text",
    "histogram_quantile",
    "read_source",
]

QUANTILES = (0.5, 0.95, 0.99)


def read_source(
    source: str, *, timeout: float = 5.0, token: str | None = None
) -> list[MetricFamily]:
    """Snapshot *source*: an ``http(s)://`` URL, a multi-process directory or a textfile.

    Raises ``ValueError`` (a :class:`~meterhub.errors.ParseError` for garbage) or
    ``OSError`` with a one-line message naming the source.
    """
    if not source.startswith(("http://", "https://")) and os.path.isdir(source):
        return collect_directory(source)
    if source.startswith(("http://", "https://")):
        raw, content_type = _fetch(source, timeout, token, _ACCEPT_PROTOBUF)
        if content_type.split(";")[0].strip() == CONTENT_TYPE_PROTOBUF.split(";")[0]:
            try:
                return parse_protobuf(raw)
            except ParseError as exc:
                raise ParseError(f"{source}: {exc}") from None
        return _parse(raw.decode("utf-8", "replace"), source)
    return _parse(fetch_text(source, timeout=timeout, token=token), source)


# Protobuf first (it carries native histograms), text otherwise, like Prometheus asks.
_ACCEPT_PROTOBUF = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
    "encoding=delimited;q=0.8,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"
)


def _fetch(source: str, timeout: float, token: str | None, accept: str | None) -> tuple[bytes, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if accept:
        headers["Accept"] = accept
    request = urllib.request.Request(source, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            raw: bytes = resp.read()
            return raw, resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raise OSError(f"{source} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OSError(f"{source} does not answer: {reason}") from None


def fetch_text(source: str, *, timeout: float = 5.0, token: str | None = None) -> str:
    """The exposition text of a URL (sent *token* as a bearer token) or a file.

    Raises ``OSError``/:class:`~meterhub.errors.ParseError` with a message naming *source*.
    """
    if source.startswith(("http://", "https://")):
        raw, _ = _fetch(source, timeout, token, None)
        return raw.decode("utf-8", "replace")
    if os.path.isdir(source):
        raise OSError(f"{source} is a directory, not an exposition file")
    if not os.path.exists(source):
        raise OSError(f"{source}: no such file, directory or URL")
    try:
        with open(source, encoding="utf-8") as fh:
            return fh.read()
    except UnicodeDecodeError:
        raise ParseError(f"{source}: not a text exposition file (not UTF-8)") from None


def collect_directory(path: str) -> list[MetricFamily]:
    """Merge a multi-process directory without the metric definitions."""
    try:
        from ..multiprocess import collect_directory as collect
    except ImportError:
        raise OSError("multi-process support (meterhub.multiprocess) is not installed") from None
    return list(collect(path))


def _parse(text: str, source: str) -> list[MetricFamily]:
    try:
        return parse_text(text)
    except ParseError as exc:
        raise ParseError(f"{source}: {exc}") from None


@dataclass(frozen=True)
class SeriesRate:
    """The per-second increase of one counter series (or histogram count)."""

    metric: str
    labels: tuple[tuple[str, str], ...]
    rate: float


@dataclass(frozen=True)
class MetricRow:
    """One metric in the top view."""

    name: str
    type: MetricType
    series: int
    rate: float | None  # per second, summed over series (counters, histograms, summaries)
    value: float | None  # sum of gauge values
    quantiles: tuple[float, ...] = ()  # p50/p95/p99 of histograms (NaN when empty)


@dataclass(frozen=True)
class TopView:
    """Rows sorted by activity, and the busiest series."""

    rows: tuple[MetricRow, ...]
    busiest: tuple[SeriesRate, ...]
    interval: float


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket holding
    rank ``q * count``. *buckets* are ``(upper bound, cumulative count)`` sorted by bound,
    the last one ``+Inf``. NaN when empty."""
    if not buckets or q != q:
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    total = buckets[-1][1]
    if total <= 0 or total != total:
        return math.nan
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for i, (bound, count) in enumerate(buckets):
        if count >= rank:
            if bound == math.inf:
                return buckets[-2][0] if len(buckets) > 1 else math.nan
            if i == 0 and bound <= 0:
                return bound
            # Same operation order as Prometheus (start + width * (rank / count)) so the
            # results agree to the last bit; an empty first bucket at q=0 gives NaN there too.
            in_bucket = count - prev_count
            if in_bucket <= 0:
                return math.nan
            return prev_bound + (bound - prev_bound) * ((rank - prev_count) / in_bucket)
        prev_bound, prev_count = bound, count
    return buckets[-1][0]


def _rate_value(fam: MetricFamily, values: tuple[float, ...]) -> float:
    if fam.type is MetricType.COUNTER:
        return values[0]
    if fam.type is MetricType.HISTOGRAM:
        return values[-1]
    return values[0]  # summary: count


def compare(
    previous: Iterable[MetricFamily] | None,
    current: Iterable[MetricFamily],
    interval: float,
    *,
    busiest: int = 10,
) -> TopView:
    """Rates between two snapshots taken *interval* seconds apart (totals if no previous).

    Counter resets (a value going down) count from zero, as ``rate()`` does. Native
    histograms are read through their buckets (at the lowest schema of both snapshots).
    """
    previous, current = _native_as_classic(previous, current)
    prev: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, ...]] = {}
    for fam in previous or ():
        for s in fam.series:
            prev[(fam.name, s.labels)] = s.values
    dt = interval if interval > 0 else 1.0
    rows: list[MetricRow] = []
    rates: list[SeriesRate] = []
    for fam in current:
        counting = fam.type in (MetricType.COUNTER, MetricType.HISTOGRAM, MetricType.SUMMARY)
        total_rate = 0.0
        gauge_sum = 0.0
        deltas: list[float] = [0.0] * len(fam.buckets)
        for s in fam.series:
            before = prev.get((fam.name, s.labels)) if previous is not None else None
            if counting:
                now = _rate_value(fam, s.values)
                old = _rate_value(fam, before) if before else 0.0
                inc = now - old if now >= old else now
                rate = inc / dt if previous is not None else inc
                total_rate += rate
                if rate > 0:
                    rates.append(SeriesRate(_sample_name(fam), s.labels, rate))
            else:
                gauge_sum += s.values[0] if s.values else 0.0
            if fam.type is MetricType.HISTOGRAM:
                cum = s.values[1:]
                base = before[1:] if before and before[-1] <= s.values[-1] else None
                for i, c in enumerate(cum):
                    deltas[i] += c - (base[i] if base and i < len(base) else 0.0)
        quantiles: tuple[float, ...] = ()
        if fam.type is MetricType.HISTOGRAM and fam.buckets:
            pairs = list(zip(fam.buckets, deltas))
            if pairs and pairs[-1][1] <= 0:  # nothing new: show the all-time distribution
                pairs = [
                    (b, sum(s.values[i + 1] for s in fam.series)) for i, b in enumerate(fam.buckets)
                ]
            quantiles = tuple(histogram_quantile(q, pairs) for q in QUANTILES)
        rows.append(
            MetricRow(
                fam.name,
                fam.type,
                len(fam.series),
                total_rate if counting else None,
                None if counting else gauge_sum,
                quantiles,
            )
        )
    rows.sort(key=lambda r: (-(r.rate or 0.0), r.name))
    rates.sort(key=lambda r: -r.rate)
    return TopView(tuple(rows), tuple(rates[:busiest]), interval)


def _sample_name(fam: MetricFamily) -> str:
    if fam.type is MetricType.COUNTER:
        return fam.name + "_total"
    if fam.type is MetricType.HISTOGRAM or fam.type is MetricType.SUMMARY:
        return fam.name + "_count"
    return fam.name


def _native_as_classic(
    previous: Iterable[MetricFamily] | None, current: Iterable[MetricFamily]
) -> tuple[list[MetricFamily] | None, list[MetricFamily]]:
    """Native-only histograms as classic ones, with the bucket bounds of both snapshots."""
    prev = list(previous) if previous is not None else None
    cur = list(current)
    natives = [
        f for f in (prev or []) + cur
        if f.type is MetricType.HISTOGRAM and len(f.buckets) <= 1
        and any(s.native is not None for s in f.series)
    ]  # fmt: skip
    if not natives:
        return prev, cur
    schema: dict[str, int] = {}
    for f in natives:
        for s in f.series:
            if s.native is not None:
                schema[f.name] = min(schema.get(f.name, s.native.schema), s.native.schema)
    bounds: dict[str, set[float]] = {}
    for f in natives:
        for s in f.series:
            if s.native is not None:
                bounds.setdefault(f.name, set()).update(native_bounds(s.native, schema[f.name]))

    def convert(fam: MetricFamily) -> MetricFamily:
        if fam.name not in bounds or len(fam.buckets) > 1:
            return fam
        ordered = [*sorted(bounds[fam.name] - {math.inf}), math.inf]
        series = []
        for s in fam.series:
            if s.native is None:
                series.append(s)
                continue
            counts = native_bounds(s.native, schema[fam.name])
            cum, total = [], 0.0
            for b in ordered[:-1]:
                total += counts.get(b, 0.0)
                cum.append(total)
            cum.append(s.values[-1])
            series.append(Series(s.labels, (s.values[0], *cum), (), s.created, s.timestamp))
        return fam._replace(series=tuple(series), buckets=tuple(ordered))

    return ([convert(f) for f in prev] if prev is not None else None), [convert(f) for f in cur]
