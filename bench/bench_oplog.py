"""Operation log throughput, latency and memory (no anchor library: absolute figures).

* end to end: N records (default 1,000,000) recorded and persisted, timed until ``stop()``
  returns (fsync on), from a thread (``record_operation_nowait``) and from asyncio tasks;
* ``record_operation`` latency percentiles while the writer is flushing;
* peak memory (tracemalloc) with the disk down and two queue bounds: it follows
  ``max_queue_size``, not the number of records offered;
* a naive baseline shaped like the seed (``asyncio.Queue`` + a worker task that
  ``json.dumps`` each batch to a temp file and renames it), and the seed's claim (10,000/s).

``METERHUB_BENCH_OPLOG_N`` shrinks the run (e.g. 200000 on a busy machine);
``METERHUB_BENCH_OPLOG_REPEATS`` (default 3) sets how often each end-to-end setup runs (the
median is reported).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import json
import logging
import os
import resource
import shutil
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from _timing import REFERENCE_INC_NS, machine_slowdown

from meterhub import Registry
from meterhub.oplog import OperationLog, have_orjson

N = int(os.environ.get("METERHUB_BENCH_OPLOG_N", "1000000"))
REPEATS = int(os.environ.get("METERHUB_BENCH_OPLOG_REPEATS", "3"))
SEED_CLAIM = 10_000.0
METADATA = {"status_code": 200, "region": "us-east"}


_SCRATCH: list[Path] = []


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A fresh directory, deleted when the bench ends, not after each run.

    Deleting thousands of batch files between runs taxes the next run: a filesystem
    skips recently freed inodes when it allocates new ones (ext4 without a journal, as on
    this project's CI machines, checks each one), so every file the next run creates costs
    more. A log directory in service loses files to retention hourly, not by the thousand
    just before a burst.
    """
    path = Path(tempfile.mkdtemp(prefix="bench-oplog-"))
    _SCRATCH.append(path)
    yield path


