"""Native histograms: observe() cost and the protobuf scrape, in one process run.

* native ``observe()`` against meterhub's classic ``observe()`` (target <= 1.5x) and
  prometheus_client's classic ``observe()`` (target <= 0.35x), same value stream;
* a protobuf scrape (collect + encode) of 10k counters + 1k native histograms against
  meterhub's text scrape of the same registry (target <= 1.0x).

Run: ``PYTHONPATH=src python bench/bench_native.py``.
"""

from __future__ import annotations

import random
import time

import prometheus_client as pc
from _timing import HEADER, row, seconds

import meterhub as mh
from meterhub.exposition.protobuf import generate_latest_protobuf


def _values(n: int = 20_000) -> list[float]:
    rng = random.Random(7)
    return [rng.lognormvariate(-3, 1.5) for _ in range(n)]


def _observe_ns(
    observers: dict[str, object], values: list[float], rounds: int = 9
) -> dict[str, float]:
    """Best per-call ns of each observer over a value stream (not one constant: lookups do
    real work, as in production), the observers taking turns so that a change in the
    machine's load hits them alike."""
    best = dict.fromkeys(observers, float("inf"))
    for _ in range(rounds):
        for name, observe in observers.items():
            t0 = time.perf_counter_ns()
            for v in values:
                observe(v)  # type: ignore[operator]
            best[name] = min(best[name], (time.perf_counter_ns() - t0) / len(values))
    return best


def _hot_path() -> list[str]:
    values = _values()
    reg = mh.Registry(self_metrics=False)
    native = mh.Histogram("n", "N.", registry=reg, native_histogram_bucket_factor=1.1)
    classic = mh.Histogram("c", "C.", registry=reg)
    dual = mh.Histogram(
        "d", "D.", buckets=mh.DEFAULT_BUCKETS, registry=reg, native_histogram_bucket_factor=1.1
    )
    theirs = pc.Histogram("t", "T.", registry=pc.CollectorRegistry())
    for v in values:  # warm: every bucket of the stream exists (the steady state)
        native.observe(v)
        dual.observe(v)
    ns = _observe_ns(
        {"native": native.observe, "classic": classic.observe, "dual": dual.observe,
         "theirs": theirs.observe},
        values,
    )  # fmt: skip
    return [
        row("native observe() vs meterhub classic", ns["native"], ns["classic"], "ns", 1.5),
        row("native observe() vs prometheus_client", ns["native"], ns["theirs"], "ns", 0.35),
        row("dual (classic+native) vs meterhub classic", ns["dual"], ns["classic"], "ns", None),
    ]


def _populate(reg: mh.Registry) -> None:
    c = mh.Counter("requests", "Requests.", ["route", "code"], registry=reg)
    for i in range(10_000):
        c.labels(f"/route/{i}", str(200 + i % 5)).inc(i)
    h = mh.Histogram(
        "latency_seconds", "Latency.", ["route"], registry=reg,
        native_histogram_bucket_factor=1.1,
    )  # fmt: skip
    values = _values(64)
    for i in range(1_000):
        child = h.labels(f"/route/{i}")
        for v in values[i % 16 :][:16]:
            child.observe(v)


def _scrape(rounds: int = 15) -> list[str]:
    reg = mh.Registry(self_metrics=False)
    _populate(reg)
    scrapes = {
        "protobuf": lambda: generate_latest_protobuf(reg),
        "text": lambda: mh.generate_latest(reg),
    }
    best = dict.fromkeys(scrapes, float("inf"))
    for _ in range(rounds):  # taking turns, as the observers do
        for name, scrape in scrapes.items():
            best[name] = min(best[name], seconds(scrape, repeat=1))
    t_proto, t_text = best["protobuf"], best["text"]
    return [
        row("protobuf vs text scrape, 10k ctr + 1k native", t_proto * 1e3, t_text * 1e3, "ms", 1.0)
    ]


def main() -> None:
    print(HEADER.replace("prom_client", "reference"))
    for r in _hot_path() + _scrape():
        print(r, flush=True)


if __name__ == "__main__":
    main()
