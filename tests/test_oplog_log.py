"""OperationLog behaviour: lifecycle, flushing, file format, policies, stats, metrics."""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from meterhub import QueueFullError, Registry
from meterhub.oplog import OperationLog, cleanup, read_batches, summarize
from meterhub.oplog.files import BatchIds, write_atomic

NAME_RE = re.compile(r"metrics_(\d{8}_\d{6}_\d{6})\.json\Z")


def make_log(path: Path, registry: Registry | None = None, **kw: Any) -> OperationLog:
    kw.setdefault("fsync", False)
    return OperationLog(path, registry=registry or Registry(self_metrics=False), **kw)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.005)


def batch_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if NAME_RE.match(p.name))


# -- lifecycle -------------------------------------------------------------------------------


async def test_start_twice_raises(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    await log.start()
    with pytest.raises(RuntimeError, match="already running"):
        await log.start()
    await log.stop()


async def test_record_before_start_and_after_stop_raises(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    with pytest.raises(RuntimeError, match="not running"):
        await log.record_operation("t", "n", 1.0)
    with pytest.raises(RuntimeError, match="not running"):
        log.record_operation_nowait("t", "n", 1.0)
    await log.start()
    await log.record_operation("t", "n", 1.0)
    await log.stop()
    with pytest.raises(RuntimeError, match="not running"):
        await log.record_operation("t", "n", 1.0)
    assert log.stats().total_persisted == 1
    await log.stop()  # stopping a stopped log is a no-op


async def test_restart_after_stop_keeps_counting(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    for _ in range(2):
        async with log:
            await log.record_operation("t", "n", 1.0)
    stats = await log.get_stats()
    assert (stats.total_recorded, stats.total_persisted, stats.batches_written) == (2, 2, 2)
    assert len(batch_files(tmp_path)) == 2


def test_sync_context_manager_and_stats(tmp_path: Path) -> None:
    with make_log(tmp_path) as log:
        assert log.is_running and log.stats().is_running
        assert log.record_operation_nowait("t", "n", 1.0) is True
    stats = log.stats()
    assert not stats.is_running
    assert stats.total_recorded == stats.total_persisted == 1
    assert stats.avg_batch_size == 1.0
    assert isinstance(stats.last_flush_timestamp, datetime)
    assert stats.last_flush_timestamp.tzinfo is not None


def test_one_directory_one_log(tmp_path: Path) -> None:
    with make_log(tmp_path):
        other = make_log(tmp_path)
        with pytest.raises(RuntimeError, match="in use by another running OperationLog"):
            other.start_sync()
        assert not other.is_running
    with make_log(tmp_path):
        pass  # free again once the first stopped


def test_a_stopped_log_leaves_no_lock_file(tmp_path: Path) -> None:
    with make_log(tmp_path) as log:
        log.record_operation_nowait("t", "n", 1.0)
        assert (tmp_path / ".oplog.lock").exists()
    assert not (tmp_path / ".oplog.lock").exists()
    assert [p.name for p in tmp_path.iterdir()] == [p.name for p in batch_files(tmp_path)]


def test_a_lock_file_that_cannot_be_removed_blocks_nobody(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A directory turned read-only (or any unlink error) at stop(): the log still stops,
    # loses nothing, and the next log takes the stale file's lock.
    real_unlink = os.unlink

    def refuse(path: Any, *args: Any, **kwargs: Any) -> None:
        if str(path).endswith(".oplog.lock"):
            raise PermissionError(13, "Permission denied", str(path))
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refuse)
    with make_log(tmp_path) as log:
        assert log.record_operation_nowait("t", "n", 1.0) is True
    assert log.stats().total_persisted == 1
    assert (tmp_path / ".oplog.lock").exists()
    monkeypatch.setattr(os, "unlink", real_unlink)
    with make_log(tmp_path) as again:
        assert again.record_operation_nowait("t", "n", 2.0) is True
    assert again.stats().total_persisted == 1
    assert not (tmp_path / ".oplog.lock").exists()
    assert len(batch_files(tmp_path)) == 2


def test_removing_the_lock_file_never_lets_two_holders_in(tmp_path: Path) -> None:
    # The unlink-on-release race: a locker that opened the old file just before it was
    # removed must not believe it holds the directory while another locks the new file.
    from meterhub.oplog.files import DirectoryLock

    holders: list[int] = []
    overlaps: list[tuple[int, ...]] = []
    acquired = [0] * 8

    def contend(me: int) -> None:
        for _ in range(300):
            lock = DirectoryLock(tmp_path)
            try:
                lock.acquire()
            except RuntimeError:
                continue
            holders.append(me)
            if len(holders) > 1:
                overlaps.append(tuple(holders))
            acquired[me] += 1
            time.sleep(0.0002)  # let the others run while this one holds the lock
            holders.remove(me)
            lock.release()

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert overlaps == []
    assert sum(acquired) > 0
    assert not (tmp_path / ".oplog.lock").exists()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"flush_interval_seconds": 0}, ValueError),
        ({"flush_interval_seconds": -1}, ValueError),
        ({"flush_interval_seconds": float("nan")}, ValueError),
        ({"flush_interval_seconds": "5"}, TypeError),
        ({"max_batch_size": 0}, ValueError),
        ({"max_batch_size": 1.5}, TypeError),
        ({"max_queue_size": True}, TypeError),
        ({"max_batch_size": 100, "max_queue_size": 10}, ValueError),
        ({"queue_full_policy": "wait"}, ValueError),
        ({"retention_days": -1}, ValueError),
        ({"max_backoff_seconds": float("inf")}, ValueError),
    ],
)
def test_bad_constructor_arguments(tmp_path: Path, kwargs: dict[str, Any], error: type) -> None:
    with pytest.raises(error, match="OperationLog"):
        make_log(tmp_path, **kwargs)


