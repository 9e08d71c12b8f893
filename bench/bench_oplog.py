"""Operation log throughput, latency and memory (no anchor library: absolute figures).

* end to end: N records (default 1,000,000) recorded and persisted, timed until ``stop()``
  returns (fsync on), from a thread (``record_operation_nowait``) and from asyncio tasks;
* ``record_operation`` latency percentiles while the writer is flushing;
* peak memory (tracemalloc) with two queue bounds, to show it follows ``max_queue_size``;
* a naive baseline shaped like the seed (``asyncio.Queue`` + a worker task that
  ``json.dumps`` each batch to a temp file and renames it), and the seed's claim (10,000/s).

``METERHUB_BENCH_OPLOG_N`` shrinks the run (e.g. 200000 on a busy machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import shutil
import statistics
import tempfile
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

from meterhub import Registry
from meterhub.oplog import OperationLog, have_orjson

N = int(os.environ.get("METERHUB_BENCH_OPLOG_N", "1000000"))
SEED_CLAIM = 10_000.0
METADATA = {"status_code": 200, "region": "us-east"}


@contextlib.contextmanager
def scratch() -> Path:  # type: ignore[misc]
    path = Path(tempfile.mkdtemp(prefix="bench-oplog-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _log(path: Path, **kw: object) -> OperationLog:
    kw.setdefault("max_queue_size", 100_000)
    kw.setdefault("queue_full_policy", "block")
    return OperationLog(path, registry=Registry(self_metrics=False), **kw)  # type: ignore[arg-type]


def end_to_end_thread(n: int, batch: int) -> float:
    """records/s, from the first record until stop() returned."""
    with scratch() as path:
        log = _log(path, max_batch_size=batch)
        log.start_sync()
        record = log.record_operation_nowait
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(n):
            record("api_request", "GET /api/users", 42.5, True, None, METADATA)
        log.stop_sync(timeout=600)
        elapsed = time.perf_counter() - t0
        assert log.stats().total_persisted == n
    return n / elapsed


def end_to_end_async(n: int, tasks: int = 100) -> float:
    async def run(path: Path) -> float:
        log = _log(path)
        await log.start()
        per = n // tasks

        async def producer() -> None:
            record = log.record_operation
            for _ in range(per):
                await record("api_request", "GET /api/users", 42.5, True, None, METADATA)

        t0 = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(tasks)))
        await log.stop(timeout=600)
        elapsed = time.perf_counter() - t0
        assert log.stats().total_persisted == per * tasks
        return per * tasks / elapsed

    with scratch() as path:
        return asyncio.run(run(path))


def latency_while_flushing(n: int) -> tuple[float, float, float, int]:
    """p50, p99, p99.9 in µs of record_operation_nowait, and the files written meanwhile."""
    with scratch() as path:
        log = _log(path, max_batch_size=1000, flush_interval_seconds=0.05)
        log.start_sync()
        record = log.record_operation_nowait
        clock = time.perf_counter_ns
        samples = [0] * n
        for i in range(n):
            t0 = clock()
            record("api_request", "GET /api/users", 42.5, True, None, METADATA)
            samples[i] = clock() - t0
        files = log.stats().batches_written
        log.stop_sync(timeout=600)
    samples.sort()
    q = statistics.quantiles(samples, n=1000, method="inclusive")
    return q[499] / 1000, q[989] / 1000, q[998] / 1000, files


def peak_memory(n: int, max_queue: int) -> float:
    """Peak traced MiB while recording *n* records with a buffer of *max_queue*."""
    with scratch() as path:
        log = _log(path, max_queue_size=max_queue, max_batch_size=1000, fsync=False)
        log.start_sync()
        gc.collect()
        tracemalloc.start()
        tracemalloc.reset_peak()
        for i in range(n):
            log.record_operation_nowait("api_request", "GET /api/users", 42.5, True, None, {"i": i})
        log.stop_sync(timeout=600)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


def naive_baseline(n: int, batch: int = 1000) -> float:
    """The seed's shape: asyncio.Queue, a worker task, json.dumps per batch, temp + rename."""

    async def run(path: Path) -> float:
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
        t0 = time.perf_counter()
        for _ in range(n):
            await record("api_request", "GET /api/users", 42.5, True, METADATA)
        done.set()
        await task
        return n / (time.perf_counter() - t0)

    with scratch() as path:
        return asyncio.run(run(path))


def main() -> None:
    n = N
    print(
        f"records: {n:,}; encoder: {'orjson' if have_orjson() else 'json (stdlib)'}; "
        f"cpu count: {os.cpu_count()}; load average: {os.getloadavg()[0]:.2f}"
    )
    print(f"{'benchmark':<58} {'value':>12}  unit")
    rows: list[tuple[str, float, str]] = []
    thread_rate = end_to_end_thread(n, 1000)
    rows.append(("end to end, thread, batch 1000 (fsync)", thread_rate, "rec/s"))
    rows.append(("end to end, thread, batch 10000 (fsync)", end_to_end_thread(n, 10_000), "rec/s"))
    rows.append(("end to end, 100 asyncio tasks, batch 1000", end_to_end_async(n), "rec/s"))
    p50, p99, p999, files = latency_while_flushing(min(n, 300_000))
    rows.append((f"record_operation p50 while flushing ({files} files)", p50, "µs"))
    rows.append(("record_operation p99 while flushing", p99, "µs"))
    rows.append(("record_operation p99.9 while flushing", p999, "µs"))
    m = min(n, 200_000)
    rows.append(
        (f"peak memory, {m:,} records, max_queue_size 10,000", peak_memory(m, 10_000), "MiB")
    )
    rows.append(
        (f"peak memory, {m:,} records, max_queue_size 100,000", peak_memory(m, 100_000), "MiB")
    )
    naive_n = min(n, 200_000)
    naive = naive_baseline(naive_n)
    rows.append((f"naive asyncio.Queue + json.dump baseline ({naive_n:,})", naive, "rec/s"))
    for name, value, unit in rows:
        print(f"{name:<58} {value:>12,.1f}  {unit}")
    print(f"{'meterhub / naive baseline (thread, batch 1000)':<58} {thread_rate / naive:>12.1f}  x")
    print(f"{'meterhub / seed claim of 10,000 rec/s':<58} {thread_rate / SEED_CLAIM:>12.1f}  x")
    print("targets: >= 200,000 rec/s end to end on one core; p99 < 20 µs while flushing")


if __name__ == "__main__":
    main()
