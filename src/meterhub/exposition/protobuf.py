"""The Prometheus protobuf exposition: delimited ``io.prometheus.client.MetricFamily``.

The format native histograms need (Prometheus scrapes them only over protobuf). This is
a small hand-written encoder of client_model's fixed ``metrics.proto`` schema (proto2), so
the core needs no protobuf runtime; the tests decode its output with the official
``protobuf`` package. Each family is written as its length (a varint) followed by the
``MetricFamily`` message.

How meterhub's types map:

==========  =====================================================================
counter     ``COUNTER`` named ``<name>_total`` (Prometheus adds no suffix), exemplar,
            ``created_timestamp``
gauge       ``GAUGE``
summary     ``SUMMARY``: count, sum, quantiles, ``created_timestamp``
histogram   ``HISTOGRAM``: count, sum, classic buckets (cumulative, without the
            implied ``+Inf``) with their exemplars; native buckets (schema, zero
            bucket, spans and deltas) and native exemplars when the series has them
            (a native-only histogram's exemplar also rides on a ``+Inf`` bucket, where
            Prometheus 2.42 looks for it)
info        ``GAUGE`` named ``<name>_info`` with value 1 (the info pairs are labels)
stateset    ``GAUGE``: one metric per state, labelled ``<name>="<state>"``, 1 or 0
unknown     ``UNTYPED``
==========  =====================================================================

``created_timestamp`` is written only when the snapshot carries ``created``
(``METERHUB_CREATED=true``, or a custom collector's ``_created`` samples).

Example::

    >>> from meterhub.samples import MetricFamily, MetricType, Series
    >>> fam = MetricFamily("up", "Up.", MetricType.GAUGE, series=(Series((), (1.0,)),))
    >>> render_protobuf([fam]).hex(" ")
    '18 0a 02 75 70 12 03 55 70 2e 18 01 22 0b 12 09 09 00 00 00 00 00 00 f0 3f'
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..samples import BucketSpan, Exemplar, MetricFamily, MetricType, NativeHistogram, Series

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = ["CONTENT_TYPE_PROTOBUF", "generate_latest_protobuf", "render_protobuf", "varint"]

CONTENT_TYPE_PROTOBUF = (
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
)
"""The ``Content-Type`` of :func:`render_protobuf`'s output."""

# client_model's MetricType enum
_COUNTER, _GAUGE, _SUMMARY, _UNTYPED, _HISTOGRAM = 0, 1, 2, 3, 4

_double = struct.Struct("<d").pack
_VARINT1 = [bytes((i,)) for i in range(128)]


def varint(n: int) -> bytes:
    """*n* as a protobuf varint (negative numbers as 64-bit two's complement)."""
    if 0 <= n < 128:
        return _VARINT1[n]
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _zigzag(n: int) -> bytes:
    return varint((n << 1) if n >= 0 else ((-n << 1) - 1))


