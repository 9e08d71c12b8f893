"""The core of a series' timer: its state, its entry and a classic histogram's exit, in
pure Python or in C (``meterhub._speedups``, built when a compiler is present).

``with latency.time():`` is the one hot path whose cost is the interpreter's own: the
most stripped Python timer measured (module-level bounds, no series object) stays at
~0.31x prometheus_client's ``with Histogram.time():``, and compiling these classes with
Cython gained nothing, so the entry and the exit are also written in C, the way aiohttp,
yarl and msgpack ship optional accelerators: same behaviour, a pure-Python fallback,
``METERHUB_NO_EXTENSIONS=1`` to choose the fallback. :class:`PyTimerCore` and
:class:`PyHistogramTimerCore` are the reference the C twins are tested against side by
side (``tests/test_speedups.py``); :mod:`meterhub._definition.scope` builds every timer
on :data:`TimerCore` and :data:`HistogramTimerCore`, whichever implementation they are.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .._config import extensions_disabled

__all__ = [
    "ACCELERATED",
    "HistogramTimerCore",
    "PyHistogramTimerCore",
    "PyTimerCore",
    "TimerCore",
    "now",
]

T = TypeVar("T", bound="PyTimerCore")
now = time.perf_counter
"""The timers' clock (``_t0`` and every exit's reading; the C cores read it too)."""


class PyTimerCore:
    """A timer's state and entry: ``_series`` (the series timed), ``_t0`` (the clock at
    entry), ``_duration`` (the last block's seconds); each unset until written."""

    __slots__ = ("_duration", "_series", "_t0")

    _series: Any
    _t0: float
    _duration: float

    def __enter__(self: T) -> T:
        self._t0 = now()
        return self


class PyHistogramTimerCore(PyTimerCore):
    """A timer whose exit is a classic histogram series' ``observe`` written out: a
    duration is a float, never NaN or negative (a monotonic clock), so none of the checks
    apply, and the call saved is a quarter of the ``with`` block's cost."""

    __slots__ = ()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._duration = d = now() - self._t0
        # HistogramChild.observe's fast path (Histogram.observe, meterhub.events.compile and
        # _speedups.c write it out too: change all five together); _v read now, as the
        # child would.
        series = self._series
        i = bisect_left(series._bounds, d)
        v = series._v
        v[0] += d
        v[i + 1] += 1.0


def _accelerated() -> tuple[type[Any], type[Any]] | None:
    if extensions_disabled():
        return None
    try:
        from .. import _speedups
    except ImportError:  # built without a compiler: the pure-Python cores
        return None
    return _speedups.TimerCore, _speedups.HistogramTimerCore


# ACCELERATED: whether the timers run on the C cores of meterhub._speedups. The type
# checker sees the Python cores, which the C ones match.
if TYPE_CHECKING:
    TimerCore = PyTimerCore
    HistogramTimerCore = PyHistogramTimerCore
    ACCELERATED: bool
else:
    _cores = _accelerated()
    ACCELERATED = _cores is not None
    TimerCore, HistogramTimerCore = _cores or (PyTimerCore, PyHistogramTimerCore)
