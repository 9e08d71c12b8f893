"""The native (exponential) side of a :class:`~meterhub.Histogram`: its child and cell.

:class:`NativeHistogramChild` records into the native region of the histogram's cell
(layout in :mod:`meterhub.store.layout`, the concurrency argument in
:mod:`meterhub.store.base`): the common case, a
value whose bucket is inside the current window, is lock-free; a new bucket outside the
window, a schema reduction (over ``max_buckets``: bucket pairs merge) or a reset runs
under the child's lock. (:mod:`meterhub.store.nativecell` reads such a cell back.)
"""

from __future__ import annotations

import math
import os
import threading
import time
from array import array
from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from .._native import MIN_SCHEMA, bucket_key, reduce_buckets, upper_bound
from ..store.base import Cell, MetricDesc, NativeSpec
from ..store.layout import N_BUCKETS, N_GEN, N_NLO, N_NN, N_PLO, N_PN, N_REDUCED, N_ZERO
from ..store.nativecell import native_start, read_native, write_native
from .distributions import HistogramChild
from .scope import SeriesTimer
from .values import checked_exemplar, checked_number

__all__ = ["DualHistogramChild", "NativeHistogramChild"]

_ceil, _log2 = math.ceil, math.log2


def _assign(v: Cell, a: int, b: int, values: list[float]) -> None:
    """``v[a:b] = values`` in one C call, for a list or a memoryview of doubles."""
    if isinstance(v, list):
        v[a:b] = values
    else:
        v[a:b] = array("d", values)


_BLOCKED: list[float] = []
"""The bounds table while a window is rewritten: every fast-path lookup misses."""
_BOUND_CACHE: dict[tuple[int, int], float] = {}
"""Shared bound objects: windows of many series hold the same floats."""


def _bound(key: int, schema: int) -> float:
    b = _BOUND_CACHE.get((key, schema))
    if b is None:
        b = _BOUND_CACHE[(key, schema)] = upper_bound(key, schema)
    return b


def _table(lo: int, n: int, schema: int) -> list[float]:
    """``[upper(lo-1), upper(lo), .., upper(lo+n-1)]``: ``bisect_left(table, |v|)`` is
    ``1 + (key - lo)`` for a value in the window (the bounds are the rounded constants the
    key computation compares against, scaled exactly by powers of two)."""
    return [_bound(k, schema) for k in range(lo - 1, lo + n)] if n else []


