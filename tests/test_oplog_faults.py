"""Failures around the writer: SIGKILL, full disk, read-only and vanished directories."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from meterhub import Registry
from meterhub.oplog import OperationLog, read_batches
from meterhub.oplog.files import encode_record

SRC = str(Path(__file__).resolve().parents[1] / "src")


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.005)


def run_child(code: str, *, timeout: float = 60) -> str:
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_sigkill_loses_at_most_the_buffer_and_leaves_no_partial_batch(tmp_path: Path) -> None:
    child = textwrap.dedent(
        f"""
        from meterhub import Registry
        from meterhub.oplog import OperationLog
        log = OperationLog({str(tmp_path)!r}, flush_interval_seconds=0.02, max_batch_size=100,
                           max_queue_size=1000, queue_full_policy="block",
                           registry=Registry(self_metrics=False))
        log.start_sync()
        i = 0
        while True:
            log.record_operation_nowait("kill", "seq", 1.0, metadata={{"seq": i}})
            i += 1
            if i % 50 == 0:
                print(i, log.stats().total_persisted, flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert proc.stdout is not None
    recorded = persisted_seen = 0
    try:
        for line in proc.stdout:
            recorded, persisted_seen = map(int, line.split())
            if persisted_seen >= 3000:
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        rest = proc.communicate(timeout=30)[0]
    for line in rest.splitlines():
        recorded, persisted_seen = map(int, line.split())
    assert proc.returncode == -signal.SIGKILL
    assert persisted_seen >= 3000, "the child never got going"

    seqs: list[int] = []
    for batch in read_batches(tmp_path):  # every visible batch file parses
        assert 0 < batch.total_records <= 100
        seqs.extend(r["metadata"]["seq"] for r in batch.records)
    # a gap-free prefix, nothing twice, at least what the child saw persisted
    assert seqs == list(range(len(seqs)))
    assert len(seqs) >= persisted_seen
    # what was lost is at most what the bounded buffer held
    assert recorded - len(seqs) <= 1000

    # the next log takes the directory over (the kernel dropped the lock) and sweeps temp files
    with OperationLog(tmp_path, registry=Registry(self_metrics=False)):
        pass
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_disk_full_then_space_returns(tmp_path: Path) -> None:
    out = run_child(
        f"""
        import json, resource, signal, time
        from meterhub import Registry
        from meterhub.oplog import OperationLog

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a failed write returns EFBIG instead
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        log = OperationLog({str(tmp_path)!r}, flush_interval_seconds=0.02, max_batch_size=10,
                           max_queue_size=100, max_backoff_seconds=0.05,
                           registry=Registry(self_metrics=False))
        log.start_sync()
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))     # the disk is full
        for i in range(50):
            log.record_operation_nowait("disk", "full", 1.0, metadata={{"seq": i}})
        deadline = time.monotonic() + 20
        while log.stats().write_errors < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        during = log.stats()
        accepted = [log.record_operation_nowait("disk", "full", 1.0, metadata={{"seq": 50 + i}})
                    for i in range(60)]
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space returns
        while log.stats().total_persisted < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        log.stop_sync()
        after = log.stats()
        print(json.dumps({{"errors": during.write_errors,
                          "persisted_during": during.total_persisted,
                          "queue_during": during.queue_size, "accepted": sum(accepted),
                          "persisted": after.total_persisted, "dropped": after.total_dropped,
                          "last_error": after.last_error}}))
        """
    )
    result = json.loads(out)
    assert result["errors"] >= 3
    assert result["persisted_during"] == 0 and result["queue_during"] == 50
    assert result["accepted"] == 50  # buffer bound: 100 records held in memory at most
    assert result["persisted"] == 100 and result["dropped"] == 10
    assert "File too large" in result["last_error"]
    seqs = [r["metadata"]["seq"] for b in read_batches(tmp_path) for r in b.records]
    assert seqs == list(range(100))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def _set_read_only(path: Path, read_only: bool) -> None:
    """chmod for ordinary users; root ignores permissions, so it gets the immutable flag."""
    if os.geteuid() != 0:
        path.chmod(0o555 if read_only else 0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("running as root without chattr: cannot make a directory read-only")
    proc = subprocess.run([chattr, "+i" if read_only else "-i", str(path)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"chattr cannot make {path} immutable here: {proc.stderr.decode().strip()}")


def test_read_only_directory_then_writable_again(tmp_path: Path) -> None:
    store = tmp_path / "ops"
    log = OperationLog(
        store,
        flush_interval_seconds=0.02,
        max_batch_size=10,
        max_queue_size=100,
        max_backoff_seconds=0.05,
        registry=Registry(self_metrics=False),
    )
    log.start_sync()
    try:
        _set_read_only(store, True)
        try:
            for i in range(30):
                log.record_operation_nowait("ro", "dir", 1.0, metadata={"seq": i})
            wait_for(lambda: log.stats().write_errors >= 2)
            during = log.stats()
        finally:
            _set_read_only(store, False)
        assert during.total_persisted == 0 and during.queue_size == 30
        assert during.last_error is not None and "PermissionError" in during.last_error
    finally:
        log.stop_sync()
    assert log.stats().total_persisted == 30
    seqs = [r["metadata"]["seq"] for b in read_batches(store) for r in b.records]
    assert seqs == list(range(30))


def test_vanished_directory_is_retried_and_metrics_count_failures(tmp_path: Path) -> None:
    reg = Registry(self_metrics=False)
    store = tmp_path / "ops"
    log = OperationLog(
        store,
        flush_interval_seconds=0.02,
        max_batch_size=5,
        max_backoff_seconds=0.05,
        registry=reg,
        fsync=False,
    )
    log.start_sync()
    moved = tmp_path / "moved"
    store.rename(moved)
    for i in range(12):
        assert log.record_operation_nowait("gone", "dir", 1.0, metadata={"seq": i})
    wait_for(lambda: log.stats().write_errors >= 2)
    assert log.stats().total_persisted == 0 and log.stats().queue_size == 12
    assert reg.get_sample_value("meterhub_oplog_write_errors_total") >= 2
    moved.rename(store)
    wait_for(lambda: log.stats().total_persisted == 12)
    log.stop_sync()
    assert [r["metadata"]["seq"] for b in read_batches(store) for r in b.records] == list(range(12))
    assert reg.get_sample_value("meterhub_oplog_persisted_total") == 12


async def test_stop_times_out_when_the_disk_never_recovers(tmp_path: Path) -> None:
    store = tmp_path / "ops"
    log = OperationLog(
        store,
        flush_interval_seconds=0.02,
        max_backoff_seconds=0.05,
        registry=Registry(self_metrics=False),
        fsync=False,
    )
    await log.start()
    store.rename(tmp_path / "elsewhere")
    for _ in range(7):
        await log.record_operation("never", "written", 1.0)
    with pytest.raises(TimeoutError, match="7 records were abandoned"):
        await log.stop(timeout=0.3)
    stats = await log.get_stats()
    assert stats.total_abandoned == 7 and stats.queue_size == 0 and not stats.is_running


def test_interpreter_exit_flushes_a_running_log(tmp_path: Path) -> None:
    run_child(
        f"""
        from meterhub import Registry
        from meterhub.oplog import OperationLog
        log = OperationLog({str(tmp_path)!r}, flush_interval_seconds=3600,
                           registry=Registry(self_metrics=False))
        log.start_sync()
        for i in range(42):
            log.record_operation_nowait("exit", "flush", 1.0, metadata={{"seq": i}})
        # no stop(): the process just ends
        """
    )
    seqs = [r["metadata"]["seq"] for b in read_batches(tmp_path) for r in b.records]
    assert seqs == list(range(42))


def test_works_without_orjson(tmp_path: Path) -> None:
    out = run_child(
        f"""
        import sys
        sys.modules["orjson"] = None  # as if the optional dependency were not installed
        from meterhub import Registry
        from meterhub.oplog import OperationLog, have_orjson, read_batches
        assert not have_orjson()
        with OperationLog({str(tmp_path)!r}, registry=Registry(self_metrics=False)) as log:
            log.record_operation_nowait("std", "json", 1.5, metadata={{"é": ["\\ud800", 1]}})
        (batch,) = read_batches({str(tmp_path)!r})
        print(batch.records[0]["metadata"] == {{"é": ["\\ud800", 1]}})
        """
    )
    assert out.strip() == "True"


def test_byte_budget_bounds_memory_while_the_directory_is_unwritable(tmp_path: Path) -> None:
    """20 records of 10 MB each while nothing can be written: the per-record limit refuses
    them with a clear error (before encoding them), and under a larger record limit the
    byte budget drops and counts what does not fit: memory held stays at the budget."""
    import tracemalloc

    from meterhub.errors import RecordingError

    store, moved = tmp_path / "ops", tmp_path / "moved"
    big = "x" * (10 << 20)
    log = OperationLog(
        store, flush_interval_seconds=0.02, max_backoff_seconds=0.05, registry=None, fsync=False
    )
    log.start_sync()
    store.rename(moved)  # the directory is gone: every write fails
    tracemalloc.start()
    try:
        assert log.max_record_bytes == 1 << 20 and log.max_queue_bytes == 64 << 20  # defaults
        for _ in range(20):
            with pytest.raises(RecordingError, match="max_record_bytes"):
                log.record_operation_nowait("big", "upload", 1.0, metadata={"blob": big})
        with pytest.raises(RecordingError, match="max_record_bytes"):  # a known-clean key
            log.record_operation_nowait("big", "upload", 1.0, metadata={"path": big})
        _, peak = tracemalloc.get_traced_memory()
        assert log.stats().queue_bytes == 0
    finally:
        tracemalloc.stop()
        moved.rename(store)
        log.stop_sync()
    assert peak < 4 << 20, f"peak {peak >> 20} MiB"

    log = OperationLog(
        store,
        flush_interval_seconds=0.02,
        max_backoff_seconds=0.05,
        registry=None,
        fsync=False,
        max_queue_bytes=32 << 20,
        max_record_bytes=16 << 20,
    )
    # One record's encoding on its own: orjson reserves many times a string's length for a
    # moment (132 MiB for this 10 MiB string under tracemalloc), whatever the budget.
    tracemalloc.start()
    try:
        encode_record({"metadata": {"blob": big}})
        _, one_record = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    log.start_sync()
    store.rename(moved)
    tracemalloc.start()
    try:
        results = [
            log.record_operation_nowait("big", "upload", 1.0, metadata={"blob": big})
            for _ in range(20)
        ]
        wait_for(lambda: log.stats().write_errors >= 2)
        _, peak = tracemalloc.get_traced_memory()
        # What the log holds: its queue and the writer's backlog (tracemalloc's current
        # total would also count other threads of the test run, e.g. writers of logs that
        # earlier tests left retrying, and this writer's transient retry buffers).
        assert log._writer is not None
        backlog = [r for batch in log._writer._backlog for r in batch]
        held = sum(map(len, log._queue)) + sum(map(len, backlog))
    finally:
        tracemalloc.stop()
        moved.rename(store)
    assert results == [True] * 3 + [False] * 17
    stats = log.stats()
    assert stats.total_dropped == 17 and 30 << 20 < stats.queue_bytes <= 32 << 20
    assert held < 34 << 20, f"held {held >> 20} MiB"
    # Without the budget 200 MiB would be held on top of one record's encoding. With it the
    # peak is that encoding plus the budget, the writer's joined retry batch and whatever
    # other threads of the run allocate meanwhile: bounded by four budgets, well under 200.
    assert peak < one_record + 4 * (32 << 20), f"peak {peak >> 20} MiB, one {one_record >> 20}"
    log.stop_sync()
    assert log.stats().total_persisted == 3


def test_byte_budget_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import meterhub

    monkeypatch.setenv("METERHUB_OPLOG_MAX_BYTES", "4096")
    monkeypatch.setenv("METERHUB_OPLOG_MAX_RECORD_BYTES", "512")
    meterhub.reset_defaults()
    try:
        log = OperationLog(tmp_path, registry=None, fsync=False)
        assert (log.max_queue_bytes, log.max_record_bytes) == (4096, 512)
        with pytest.raises(ValueError, match="must not exceed"):
            OperationLog(tmp_path, registry=None, max_record_bytes=8192)
    finally:
        monkeypatch.undo()
        meterhub.reset_defaults()
