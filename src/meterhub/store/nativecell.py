"""A native histogram's cell region: decode, encode, and merge across processes.

The layout is in :mod:`meterhub.store.base` (offsets ``N_*`` from :func:`native_start`).
Merging is exact: every cell is brought to the lowest schema among them (pairs of
buckets merge, :func:`~meterhub._native.reduce_buckets`) before counts add up; if the
union of the windows is then wider than ``max_buckets``, the schema goes down further.

Example::

    >>> region = write_native(0, {3: 2.0, 5: 1.0}, {}, 8)
    >>> region[:5], region[5:8]
    ([0.0, 3.0, 3.0, 0.0, 0.0], [2.0, 0.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from .._native import MIN_SCHEMA, encode_window, reduce_buckets
from ..samples import Exemplar, NativeHistogram
from .layout import (
    N_BUCKETS,
    N_GEN,
    N_NLO,
    N_NN,
    N_PLO,
    N_PN,
    N_REDUCED,
    N_ZERO,
    NATIVE_HISTOGRAM,
)

if TYPE_CHECKING:
    from .base import MetricDesc


def native_start(desc: MetricDesc) -> int:
    """Where *desc*'s native region starts in its cell."""
    return NATIVE_HISTOGRAM.start(desc)


__all__ = [
    "fit",
    "merge_native",
    "native_from_cell",
    "native_start",
    "read_native",
    "stable_copy",
    "window",
    "write_native",
]


def read_native(
    values: Sequence[float], start: int, cap: int
) -> tuple[int, dict[int, float], dict[int, float]]:
    """``(reductions, positive, negative)`` buckets of a native region (populated only)."""
    base = start + N_BUCKETS
    plo, pn = int(values[start + N_PLO]), int(values[start + N_PN])
    nlo, nn = int(values[start + N_NLO]), int(values[start + N_NN])
    pn, nn = max(0, min(pn, cap)), max(0, min(nn, cap - max(0, min(pn, cap))))
    pos = {plo + j: values[base + j] for j in range(pn) if values[base + j]}
    top = base + cap - 1
    neg = {nlo + j: values[top - j] for j in range(nn) if values[top - j]}
    return int(values[start + N_REDUCED]), pos, neg


def window(buckets: Mapping[int, float]) -> tuple[int, int]:
    """``(lowest key, span)`` of *buckets* (``(0, 0)`` when empty)."""
    if not buckets:
        return 0, 0
    lo = min(buckets)
    return lo, max(buckets) - lo + 1


def fit(
    schema: int, pos: dict[int, float], neg: dict[int, float], cap: int
) -> tuple[int, dict[int, float], dict[int, float]] | None:
    """Lower *schema* until both windows fit in *cap* buckets (``None``: not even at -4)."""
    while window(pos)[1] + window(neg)[1] > cap:
        if schema <= MIN_SCHEMA:
            return None
        schema -= 1
        pos, neg = reduce_buckets(pos), reduce_buckets(neg)
    return schema, pos, neg


def write_native(
    reduced: int, pos: Mapping[int, float], neg: Mapping[int, float], cap: int
) -> list[float]:
    """The ``[reduced, plo, pn, nlo, nn, b_0 .. b_cap-1]`` part of a native region.

    A key with a zero count stays in its window (the slow path adds to it right after).
    """
    plo, pn = window(pos)
    nlo, nn = window(neg)
    region = [float(reduced), float(plo), float(pn), float(nlo), float(nn)] + [0.0] * cap
    for k, c in pos.items():
        region[5 + k - plo] = c
    for k, c in neg.items():
        region[5 + cap - 1 - (k - nlo)] = c
    return region


def stable_copy(read: Iterable[Sequence[float]], start: int) -> Sequence[float] | None:
    """The first of successive copies of a live cell (from *read*) that no window rewrite
    overlapped: its ``gen`` is even and the next copy's is the same (the writer bumps
    ``gen`` before and after a rewrite; copies read slots in order). ``None`` if the
    copies ran out first."""
    prev: Sequence[float] | None = None
    for copy in read:
        gen = copy[start + N_GEN]
        if prev is not None and prev[start + N_GEN] == gen and not int(gen) & 1:
            return prev
        prev = copy
    return None


