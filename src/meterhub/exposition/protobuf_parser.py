"""Read the delimited protobuf exposition back into snapshots (the inverse of
:mod:`meterhub.exposition.protobuf`), so ``meterhub top`` can watch a live endpoint's
native histograms.

A small decoder of the fixed client_model schema, no protobuf runtime. What protobuf
can't tell apart comes back as its wire type: ``info`` and ``stateset`` families were
written as gauges and are read as gauges (``x_info`` with the info labels, one series per
state); counters lose their ``_total`` (as in the text parser). Float histograms
(``*_count_float``) are read with their counts rounded to integers. Raises
:class:`~meterhub.errors.ParseError` on malformed input.

Example::

    >>> from meterhub.exposition.protobuf import render_protobuf
    >>> from meterhub.samples import MetricFamily, MetricType, Series
    >>> fam = MetricFamily("jobs", "Jobs.", MetricType.COUNTER, series=(Series((), (3.0,)),))
    >>> back = parse_protobuf(render_protobuf([fam]))
    >>> back[0].name, back[0].type.value, back[0].series[0].values
    ('jobs', 'counter', (3.0,))
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from typing import Any

from .._native import native_histogram
from ..errors import ParseError
from ..samples import BucketSpan, Exemplar, MetricFamily, MetricType, NativeHistogram, Series

__all__ = ["parse_protobuf"]

_TYPES = {
    0: MetricType.COUNTER,
    1: MetricType.GAUGE,
    2: MetricType.SUMMARY,
    3: MetricType.UNKNOWN,
    4: MetricType.HISTOGRAM,
    5: MetricType.HISTOGRAM,  # gauge histogram
}
_unpack_double = struct.Struct("<d").unpack_from

Span = tuple[int, int]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ParseError("truncated or overlong varint in the protobuf exposition")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _signed(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


def _unzigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, Any]]:
    """``(field, wire type, value)``: an int (varint), a float (64-bit) or a span (bytes)."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise ParseError("truncated double in the protobuf exposition")
            value = _unpack_double(buf, pos)[0]
            pos += 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ParseError("truncated field in the protobuf exposition")
            value = (pos, pos + size)
            pos += size
        elif wire == 5:
            pos += 4
            continue
        else:
            raise ParseError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _text(buf: bytes, span: Span) -> str:
    return buf[span[0] : span[1]].decode("utf-8", "replace")


def _label(buf: bytes, span: Span) -> tuple[str, str]:
    name = value = ""
    for f, w, v in _fields(buf, *span):
        if w == 2 and f == 1:
            name = _text(buf, v)
        elif w == 2 and f == 2:
            value = _text(buf, v)
    return name, value


def _timestamp(buf: bytes, span: Span) -> float:
    sec = nanos = 0
    for f, w, v in _fields(buf, *span):
        if w == 0 and f == 1:
            sec = _signed(v)
        elif w == 0 and f == 2:
            nanos = _signed(v)
    return sec + nanos / 1e9


def _exemplar(buf: bytes, span: Span) -> Exemplar:
    labels: dict[str, str] = {}
    value, ts = 0.0, None
    for f, w, v in _fields(buf, *span):
        if f == 1 and w == 2:
            k, lv = _label(buf, v)
            labels[k] = lv
        elif f == 2 and w == 1:
            value = v
        elif f == 3 and w == 2:
            ts = _timestamp(buf, v)
    return Exemplar(labels, value, ts)


def _scalar(buf: bytes, span: Span) -> tuple[float, Exemplar | None, float | None]:
    """Gauge/Counter/Untyped: value, exemplar, created."""
    value, ex, created = 0.0, None, None
    for f, w, v in _fields(buf, *span):
        if f == 1 and w == 1:
            value = v
        elif f == 2 and w == 2:
            ex = _exemplar(buf, v)
        elif f == 3 and w == 2:
            created = _timestamp(buf, v)
    return value, ex, created