@atexit.register
def _remove_scratch() -> None:
    for path in _SCRATCH:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def one_core() -> Iterator[str]:
    """Pin this process (recorders and writer alike) to one CPU, as the target says."""
    if not hasattr(os, "sched_setaffinity"):
        yield "not pinned"
        return
    before = os.sched_getaffinity(0)
    cpu = max(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield f"pinned to cpu {cpu}"
    finally:
        os.sched_setaffinity(0, before)


def _log(path: Path, **kw: object) -> OperationLog:
    kw.setdefault("max_queue_size", 100_000)
    kw.setdefault("queue_full_policy", "block")
    return OperationLog(path, registry=Registry(self_metrics=False), **kw)  # type: ignore[arg-type]


class Rate:
    """Records per second of wall clock, and per second of this process's CPU time.

    The CPU figure is what one dedicated core would do: on a shared machine the wall
    clock also counts the time other processes held the cores.
    """

    def __init__(self, n: int, wall: float, cpu: float) -> None:
        self.n, self.wall, self.cpu = n, n / wall, n / cpu

    @staticmethod
    def median(rates: list[Rate]) -> Rate:
        """The run with the median CPU rate (its wall rate comes along)."""
        return sorted(rates, key=lambda r: r.cpu)[len(rates) // 2]


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    out: list[float] = []
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    yield out
    out.extend((time.perf_counter() - w0, time.process_time() - c0))


def end_to_end_thread(n: int, batch: int) -> Rate:
    """From the first record until stop() returned, recording from one thread."""
    with scratch() as path:
        log = _log(path, max_batch_size=batch)
        log.start_sync()
        record = log.record_operation_nowait
        with timed() as t:
            for _ in range(n):
                record("api_request", "GET /api/users", 42.5, True, None, METADATA)
            log.stop_sync(timeout=600)
        assert log.stats().total_persisted == n
    return Rate(n, *t)


def end_to_end_async(n: int, tasks: int = 100) -> Rate:
    """The same from *tasks* asyncio tasks awaiting ``record_operation``."""
    per = n // tasks

    async def run(path: Path) -> list[float]:
        log = _log(path)
        await log.start()

        async def producer() -> None:
            record = log.record_operation
            for _ in range(per):
                await record("api_request", "GET /api/users", 42.5, True, None, METADATA)

        with timed() as t:
            await asyncio.gather(*(producer() for _ in range(tasks)))
            await log.stop(timeout=600)
        assert log.stats().total_persisted == per * tasks
        return t

    with scratch() as path:
        return Rate(per * tasks, *asyncio.run(run(path)))


def _thread_faults() -> int:
    """Minor page faults of the calling thread so far (0 where the OS does not say)."""
    who = getattr(resource, "RUSAGE_THREAD", None)
    return resource.getrusage(who).ru_minflt if who is not None else 0


def latency_while_flushing(n: int, flushing: bool = True) -> tuple[float, float, float, int, int]:
    """p50, p99, p99.9 in µs of record_operation_nowait, the files written meanwhile and
    the recording thread's page faults. With *flushing* off the writer stays idle (one
    batch as big as the run): what the recording call costs without it."""
    batch = 1000 if flushing else n + 1
    with scratch() as path:
        log = _log(
            path,
            max_batch_size=batch,
            max_queue_size=max(100_000, batch),
            flush_interval_seconds=0.05 if flushing else 3600,
        )
        log.start_sync()
        record = log.record_operation_nowait
        clock = time.perf_counter_ns
        samples = [0] * n
        faults = _thread_faults()
        for i in range(n):
            t0 = clock()
            record("api_request", "GET /api/users", 42.5, True, None, METADATA)
            samples[i] = clock() - t0
        faults = _thread_faults() - faults
        files = log.stats().batches_written
        log.stop_sync(timeout=600)
    samples.sort()
    q = statistics.quantiles(samples, n=1000, method="inclusive")
    return q[499] / 1000, q[989] / 1000, q[998] / 1000, files, faults


def peak_memory(n: int, max_queue: int) -> float:
    """Peak traced MiB while offering *n* records to a log whose disk has failed.

    The directory vanishes right after start, so every record that fits stays in memory:
    the worst case. Memory must follow ``max_queue_size``, not *n*.
    """
    logging.getLogger("meterhub.oplog").setLevel(logging.ERROR)  # the outage is on purpose
    with scratch() as root:
        path = root / "ops"
        log = _log(path, max_queue_size=max_queue, queue_full_policy="drop", fsync=False)
        log.start_sync()
        path.rename(root / "gone")
        gc.collect()
        tracemalloc.start()
        for i in range(n):
            log.record_operation_nowait("api_request", "GET /api/users", 42.5, True, None, {"i": i})
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert log.stats().total_dropped == n - max_queue
        (root / "gone").rename(path)
        log.stop_sync(timeout=600)
    return peak / 2**20


def naive_baseline(n: int, batch: int = 1000) -> Rate:
    """The seed's shape: asyncio.Queue, a worker task, json.dumps per batch, temp + rename."""

    async def run(path: Path) -> list[float]:
        queue: asyncio.Queue[dict[str, object]] = asyncio.Queue(maxsize=10_000)
        done = asyncio.Event()

        async def worker() -> None:
            while not (done.is_set() and queue.empty()):
                items = []
                try:
                    items.append(await asyncio.wait_for(queue.get(), 0.05))
                except asyncio.TimeoutError:
                    continue
                while len(items) < batch and not queue.empty():
                    items.append(queue.get_nowait())
                now = datetime.now(timezone.utc)
                batch_id = now.strftime("%Y%m%d_%H%M%S_%f")
                doc = {
                    "records": items,
                    "batch_timestamp": now.isoformat(),
                    "batch_id": batch_id,
                    "total_records": len(items),
                }
                tmp = path / f".{batch_id}.tmp"
                with open(tmp, "w") as f:
                    json.dump(doc, f, indent=2)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path / f"metrics_{batch_id}_{id(items)}.json")

        async def record(op_type: str, name: str, ms: float, ok: bool, md: dict) -> None:  # type: ignore[type-arg]
            await queue.put(
                {
                    "operation_type": op_type,
                    "operation_name": name,
                    "duration_ms": ms,
                    "timestamp": datetime.now(timezone.utc).isoformat(),
                    "success": ok,
                    "error_message": None,
                    "metadata": dict(md),
                }
            )

        task = asyncio.create_task(worker())
        with timed() as t:
            for _ in range(n):
                await record("api_request", "GET /api/users", 42.5, True, METADATA)
            done.set()
            await task
        return t

    with scratch() as path:
        return Rate(n, *asyncio.run(run(path)))


def main() -> None:
    n = N
    encoder = "orjson" if have_orjson() else "json (stdlib)"
    print(
        f"records: {n:,}; encoder: {encoder}; cpus: {os.cpu_count()}; "
        f"load average: {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'end to end (recorded + persisted, fsync on)':<52} {'wall rec/s':>12} "
        f"{'cpu rec/s':>12} {f'cpu, {REPEATS} runs':>16}"
    )
    naive_n = min(n, 200_000)
    runs: dict[str, Callable[[], Rate]] = {
        "one thread, max_batch_size 1000": lambda: end_to_end_thread(n, 1000),
        "one thread, max_batch_size 10000": lambda: end_to_end_thread(n, 10_000),
        "100 asyncio tasks, max_batch_size 1000": lambda: end_to_end_async(n),
        f"naive asyncio.Queue + json.dump ({naive_n:,})": lambda: naive_baseline(naive_n),
    }
    # Each setup REPEATS times, the setups taking turns, so a slow spell of the machine hits
    # all of them; the median is reported, and the range of the CPU rate.
    results: dict[str, list[Rate]] = {name: [] for name in runs}
    with one_core() as pinned:
        for _ in range(REPEATS):
            for name, run in runs.items():
                results[name].append(run())
    rates = {name: Rate.median(rs) for name, rs in results.items()}
    naive = list(rates.values())[-1]
    for name, rate in rates.items():
        cpus = sorted(r.cpu for r in results[name])
        spread = f"{cpus[0] / 1000:,.0f}k-{cpus[-1] / 1000:,.0f}k"
        print(f"{name:<52} {rate.wall:>12,.0f} {rate.cpu:>12,.0f} {spread:>16}")
    best = rates["one thread, max_batch_size 1000"]
    print(f"({pinned}: the wall rate is what one core does, the cpu rate counts busy time)")
    print(f"{'meterhub / naive baseline (cpu)':<52} {best.cpu / naive.cpu:>24.1f}x")
    print(f"{'meterhub / seed claim of 10,000 rec/s (cpu)':<52} {best.cpu / SEED_CLAIM:>24.1f}x")

    m = min(n, 300_000)
    print(f"\nrecord_operation latency, {m:,} records as fast as one thread offers them")
    for flushing in (True, False, True):  # writer on, idle, on again: what varies shows
        p50, p99, p999, files, faults = latency_while_flushing(m, flushing)
        what = f"while flushing ({files} files)" if flushing else "writer idle"
        print(
            f"  {what:<28} p50 {p50:.1f} µs   p99 {p99:.1f} µs   p99.9 {p999:.1f} µs   "
            f"page faults of the recording thread: {faults / m * 1000:.0f} per 1,000 records"
        )
    print(
        "  (the slow 1% are calls that touched a fresh page of memory - the backlog grows\n"
        "   into new pages, which cost 5-25 µs each on a VM - or were preempted; see README)"
    )

    m = min(n, 200_000)
    print(f"\npeak memory with the disk down, {m:,} records offered (policy drop)")
    for bound in (10_000, 100_000):
        print(f"  max_queue_size {bound:>7,}: {peak_memory(m, bound):6.1f} MiB")
    print("\ntargets: >= 200,000 rec/s end to end on one core; p99 < 20 µs while flushing")
    speed = machine_slowdown()
    if speed is not None:
        ns, factor = speed
        print(
            f"machine speed, same run: prometheus_client Counter.inc() {ns:.0f} ns here, "
            f"{REFERENCE_INC_NS:.0f} ns where the targets were set: {factor:.1f}x slower "
            f"(one thread, batch 1000, at that speed: ~{best.cpu * factor / 1000:,.0f}k rec/s)"
        )


if __name__ == "__main__":
    main()