def test_bad_storage_path() -> None:
    with pytest.raises(TypeError, match="storage_path"):
        OperationLog(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="storage_path"):
        OperationLog("")


def test_storage_path_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    log = make_log(target)
    with pytest.raises(OSError):
        log.start_sync()
    assert not log.is_running


# -- flushing and the file format -------------------------------------------------------------


def test_full_batch_is_written_without_waiting_for_the_interval(tmp_path: Path) -> None:
    with make_log(tmp_path, flush_interval_seconds=3600, max_batch_size=10) as log:
        for i in range(25):
            log.record_operation_nowait("t", "n", float(i))
        wait_for(lambda: log.stats().total_persisted == 20)
        assert [len(json.loads(p.read_bytes())["records"]) for p in batch_files(tmp_path)] == [
            10,
            10,
        ]
    # stop() writes the tail
    sizes = [json.loads(p.read_bytes())["total_records"] for p in batch_files(tmp_path)]
    assert sizes == [10, 10, 5]


def test_interval_flush(tmp_path: Path) -> None:
    with make_log(tmp_path, flush_interval_seconds=0.05, max_batch_size=1000) as log:
        log.record_operation_nowait("t", "n", 1.0)
        wait_for(lambda: log.stats().total_persisted == 1)
        assert len(batch_files(tmp_path)) == 1


