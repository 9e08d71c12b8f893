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