def _summary(buf: bytes, span: Span) -> tuple[float, float, list[tuple[float, float]], Any]:
    count, total, created = 0.0, 0.0, None
    quantiles: list[tuple[float, float]] = []
    for f, w, v in _fields(buf, *span):
        if f == 1 and w == 0:
            count = float(v)
        elif f == 2 and w == 1:
            total = v
        elif f == 3 and w == 2:
            q = qv = 0.0
            for qf, qw, qval in _fields(buf, *v):
                if qf == 1 and qw == 1:
                    q = qval
                elif qf == 2 and qw == 1:
                    qv = qval
            quantiles.append((q, qv))
        elif f == 4 and w == 2:
            created = _timestamp(buf, v)
    return count, total, quantiles, created


def _span(buf: bytes, span: Span) -> BucketSpan:
    offset = length = 0
    for f, w, v in _fields(buf, *span):
        if f == 1 and w == 0:
            offset = _unzigzag(v)
        elif f == 2 and w == 0:
            length = v
    return BucketSpan(offset, length)


def _packed(buf: bytes, span: Span, zigzag: bool) -> list[int]:
    out, pos = [], span[0]
    while pos < span[1]:
        n, pos = _varint(buf, pos)
        out.append(_unzigzag(n) if zigzag else n)
    return out


class _Hist:
    __slots__ = ("buckets", "count", "created", "exemplars", "native", "sum")

    def __init__(self) -> None:
        self.count = self.sum = 0.0
        self.created: float | None = None
        self.buckets: list[tuple[float, float, Exemplar | None]] = []
        self.exemplars: list[Exemplar] = []
        self.native: NativeHistogram | None = None


def _histogram(buf: bytes, span: Span) -> _Hist:
    h = _Hist()
    schema: int | None = None
    zt = zero = 0.0
    spans: dict[int, list[BucketSpan]] = {9: [], 12: []}
    deltas: dict[int, list[int]] = {10: [], 13: []}
    counts: dict[int, list[float]] = {11: [], 14: []}
    for f, w, v in _fields(buf, *span):
        if f == 1 and w == 0:
            h.count = float(v)
        elif f == 4 and w == 1:
            h.count = v
        elif f == 2 and w == 1:
            h.sum = v
        elif f == 3 and w == 2:
            cum, bound, ex = 0.0, math.inf, None
            for bf, bw, bv in _fields(buf, *v):
                if bf == 1 and bw == 0:
                    cum = float(bv)
                elif bf == 4 and bw == 1:
                    cum = bv
                elif bf == 2 and bw == 1:
                    bound = bv
                elif bf == 3 and bw == 2:
                    ex = _exemplar(buf, bv)
            h.buckets.append((bound, cum, ex))
        elif f == 15 and w == 2:
            h.created = _timestamp(buf, v)
        elif f == 5 and w == 0:
            schema = _unzigzag(v)
        elif f == 6 and w == 1:
            zt = v
        elif f == 7 and w == 0:
            zero = float(v)
        elif f == 8 and w == 1:
            zero = v
        elif f in spans and w == 2:
            spans[f].append(_span(buf, v))
        elif f in deltas:
            deltas[f].extend(_packed(buf, v, True) if w == 2 else [_unzigzag(v)])
        elif f in counts:
            if w == 2:
                counts[f].extend(_unpack_double(buf, p)[0] for p in range(v[0], v[1], 8))
            else:
                counts[f].append(v)
        elif f == 16 and w == 2:
            h.exemplars.append(_exemplar(buf, v))
    native = schema is not None or zt or zero or spans[9] or spans[12]
    if native:
        pos = _keyed(spans[12], deltas[13], counts[14])
        neg = _keyed(spans[9], deltas[10], counts[11])
        h.native = native_histogram(
            h.count, h.sum, schema or 0, zt, zero, pos, neg, tuple(h.exemplars)
        )
    return h


