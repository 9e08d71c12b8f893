"""One million records from 1,000 asyncio tasks and 8 threads at once: none lost, none twice."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path

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
        if not NAME_RE.match(path.name):
            assert path.name == ".oplog.lock", f"unexpected file {path.name}"
            continue
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