class NativeHistogramChild(HistogramChild):
    """One series of a native-only histogram (``Histogram(native_histogram_bucket_factor=)``
    without ``buckets=``): its one classic bucket is ``+Inf``."""

    _timer_cls = SeriesTimer  # its own observe(), not the classic one HistogramTimer inlines
    __slots__ = (
        "_cap",
        "_lock",
        "_nlo",
        "_nlo1",
        "_nn",
        "_ntbl",
        "_pbase",
        "_per",
        "_pid",
        "_plo",
        "_plo1",
        "_pn",
        "_ptbl",
        "_reset_at",
        "_schema",
        "_spec",
        "_start",
        "_top1",
        "_zero",
        "_zt",
    )  # fmt: skip

    def __init__(self, metric: Any, key: tuple[str, ...], cell: Cell) -> None:
        super().__init__(metric, key, cell)
        desc: MetricDesc = metric._desc
        spec = desc.native
        assert spec is not None
        self._spec: NativeSpec = spec
        self._start = start = native_start(desc)
        self._zero = start + N_ZERO
        self._cap = spec.max_buckets
        self._pbase = start + N_BUCKETS - 1  # slot of positive window bucket j (1-based)
        self._top1 = start + N_BUCKETS + self._cap  # minus j: negative window bucket j
        self._zt = spec.zero_threshold
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._reset_at = time.monotonic()
        self._sync()

    # -- the window ------------------------------------------------------------------------

    def _block(self) -> None:
        """From here on every fast path misses and queues on the lock (one store each)."""
        self._ptbl = self._ntbl = _BLOCKED
        self._pn = self._nn = 0

    def _install(self, schema: int, plo: int, pn: int, nlo: int, nn: int) -> None:
        """Open the fast path on a new window; the tables go last."""
        self._schema, self._plo, self._nlo = schema, plo, nlo
        self._per = 2.0**schema  # key ~ ceil(log2(v) * per): checked against the table
        self._plo1, self._nlo1 = plo - 1, nlo - 1
        ptbl, ntbl = _table(plo, pn, schema), _table(nlo, nn, schema)
        self._pn, self._nn = pn, nn
        self._ntbl = ntbl
        self._ptbl = ptbl

    def _sync(self) -> None:
        """Window attributes from the active cell (at creation, switch and fork)."""
        v = self._v
        st = self._start
        self._block()
        self._install(
            self._spec.schema - int(v[st + N_REDUCED]),
            int(v[st + N_PLO]), int(v[st + N_PN]), int(v[st + N_NLO]), int(v[st + N_NN]),
        )  # fmt: skip

    def _window_lock(self) -> threading.Lock:
        """The window's lock, new in a forked child: a thread of the parent may have held
        it at the fork, and it is not coming back. (Checked by pid on the slow path only;
        one lock per series is too many to register with :mod:`meterhub._forksafe`.)"""
        if self._pid != os.getpid():
            self._lock = threading.Lock()
            self._pid = os.getpid()
        return self._lock

    def _switch(self, on: bool) -> None:
        with self._window_lock():
            super()._switch(on)
            self._sync()

    # -- recording -------------------------------------------------------------------------

    def observe(self, amount: float, exemplar: Mapping[str, str] | None = None) -> None:
        """Record one observation of *amount*, optionally with an exemplar."""
        try:
            # Only exact float and int (a Fraction or numpy scalar would run Python code in
            # the updates; see meterhub.store.base). NaN falls through every branch to a
            # ValueError from ceil: the slow path.
            if (type(amount) is float or type(amount) is int) and exemplar is None:
                if amount > self._zt:
                    t = self._ptbl
                    # the key from log2 (two C calls), off by one at most near a bound;
                    # j is its place in the window's table, which has the exact bounds
                    j = _ceil(_log2(amount) * self._per) - self._plo1
                    # No call from here to the updates: the window can't move in between.
                    # t[j-1] < amount <= t[j] says j is amount's bucket in table t (past
                    # its end: IndexError, the slow path), "t is self._ptbl" that t is
                    # still the window's (it has not moved since t was read).
                    if j > 0 and t[j - 1] < amount <= t[j] and t is self._ptbl:
                        v = self._v
                        v[0] += amount
                        v[1] += 1.0
                        v[self._pbase + j] += 1.0
                        return
                elif amount >= -self._zt:
                    v = self._v
                    v[0] += amount
                    v[1] += 1.0
                    v[self._zero] += 1.0
                    return
                else:
                    t = self._ntbl
                    j = _ceil(_log2(-amount) * self._per) - self._nlo1
                    if j > 0 and t[j - 1] < -amount <= t[j] and t is self._ntbl:
                        v = self._v
                        v[0] += amount
                        v[1] += 1.0
                        v[self._top1 - j] += 1.0
                        return
        except Exception:
            pass
        self._observe_slow(amount, exemplar)

    def _observe_slow(self, amount: Any, exemplar: Mapping[str, str] | None) -> None:
        metric = self._metric
        value = checked_number(metric, amount, "observation")
        if value is None:
            return
        if math.isnan(value):
            metric._error("nan", "observe(nan) refused")
            return
        i = bisect_left(self._bounds, value)
        with self._window_lock():
            slot, clamped = self._slot_for(value)
            v = self._v
            v[0] += value
            v[i + 1] += 1.0
            v[slot] += 1.0
        if exemplar is not None:
            ex = checked_exemplar(metric, exemplar, value)
            if ex is not None and self._v is self._cell:
                store, desc = metric._store, metric._desc
                if len(self._bounds) > 1:
                    store.set_exemplar(desc, self._key, i, ex)
                store.set_exemplar(desc, self._key, len(self._bounds), ex)
        if clamped:
            metric._error(
                "native_bucket_limit",
                f"observation {value!r} needs more than native_histogram_max_buckets="
                f"{self._cap} buckets even at schema {MIN_SCHEMA}; counted in the nearest "
                "bucket",
            )

    # -- structural changes (under self._lock) ---------------------------------------------

    def _slot_for(self, value: float) -> tuple[int, bool]:
        """The cell slot of *value*'s bucket, moving the window first if needed."""
        if -self._zt <= value <= self._zt:
            return self._zero, False
        neg = value < 0
        pbase, top1 = self._pbase, self._top1
        while True:
            k = bucket_key(value, self._schema)
            lo, n = (self._nlo, self._nn) if neg else (self._plo, self._pn)
            if n and lo <= k < lo + n:
                return (top1 - (k - lo + 1) if neg else pbase + k - lo + 1), False
            new_lo, new_hi = (min(lo, k), max(lo + n - 1, k)) if n else (k, k)
            other = self._pn if neg else self._nn
            if new_hi - new_lo + 1 + other <= self._cap:
                self._rewrite(k if neg else None, None if neg else k)
                continue
            min_reset = self._spec.min_reset_duration
            if min_reset and time.monotonic() - self._reset_at >= min_reset:
                self._reset()
                continue
            if self._schema > MIN_SCHEMA:
                self._rewrite(None, None, reduce=True)
                continue
            # Not even the coarsest schema has room: the nearest edge bucket takes it.
            if not n:
                return self._zero, True
            edge = lo if k < lo else lo + n - 1
            return (top1 - (edge - lo + 1) if neg else pbase + edge - lo + 1), True

    def _rewrite(self, add_neg: int | None, add_pos: int | None, reduce: bool = False) -> None:
        """Rewrite the native region: widen a window to hold a new key, or lower the schema."""
        v = self._v
        st, cap = self._start, self._cap
        self._block()  # no one else writes a native bucket until _install
        reduced, pos, neg = read_native(v, st, cap)
        schema = self._spec.schema - reduced
        if reduce:
            schema, reduced = schema - 1, reduced + 1
            pos, neg = reduce_buckets(pos), reduce_buckets(neg)
        # the new key's bucket joins its window (as a zero count: the caller adds 1)
        if add_pos is not None:
            pos[add_pos] = pos.get(add_pos, 0.0)
        if add_neg is not None:
            neg[add_neg] = neg.get(add_neg, 0.0)
        region = write_native(reduced, pos, neg, cap)
        v[st + N_GEN] += 1.0  # odd: readers in other processes wait
        _assign(v, st + N_REDUCED, st + N_BUCKETS + cap, region)
        v[st + N_GEN] += 1.0
        self._install(schema, int(region[1]), int(region[2]), int(region[3]), int(region[4]))

    def _reset(self) -> None:
        """Zero every count (classic ones too, as client_golang does), keep ``created``."""
        v = self._v
        st = self._start
        self._block()
        gen = v[st + N_GEN] + 1.0
        fresh = [0.0] * (st + N_BUCKETS + self._cap)
        fresh[st + N_GEN] = gen
        v[st + N_GEN] = gen
        _assign(v, 0, len(fresh), fresh)
        v[st + N_GEN] = gen + 1.0
        self._install(self._spec.schema, 0, 0, 0, 0)
        self._reset_at = time.monotonic()