def merge_native(desc: MetricDesc, cells: Iterable[Sequence[float]]) -> list[float]:
    """Cells of one series from several processes, added exactly, in the cell layout.

    Sum and classic buckets add slot by slot; native buckets at the lowest schema (then
    lower while over ``max_buckets``); ``created`` is the earliest non-zero one. If even
    schema -4 has no room, the buckets beyond it are added into the nearest edge bucket
    (the recording side counts such observations as errors when they happen).
    """
    spec = desc.native
    assert spec is not None
    st, cap = native_start(desc), spec.max_buckets
    width = st + N_BUCKETS + cap + 1
    head = [0.0] * st
    zero, created = 0.0, 0.0
    parts: list[tuple[int, dict[int, float], dict[int, float]]] = []
    for cell in cells:
        for j in range(st):
            head[j] += cell[j]
        zero += cell[st + N_ZERO]
        c = cell[width - 1]
        if c and (not created or c < created):
            created = c
        reduced, pos, neg = read_native(cell, st, cap)
        parts.append((spec.schema - reduced, pos, neg))
    schema = min((p[0] for p in parts), default=spec.schema)
    pos_all: dict[int, float] = {}
    neg_all: dict[int, float] = {}
    for s, pos, neg in parts:
        for into, part in ((pos_all, pos), (neg_all, neg)):
            for k, c in reduce_buckets(part, s - schema).items():
                into[k] = into.get(k, 0.0) + c
    fitted = fit(schema, pos_all, neg_all, cap)
    if fitted is None:
        pos_all, neg_all, extra = _clamp(pos_all, neg_all, schema, cap)
        schema, zero = MIN_SCHEMA, zero + extra
    else:
        schema, pos_all, neg_all = fitted
    region = write_native(spec.schema - schema, pos_all, neg_all, cap)
    return [*head, 0.0, zero, *region, created]


def _clamp(
    pos: dict[int, float], neg: dict[int, float], schema: int, cap: int
) -> tuple[dict[int, float], dict[int, float], float]:
    """At schema -4 with too many buckets: windows that fit, the buckets beyond folded into
    the edge bucket (a sign left without room goes to the zero bucket, the third value)."""
    pos = reduce_buckets(pos, schema - MIN_SCHEMA)
    neg = reduce_buckets(neg, schema - MIN_SCHEMA)
    room_neg = min(window(neg)[1], cap // 2) if pos else min(window(neg)[1], cap)
    room_pos = cap - room_neg
    extra = 0.0

    def fold(b: dict[int, float], room: int) -> dict[int, float]:
        nonlocal extra
        if room <= 0:
            extra += sum(b.values())
            return {}
        lo = min(b) if b else 0
        out: dict[int, float] = {}
        for k, c in b.items():
            kk = min(k, lo + room - 1)
            out[kk] = out.get(kk, 0.0) + c
        return out

    return fold(pos, room_pos), fold(neg, room_neg), extra


def native_from_cell(
    desc: MetricDesc, values: Sequence[float], exemplars: tuple[Exemplar, ...] = ()
) -> NativeHistogram:
    """The :class:`~meterhub.samples.NativeHistogram` of a copy of a native cell."""
    spec = desc.native
    assert spec is not None
    st = native_start(desc)
    cap = spec.max_buckets
    # read_native's windows as they lie in the cell (no mapping to build and sort)
    base = st + N_BUCKETS
    pn = max(0, min(int(values[st + N_PN]), cap))
    nn = max(0, min(int(values[st + N_NN]), cap - pn))
    pos = values[base : base + pn]  # keys plo, plo + 1, ...
    top = base + cap - 1
    neg = values[top - nn + 1 : top + 1][::-1] if nn else ()  # nlo, nlo + 1, ... downwards
    zero = values[st + N_ZERO]
    pos_spans, pos_deltas = encode_window(int(values[st + N_PLO]), pos)
    neg_spans, neg_deltas = encode_window(int(values[st + N_NLO]), neg)
    # The count from the buckets themselves: a reader in another process may copy the cell
    # between an observation's updates of the classic count and of its native bucket.
    return NativeHistogram(
        zero + sum(pos) + sum(neg),
        values[0],
        spec.schema - int(values[st + N_REDUCED]),
        spec.zero_threshold,
        zero,
        tuple(pos_spans), tuple(neg_spans), tuple(pos_deltas), tuple(neg_deltas),
        exemplars or None,
    )  # fmt: skip
