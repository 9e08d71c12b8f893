"""Native (exponential, sparse) histogram bucket math: pure functions, no state.

The bucket scheme is Prometheus' (client_golang's, bit for bit): at *schema* ``s``
(``-4`` … ``8``) bucket ``k`` covers ``(base**(k-1), base**k]`` with
``base = 2 ** (2 ** -s)``; values ``|v| <= zero_threshold`` go to the zero bucket and
negative values to a mirrored set of negative buckets keyed by ``|v|``. Lowering the
schema by one merges bucket pairs ``(2k-1, 2k)`` into ``k``: :func:`reduce_key`.

On the wire (protobuf) a sign's populated buckets are *spans* of consecutive keys
(:class:`~meterhub.samples.BucketSpan`: the gap since the previous span, the length) and
*deltas* (each count minus the previous one): :func:`encode_buckets` /
:func:`decode_buckets`.

Example::

    >>> schema_for_factor(1.1)
    3
    >>> bucket_key(1.0, 3), bucket_key(1.05, 3), upper_bound(1, 3)
    (0, 1, 1.0905077326652577)
    >>> encode_buckets({0: 2, 1: 3, 5: 1})
    ([BucketSpan(offset=0, length=2), BucketSpan(offset=3, length=1)], [2, 1, -2])
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from itertools import compress

from .samples import BucketSpan, Exemplar, NativeHistogram

__all__ = [
    "DEFAULT_ZERO_THRESHOLD",
    "MAX_SCHEMA",
    "MIN_SCHEMA",
    "bucket_key",
    "decode_buckets",
    "encode_buckets",
    "encode_window",
    "native_bounds",
    "native_histogram",
    "reduce_buckets",
    "reduce_key",
    "schema_for_factor",
    "upper_bound",
]

MIN_SCHEMA = -4
MAX_SCHEMA = 8
DEFAULT_ZERO_THRESHOLD = 2.0**-128
"""client_golang's default: observations this close to zero count in the zero bucket."""

# BOUNDS[s][j] = 2 ** (j / 2**s - 1) for s > 0: the bucket bounds within one power of two,
# as fractions in [0.5, 1) (what math.frexp returns). glibc's pow is correctly rounded, so
# these are the nearest doubles, the same constants client_golang has written out
# (tests/test_native_math.py checks each against exact arithmetic).
_BOUNDS: dict[int, list[float]] = {
    s: [2.0 ** (j / 2**s - 1) for j in range(2**s)] for s in range(1, MAX_SCHEMA + 1)
}
_MAX_KEY_FRAC, _MAX_KEY_EXP = math.frexp(1.7976931348623157e308)


def schema_for_factor(factor: float) -> int:
    """The coarsest schema whose bucket growth factor ``2**(2**-s)`` is at most *factor*.

    Clamped to ``-4`` … ``8`` (client_golang's ``pickSchema``); *factor* must be > 1.
    """
    if not factor > 1.0:
        raise ValueError(f"a native histogram bucket factor must be > 1, got {factor!r}")
    if factor == math.inf:
        return MIN_SCHEMA
    floor = math.floor(math.log2(math.log2(factor)))
    return max(MIN_SCHEMA, min(MAX_SCHEMA, -floor))


def bucket_key(value: float, schema: int) -> int:
    """The key of the bucket holding ``|value|`` (> the zero threshold) at *schema*.

    ``±Inf`` goes to the bucket of the largest finite double (its upper bound is ``+Inf``
    or the nearest representable bound).
    """
    frac, exp = math.frexp(abs(value))
    if frac == math.inf:
        frac, exp = _MAX_KEY_FRAC, _MAX_KEY_EXP
    if schema > 0:
        bounds = _BOUNDS[schema]
        return bisect_left(bounds, frac) + (exp - 1) * len(bounds)
    key = exp - 1 if frac == 0.5 else exp
    return (key + (1 << -schema) - 1) >> -schema


def upper_bound(key: int, schema: int) -> float:
    """The upper bound ``base**key`` of bucket *key* at *schema* (``+Inf`` past the doubles)."""
    if schema > 0:
        per = 1 << schema
        exp, j = divmod(key, per)
        try:
            return math.ldexp(_BOUNDS[schema][j], exp + 1)
        except OverflowError:
            return math.inf
    try:
        return math.ldexp(1.0, key << -schema)
    except OverflowError:
        return math.inf


def reduce_key(key: int) -> int:
    """The key at ``schema - 1`` of bucket *key*: buckets ``2k-1`` and ``2k`` become ``k``."""
    return (key + 1) >> 1


def reduce_buckets(buckets: Mapping[int, float], by: int = 1) -> dict[int, float]:
    """Counts keyed at a schema *by* steps lower (pairs merged *by* times)."""
    out: dict[int, float] = {}
    for key, count in buckets.items():
        for _ in range(by):
            key = (key + 1) >> 1
        out[key] = out.get(key, 0.0) + count
    return out