def _keyed(spans: list[BucketSpan], deltas: list[int], counts: list[float]) -> dict[int, float]:
    """``{key: count}`` from spans and either deltas (integer) or absolute (float) counts."""
    out: dict[int, float] = {}
    key = 0
    it_d, it_c = iter(deltas), iter(counts)
    count = 0.0
    for offset, length in spans:
        key += offset
        for _ in range(length):
            if counts:
                count = round(next(it_c, 0.0))
            else:
                count += next(it_d, 0)
            if count:
                out[key] = float(count)
            key += 1
    return out


def _family(buf: bytes, start: int, end: int) -> MetricFamily:
    name, doc, unit, kind = "", "", "", MetricType.GAUGE
    metrics: list[Span] = []
    for f, w, v in _fields(buf, start, end):
        if f == 1 and w == 2:
            name = _text(buf, v)
        elif f == 2 and w == 2:
            doc = _text(buf, v)
        elif f == 3 and w == 0:
            if v not in _TYPES:
                raise ParseError(f"family {name!r}: unknown metric type {v}")
            kind = _TYPES[v]
        elif f == 4 and w == 2:
            metrics.append(v)
        elif f == 5 and w == 2:
            unit = _text(buf, v)
    if not name:
        raise ParseError("a protobuf MetricFamily without a name")
    if kind is MetricType.COUNTER and name.endswith("_total"):
        name = name[: -len("_total")]
    series: list[Series] = []
    hists: list[tuple[tuple[tuple[str, str], ...], _Hist, float | None]] = []
    for span in metrics:
        labels: list[tuple[str, str]] = []
        ts: float | None = None
        body: tuple[int, Span] | None = None
        for f, w, v in _fields(buf, *span):
            if f == 1 and w == 2:
                labels.append(_label(buf, v))
            elif f == 6 and w == 0:
                ts = _signed(v) / 1000.0
            elif w == 2 and f in (2, 3, 4, 5, 7):
                body = (f, v)
        pairs = tuple(labels)
        if body is None:
            continue
        f, v = body
        if f == 7:
            hists.append((pairs, _histogram(buf, v), ts))
        elif f == 4:
            count, total, quantiles, created = _summary(buf, v)
            series.append(Series(pairs, (count, total), (), created, ts, tuple(quantiles)))
        else:
            value, ex, created = _scalar(buf, v)
            series.append(Series(pairs, (value,), (ex,) if ex else (), created, ts))
    if kind is not MetricType.HISTOGRAM:
        return MetricFamily(name, doc, kind, unit, tuple(series))
    bounds = sorted({b for _, h, _ in hists for b, _, _ in h.buckets} | {math.inf})
    for pairs, h, ts in hists:
        per = {b: (cum, ex) for b, cum, ex in h.buckets}
        values, exemplars, last = [h.sum], [], 0.0
        for b in bounds:
            last, ex = per.get(b, (h.count if b == math.inf else last, None))
            values.append(last)
            exemplars.append(ex)
        exs = tuple(exemplars) if any(exemplars) else ()
        if h.native is not None and len(bounds) == 1:
            exs = ()  # the +Inf bucket's exemplar is the native histogram's
        series.append(Series(pairs, tuple(values), exs, h.created, ts, native=h.native))
    return MetricFamily(name, doc, kind, unit, tuple(series), tuple(bounds))


def parse_protobuf(data: bytes) -> list[MetricFamily]:
    """Every family of a delimited protobuf exposition (see the module docstring)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ParseError(f"protobuf exposition must be bytes, got {type(data).__name__}")
    buf = bytes(data)
    out = []
    pos = 0
    while pos < len(buf):
        size, pos = _varint(buf, pos)
        if pos + size > len(buf):
            raise ParseError("truncated MetricFamily in the protobuf exposition")
        out.append(_family(buf, pos, pos + size))
        pos += size
    return out
