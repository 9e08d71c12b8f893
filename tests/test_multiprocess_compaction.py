"""Dead-worker compaction: liveness by pid + start time, crash safety, damaged files."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import meterhub
from meterhub import Counter, Gauge, Histogram, Registry, generate_latest
from meterhub.multiprocess import MultiProcessCollector, compact_directory, mark_process_dead
from meterhub.store.mmap import MultiProcessStore
from meterhub.store.mmap.directory import process_start
from meterhub.store.mmap.format import HEADER, KIND_PROCESS, MAGIC, VERSION

ctx = multiprocessing.get_context("fork")


def _registry(path: Path) -> Registry:
    return Registry(store=MultiProcessStore(path), self_metrics=False)


def _sidecar(path: Path) -> Registry:
    reg = Registry(self_metrics=False)
    reg.register(MultiProcessCollector(path))
    return reg


def _db_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.endswith(".db"))


def _spawn_workers(path: Path, n: int, amount: float = 1.0) -> None:
    """n short-lived processes, each defining its own counter and incrementing it."""

    def work() -> None:
        reg = _registry(path)
        Counter("done", "Done.", ["k"], registry=reg).labels("a").inc(amount)
        Gauge("seen", "Seen.", registry=reg, multiprocess_mode="max").set(amount)
        os._exit(0)

    for _ in range(n):
        p = ctx.Process(target=work)
        p.start()
        p.join(30)
        assert p.exitcode == 0


def test_dead_workers_fold_into_one_archive_and_nothing_is_lost(tmp_path: Path) -> None:
    _spawn_workers(tmp_path, 30)
    assert len(_db_files(tmp_path)) == 30
    side = _sidecar(tmp_path)
    assert side.get_sample_value("done_total", {"k": "a"}) == 30
    assert _db_files(tmp_path) == ["archive_1.db"]
    _spawn_workers(tmp_path, 5, amount=2)
    assert side.get_sample_value("done_total", {"k": "a"}) == 40
    assert side.get_sample_value("seen") == 2
    assert _db_files(tmp_path) == ["archive_2.db"]
    assert side.get_sample_value("meterhub_multiprocess_compactions_total") == 2
    assert side.get_sample_value("meterhub_multiprocess_files_compacted_total") == 35


def test_mark_process_dead_compacts_that_worker(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    c = Counter("jobs", "Jobs.", registry=reg)

    def child() -> None:
        c.inc(3)
        os._exit(0)

    p = ctx.Process(target=child)
    p.start()
    p.join(30)
    assert p.pid is not None
    assert mark_process_dead(p.pid, tmp_path) == 1
    assert mark_process_dead(p.pid, tmp_path) == 0  # idempotent
    assert mark_process_dead(os.getpid(), tmp_path) == 0  # alive: left alone
    assert len(_db_files(tmp_path)) == 2  # this process + the archive
    assert reg.get_sample_value("jobs_total") == 3


def test_a_recycled_pid_does_not_keep_a_dead_file_alive(tmp_path: Path) -> None:
    _spawn_workers(tmp_path, 1, amount=7)
    (dead,) = _db_files(tmp_path)
    me, start = os.getpid(), process_start(os.getpid())
    assert start is not None
    # Same pid as a running process (this one), another start time: a recycled pid.
    os.rename(tmp_path / dead, tmp_path / f"p_{me}_{start + 1}.db")
    assert compact_directory(tmp_path) == 1
    assert _sidecar(tmp_path).get_sample_value("done_total", {"k": "a"}) == 7
    # The same file name with the true start time is this live process: never compacted.
    _spawn_workers(tmp_path, 1, amount=1)
    (fresh,) = [n for n in _db_files(tmp_path) if n.startswith("p_")]
    os.rename(tmp_path / fresh, tmp_path / f"p_{me}_{start}.db")
    assert compact_directory(tmp_path) == 0
    assert f"p_{me}_{start}.db" in _db_files(tmp_path)


@pytest.mark.parametrize(
    "damage",
    ["garbage", "truncated", "empty", "bad_record", "used_beyond_end"],
)
def test_a_damaged_file_is_moved_aside_and_the_scrape_succeeds(tmp_path: Path, damage: str) -> None:
    _spawn_workers(tmp_path, 2, amount=5)
    victim = tmp_path / _db_files(tmp_path)[0]
    data = bytearray(victim.read_bytes())
    if damage == "garbage":
        data[:64] = os.urandom(64)
    elif damage == "truncated":
        data = data[:40]
    elif damage == "empty":
        data = bytearray()
    elif damage == "bad_record":
        data[64:72] = b"\x03\x00\x00\x00\x02\x00\x00\x00"  # a record length of 3
    else:
        data[32:40] = (10**9).to_bytes(8, "little")
    victim.write_bytes(bytes(data))
    side = _sidecar(tmp_path)
    assert side.get_sample_value("done_total", {"k": "a"}) == 5
    assert side.get_sample_value("meterhub_multiprocess_files_corrupt_total") == 1
    assert (tmp_path / "corrupt" / victim.name).exists()


def test_a_damaged_archive_is_moved_aside_too(tmp_path: Path) -> None:
    _spawn_workers(tmp_path, 2)
    compact_directory(tmp_path)
    (tmp_path / "archive_1.db").write_bytes(b"MHUBMMAP" + b"\xff" * 30)
    _spawn_workers(tmp_path, 1, amount=4)
    side = _sidecar(tmp_path)
    assert side.get_sample_value("done_total", {"k": "a"}) == 4
    assert side.get_sample_value("meterhub_multiprocess_files_corrupt_total") == 1


def test_foreign_files_in_the_directory_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("not ours")
    (tmp_path / "counter_123.db").write_bytes(b"prometheus_client's file")
    _spawn_workers(tmp_path, 1)
    assert _sidecar(tmp_path).get_sample_value("done_total", {"k": "a"}) == 1


CRASHER = textwrap.dedent(
    """
    import os, sys
    from meterhub.store.mmap import directory as _mmdir
    step = sys.argv[2]
    seen = []
    def failpoint(name):
        seen.append(name)
        if name == step and (name != "after_unlink" or len(seen) > 3):
            os._exit(17)
    _mmdir._failpoint = failpoint
    _mmdir.compact(sys.argv[1])
    os._exit(0)
    """
)


@pytest.mark.parametrize("step", ["before_fsync", "before_commit", "after_commit", "after_unlink"])
def test_a_crash_at_any_step_of_compaction_neither_loses_nor_double_counts(
    tmp_path: Path, step: str
) -> None:
    d = tmp_path / "mp"
    _spawn_workers(d, 4)
    compact_directory(d)  # an archive (generation 1) to merge into
    _spawn_workers(d, 6, amount=10)
    script = tmp_path / "crash.py"
    script.write_text(CRASHER)
    proc = subprocess.run([sys.executable, str(script), str(d), step], timeout=60)
    assert proc.returncode == 17
    side = _sidecar(d)
    assert side.get_sample_value("done_total", {"k": "a"}) == 64
    # And the directory converges back to one archive.
    assert side.get_sample_value("done_total", {"k": "a"}) == 64
    assert [n for n in _db_files(d) if n.startswith("archive")] in (
        ["archive_2.db"],
        ["archive_3.db"],
    )
    assert not [n for n in os.listdir(d) if n.endswith((".part", ".tmp"))]


def test_histograms_and_exemplars_survive_compaction(tmp_path: Path) -> None:
    def work() -> None:
        h = Histogram("h", "H.", buckets=(1.0, 2.0), registry=_registry(tmp_path))
        h.observe(1.5, exemplar={"trace_id": "t"})
        os._exit(0)

    for _ in range(3):
        p = ctx.Process(target=work)
        p.start()
        p.join(30)
    compact_directory(tmp_path)
    fam = next(f for f in _sidecar(tmp_path).collect() if f.name == "h")
    series = fam.series[0]
    assert series.values == (4.5, 0.0, 3.0, 3.0)
    ex = series.exemplars[1]
    assert ex is not None and ex.labels == {"trace_id": "t"}


def test_compaction_needs_no_write_access_to_live_files(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    Counter("mine", "Mine.", registry=reg).inc()
    assert compact_directory(tmp_path) == 0
    shutil.rmtree(tmp_path / "corrupt", ignore_errors=True)
    assert reg.get_sample_value("mine_total") == 1


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(min_size=0, max_size=600), used=st.integers(min_value=0, max_value=2000))
def test_any_garbage_after_a_valid_header_never_breaks_a_scrape(
    tmp_path: Path, body: bytes, used: int
) -> None:
    """Fuzz the record parser: a file is either read or moved aside, never an exception."""
    d = tmp_path / f"f{abs(hash((body, used)))}"
    d.mkdir()
    header = HEADER.pack(MAGIC, VERSION, KIND_PROCESS, 1, 1, 64 + used, 0, 0, 0)
    data = header + body
    data += b"\0" * (-len(data) % 8)
    (d / "p_999999999_1.db").write_bytes(data)
    reg = Registry(self_metrics=False)
    reg.register(MultiProcessCollector(d))
    text = generate_latest(reg)
    assert b"meterhub_multiprocess_files_corrupt_total" in text


def test_created_is_the_earliest_across_processes(tmp_path: Path) -> None:
    meterhub.configure(strict=True, created=True)
    reg = _registry(tmp_path)
    c = Counter("born", "Born.", ["k"], registry=reg)
    c.labels("a").inc()
    parent_created = reg.get_sample_value("born_created", {"k": "a"})

    def child() -> None:
        c.labels("a").inc()
        os._exit(0)

    p = ctx.Process(target=child)
    p.start()
    p.join(30)
    assert reg.get_sample_value("born_total", {"k": "a"}) == 2
    assert reg.get_sample_value("born_created", {"k": "a"}) == parent_created


def test_mark_process_dead_outside_multiprocess_mode_does_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # one gunicorn.conf.py (child_exit -> mark_process_dead) serves both modes
    import meterhub

    monkeypatch.delenv("METERHUB_MULTIPROC_DIR", raising=False)
    meterhub.reset_defaults()
    assert mark_process_dead(123) == 0
    with pytest.raises(ValueError, match="positive int"):
        mark_process_dead(0)