def encode_buckets(
    buckets: Mapping[int, float], fill_gaps: int = 2
) -> tuple[list[BucketSpan], list[int]]:
    """Spans and deltas of the populated *buckets* (keys in any order, zero counts skipped).

    Gaps of up to *fill_gaps* empty buckets are written as zero counts instead of a new
    span (what client_golang does: cheaper on the wire than a span).
    """
    spans: list[BucketSpan] = []
    deltas: list[int] = []
    prev_key: int | None = None
    prev_count = offset = length = 0
    for key in sorted(k for k, c in buckets.items() if c):
        count = int(buckets[key])
        if prev_key is None:
            offset, length = key, 1
        elif key - prev_key - 1 <= fill_gaps:
            for _ in range(key - prev_key - 1):  # a zero-filled gap
                deltas.append(-prev_count)
                prev_count = 0
            length += key - prev_key
        else:
            spans.append(BucketSpan(offset, length))
            offset, length = key - prev_key - 1, 1
        deltas.append(count - prev_count)
        prev_count, prev_key = count, key
    if prev_key is not None:
        spans.append(BucketSpan(offset, length))
    return spans, deltas


def encode_window(
    lo: int, counts: Sequence[float], fill_gaps: int = 2
) -> tuple[list[BucketSpan], list[int]]:
    """:func:`encode_buckets` of ``{lo + j: counts[j]}``: the counts of consecutive keys
    from *lo* (a cell's window), without building and sorting that mapping.

    Example::

        >>> encode_window(4, [2.0, 0.0, 1.0, 0.0, 0.0, 0.0, 3.0])
        ([BucketSpan(offset=4, length=3), BucketSpan(offset=3, length=1)], [2, -2, 1, 2])
    """
    spans: list[BucketSpan] = []
    deltas: list[int] = []
    add = deltas.append
    prev = -1  # the index of the previous populated count, -1 before the first
    prev_count = offset = length = 0
    for j in compress(range(len(counts)), counts):  # the populated ones, picked out in C
        count = int(counts[j])
        gap = j - prev - 1
        if prev < 0:
            offset, length = lo + j, 1
        elif gap <= fill_gaps:
            if gap:  # a zero-filled gap
                add(-prev_count)
                deltas.extend([0] * (gap - 1))
                prev_count = 0
            length += gap + 1
        else:
            spans.append(BucketSpan(offset, length))
            offset, length = gap, 1
        add(count - prev_count)
        prev_count, prev = count, j
    if prev >= 0:
        spans.append(BucketSpan(offset, length))
    return spans, deltas


def decode_buckets(spans: Iterable[tuple[int, int]], deltas: Iterable[int]) -> dict[int, float]:
    """The populated buckets ``{key: count}`` of *spans* and *deltas* (zero counts dropped)."""
    out: dict[int, float] = {}
    it = iter(deltas)
    key = count = 0
    for offset, length in spans:
        key += offset  # the first span's offset is its start; later ones, the gap
        for _ in range(length):
            count += next(it)
            if count:
                out[key] = float(count)
            key += 1
    return out


def native_histogram(
    count: float,
    total: float,
    schema: int,
    zero_threshold: float,
    zero_count: float,
    positive: Mapping[int, float],
    negative: Mapping[int, float],
    exemplars: tuple[Exemplar, ...] = (),
) -> NativeHistogram:
    """A :class:`~meterhub.samples.NativeHistogram` from bucket counts keyed by index."""
    pos_spans, pos_deltas = encode_buckets(positive)
    neg_spans, neg_deltas = encode_buckets(negative)
    return NativeHistogram(
        count, total, schema, zero_threshold, zero_count,
        tuple(pos_spans), tuple(neg_spans), tuple(pos_deltas), tuple(neg_deltas),
        exemplars or None,
    )  # fmt: skip


def native_bounds(nh: NativeHistogram, schema: int | None = None) -> dict[float, float]:
    """``{upper bound: count}`` of *nh*'s buckets (not cumulative), at *schema* (default its
    own; a lower one merges buckets). The zero bucket's upper bound is the zero threshold,
    a negative bucket ``k``'s is ``-base**(k-1)``."""
    target = nh.schema if schema is None else min(schema, nh.schema)
    by = nh.schema - target
    out: dict[float, float] = {}
    if nh.zero_count:
        out[nh.zero_threshold] = nh.zero_count
    pos = reduce_buckets(decode_buckets(nh.pos_spans or (), nh.pos_deltas or ()), by)
    neg = reduce_buckets(decode_buckets(nh.neg_spans or (), nh.neg_deltas or ()), by)
    for k, c in pos.items():
        b = upper_bound(k, target)
        out[b] = out.get(b, 0.0) + c
    for k, c in neg.items():
        b = -upper_bound(k - 1, target)
        out[b] = out.get(b, 0.0) + c
    return out
