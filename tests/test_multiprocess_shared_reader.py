"""Collectors made per request share the process's reader of their directory, and each
one still sees the directory as it is now: new processes and series, dead workers
compacted, removed series, a directory removed and made again, a fork, eviction."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path

import pytest

from meterhub import Counter, Registry, generate_latest
from meterhub.multiprocess import MultiProcessCollector, collect_directory, mark_process_dead
from meterhub.store.mmap import MultiProcessStore
from meterhub.store.mmap import collector as mp_collector
from meterhub.store.mmap.view import _key

ctx = multiprocessing.get_context("fork")


def _request(path: Path | str) -> Registry:
    """What docs/multiprocess.md's view does on every scrape."""
    reg = Registry(self_metrics=False)
    reg.register(MultiProcessCollector(path))
    return reg


def _worker(path: Path, name: str, series: int, amount: float) -> int:
    def work() -> None:
        c = Counter(name, "Work.", ["i"], registry=Registry(store=MultiProcessStore(path)))
        for i in range(series):
            c.labels(str(i)).inc(amount)
        os._exit(0)

    p = ctx.Process(target=work)
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert p.pid is not None
    return p.pid


def _total(reg: Registry, name: str) -> float:
    return sum(
        s.value
        for f in reg.collect()
        if f.name == name
        for s in f.samples
        if s.name.endswith("_total")
    )


def test_collectors_of_one_directory_share_its_reader(tmp_path: Path) -> None:
    link = tmp_path.parent / (tmp_path.name + "-link")
    link.symlink_to(tmp_path)
    try:
        a, b, c = (MultiProcessCollector(p) for p in (tmp_path, tmp_path, link))
        assert a._store is b._store is c._store
    finally:
        link.unlink()


def test_each_request_sees_the_directory_as_it_is_now(tmp_path: Path) -> None:
    _worker(tmp_path, "jobs", 100, 1.0)
    assert _total(_request(tmp_path), "jobs") == 100
    dead = _worker(tmp_path, "jobs", 200, 2.0)  # a new process, new series
    assert _total(_request(tmp_path), "jobs") == 100 + 400
    mark_process_dead(dead, tmp_path)  # compacted into the archive between requests
    assert _total(_request(tmp_path), "jobs") == 500
    _worker(tmp_path, "other", 3, 1.0)  # a metric only a new process defines
    text = generate_latest(_request(tmp_path)).decode()
    assert 'other_total{i="2"} 1' in text and 'jobs_total{i="199"} 2' in text
    # our own writer's removal shows to the next request too
    reg = Registry(store=MultiProcessStore(tmp_path), self_metrics=False)
    mine = Counter("mine", "Mine.", ["k"], registry=reg)
    mine.labels("a").inc()
    mine.labels("b").inc()
    assert _total(_request(tmp_path), "mine") == 2
    mine.remove("a")
    assert _total(_request(tmp_path), "mine") == 1

    def metrics(families: object) -> list[object]:  # the self-metrics' timings differ
        return [f for f in families if not f.name.startswith("meterhub_")]  # type: ignore[attr-defined]

    assert metrics(collect_directory(tmp_path)) == metrics(_request(tmp_path).collect())


def test_a_directory_removed_and_made_again(tmp_path: Path) -> None:
    d = tmp_path / "mp"
    d.mkdir()
    _worker(d, "jobs", 10, 1.0)
    assert _total(_request(d), "jobs") == 10
    shutil.rmtree(d)
    d.mkdir()
    _worker(d, "jobs", 3, 5.0)
    assert _total(_request(d), "jobs") == 15


def test_a_forked_child_reads_afresh_and_the_parent_goes_on(tmp_path: Path) -> None:
    _worker(tmp_path, "jobs", 50, 1.0)
    assert _total(_request(tmp_path), "jobs") == 50
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            _worker(tmp_path, "jobs", 50, 1.0)  # a grandchild adds 50 more
            out = {"total": _total(_request(tmp_path), "jobs")}
            os.write(w, json.dumps(out).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        got = json.loads(f.read())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert got == {"total": 100}
    assert _total(_request(tmp_path), "jobs") == 100


def test_evicted_and_closed_readers_open_their_files_again(tmp_path: Path) -> None:
    dirs = [tmp_path / f"d{i}" for i in range(mp_collector.READERS_MAX + 2)]
    for i, d in enumerate(dirs):
        d.mkdir()
        _worker(d, "jobs", 5, float(i + 1))
    kept = _request(dirs[0])  # a collector kept while its reader is evicted
    assert _total(kept, "jobs") == 5
    for i, d in enumerate(dirs):
        assert _total(_request(d), "jobs") == 5 * (i + 1)
    assert _total(kept, "jobs") == 5  # its files were closed by the eviction
    assert _total(_request(dirs[0]), "jobs") == 5
    one = MultiProcessCollector(dirs[1])
    one.close()
    assert _total(_request(dirs[1]), "jobs") == 10


def test_record_keys_decode_strictly() -> None:
    """A file's record keys go through the C JSON scanner: what it cannot read whole is
    a damaged record (ValueError, and the file is quarantined by the reader)."""

    assert _key(b'["jobs",1,0,"a\\u00e9","\xc3\xa9"]') == ["jobs", 1, 0, "a\u00e9", "\u00e9"]
    for bad in (b'["jobs"] x', b'["jobs"', b"", b" [1]", b'["\xff"]', b"nope"):
        with pytest.raises(ValueError):
            _key(bad)
