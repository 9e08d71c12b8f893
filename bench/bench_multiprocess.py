"""Multi-process mode: meterhub vs prometheus_client (``PROMETHEUS_MULTIPROC_DIR``).

prometheus_client reads its multi-process directory from the environment at import, so
each measurement runs in a fresh interpreter (this file, re-run with a scenario) with its
own temporary directory; ``main()`` spawns both sides in this one bench run and prints
the ratios (meterhub / prometheus_client; lower is better).

Scenarios: pre-bound ``inc()`` and histogram ``observe()``; a scrape of 4/16/64 live
processes x 1,000 series, with one collector kept and with a new registry and
``MultiProcessCollector`` per request (prometheus_client's documented idiom, and
``docs/multiprocess.md``'s view); a scrape of 4 live processes after 0/10/100/1,000 dead workers
(each reported dead as gunicorn's ``child_exit`` would), first and steady-state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
SERIES_LIVE = 1000
SERIES_DEAD = 100


class _Side:
    """The same operations on either library, multi-process mode on in directory *d*."""

    def __init__(self, name: str, d: str) -> None:
        self.name = name
        if name == "prom":
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = d
            import prometheus_client as pc
            from prometheus_client import multiprocess as pm

            reg = pc.CollectorRegistry()
            pm.MultiProcessCollector(reg)
            self.scrape: Callable[[], Any] = lambda: pc.generate_latest(reg)
            self.counter: Any = pc.Counter("c", "C.", ["i"])
            self.plain: Any = pc.Counter("p", "P.")
            self.hist: Any = pc.Histogram("h", "H.")
            self.dead: Callable[[int], Any] = lambda pid: pm.mark_process_dead(pid, d)

            def request() -> bytes:
                reg = pc.CollectorRegistry()
                pm.MultiProcessCollector(reg)
                return pc.generate_latest(reg)

            self.request: Callable[[], Any] = request
        else:
            import meterhub as mh
            from meterhub.multiprocess import MultiProcessCollector, mark_process_dead
            from meterhub.store.mmap import MultiProcessStore

            ours = mh.Registry(store=MultiProcessStore(d), self_metrics=False)
            side = mh.Registry(self_metrics=False)
            side.register(MultiProcessCollector(d))
            self.scrape = lambda: mh.generate_latest(side)
            self.counter = mh.Counter("c", "C.", ["i"], registry=ours)
            self.plain = mh.Counter("p", "P.", registry=ours)
            self.hist = mh.Histogram("h", "H.", registry=ours)
            self.dead = lambda pid: mark_process_dead(pid, d)

            def request_ours() -> bytes:
                reg = mh.Registry(self_metrics=False)
                reg.register(MultiProcessCollector(d))
                return mh.generate_latest(reg)

            self.request = request_ours

    def fork(self, series: int, stay: bool) -> tuple[int, int]:
        """A child that writes *series* series; returns (pid, fd to release it)."""
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            for i in range(series):
                self.counter.labels(str(i)).inc()
            os.write(ready_w, b"x")
            if stay:
                os.read(go_r, 1)
            os._exit(0)
        os.read(ready_r, 1)
        for fd in (ready_r, ready_w, go_r):
            os.close(fd)
        return pid, go_w


def _release(children: list[tuple[int, int]]) -> None:
    for pid, fd in children:
        os.write(fd, b"x")  # not EOF: later children inherited this pipe's write end
        os.close(fd)
        os.waitpid(pid, 0)


def _scenario(side_name: str, scenario: str, n: int) -> Any:
    from _timing import ns_per_op, seconds

    with tempfile.TemporaryDirectory() as d:
        side = _Side(side_name, d)
        if scenario == "inc":
            return ns_per_op(side.plain.inc, number=200_000, repeat=5)
        if scenario == "observe":
            return ns_per_op(lambda: side.hist.observe(0.3), number=200_000, repeat=5)
        if scenario == "live":
            live = [side.fork(SERIES_LIVE, True) for _ in range(n)]
            side.scrape()
            t = seconds(side.scrape, repeat=5)
            _release(live)
            return t
        if scenario == "request":
            live = [side.fork(SERIES_LIVE, True) for _ in range(n)]
            first = seconds(side.request, repeat=1)  # the process's first: files indexed
            t = seconds(side.request, repeat=5)
            _release(live)
            return [first, t]
        live = [side.fork(SERIES_DEAD, True) for _ in range(4)]
        for _ in range(n):
            pid, fd = side.fork(SERIES_DEAD, False)
            os.close(fd)
            os.waitpid(pid, 0)
            side.dead(pid)
        first = seconds(side.scrape, repeat=1)
        steady = seconds(side.scrape, repeat=3)
        _release(live)
        return [first, steady]


def _run(side: str, scenario: str, n: int = 0) -> Any:
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), side, scenario, str(n)],
        capture_output=True,
        text=True,
        check=True,
        cwd=HERE,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _best(scenario: str, n: int, rounds: int) -> tuple[float, float]:
    """Best of *rounds* runs per side, alternating sides: on a shared machine the load
    changes by the second, and alternating gives both sides the same chances."""
    ours, theirs = float("inf"), float("inf")
    for _ in range(rounds):
        ours = min(ours, _run("meterhub", scenario, n))
        theirs = min(theirs, _run("prom", scenario, n))
    return ours, theirs


def main() -> None:
    from _timing import HEADER, row

    print(HEADER)
    for scenario, label, target in (
        ("inc", "multiprocess Counter.inc() pre-bound", 0.25),
        ("observe", "multiprocess Histogram.observe()", 0.25),
    ):
        print(row(label, *_best(scenario, 0, 3), "ns", target), flush=True)
    for n in (4, 16, 64):
        ours, theirs = _best("live", n, 2)
        label = f"scrape {n} live procs x {SERIES_LIVE} series"
        print(row(label, ours * 1e3, theirs * 1e3, "ms", 0.2), flush=True)
    for n in (4, 16, 64):
        per_side = {"meterhub": [float("inf")] * 2, "prom": [float("inf")] * 2}
        for _ in range(2):  # alternated, best of each
            for side, best in per_side.items():
                best[:] = map(min, best, _run(side, "request", n))
        (of, ot), (tf, tt) = per_side["meterhub"], per_side["prom"]
        label = f"per-request collector {n} procs x {SERIES_LIVE}"
        print(row(label, ot * 1e3, tt * 1e3, "ms", 0.2), flush=True)
        print(row(f"  (the process's first request, {n} procs)", of * 1e3, tf * 1e3, "ms", None))
    curves: dict[str, list[tuple[int, float, float]]] = {"meterhub": [], "prom": []}
    for n in (0, 10, 100, 1000):
        for side in curves:
            first, steady = _run(side, "dead", n)
            curves[side].append((n, first, steady))
        (_, of, os_), (_, tf, ts) = curves["meterhub"][-1], curves["prom"][-1]
        print(row(f"scrape after {n} dead workers (first)", of * 1e3, tf * 1e3, "ms", None))
        print(row(f"scrape after {n} dead workers (steady)", os_ * 1e3, ts * 1e3, "ms", None))
    for side, points in curves.items():
        base = points[0][2]
        growth = ", ".join(f"{n}: {steady / base:.2f}x" for n, _, steady in points)
        verdict = "" if side == "prom" else ("  ok" if points[-1][2] / base <= 1.5 else "  MISSED")
        print(f"steady scrape vs 0 dead, {side:<9} {growth}{verdict if side == 'meterhub' else ''}")


if __name__ == "__main__":
    if len(sys.argv) == 4:
        sys.path.insert(0, HERE)
        print(json.dumps(_scenario(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
    else:
        sys.path.insert(0, HERE)
        main()
