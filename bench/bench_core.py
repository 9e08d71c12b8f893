"""Hot-path and rendering cost of meterhub vs prometheus_client, in one process run.

Ratios are meterhub / prometheus_client (lower is better). prometheus_client renders with
``_created`` disabled so both sides render the same samples.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import prometheus_client as pc
from _timing import HEADER, ns_pair, row, seconds_pair

import meterhub as mh
from meterhub._definition import timercore


def _hot_path() -> list[str]:
    rows = []
    ours_reg, theirs_reg = mh.Registry(self_metrics=False), pc.CollectorRegistry()
    oc = mh.Counter("c", "C.", registry=ours_reg)
    tc = pc.Counter("c", "C.", registry=theirs_reg)
    rows.append(row("Counter.inc() pre-bound", *ns_pair(oc.inc, tc.inc), "ns", 0.25))
    ol = mh.Counter("l", "L.", ["a", "b"], registry=ours_reg)
    tl = pc.Counter("l", "L.", ["a", "b"], registry=theirs_reg)
    ol.labels("a", "b").inc()
    tl.labels("a", "b").inc()
    rows.append(
        row(
            "labels('a','b').inc() existing series",
            *ns_pair(lambda: ol.labels("a", "b").inc(), lambda: tl.labels("a", "b").inc()),
            "ns",
            0.25,
        )
    )
    oh = mh.Histogram("h", "H.", registry=ours_reg)
    th = pc.Histogram("h", "H.", registry=theirs_reg)
    rows.append(
        row(
            "Histogram.observe()",
            *ns_pair(lambda: oh.observe(0.3), lambda: th.observe(0.3)),
            "ns",
            0.25,
        )
    )
    og = mh.Gauge("g", "G.", registry=ours_reg)
    tg = pc.Gauge("g", "G.", registry=theirs_reg)
    rows.append(
        row(
            "Gauge.set()",
            *ns_pair(lambda: og.set(2.5), lambda: tg.set(2.5)),
            "ns",
            0.35,
        )
    )
    return rows


def _recording() -> list[str]:
    """Issue 19's recording rows: the hub facade, keyword labels, the context managers.

    Many short alternated runs (5,000 calls, best of 60): on a shared machine the best
    short window of each side is the one a load spike missed."""
    rows = []

    def pair(name: str, ours: Callable[[], object], theirs: Callable[[], object],
             target: float | None) -> None:  # fmt: skip
        rows.append(row(name, *ns_pair(ours, theirs, number=5_000, repeat=60), "ns", target))

    ours_reg, theirs_reg = mh.Registry(self_metrics=False), pc.CollectorRegistry()
    hub = mh.Hub(registry=ours_reg)
    d = {"method": "GET", "code": "200"}
    hub.inc_counter("hub_calls_total", d)
    tc = pc.Counter("hub_calls", "H.", ["method", "code"], registry=theirs_reg)
    pair("hub.inc_counter(name, {2 labels}) / labels(**d)",
         lambda: hub.inc_counter("hub_calls_total", d),
         lambda: tc.labels(**d).inc(), 0.25)  # fmt: skip
    ol = mh.Counter("kw", "K.", ["a", "b"], registry=ours_reg)
    tl = pc.Counter("kw", "K.", ["a", "b"], registry=theirs_reg)
    ol.labels("x", "y")
    tl.labels("x", "y")
    pair("labels(a=.., b=..) existing series",
         lambda: ol.labels(a="x", b="y"), lambda: tl.labels(a="x", b="y"), None)  # fmt: skip
    pair("  meterhub keyword / positional (2nd column)",
         lambda: ol.labels(a="x", b="y"), lambda: ol.labels("x", "y"), 1.5)  # fmt: skip

    def block(cm: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            with cm():
                pass

        return run

    oh, th = (
        mh.Histogram("t", "T.", registry=ours_reg),
        pc.Histogram("t", "T.", registry=theirs_reg),
    )
    cores = "C" if timercore.ACCELERATED else "pure-Python"  # METERHUB_NO_EXTENSIONS=1
    pair(f"with Histogram.time(): ({cores} cores)", block(oh.time), block(th.time), 0.30)
    oc, tce = mh.Counter("e", "E.", registry=ours_reg), pc.Counter("e", "E.", registry=theirs_reg)
    pair("with Counter.count_exceptions():", block(oc.count_exceptions),
         block(tce.count_exceptions), None)  # fmt: skip
    og, tg = mh.Gauge("p", "P.", registry=ours_reg), pc.Gauge("p", "P.", registry=theirs_reg)
    pair("with Gauge.track_inprogress():", block(og.track_inprogress),
         block(tg.track_inprogress), None)  # fmt: skip
    return rows


def _populate(mod: object, reg: object) -> None:
    c = mod.Counter("requests", "Requests.", ["route", "code"], registry=reg)  # type: ignore[attr-defined]
    for i in range(10_000):
        c.labels(f"/route/{i}", str(200 + i % 5)).inc(i)
    h = mod.Histogram("latency_seconds", "Latency.", ["route"], registry=reg)  # type: ignore[attr-defined]
    for i in range(1_000):
        child = h.labels(f"/route/{i}")
        for v in (0.003, 0.04, 0.2, 1.5):
            child.observe(v)


def _render() -> list[str]:
    ours, theirs = mh.Registry(self_metrics=False), pc.CollectorRegistry()
    pc.disable_created_metrics()
    try:
        _populate(mh, ours)
        _populate(pc, theirs)
        t_ours, t_theirs = seconds_pair(
            lambda: mh.generate_latest(ours), lambda: pc.generate_latest(theirs), repeat=9
        )
    finally:
        pc.enable_created_metrics()
    return [
        row("collect+render 10k counters + 1k histograms", t_ours * 1e3, t_theirs * 1e3, "ms", 0.20)
    ]


def _bytes_per_series(make: object, n: int = 100_000) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    metric = make()  # type: ignore[operator]
    for i in range(n):
        metric.labels(str(i)).inc()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n


def _memory() -> list[str]:
    ours = _bytes_per_series(
        lambda: mh.Counter("m", "M.", ["id"], registry=mh.Registry(), max_series=200_000)
    )
    theirs = _bytes_per_series(
        lambda: pc.Counter("m", "M.", ["id"], registry=pc.CollectorRegistry())
    )
    return [row("memory per labeled counter series (100k)", ours, theirs, "B", 0.5)]


def main() -> None:
    cores = "C" if timercore.ACCELERATED else "pure-Python (METERHUB_NO_EXTENSIONS or no build)"
    print(f"meterhub {version('meterhub')}, {cores} timer cores; "
          f"prometheus_client {version('prometheus_client')}")  # fmt: skip
    print(HEADER)
    for r in _hot_path() + _recording() + _render() + _memory():
        print(r, flush=True)


if __name__ == "__main__":
    main()
