"""The multi-process store with real processes: exactness, fork safety, SIGKILL, growth."""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import meterhub
from meterhub import Counter, Histogram, Registry, Summary, generate_latest
from meterhub.multiprocess import MultiProcessCollector, mark_process_dead
from meterhub.store import default_store
from meterhub.store.mmap import MultiProcessStore

ctx = multiprocessing.get_context("fork")


def _registry(path: Path) -> Registry:
    return Registry(store=MultiProcessStore(path), self_metrics=False)


def _sidecar(path: Path) -> Registry:
    reg = Registry(self_metrics=False)
    reg.register(MultiProcessCollector(path))
    return reg


def _run(target: Any, *args: Any, n: int = 1) -> None:
    procs = [ctx.Process(target=target, args=args) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0


def test_env_var_selects_the_store_in_one_place(tmp_path: Path) -> None:
    meterhub.configure(strict=True, multiproc_dir=str(tmp_path))
    store = default_store()
    assert isinstance(store, MultiProcessStore)
    assert store.directory == str(tmp_path)


def test_files_are_created_lazily_and_named_by_pid(tmp_path: Path) -> None:
    store = MultiProcessStore(tmp_path)
    assert store.path is None and not list(tmp_path.glob("*.db"))
    reg = Registry(store=store, self_metrics=False)
    Counter("c", "C.", registry=reg).inc()
    assert store.path is not None
    assert Path(store.path).name.startswith(f"p_{os.getpid()}_")


def test_16_processes_x_100k_increments_are_exact(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    c = Counter("hits", "Hits.", ["route", "code"], registry=reg)
    children = [c.labels("/a", "200"), c.labels("/b", "500")]

    def work() -> None:
        a, b = children
        for _ in range(50_000):
            a.inc()
            b.inc()
        os._exit(0)

    _run(work, n=16)
    assert reg.get_sample_value("hits_total", {"route": "/a", "code": "200"}) == 800_000
    assert reg.get_sample_value("hits_total", {"route": "/b", "code": "500"}) == 800_000


def test_fork_after_metrics_exist_never_double_counts(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    c = Counter("jobs", "Jobs.", registry=reg)
    h = Histogram("lat", "Latency.", buckets=(1.0,), registry=reg)
    s = Summary("size", "Size.", registry=reg)
    c.inc(5)
    h.observe(0.5)
    s.observe(10)

    def child() -> None:
        c.inc()  # the bound method of a child created before the fork
        h.observe(2.0)
        s.observe(1)

    _run(child, n=3)
    assert reg.get_sample_value("jobs_total") == 8
    assert reg.get_sample_value("lat_count") == 4
    assert reg.get_sample_value("lat_bucket", {"le": "1.0"}) == 1
    assert reg.get_sample_value("size_sum") == 13
    # The parent kept recording into its own cells after the children left.
    c.inc()
    assert reg.get_sample_value("jobs_total") == 9


def test_sigkill_keeps_every_increment_that_returned(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    c = Counter("work", "Work.", registry=reg)
    progress = ctx.RawValue("q", 0)

    def child() -> None:
        n = 0
        while True:
            c.inc()
            n += 1
            progress.value = n

    p = ctx.Process(target=child)
    p.start()
    deadline = time.monotonic() + 30
    while progress.value < 20_000 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.pid is not None
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    assert p.exitcode == -signal.SIGKILL
    returned = progress.value
    total = reg.get_sample_value("work_total")
    assert total is not None and returned <= total <= returned + 1
    assert mark_process_dead(p.pid, tmp_path) in (0, 1)
    assert reg.get_sample_value("work_total") == total


def test_many_series_grow_the_file_by_segments_without_moving_cells(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    c = Counter("wide", "Wide.", ["i"], registry=reg)
    first = c.labels("0")
    for i in range(3000):
        c.labels(str(i)).inc(i)
    first.inc(7)  # a cell created before the file grew is still live
    assert reg.get_sample_value("wide_total", {"i": "0"}) == 7
    assert reg.get_sample_value("wide_total", {"i": "2999"}) == 2999
    assert os.path.getsize(reg.store.path) > 65536  # type: ignore[attr-defined]


def test_remove_and_clear_drop_this_process_contribution(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    c = Counter("r", "R.", ["k"], registry=reg)
    c.labels("a").inc(3)
    c.labels("b").inc(4)

    def child() -> None:
        c.labels("a").inc(10)

    _run(child)
    c.remove("a")
    assert reg.get_sample_value("r_total", {"k": "a"}) == 10  # the dead child's part stays
    c.labels("a").inc()
    assert reg.get_sample_value("r_total", {"k": "a"}) == 11
    c.clear()
    assert reg.get_sample_value("r_total", {"k": "b"}) is None
    c.labels("b").inc(2)
    assert reg.get_sample_value("r_total", {"k": "b"}) == 2


def test_exemplars_last_one_persists_across_processes(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    h = Histogram("ex", "Ex.", buckets=(1.0,), registry=reg)
    c = Counter("exc", "Exc.", registry=reg)
    h.observe(0.5, exemplar={"trace_id": "parent"})

    def child() -> None:
        h.observe(0.7, exemplar={"trace_id": "child"})
        c.inc(1, exemplar={"trace_id": 'ü\n"x\\'})

    _run(child)
    fam = {f.name: f for f in reg.collect()}
    bucket = fam["ex"].series[0].exemplars[0]
    assert bucket is not None and bucket.labels == {"trace_id": "child"} and bucket.value == 0.7
    ex = fam["exc"].series[0].exemplars[0]
    assert ex is not None and ex.labels == {"trace_id": 'ü\n"x\\'}
    # Still there after the child's file was compacted into the archive.
    fam = {f.name: f for f in _sidecar(tmp_path).collect()}
    assert fam["exc"].series[0].exemplars[0] == ex


def test_sidecar_without_definitions_renders_everything(tmp_path: Path) -> None:
    def child() -> None:
        reg = _registry(tmp_path)
        c = Counter("side", "Side help.", ["k"], namespace="app", registry=reg)
        c.labels('q"u\\o\nte').inc(2)
        Histogram("hist", "H.", buckets=(0.5,), registry=reg).observe(0.1)
        os._exit(0)

    _run(child, n=2)
    text = generate_latest(_sidecar(tmp_path)).decode()
    assert "# HELP app_side_total Side help." in text
    assert 'app_side_total{k="q\\"u\\\\o\\nte"} 4.0' in text or (
        'app_side_total{k="q\\"u\\\\o\\nte"} 4' in text
    )
    assert 'hist_bucket{le="0.5"} 2' in text


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.text(max_size=40), amount=st.floats(min_value=0, max_value=1e12))
def test_hostile_label_values_round_trip_through_files(
    tmp_path: Path, value: str, amount: float
) -> None:
    path = tmp_path / f"h{abs(hash((value, amount)))}"
    reg = _registry(path)
    c = Counter("hostile", "H.", ["v"], registry=reg)
    c.labels(value).inc(amount)
    side = _sidecar(path)
    assert side.get_sample_value("hostile_total", {"v": value}) == amount
    assert reg.get_sample_value("hostile_total", {"v": value}) == amount


def test_nan_and_inf_are_refused_or_kept_as_in_local_mode(tmp_path: Path, lenient: None) -> None:
    reg = _registry(tmp_path)
    c = Counter("inf", "I.", registry=reg)
    c.inc(math.inf)
    c.inc(math.nan)  # refused and counted, as with the local store
    assert reg.get_sample_value("inf_total") == math.inf


@pytest.mark.parametrize("bad", ["", 3, None])
def test_bad_directory_is_refused(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        MultiProcessStore(bad)


@pytest.mark.parametrize("bad", ["12", -1, 0, 1.5, True, None])
def test_mark_process_dead_refuses_bad_pids(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(ValueError):
        mark_process_dead(bad, tmp_path)


def test_mark_process_dead_needs_a_directory(tmp_path: Path) -> None:
    # without multi-process mode it does nothing (one gunicorn.conf.py for both modes)
    assert mark_process_dead(12345) == 0
    with pytest.raises(ValueError, match="does not exist"):
        mark_process_dead(12345, tmp_path / "missing")


def test_a_full_disk_never_crashes_recording(tmp_path: Path) -> None:
    """The file size limit stands in for a full disk: growth fails with an OSError (the
    blocks are reserved up front), recording goes on, the series already there are kept."""
    reg = _registry(tmp_path)
    c = Counter("full", "Full.", ["i"], registry=reg)

    def child() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        for i in range(5000):  # far beyond one 64 KiB segment
            c.labels(str(i)).inc()
        c.labels("0").inc()
        os._exit(0)

    _run(child)
    assert reg.get_sample_value("full_total", {"i": "0"}) == 2
    assert reg.get_sample_value("full_total", {"i": "4999"}) is None


def test_one_shot_collections_leak_no_descriptors(tmp_path: Path) -> None:
    from meterhub.multiprocess import collect_directory

    reg = _registry(tmp_path)
    Counter("fds", "Fds.", registry=reg).inc()
    _run(lambda: Counter("fds", "Fds.", registry=_registry(tmp_path)).inc() or os._exit(0))
    list(collect_directory(tmp_path))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        families = {f.name: f for f in collect_directory(tmp_path)}
        assert families["fds"].series[0].values == (2.0,)
    assert len(os.listdir("/proc/self/fd")) <= before + 2


def test_concurrent_scrapes_and_recording_threads_agree(tmp_path: Path) -> None:
    import threading

    reg = _registry(tmp_path)
    c = Counter("threads", "Threads.", ["i"], registry=reg)
    side = _sidecar(tmp_path)
    errors: list[BaseException] = []

    def record() -> None:
        for n in range(3000):
            c.labels(str(n % 300)).inc()  # new series keep growing the file meanwhile

    def scrape() -> None:
        try:
            for _ in range(30):
                generate_latest(side)
                generate_latest(reg)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=record) for _ in range(2)]
    threads += [threading.Thread(target=scrape) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    total = sum(s.value for f in side.collect() if f.name == "threads" for s in f.samples)
    assert total == 6000
