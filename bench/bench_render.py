"""Counters-only render at 1k / 10k / 100k / 1M series: meterhub vs prometheus_client.

One counter family with N label sets (two labels), collected and rendered in the text
format (``generate_latest``) with the garbage collector on, as users run. prometheus_client
renders with ``_created`` disabled so both sides write the same lines.

Each (library, size) runs in a fresh interpreter (this file, re-run with arguments), so
that the peak memory of the render can be read from the process's peak RSS: the figure
is how far the peak rose above the RSS before the first render. The two libraries take
turns (ours, theirs, ours, theirs ...), best of each; 1M series run once per side (the
prometheus_client render alone takes ~15 s there).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import time
from itertools import pairwise
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = (1_000, 10_000, 100_000, 1_000_000)
TARGET = 0.25


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def _measure(side: str, n: int, repeat: int) -> dict[str, Any]:
    if side == "prom":
        import prometheus_client as pc

        pc.disable_created_metrics()
        reg: Any = pc.CollectorRegistry()
        c = pc.Counter("requests", "Requests.", ["route", "code"], registry=reg)
        render = lambda: pc.generate_latest(reg)  # noqa: E731
    else:
        import meterhub as mh

        reg = mh.Registry(self_metrics=False)
        c = mh.Counter("requests", "Requests.", ["route", "code"], registry=reg, max_series=2 * n)
        render = lambda: mh.generate_latest(reg)  # noqa: E731
    for i in range(n):
        c.labels(f"/route/{i}", str(200 + i % 5)).inc(i)
    gc.collect()
    assert gc.isenabled()
    before = _rss_kib()
    best = float("inf")
    size = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        size = len(render())
        best = min(best, time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"seconds": best, "peak_mib": max(0, peak - before) / 1024, "bytes": size}


def _run(side: str, n: int, repeat: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), side, str(n), str(repeat)],
        capture_output=True,
        text=True,
        check=True,
        cwd=HERE,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    from _timing import HEADER, row

    print(HEADER)
    times: dict[str, list[float]] = {"meterhub": [], "prom": []}
    for n in SIZES:
        rounds, repeat = (1, 1) if n >= 1_000_000 else (2, 3)
        best: dict[str, dict[str, Any]] = {}
        for _ in range(rounds):
            for side in ("meterhub", "prom"):
                r = _run(side, n, repeat)
                if side not in best or r["seconds"] < best[side]["seconds"]:
                    best[side] = r
        ours, theirs = best["meterhub"], best["prom"]
        times["meterhub"].append(ours["seconds"])
        times["prom"].append(theirs["seconds"])
        label = f"render counters only, {n:,} series (gc on)"
        print(row(label, ours["seconds"] * 1e3, theirs["seconds"] * 1e3, "ms", TARGET), flush=True)
        print(
            row(f"  peak RSS rise during the render, {n:,}", ours["peak_mib"], theirs["peak_mib"],
                "MiB", None),
            flush=True,
        )  # fmt: skip
    for side, ts in times.items():
        growth = ", ".join(f"{b / a:.1f}x" for a, b in pairwise(ts))
        print(f"growth per 10x series, {side:<9} {growth}")


if __name__ == "__main__":
    if len(sys.argv) == 4:
        print(json.dumps(_measure(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
    else:
        sys.path.insert(0, HERE)
        main()