def test_batch_file_format(tmp_path: Path) -> None:
    with make_log(tmp_path) as log:
        log.record_operation_nowait(
            "api_request",
            "GET /api/users",
            42.5,
            metadata={"status_code": 200, "region": "us-east"},
        )
        log.record_operation_nowait("api_request", "GET /x", 3, False, "boom")
    (path,) = batch_files(tmp_path)
    doc = json.loads(path.read_bytes())
    assert list(doc) == ["records", "batch_timestamp", "batch_id", "total_records"]
    assert path.name == f"metrics_{doc['batch_id']}.json"
    assert doc["total_records"] == 2
    stamp = datetime.fromisoformat(doc["batch_timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert stamp.strftime("%Y%m%d_%H%M%S_%f") == doc["batch_id"]
    first, second = doc["records"]
    assert first == {
        "operation_type": "api_request",
        "operation_name": "GET /api/users",
        "duration_ms": 42.5,
        "timestamp": first["timestamp"],
        "success": True,
        "error_message": None,
        "metadata": {"status_code": 200, "region": "us-east"},
    }
    assert datetime.fromisoformat(first["timestamp"]) <= stamp
    assert second["success"] is False and second["error_message"] == "boom"
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_batch_ids_unique_within_one_microsecond(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time_ns", lambda: 1_765_872_000_000_000_000)
    ids = BatchIds()
    got = [ids.next()[0] for _ in range(1000)]
    assert len(set(got)) == 1000 and got == sorted(got)
    assert got[0] == "20251216_080000_000000" and got[1] == "20251216_080000_000001"


def test_many_files_in_a_burst_have_distinct_names(tmp_path: Path) -> None:
    with make_log(tmp_path, max_batch_size=1, max_queue_size=5000) as log:
        for i in range(500):
            log.record_operation_nowait("t", "n", float(i))
    files = batch_files(tmp_path)
    assert len(files) == 500
    assert [r["duration_ms"] for b in read_batches(tmp_path) for r in b.records] == [
        float(i) for i in range(500)
    ]


def test_write_atomic_leaves_no_partial_file_on_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        write_atomic(tmp_path / "missing", "metrics_x.json", b"{}")
    write_atomic(tmp_path, "metrics_x.json", b"{}")
    assert os.listdir(tmp_path) == ["metrics_x.json"]


def test_stale_temp_files_removed_on_start(tmp_path: Path) -> None:
    stale = tmp_path / ".metrics_20250101_000000_000000.json.12345.tmp"
    stale.write_bytes(b'{"records": [')
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("keep")
    with make_log(tmp_path):
        pass
    assert not stale.exists() and unrelated.exists()


# -- queue-full policies ---------------------------------------------------------------------


def test_drop_policy_counts(tmp_path: Path) -> None:
    reg = Registry(self_metrics=False)
    with make_log(
        tmp_path, reg, flush_interval_seconds=3600, max_batch_size=5, max_queue_size=5
    ) as log:
        log._writer._abandon = True  # type: ignore[union-attr]  # freeze the writer
        log._writer.wake()  # type: ignore[union-attr]
        wait_for(lambda: not log._writer.alive)  # type: ignore[union-attr]
        while log._buffer.pending:
            log._buffer.release(log._buffer.pending, log._buffer.pending_bytes)
        results = [log.record_operation_nowait("t", "n", 1.0) for _ in range(8)]
        assert results == [True] * 5 + [False] * 3
        stats = log.stats()
        assert (stats.total_recorded, stats.total_dropped, stats.queue_size) == (5, 3, 5)
        assert reg.get_sample_value("meterhub_oplog_dropped_total") == 3.0
        assert reg.get_sample_value("meterhub_oplog_queue_size") == 5.0
        # operations are counted even when the log had to drop them
        assert (
            reg.get_sample_value(
                "meterhub_operations_total", {"operation_type": "t", "success": "true"}
            )
            == 8.0
        )
        log._buffer.release(5, log._buffer.pending_bytes)


def _stall(log: OperationLog) -> threading.Event:
    """Make the writer block before its next file until the returned event is set."""
    from meterhub.oplog import writer as writer_module

    gate = threading.Event()
    real = writer_module.write_group

    def slow(*args: Any, **kwargs: Any) -> Any:
        gate.wait(30)
        return real(*args, **kwargs)

    log._test_restore = lambda: setattr(writer_module, "write_group", real)  # type: ignore[attr-defined]
    writer_module.write_group = slow  # type: ignore[assignment]
    return gate


def test_raise_policy(tmp_path: Path) -> None:
    log = make_log(
        tmp_path,
        flush_interval_seconds=3600,
        max_batch_size=2,
        max_queue_size=4,
        queue_full_policy="raise",
    )
    gate = _stall(log)
    try:
        with log:
            for _ in range(4):
                log.record_operation_nowait("t", "n", 1.0)
            with pytest.raises(QueueFullError, match="full"):
                log.record_operation_nowait("t", "n", 1.0)
            assert log.stats().total_dropped == 0
            gate.set()
    finally:
        gate.set()
        log._test_restore()  # type: ignore[attr-defined]
    assert log.stats().total_persisted == 4


async def test_block_policy_suspends_task_not_loop(tmp_path: Path) -> None:
    log = make_log(
        tmp_path,
        flush_interval_seconds=3600,
        max_batch_size=2,
        max_queue_size=2,
        queue_full_policy="block",
    )
    gate = _stall(log)
    try:
        await log.start()
        await log.record_operation("t", "n", 1.0)
        await log.record_operation("t", "n", 2.0)
        blocked = asyncio.create_task(log.record_operation("t", "n", 3.0))
        ticks = 0
        for _ in range(20):  # the loop keeps running while the task waits for space
            await asyncio.sleep(0.001)
            ticks += 1
        assert ticks == 20 and not blocked.done()
        with pytest.raises(QueueFullError, match="would block the event loop"):
            log.record_operation_nowait("t", "n", 4.0)
        gate.set()
        assert await asyncio.wait_for(blocked, 10) is True
        await log.stop()
    finally:
        gate.set()
        log._test_restore()  # type: ignore[attr-defined]
    stats = log.stats()
    assert (stats.total_recorded, stats.total_persisted, stats.total_dropped) == (3, 3, 0)


def test_block_policy_in_threads(tmp_path: Path) -> None:
    log = make_log(
        tmp_path,
        flush_interval_seconds=3600,
        max_batch_size=2,
        max_queue_size=2,
        queue_full_policy="block",
    )
    gate = _stall(log)
    done = threading.Event()
    try:
        log.start_sync()
        log.record_operation_nowait("t", "n", 1.0)
        log.record_operation_nowait("t", "n", 2.0)

        def third() -> None:
            log.record_operation_nowait("t", "n", 3.0)
            done.set()

        thread = threading.Thread(target=third)
        thread.start()
        assert not done.wait(0.05)
        gate.set()
        assert done.wait(10)
        thread.join()
        log.stop_sync()
    finally:
        gate.set()
        log._test_restore()  # type: ignore[attr-defined]
    assert log.stats().total_persisted == 3


# -- metrics ---------------------------------------------------------------------------------


def test_metrics_from_records(tmp_path: Path) -> None:
    reg = Registry(self_metrics=False)
    with make_log(tmp_path, reg) as log:
        log.record_operation_nowait("db", "SELECT 1", 1500.0)
        log.record_operation_nowait("db", "SELECT 2", 2.0, success=False, error_message="x")
        log.record_operation_nowait("api", "GET /", 20.0)
    get = reg.get_sample_value
    assert get("meterhub_operations_total", {"operation_type": "db", "success": "true"}) == 1
    assert get("meterhub_operations_total", {"operation_type": "db", "success": "false"}) == 1
    assert get("meterhub_operation_duration_seconds_count", {"operation_type": "db"}) == 2
    assert get("meterhub_operation_duration_seconds_sum", {"operation_type": "db"}) == 1.502
    assert get("meterhub_oplog_persisted_total") == 3
    assert get("meterhub_oplog_queue_size") == 0
    # operation names are not a label by default (they are unbounded)
    from meterhub.exposition import generate_latest

    assert b"SELECT" not in generate_latest(reg)


def test_operation_name_allow_list(tmp_path: Path) -> None:
    reg = Registry(self_metrics=False)
    with make_log(tmp_path, reg, operation_names=["GET /"]) as log:
        log.record_operation_nowait("api", "GET /", 1.0)
        log.record_operation_nowait("api", "GET /user/123", 1.0)
    get = reg.get_sample_value
    labels = {"operation_type": "api", "success": "true"}
    assert get("meterhub_operations_total", {**labels, "operation_name": "GET /"}) == 1
    assert get("meterhub_operations_total", {**labels, "operation_name": "__other__"}) == 1


def test_two_logs_share_metrics_on_one_registry(tmp_path: Path) -> None:
    reg = Registry(self_metrics=False)
    with make_log(tmp_path / "a", reg) as a, make_log(tmp_path / "b", reg) as b:
        a.record_operation_nowait("t", "n", 1.0)
        b.record_operation_nowait("t", "n", 1.0)
    assert reg.get_sample_value("meterhub_oplog_persisted_total") == 2


# -- reading back and retention --------------------------------------------------------------


def test_read_batches_since_and_summarize(tmp_path: Path) -> None:
    with make_log(tmp_path, max_batch_size=50, max_queue_size=1000) as log:
        for i in range(1, 101):
            log.record_operation_nowait("db", "q", float(i), success=i % 10 != 0)
        log.record_operation_nowait("api", "GET /", 5.0)
    batches = list(read_batches(tmp_path))
    assert sum(b.total_records for b in batches) == 101
    future = datetime.now(timezone.utc) + timedelta(days=1)
    assert list(read_batches(tmp_path, since=future)) == []
    assert len(list(read_batches(tmp_path, since=datetime(2000, 1, 1)))) == len(batches)
    summary = summarize(tmp_path)
    db = summary[("db", "q")]
    assert (db.count, db.errors, db.error_rate) == (100, 10, 0.1)
    assert (db.p50_ms, db.p95_ms, db.p99_ms, db.max_ms) == (50.0, 95.0, 99.0, 100.0)
    assert summary[("api", "GET /")].count == 1
    with pytest.raises(TypeError, match="since"):
        list(read_batches(tmp_path, since="yesterday"))  # type: ignore[arg-type]


def test_read_batches_rejects_foreign_files(tmp_path: Path) -> None:
    (tmp_path / "metrics_20250101_000000_000000.json").write_text('{"records": [')
    with pytest.raises(ValueError, match="not a valid operation-log batch file"):
        list(read_batches(tmp_path))


def test_cleanup_by_batch_time(tmp_path: Path) -> None:
    old = tmp_path / "metrics_20200101_000000_000000.json"
    old.write_text('{"records": [], "batch_timestamp": "", "batch_id": "", "total_records": 0}')
    with make_log(tmp_path) as log:
        log.record_operation_nowait("t", "n", 1.0)
    assert cleanup(tmp_path, older_than_days=30) == 1
    assert not old.exists() and len(batch_files(tmp_path)) == 1
    assert log.cleanup(older_than_days=30) == 0
    assert cleanup(tmp_path, 30, now=time.time() + 31 * 86400) == 1
    assert batch_files(tmp_path) == []
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            cleanup(tmp_path, bad)
    with pytest.raises(TypeError):
        cleanup(tmp_path, "30")  # type: ignore[arg-type]


def test_retention_days_applied_by_writer(tmp_path: Path) -> None:
    old = tmp_path / "metrics_20200101_000000_000000.json"
    old.write_text('{"records": [], "batch_timestamp": "", "batch_id": "", "total_records": 0}')
    with make_log(tmp_path, retention_days=7):
        wait_for(lambda: not old.exists())


def test_write_group_commits_a_prefix_in_order(tmp_path: Path) -> None:
    from meterhub.oplog.files import write_group

    files = [("metrics_a.json", b"1"), ("missing/metrics_b.json", b"2"), ("metrics_c.json", b"3")]
    committed, error = write_group(tmp_path, files, fsync=True)
    assert committed == 1 and isinstance(error, FileNotFoundError)
    assert sorted(os.listdir(tmp_path)) == ["metrics_a.json"]
    ok = [(f"metrics_{i}.json", b"x" * i) for i in range(5)]
    assert write_group(tmp_path, ok, fsync=True) == (5, None)
    assert (tmp_path / "metrics_4.json").read_bytes() == b"xxxx"


async def test_blocked_task_cancelled_and_stop_wakes_waiters(tmp_path: Path) -> None:
    log = make_log(
        tmp_path,
        flush_interval_seconds=3600,
        max_batch_size=1,
        max_queue_size=1,
        queue_full_policy="block",
    )
    gate = _stall(log)
    try:
        await log.start()
        await log.record_operation("t", "n", 1.0)
        cancelled = asyncio.create_task(log.record_operation("t", "n", 2.0))
        waiting = asyncio.create_task(log.record_operation("t", "n", 3.0))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert not waiting.done()
        stopping = asyncio.create_task(log.stop())
        # closing the buffer wakes the waiter: the log is no longer running
        with pytest.raises(RuntimeError, match="not running"):
            await asyncio.wait_for(waiting, 10)
        gate.set()
        await asyncio.wait_for(stopping, 10)
    finally:
        gate.set()
        log._test_restore()  # type: ignore[attr-defined]
    stats = log.stats()
    assert (stats.total_recorded, stats.total_persisted) == (1, 1)


def test_idle_writer_sleeps_instead_of_spinning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meterhub.oplog.writer import BatchWriter

    naps: list[float] = []
    real_sleep = BatchWriter._sleep

    def counting_sleep(self: BatchWriter, seconds: float) -> None:
        naps.append(seconds)
        real_sleep(self, seconds)

    monkeypatch.setattr(BatchWriter, "_sleep", counting_sleep)
    with make_log(tmp_path, flush_interval_seconds=3600):
        wait_for(lambda: len(naps) >= 1)
        threading.Event().wait(0.2)  # an idle log: the writer must stay asleep meanwhile
    assert len(naps) <= 3, f"the writer woke {len(naps)} times while idle"
    assert naps[0] > 3000


async def test_waiting_tasks_of_one_loop_are_woken_by_one_call() -> None:
    """Space made by the writer wakes every waiting task with one call into their loop
    (each call_soon_threadsafe is a system call, and a GIL hand-over)."""
    from meterhub.oplog.buffer import RecordBuffer

    buffer = RecordBuffer(1, 1, lambda: None, "block")
    buffer.open()
    assert buffer.offer(b"{}")
    tasks = [asyncio.create_task(buffer.put_async(b"{}")) for _ in range(20)]
    await asyncio.sleep(0.01)
    assert len(buffer._async_waiters) == 20
    loop = asyncio.get_running_loop()
    calls = 0
    original = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any) -> Any:
        nonlocal calls
        calls += getattr(callback, "__module__", "") == "meterhub.oplog.buffer"
        return original(callback, *args)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        for expected in range(1, 21):  # the writer frees one record at a time
            taken = await asyncio.to_thread(buffer.take, 1)
            await asyncio.to_thread(buffer.release, len(taken), sum(map(len, taken)))
            while sum(t.done() for t in tasks) < expected:
                await asyncio.sleep(0.001)
        assert all(t.result() is True for t in tasks)
        assert calls == 20  # one per release, not one per waiting task
    finally:
        loop.call_soon_threadsafe = original  # type: ignore[method-assign]
        buffer.close()
