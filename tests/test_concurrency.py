"""Exact counts under threads and asyncio, without a global lock on the hot path."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable

import pytest

from meterhub import Counter, Histogram, Registry, Summary

THREADS, PER_THREAD = 8, 200_000


pytestmark = pytest.mark.usefixtures("switch_often")


def _run_threads(work: Callable[[], None]) -> None:
    start = threading.Barrier(THREADS)

    def run() -> None:
        start.wait()
        work()

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_threads_prebound_child_exact(registry: Registry) -> None:
    c = Counter("c", "C.", registry=registry)

    def work() -> None:
        inc = c.inc
        for _ in range(PER_THREAD):
            inc()

    _run_threads(work)
    assert registry.get_sample_value("c_total") == THREADS * PER_THREAD


def test_threads_label_lookup_exact(registry: Registry) -> None:
    c = Counter("c", "C.", ["shard"], registry=registry)

    def work() -> None:
        labels = c.labels
        for i in range(PER_THREAD):
            labels(str(i % 4)).inc()

    _run_threads(work)
    total = sum(registry.get_sample_value("c_total", {"shard": str(s)}) or 0 for s in range(4))
    assert total == THREADS * PER_THREAD


def test_histogram_never_half_updated(registry: Registry) -> None:
    """A reader never sees count, buckets and sum disagree (every observation is 1.0)."""
    h = Histogram("h", "H.", buckets=[0.5, 2], registry=registry)
    s = Summary("s", "S.", registry=registry)
    stop = threading.Event()
    bad: list[tuple[float, ...]] = []

    def reader() -> None:
        while not stop.is_set():
            for family in registry.collect():
                for series in family.series:
                    v = series.values
                    if family.name == "h" and not (v[0] == v[-1] == v[2] and v[1] == 0):
                        bad.append(v)
                    if family.name == "s" and v[0] != v[1]:
                        bad.append(v)

    r = threading.Thread(target=reader)
    r.start()

    def work() -> None:
        for _ in range(20_000):
            h.observe(1.0)
            s.observe(1.0)

    _run_threads(work)
    stop.set()
    r.join()
    assert bad == []
    assert registry.get_sample_value("h_count") == THREADS * 20_000


def test_asyncio_tasks_exact(registry: Registry) -> None:
    c = Counter("c", "C.", ["k"], registry=registry)
    h = Histogram("h", "H.", registry=registry)

    async def task(i: int) -> None:
        for _ in range(200):
            c.labels(str(i % 3)).inc()
            h.observe(0.01)
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(task(i) for i in range(1000)))

    asyncio.run(main())
    total = sum(registry.get_sample_value("c_total", {"k": str(k)}) or 0 for k in range(3))
    assert total == 200_000
    assert registry.get_sample_value("h_count") == 200_000


def test_concurrent_child_creation_is_single(registry: Registry) -> None:
    c = Counter("c", "C.", ["k"], registry=registry)
    children: list[object] = []

    def work() -> None:
        for i in range(300):
            children.append(c.labels(f"v{i}"))
            c.labels(f"v{i}").inc()

    _run_threads(work)
    assert len({id(child) for child in children}) == 300
    for i in range(300):
        assert registry.get_sample_value("c_total", {"k": f"v{i}"}) == THREADS


def test_free_threaded_without_gil_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from meterhub.store import require_gil

    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    with pytest.raises(RuntimeError, match="PYTHON_GIL=1"):
        require_gil()
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: True, raising=False)
    require_gil()