def _len(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    n = len(payload)
    return tag + (_VARINT1[n] if n < 128 else varint(n)) + payload


def _str(tag: bytes, text: str) -> bytes:
    return _len(tag, text.encode("utf-8", "replace"))


def _label_pairs(pairs: Iterable[tuple[str, str]], cache: dict[str, bytes]) -> bytes:
    """Metric.label (field 1) entries; each name's encoding is cached per family."""
    out = []
    for k, v in pairs:
        name = cache.get(k)
        if name is None:
            name = cache[k] = _str(b"\x0a", k)
        out.append(_len(b"\x0a", name + _str(b"\x12", v)))
    return b"".join(out)


# Series' label pairs repeat scrape after scrape: a bounded memo of their encoding (label
# tuples hash fast: their strings cache their hashes) saves most of the encoding work.
_LABELS: dict[tuple[tuple[str, str], ...], bytes] = {}
_LABELS_MAX = 200_000
_NO_NAMES: dict[str, bytes] = {}


def _series_labels(pairs: tuple[tuple[str, str], ...]) -> bytes:
    enc = _LABELS.get(pairs)
    if enc is None:
        if len(_LABELS) >= _LABELS_MAX:
            _LABELS.clear()
        enc = _LABELS[pairs] = _label_pairs(pairs, {})
    return enc


# A plain counter series is Metric{labels, counter{value}}: everything before the value's
# eight bytes depends on the labels only (the message's length too), memoized likewise.
_COUNTER_HEADS: dict[tuple[tuple[str, str], ...], bytes] = {}


def _counter_head(pairs: tuple[tuple[str, str], ...]) -> bytes:
    if len(_COUNTER_HEADS) >= _LABELS_MAX:
        _COUNTER_HEADS.clear()
    labels = _label_pairs(pairs, {})
    head = _COUNTER_HEADS[pairs] = b"\x22" + varint(len(labels) + 11) + labels + b"\x1a\x09\x09"
    return head


# Bucket deltas are mostly small: their tagged encodings, ready-made.
_NEG_DELTA = {d: b"\x50" + varint((d << 1) if d >= 0 else ((-d << 1) - 1)) for d in range(-64, 64)}
_POS_DELTA = {d: b"\x68" + varint((d << 1) if d >= 0 else ((-d << 1) - 1)) for d in range(-64, 64)}


def _deltas(table: dict[int, bytes], tag: bytes, deltas: Sequence[int]) -> bytes:
    try:
        return b"".join(map(table.__getitem__, deltas))  # all small: no Python-level loop
    except KeyError:
        get = table.get
        return b"".join([get(d) or tag + _zigzag(d) for d in deltas])


def _timestamp(tag: bytes, seconds: float) -> bytes:
    """A ``google.protobuf.Timestamp`` message field."""
    sec = math.floor(seconds)
    nanos = round((seconds - sec) * 1e9)
    if nanos >= 1_000_000_000:
        sec, nanos = sec + 1, nanos - 1_000_000_000
    body = (b"\x08" + varint(sec) if sec else b"") + (b"\x10" + varint(nanos) if nanos else b"")
    return _len(tag, body)


def _exemplar(tag: bytes, ex: Exemplar, cache: dict[str, bytes]) -> bytes:
    body = _label_pairs(ex.labels.items(), cache) + b"\x11" + _double(ex.value)
    if ex.timestamp is not None:
        body += _timestamp(b"\x1a", float(ex.timestamp))
    return _len(tag, body)


def _spans(tag: bytes, spans: Sequence[BucketSpan]) -> bytes:
    table = _SPANS[tag]
    try:
        return b"".join(map(table.__getitem__, spans))  # seen before: no Python-level loop
    except KeyError:
        pass
    out = []
    for span in spans:
        enc = table.get(span)
        if enc is None:
            enc = _len(tag, b"\x08" + _zigzag(span[0]) + b"\x10" + varint(span[1]))
            if len(table) < 4096:
                table[span] = enc
        out.append(enc)
    return b"".join(out)


# Encoded spans by (offset, length) and field: the same few recur across series and scrapes.
_SPANS: dict[bytes, dict[tuple[int, int], bytes]] = {b"\x4a": {}, b"\x62": {}}
_NATIVE_HEAD: dict[tuple[int, float], bytes] = {}


def _native_head(nh: NativeHistogram) -> bytes:
    """The schema and zero threshold fields, memoized by their values."""
    head = b"\x28" + _zigzag(nh.schema) + b"\x31" + _double(nh.zero_threshold)
    if len(_NATIVE_HEAD) < 1024:
        _NATIVE_HEAD[(nh.schema, nh.zero_threshold)] = head
    return head


def _native_buckets(nh: NativeHistogram, out: list[bytes]) -> None:
    """Append the bucket fields (spans and deltas, negative then positive) to *out*."""
    if nh.neg_spans:
        out.append(_spans(b"\x4a", nh.neg_spans))
        out.append(_deltas(_NEG_DELTA, b"\x50", nh.neg_deltas or ()))
    if nh.pos_spans:
        out.append(_spans(b"\x62", nh.pos_spans))
        out.append(_deltas(_POS_DELTA, b"\x68", nh.pos_deltas or ()))
    elif not nh.neg_spans and not nh.zero_threshold and not nh.zero_count:
        # No buckets and no zero threshold would read as a classic histogram: a no-op span
        # says "native" (client_model's convention).
        out.append(b"\x62\x04\x08\x00\x10\x00")


def _native(nh: NativeHistogram, cache: dict[str, bytes]) -> bytes:
    """The native fields of a Histogram message (schema … positive_delta, exemplars)."""
    head = _NATIVE_HEAD.get((nh.schema, nh.zero_threshold))
    if head is None:
        head = _native_head(nh)
    zero = int(nh.zero_count)
    out = [head, b"\x38" + (_VARINT1[zero] if zero < 128 else varint(zero))]
    _native_buckets(nh, out)
    if nh.nh_exemplars:
        for ex in nh.nh_exemplars:
            if ex.timestamp is not None:  # native exemplars must have timestamps
                out.append(_exemplar(b"\x82\x01", ex, cache))
    return b"".join(out)


def _histogram(fam: MetricFamily, s: Series, cache: dict[str, bytes]) -> bytes:
    v = s.values
    native = s.native
    # a native histogram's count is its buckets' (consistent with them by construction)
    count = int(v[-1] if native is None else native.count_value)
    out = [b"\x08" + (_VARINT1[count] if count < 128 else varint(count)), b"\x11" + _double(v[0])]
    exs = s.exemplars
    bounds = fam.buckets
    if len(bounds) > 1 or native is None:
        for i, bound in enumerate(bounds):
            if bound == math.inf:
                continue
            body = b"\x08" + varint(int(v[i + 1])) + b"\x11" + _double(bound)
            ex = exs[i] if exs else None
            if ex is not None:
                body += _exemplar(b"\x1a", ex, cache)
            out.append(_len(b"\x1a", body))
    if native is not None:
        out.append(_native(native, cache))
        if len(bounds) <= 1 and native.nh_exemplars:
            # Prometheus before 2.47 reads a native histogram's exemplars from its classic
            # buckets only: the +Inf bucket (what the text format shows for a native-only
            # histogram) carries the latest one.
            ex = native.nh_exemplars[-1]
            body = b"\x08" + varint(count) + b"\x11" + _double(math.inf)
            out.append(_len(b"\x1a", body + _exemplar(b"\x1a", ex, cache)))
    if s.created is not None:
        out.append(_timestamp(b"\x7a", s.created))
    return _len(b"\x3a", b"".join(out))


def _metric(labels: bytes, body: bytes, s: Series) -> bytes:
    if s.timestamp is not None:
        body += b"\x30" + varint(round(s.timestamp * 1000))
    return _len(b"\x22", labels + body)


def encode_family(family: MetricFamily) -> bytes:
    """One ``MetricFamily`` message (not length-prefixed)."""
    name, kind = family.name, family.type
    cache: dict[str, bytes] = {}
    metrics: list[bytes] = []
    add = metrics.append
    labels_of = _series_labels
    if kind is MetricType.COUNTER:
        name, ptype = name + "_total", _COUNTER
        double, heads = _double, _COUNTER_HEADS
        for s in family.series:
            pairs, values, exemplars, created, timestamp, _, _ = s
            if not exemplars and created is None and timestamp is None:
                # the common case, written out: Metric{labels, counter{value}}
                head = heads.get(pairs)
                if head is None:
                    head = _counter_head(pairs)
                add(head + double(values[0]))
                continue
            body = b"\x09" + _double(s.values[0])
            if s.exemplars and s.exemplars[0] is not None:
                body += _exemplar(b"\x12", s.exemplars[0], cache)
            if s.created is not None:
                body += _timestamp(b"\x1a", s.created)
            add(_metric(labels_of(s.labels), _len(b"\x1a", body), s))
    elif kind is MetricType.HISTOGRAM:
        ptype = _HISTOGRAM
        native_only = len(family.buckets) <= 1
        double, v1, nheads = _double, _VARINT1, _NATIVE_HEAD
        for s in family.series:
            pairs, values, _, created, timestamp, _, nh = s
            if not (
                native_only and nh is not None and not nh.nh_exemplars
                and created is None and timestamp is None
            ):  # fmt: skip
                add(_metric(labels_of(pairs), _histogram(family, s, cache), s))
                continue
            # the common native-only series, _metric(_histogram(_native())) written out
            count, zero = int(nh.count_value), int(nh.zero_count)
            head = nheads.get((nh.schema, nh.zero_threshold))
            if head is None:
                head = _native_head(nh)
            out = [
                b"\x08" + (v1[count] if count < 128 else varint(count)) + b"\x11"
                + double(values[0]) + head + b"\x38" + (v1[zero] if zero < 128 else varint(zero))
            ]  # fmt: skip
            _native_buckets(nh, out)
            hist = b"".join(out)
            n = len(hist)
            body = labels_of(pairs) + b"\x3a" + (v1[n] if n < 128 else varint(n)) + hist
            n = len(body)
            add(b"\x22" + (v1[n] if n < 128 else varint(n)) + body)
    elif kind is MetricType.SUMMARY:
        ptype = _SUMMARY
        for s in family.series:
            body = b"\x08" + varint(int(s.values[0])) + b"\x11" + _double(s.values[1])
            for q, qv in s.quantiles:
                body += _len(b"\x1a", b"\x09" + _double(q) + b"\x11" + _double(qv))
            if s.created is not None:
                body += _timestamp(b"\x22", s.created)
            add(_metric(labels_of(s.labels), _len(b"\x22", body), s))
    elif kind is MetricType.STATESET:
        ptype = _GAUGE
        for s in family.series:
            for state, on in zip(family.states, s.values):
                labels = _label_pairs((*s.labels, (name, state)), cache)
                add(_metric(labels, b"\x12\x09\x09" + _double(on), s))
    else:
        ptype = _UNTYPED if kind is MetricType.UNKNOWN else _GAUGE
        tag = b"\x2a\x09\x09" if kind is MetricType.UNKNOWN else b"\x12\x09\x09"
        if kind is MetricType.INFO:
            name += "_info"
        for s in family.series:
            add(_metric(labels_of(s.labels), tag + _double(s.values[0]), s))
    head = _str(b"\x0a", name)
    if family.documentation:
        head += _str(b"\x12", family.documentation)
    head += b"\x18" + _VARINT1[ptype]
    unit = b"" if not family.unit else _str(b"\x2a", family.unit)
    return head + b"".join(metrics) + unit


def render_protobuf(families: Iterable[MetricFamily]) -> bytes:
    """Snapshots as delimited protobuf ``MetricFamily`` messages (see the module docstring)."""
    out = []
    for family in families:
        msg = encode_family(family)
        out.append(varint(len(msg)))
        out.append(msg)
    return b"".join(out)


def generate_latest_protobuf(registry: Registry | None = None) -> bytes:
    """Collect *registry* (default ``REGISTRY``) and render it as delimited protobuf.

    Example::

        >>> from meterhub import Counter, Registry
        >>> reg = Registry(self_metrics=False)
        >>> Counter("jobs", "Jobs run.", registry=reg).inc()
        >>> b"jobs_total" in generate_latest_protobuf(reg)
        True
    """
    if registry is None:
        from ..registry import REGISTRY

        registry = REGISTRY
    return render_protobuf(registry.collect())
