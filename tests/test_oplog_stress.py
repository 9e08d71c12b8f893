"""One million records from 1,000 asyncio tasks and 8 threads at once: none lost, none twice."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path

import pytest

from meterhub import Registry
from meterhub.oplog import OperationLog

TASKS, PER_TASK = 1000, 500
THREADS, PER_THREAD = 8, 62_500
TOTAL = TASKS * PER_TASK + THREADS * PER_THREAD
NAME_RE = re.compile(r"metrics_\d{8}_\d{6}_\d{6}\.json\Z")


async def test_one_million_records_exactly_once(tmp_path: Path) -> None:
    assert TOTAL == 1_000_000
    log = OperationLog(
        tmp_path,
        flush_interval_seconds=0.5,
        max_batch_size=1000,
        max_queue_size=50_000,
        queue_full_policy="block",
        registry=Registry(self_metrics=False),
    )
    await log.start()

    async def task(n: int) -> None:
        base = n * PER_TASK
        record = log.record_operation
        for i in range(PER_TASK):
            await record("stress", "task", 0.5, True, None, {"k": base + i})

    errors: list[BaseException] = []

    def thread(n: int) -> None:
        base = TASKS * PER_TASK + n * PER_THREAD
        record = log.record_operation_nowait
        try:
            for i in range(PER_THREAD):
                record("stress", "thread", 0.25, i % 7 != 0, None, {"k": base + i})
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    await asyncio.gather(*(task(n) for n in range(TASKS)))
    await asyncio.get_running_loop().run_in_executor(None, lambda: [t.join() for t in threads])
    await log.stop(timeout=120)
    assert errors == []

    seen = bytearray(TOTAL)
    files = 0
    for path in tmp_path.iterdir():
        assert NAME_RE.match(path.name), f"unexpected file {path.name}"  # no lock file left
        files += 1
        doc = json.loads(path.read_bytes())
        records = doc["records"]
        assert 0 < len(records) == doc["total_records"] <= 1000
        for record in records:
            k = record["metadata"]["k"]
            assert not seen[k], f"record {k} persisted twice"
            seen[k] = 1
    assert seen.count(1) == TOTAL, f"{TOTAL - seen.count(1)} records missing"

    stats = await log.get_stats()
    assert stats.total_recorded == stats.total_persisted == TOTAL
    assert stats.total_dropped == 0 and stats.queue_size == 0
    assert stats.batches_written == files


@pytest.mark.usefixtures("switch_often")
def test_records_racing_stop_are_written_or_refused(tmp_path: Path) -> None:
    """Threads keep recording while stop() runs: each call either returned True and its
    record is in a file, or raised RuntimeError and it is not. Nothing in between."""

    log = OperationLog(
        tmp_path,
        flush_interval_seconds=0.01,
        max_batch_size=100,
        max_queue_size=1_000_000,
        fsync=False,
        registry=Registry(self_metrics=False),
    )
    log.start_sync()
    accepted: list[list[int]] = [[] for _ in range(THREADS)]
    started = threading.Barrier(THREADS + 1)

    def thread(n: int) -> None:
        started.wait()
        i = 0
        while True:
            key = n * 10_000_000 + i
            try:
                log.record_operation_nowait("race", "stop", 0.5, True, None, {"k": key})
            except RuntimeError:
                return
            accepted[n].append(key)
            i += 1

    workers = [threading.Thread(target=thread, args=(n,)) for n in range(THREADS)]
    for w in workers:
        w.start()
    started.wait()
    while sum(map(len, accepted)) < 20_000:
        threading.Event().wait(0.005)
    log.stop_sync(timeout=60)
    for w in workers:
        w.join(30)
    keys = [
        r["metadata"]["k"]
        for p in sorted(tmp_path.iterdir())
        if NAME_RE.match(p.name)
        for r in json.loads(p.read_text())["records"]
    ]
    expected = sorted(k for per in accepted for k in per)
    assert sorted(keys) == expected
    stats = log.stats()
    assert stats.total_recorded == stats.total_persisted == len(expected)
    assert stats.queue_size == 0


def test_record_held_up_while_the_log_stops_is_refused(tmp_path: Path) -> None:
    """A record that passed the running check, then was held up (here: inside validation)
    while stop() finished, must not be reported as recorded: stop() already flushed."""
    gate, inside = threading.Event(), threading.Event()

    class Slow(str):
        def __str__(self) -> str:  # validation converts str subclasses with str()
            inside.set()
            gate.wait(10)
            return "slow"

    log = OperationLog(tmp_path, fsync=False, registry=Registry(self_metrics=False))
    log.start_sync()
    log.record_operation_nowait("race", "stop", 1.0)
    outcome: list[object] = []

    def record() -> None:
        try:
            outcome.append(
                log.record_operation_nowait("race", "stop", 1.0, metadata={"v": Slow("x")})
            )
        except RuntimeError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=record)
    worker.start()
    assert inside.wait(10)
    log.stop_sync()
    gate.set()
    worker.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError), outcome
    stats = log.stats()
    assert stats.total_recorded == stats.total_persisted == 1 and stats.queue_size == 0
