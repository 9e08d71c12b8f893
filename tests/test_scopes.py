"""``time()``, ``count_exceptions()`` and ``track_inprogress()`` (issue 19): one lean object
per ``with`` (a timer) or one per series (the in-progress tracker), correct when nested,
re-entered, used from threads at once, by interleaved asyncio tasks and generators, and
as sync and async decorators."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path

import pytest

import meterhub
from meterhub import Counter, Gauge, Histogram, Registry, Summary
from meterhub._definition.scope import SeriesTimer
from meterhub.store.mmap import MultiProcessStore

BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 1.0)


def bucket_counts(durations: list[float]) -> list[float]:
    """What a histogram of BUCKETS holds (cumulative) after observing *durations*."""
    counts = [0.0] * (len(BUCKETS) + 1)
    for d in durations:
        counts[bisect_left((*BUCKETS, float("inf")), d)] += 1
    out, total = [], 0.0
    for n in counts:
        total += n
        out.append(total)
    return out


def histogram_buckets(reg: Registry, name: str) -> list[float]:
    les = [*(str(float(b)) for b in BUCKETS), "+Inf"]
    return [reg.get_sample_value(f"{name}_bucket", {"le": le}) or 0.0 for le in les]


@pytest.fixture
def hist(registry: Registry) -> Histogram:
    return Histogram("work_seconds", "Work.", buckets=BUCKETS, registry=registry)


def test_each_entry_keeps_its_own_start_time_across_threads(
    hist: Histogram, registry: Registry
) -> None:
    seen: list[float] = []
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        barrier.wait()
        for j in range(20):
            pause = 0.001 * ((i + j) % 4)
            with hist.time() as t:  # all 8 threads time the one series at once
                time.sleep(pause)
            assert t.duration is not None and t.duration >= pause
            seen.append(t.duration)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert registry.get_sample_value("work_seconds_count") == 160
    assert histogram_buckets(registry, "work_seconds") == bucket_counts(seen)
    assert registry.get_sample_value("work_seconds_sum") == pytest.approx(sum(seen))


def test_interleaved_asyncio_tasks_leave_in_no_nested_order(
    hist: Histogram, registry: Registry
) -> None:
    seen: dict[int, float] = {}

    async def task(i: int, pause: float) -> None:
        with hist.time() as t:  # a sync with-block held across an await
            await asyncio.sleep(pause)
        assert t.duration is not None and t.duration >= pause
        seen[i] = t.duration

    async def main() -> None:
        # entered 0, 1, 2, ... and left in the reverse order of their pauses
        await asyncio.gather(*(task(i, 0.03 - 0.005 * i) for i in range(6)))

    asyncio.run(main())
    assert registry.get_sample_value("work_seconds_count") == 6
    assert histogram_buckets(registry, "work_seconds") == bucket_counts(list(seen.values()))


def test_async_with_and_async_decorators(hist: Histogram, registry: Registry) -> None:
    async def main() -> None:
        async with hist.time() as t:
            await asyncio.sleep(0.002)
        assert t.duration is not None and t.duration >= 0.002

        @hist.time()
        async def handler(pause: float) -> float:
            await asyncio.sleep(pause)
            return pause

        assert await asyncio.gather(handler(0.01), handler(0.001)) == [0.01, 0.001]

    asyncio.run(main())
    assert registry.get_sample_value("work_seconds_count") == 3
    assert (registry.get_sample_value("work_seconds_sum") or 0) >= 0.013


def test_generators_suspended_inside_a_block(hist: Histogram, registry: Registry) -> None:
    def gen(pause: float) -> Iterator[SeriesTimer]:
        with hist.time() as t:
            yield t
            time.sleep(pause)

    first, second = gen(0.03), gen(0.0)
    a = next(first)
    time.sleep(0.02)
    b = next(second)
    for g in (first, second):  # the earlier entry leaves first: no stack could hold this
        with pytest.raises(StopIteration):
            next(g)
    assert a.duration is not None and a.duration >= 0.05
    assert b.duration is not None and 0.03 <= b.duration < a.duration
    assert registry.get_sample_value("work_seconds_count") == 2
    assert histogram_buckets(registry, "work_seconds") == bucket_counts([a.duration, b.duration])


def test_nested_and_recursive_decorated_calls(hist: Histogram, registry: Registry) -> None:
    durations: list[float] = []
    with hist.time() as outer:
        with hist.time() as inner:
            time.sleep(0.003)
        assert inner.duration is not None
        durations.append(inner.duration)
    assert outer.duration is not None and outer.duration >= inner.duration

    @hist.time()
    def recurse(n: int) -> int:
        return 0 if n == 0 else 1 + recurse(n - 1)

    assert recurse(3) == 3
    assert registry.get_sample_value("work_seconds_count") == 6
    labeled = Histogram("l_seconds", "L.", ["k"], registry=registry)
    with labeled.time() as t:
        t.labels("a")
    assert registry.get_sample_value("l_seconds_count", {"k": "a"}) == 1
    with pytest.raises(ValueError, match="has its label values"):
        labeled.labels("a").time().labels("b")


def test_the_timer_respects_the_switch_at_exit(hist: Histogram, registry: Registry) -> None:
    with hist.time():
        meterhub.disable()  # off when the duration is written: recorded nowhere
    with hist.time():
        meterhub.enable()
    assert registry.get_sample_value("work_seconds_count") == 1


def test_every_type_times_with_its_own_method(registry: Registry) -> None:
    s = Summary("s_seconds", "S.", registry=registry)
    g = Gauge("g_seconds", "G.", ["k"], registry=registry)
    recent = Gauge("r_seconds", "R.", registry=registry, multiprocess_mode="mostrecent")
    native = Histogram("n_seconds", "N.", registry=registry, native_histogram_bucket_factor=1.1)
    dual = Histogram(
        "d_seconds", "D.", buckets=(1.0,), registry=registry, native_histogram_bucket_factor=1.1
    )
    durations = {}
    for name, metric in [("s", s), ("g", g.labels("x")), ("r", recent), ("n", native),
                         ("d", dual)]:  # fmt: skip
        with metric.time() as t:
            time.sleep(0.001)
        durations[name] = t.duration
    assert registry.get_sample_value("s_seconds_sum") == durations["s"]
    assert registry.get_sample_value("g_seconds", {"k": "x"}) == durations["g"]  # set()
    assert registry.get_sample_value("r_seconds") == durations["r"]
    for name in ("n", "d"):
        family = next(f for f in registry.collect() if f.name == f"{name}_seconds")
        (series,) = family.series
        assert series.native is not None  # observed through the native observe()
        assert series.native.count_value == 1
        assert series.native.sum_value == durations[name]


def test_count_exceptions_from_threads_and_tasks(registry: Registry) -> None:
    c = Counter("failures", "F.", ["k"], registry=registry)
    child = c.labels("x")

    def work(i: int) -> None:
        for j in range(200):
            try:
                with child.count_exceptions((KeyError, ValueError)):
                    if (i + j) % 3 == 0:
                        raise KeyError(j)
                    if (i + j) % 3 == 1:
                        raise RuntimeError(j)  # not counted, not swallowed
            except (KeyError, RuntimeError):
                pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = sum(1 for i in range(4) for j in range(200) if (i + j) % 3 == 0)
    assert registry.get_sample_value("failures_total", {"k": "x"}) == expected

    @child.count_exceptions()
    async def boom(fail: bool) -> str:
        await asyncio.sleep(0)
        if fail:
            raise ValueError
        return "ok"

    async def main() -> list[object]:
        return await asyncio.gather(boom(True), boom(False), boom(True), return_exceptions=True)

    results = asyncio.run(main())
    assert results[1] == "ok" and isinstance(results[0], ValueError)
    assert registry.get_sample_value("failures_total", {"k": "x"}) == expected + 2


def test_one_in_progress_tracker_serves_threads_and_tasks(registry: Registry) -> None:
    g = Gauge("inflight", "I.", registry=registry)
    assert g.track_inprogress() is g.track_inprogress()  # one per series, no allocation
    inside = threading.Barrier(6)
    leave = threading.Event()
    seen: list[float | None] = []

    def work() -> None:
        with g.track_inprogress():
            inside.wait()
            leave.wait()

    threads = [threading.Thread(target=work) for _ in range(5)]
    for t in threads:
        t.start()
    inside.wait()
    seen.append(registry.get_sample_value("inflight"))
    leave.set()
    for t in threads:
        t.join()

    @g.track_inprogress()
    async def request(pause: float) -> None:
        with g.track_inprogress():  # nested on the very same object
            await asyncio.sleep(pause)
            seen.append(registry.get_sample_value("inflight"))

    async def main() -> None:
        await asyncio.gather(request(0.02), request(0.01), request(0.0))

    asyncio.run(main())
    assert seen == [5, 6, 4, 2]
    assert registry.get_sample_value("inflight") == 0


def test_timers_in_a_forked_child_write_its_own_file(tmp_path: Path) -> None:
    store = MultiProcessStore(tmp_path)
    reg = Registry(store=store, self_metrics=False)
    h = Histogram("job_seconds", "J.", buckets=BUCKETS, registry=reg)
    g = Gauge("busy", "B.", registry=reg, multiprocess_mode="livesum")
    with h.time(), g.track_inprogress():
        pass

    def child() -> None:
        with h.time(), g.track_inprogress():
            pass
        os._exit(0)

    procs = [multiprocessing.get_context("fork").Process(target=child) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert reg.get_sample_value("job_seconds_count") == 4
    assert reg.get_sample_value("busy") == 0
    store.close()