class DualHistogramChild(NativeHistogramChild):
    """One series of a histogram with classic ``buckets=`` and native buckets."""

    __slots__ = ()

    def observe(self, amount: float, exemplar: Mapping[str, str] | None = None) -> None:
        """Record one observation of *amount*, optionally with an exemplar."""
        try:
            # Only exact float and int (a Fraction or numpy scalar would run Python code in
            # the updates; see meterhub.store.base). NaN falls through every branch to a
            # ValueError from ceil: the slow path.
            if (type(amount) is float or type(amount) is int) and exemplar is None:
                i = bisect_left(self._bounds, amount)
                if amount > self._zt:
                    t = self._ptbl
                    j = _ceil(_log2(amount) * self._per) - self._plo1
                    # as in NativeHistogramChild.observe, plus the classic bucket
                    if j > 0 and t[j - 1] < amount <= t[j] and t is self._ptbl:
                        v = self._v
                        v[0] += amount
                        v[i + 1] += 1.0
                        v[self._pbase + j] += 1.0
                        return
                elif amount >= -self._zt:
                    v = self._v
                    v[0] += amount
                    v[i + 1] += 1.0
                    v[self._zero] += 1.0
                    return
                else:
                    t = self._ntbl
                    j = _ceil(_log2(-amount) * self._per) - self._nlo1
                    if j > 0 and t[j - 1] < -amount <= t[j] and t is self._ntbl:
                        v = self._v
                        v[0] += amount
                        v[i + 1] += 1.0
                        v[self._top1 - j] += 1.0
                        return
        except Exception:
            pass
        self._observe_slow(amount, exemplar)
