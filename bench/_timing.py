"""Small timing helpers shared by the benchmarks (best-of-N wall clock, per-op ns)."""

from __future__ import annotations

import time
from collections.abc import Callable


def ns_per_op(fn: Callable[[], object], number: int = 200_000, repeat: int = 7) -> float:
    """Best of *repeat* runs of *number* calls, in nanoseconds per call."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter_ns() - t0) / number)
    return best


def ns_pair(
    ours: Callable[[], object], theirs: Callable[[], object], number: int = 200_000, repeat: int = 9
) -> tuple[float, float]:
    """Best-of-*repeat* ns per call of both sides, measured in alternation so that a noisy
    moment of the machine falls on both sides rather than skewing one (a ratio's error)."""
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for side, fn in enumerate((ours, theirs)):
            best[side] = min(best[side], ns_per_op(fn, number, repeat=1))
    return best[0], best[1]


def seconds_pair(
    ours: Callable[[], object], theirs: Callable[[], object], repeat: int = 9
) -> tuple[float, float]:
    """Best-of-*repeat* seconds of each side, alternating so load spikes hit both sides."""
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for side, fn in enumerate((ours, theirs)):
            best[side] = min(best[side], seconds(fn, repeat=1))
    return best[0], best[1]


def seconds(fn: Callable[[], object], repeat: int = 5) -> float:
    """Best of *repeat* runs of ``fn()``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def row(name: str, ours: float, theirs: float, unit: str, target: float | None) -> str:
    ratio = ours / theirs
    verdict = "" if target is None else ("  ok" if ratio <= target else "  MISSED")
    goal = "" if target is None else f" (target <= {target:.2f})"
    return f"{name:<44} {ours:>10.1f} {theirs:>12.1f} {unit:<5} {ratio:>6.2f}x{goal}{verdict}"


HEADER = f"{'benchmark':<44} {'meterhub':>10} {'prom_client':>12} {'unit':<5} {'ratio':>7}"


REFERENCE_INC_NS = 253.0
"""prometheus_client's pre-bound ``Counter.inc()`` on the machine the issues' absolute
targets were set on (issue #2); the factor below scales those targets to this machine."""


def machine_slowdown() -> tuple[float, float] | None:
    """``(ns of prometheus_client's Counter.inc() here, how many times slower than the
    reference)``, measured now; ``None`` without prometheus_client."""
    try:
        from prometheus_client import CollectorRegistry, Counter
    except ImportError:
        return None
    inc = Counter("calibration", "machine speed probe", registry=CollectorRegistry()).inc
    ns = ns_per_op(inc)
    return ns, ns / REFERENCE_INC_NS
