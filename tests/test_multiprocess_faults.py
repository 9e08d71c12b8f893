"""The multi-process store under faults: failed I/O, full disk, damaged and unreadable
files, recycled pids (issue 14). Every case ends with exact totals or counted losses.

Faults are injected through ``meterhub.store.mmap.format._fault`` (the I/O seam: called
before each system call of the store, by name), through real kernel limits (the file size
limit stands in for a full disk) and by damaging real files with another process's
tools (truncate, overwrite) while readers and writers keep running.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meterhub import Counter, Gauge, Histogram, Info, Registry, generate_latest
from meterhub.multiprocess import MultiProcessCollector, compact_directory
from meterhub.store.mmap import MultiProcessStore
from meterhub.store.mmap import format as _mmformat

ctx = multiprocessing.get_context("fork")


def _registry(path: Path | str) -> Registry:
    return Registry(store=MultiProcessStore(path), self_metrics=True)


def _sidecar(path: Path | str) -> Registry:
    reg = Registry(self_metrics=False)
    reg.register(MultiProcessCollector(path))
    return reg


def _total(reg: Registry, name: str) -> float:
    return sum(
        s.value
        for f in reg.collect()
        if f.name == name
        for s in f.samples
        if s.name == name + "_total"
    )


def _in_child(fn: Callable[[], Any], timeout: float = 60) -> Any:
    """Run *fn* in a forked child; return what it returned (JSON), fail on a crash (a
    SIGBUS shows here as exit code -7)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        code = 0
        try:
            out = json.dumps(fn()).encode()
        except BaseException as exc:
            out, code = json.dumps({"error": repr(exc)}).encode(), 3
        os.write(w, out)
        os._exit(code)
    os.close(w)
    chunks = []
    with os.fdopen(r, "rb") as f:
        chunks.append(f.read())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, chunks
    return json.loads(b"".join(chunks))


def _dead_worker(path: Path | str, amount: float, series: int = 20) -> None:
    def work() -> None:
        _mmformat._fault = None  # faults are injected into the test's process only
        reg = _registry(path)
        c = Counter("work", "Work.", ["i"], registry=reg)
        for i in range(series):
            c.labels(str(i)).inc(amount)
        os._exit(0)

    p = ctx.Process(target=work)
    p.start()
    p.join(60)
    assert p.exitcode == 0


class Faults:
    """Fail calls named *op*: the *n*-th only, or every one from the *n*-th on."""

    def __init__(self, op: str, n: int, persistent: bool) -> None:
        self.op, self.n, self.persistent = op, n, persistent
        self.calls = 0
        self.failed = 0

    def __call__(self, op: str) -> None:
        if op != self.op:
            return
        self.calls += 1
        if self.calls == self.n or (self.persistent and self.calls > self.n):
            self.failed += 1
            raise OSError(errno.ENOSPC, f"injected: {op} #{self.calls}")


@pytest.fixture
def faults() -> Iterator[Callable[[str, int, bool], Faults]]:
    def install(op: str, n: int, persistent: bool = False) -> Faults:
        f = Faults(op, n, persistent)
        _mmformat._fault = f
        return f

    yield install
    _mmformat._fault = None


OPS = ["open", "fallocate", "mmap", "link", "rename", "unlink", "fsync", "pread"]


@pytest.mark.parametrize("persistent", [False, True], ids=["once", "from_then_on"])
@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("op", OPS)
def test_io_fault_matrix_ends_exact(
    tmp_path: Path, faults: Callable[..., Faults], op: str, n: int, persistent: bool
) -> None:
    """Fail the n-th (or every call from the n-th) of one system call while series are
    created, recorded, removed, scraped and dead workers compacted; once the fault is
    gone, every total is exact and every series that had to wait was counted."""
    _dead_worker(tmp_path, 1.0)
    _dead_worker(tmp_path, 2.0)
    reg = _registry(tmp_path)
    side = _sidecar(tmp_path)
    c = Counter("work", "Work.", ["i"], registry=reg)
    h = Histogram("lat", "Latency.", ["i"], buckets=(1.0, 2.0), registry=reg)
    g = Gauge("level", "Level.", ["i"], multiprocess_mode="sum", registry=reg)
    fault = faults(op, n, persistent)
    dead = {str(i): 3.0 for i in range(20)}  # from the two dead workers
    mine: dict[str, float] = {}
    for i in range(700):  # two segments of file
        key = str(i % 350)
        c.labels(key).inc(1.0)
        h.labels(key).observe(1.5)
        g.labels(key).set(i)
        mine[key] = mine.get(key, 0.0) + 1.0
        if i % 175 == 174:
            generate_latest(side)  # reads (and compacts) under the fault too
            generate_latest(reg)
        if i == 300:
            c.remove("5")
            h.remove("5")
            g.remove("5")
            del mine["5"]
    _dead_worker(tmp_path, 10.0, series=3)  # a worker that died during the fault
    for k in ("0", "1", "2"):
        dead[k] += 10.0
    generate_latest(side)
    _mmformat._fault = None

    assert fault.calls > 0
    generate_latest(reg)  # the first collection after the fault moves waiting series in
    compact_directory(tmp_path)
    assert reg.store.pending == 0  # type: ignore[attr-defined]
    expected = {k: dead.get(k, 0.0) + mine.get(k, 0.0) for k in {*dead, *mine}}
    for view in (side, reg):
        got = {
            dict(s.labels)["i"]: s.value
            for f in view.collect()
            if f.name == "work"
            for s in f.samples
            if s.name == "work_total"
        }
        assert got == expected
        assert view.get_sample_value("lat_count", {"i": "349"}) == 2.0
        assert view.get_sample_value("lat_count", {"i": "5"}) == 1.0  # re-created at 355
        assert view.get_sample_value("lat_bucket", {"i": "349", "le": "1.0"}) == 0.0
        assert view.get_sample_value("level", {"i": "349"}) == 699.0
        assert view.get_sample_value("level", {"i": "5"}) == 355.0
    if op in ("open", "fallocate", "mmap") and persistent and n == 1:
        # Not even the file could be created: every series waited, and was counted.
        waited = sum(reg.self_metrics.errors(m, "multiprocess_file_full") for m in ("work", "lat"))
        assert waited >= 2 * 350


def test_a_full_disk_loses_nothing_once_space_is_back(tmp_path: Path) -> None:
    """The file size limit stands in for a full disk (growth fails with EFBIG from the
    kernel): 8,500 increments on series created during the outage all reach the scrape
    once the limit is lifted, and every series that had to wait is counted."""

    def child() -> dict[str, float]:
        import resource
        import signal

        reg = _registry(tmp_path)
        c = Counter("full", "Full.", ["i"], registry=reg)
        c.labels("before").inc()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
        for i in range(8500):
            c.labels(str(i % 1700)).inc()
        c.labels("before").inc()
        reg.get_sample_value("full_total", {"i": "0"})  # a scrape during the outage
        pending = reg.store.pending  # type: ignore[attr-defined]
        waited = reg.self_metrics.errors("full", "multiprocess_file_full")
        gauge = reg.get_sample_value("meterhub_multiprocess_series_pending")
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        reg.get_sample_value("full_total", {"i": "0"})  # space is back: the series move
        return {"pending": pending, "waited": waited, "gauge": gauge or 0.0,
                "after": reg.store.pending}  # type: ignore[attr-defined]  # fmt: skip

    out = _in_child(child)
    assert out["pending"] > 0 and out["waited"] == out["pending"] == out["gauge"]
    assert out["after"] == 0
    side = _sidecar(tmp_path)
    assert _total(side, "full") == 8502
    assert side.get_sample_value("full_total", {"i": "1699"}) == 5
    assert side.get_sample_value("full_total", {"i": "before"}) == 2


def test_removal_during_a_full_disk_lands_when_space_is_back(
    tmp_path: Path, faults: Callable[..., Faults]
) -> None:
    reg = _registry(tmp_path)
    c = Counter("rm", "Rm.", ["i"], registry=reg)
    for i in range(2000):  # fills the first segment almost to the end
        c.labels(str(i)).inc()
    faults("fallocate", 1, persistent=True)
    for i in range(2000, 4000):
        c.labels(str(i)).inc()
    c.remove("7")
    c.labels("7").inc(5)  # re-created while its removal still waits: a new series
    _mmformat._fault = None
    generate_latest(reg)
    side = _sidecar(tmp_path)
    assert side.get_sample_value("rm_total", {"i": "7"}) == 5
    assert side.get_sample_value("rm_total", {"i": "3999"}) == 1
    assert _total(side, "rm") == 3999 + 5


def test_info_and_exemplars_during_a_full_disk(
    tmp_path: Path, faults: Callable[..., Faults]
) -> None:
    reg = _registry(tmp_path)
    faults("open", 1, persistent=True)  # not even the file can be created
    Info("build", "Build.", registry=reg).info({"version": "1"})
    c = Counter("ex", "Ex.", registry=reg)
    c.inc(2, exemplar={"trace": "a"})
    assert reg.self_metrics.errors("ex", "multiprocess_exemplar_dropped") == 1
    assert reg.store.path is None  # type: ignore[attr-defined]
    _mmformat._fault = None
    side = _sidecar(tmp_path)
    generate_latest(reg)
    assert side.get_sample_value("build_info", {"version": "1"}) == 1.0
    assert side.get_sample_value("ex_total") == 2


# -------------------------------------------------------------------------------- pid reuse


def test_a_recycled_pid_and_start_never_destroys_the_dead_process_file(tmp_path: Path) -> None:
    """A file already named after this very process (pid and start tick reused) is kept:
    this process takes the next name, and both count."""
    _dead_worker(tmp_path, 1000.0, series=1)
    (dead,) = [n for n in os.listdir(tmp_path) if n.startswith("p_")]
    store = MultiProcessStore(tmp_path)
    start = _start_of(os.getpid())
    mine = f"p_{os.getpid()}_{start}.db"
    os.rename(tmp_path / dead, tmp_path / mine)
    c = Counter("work", "Work.", ["i"], registry=Registry(store=store))
    c.labels("0").inc()
    assert (
        store.path is not None and os.path.basename(store.path) == f"p_{os.getpid()}_{start}_1.db"
    )
    # A second store of this process gets a name of its own too.
    other = MultiProcessStore(tmp_path)
    Counter("more", "More.", registry=Registry(store=other)).inc()
    assert other.path is not None and os.path.basename(other.path).endswith("_2.db")
    assert _sidecar(tmp_path).get_sample_value("work_total", {"i": "0"}) == 1001


def test_thirty_recycled_names_lose_nothing(tmp_path: Path) -> None:
    """The issue's measurement, made deterministic: 30 processes each find their name
    taken by a dead process's file with 1,000 counts."""

    def child(i: int) -> None:
        start = _start_of(os.getpid())
        shutil.copy(tmp_path / "template.db", tmp_path / f"p_{os.getpid()}_{start}.db")
        Counter("work", "Work.", ["i"], registry=_registry(tmp_path)).labels("0").inc()
        os._exit(0)

    _dead_worker(tmp_path, 1000.0, series=1)
    (dead,) = [n for n in os.listdir(tmp_path) if n.startswith("p_")]
    os.rename(tmp_path / dead, tmp_path / "template.db")
    for i in range(30):
        p = ctx.Process(target=child, args=(i,))
        p.start()
        p.join(60)
        assert p.exitcode == 0
    os.unlink(tmp_path / "template.db")
    assert _sidecar(tmp_path).get_sample_value("work_total", {"i": "0"}) == 30 * 1001


def _start_of(pid: int) -> int:
    from meterhub.store.mmap.directory import process_start

    start = process_start(pid)
    assert start is not None
    return start


# ------------------------------------------------------------------- the writer's own file


@pytest.mark.parametrize("damage", ["truncate_0", "truncate_4096", "zero_fill", "moved"])
def test_the_writer_survives_its_own_file_damaged(tmp_path: Path, damage: str) -> None:
    """Damaged while the process is idle, its file is repaired at the next collection
    (or series creation): recording then never faults, the damaged series are counted
    and what was lost is only what the damage destroyed."""

    def child() -> dict[str, Any]:
        reg = _registry(tmp_path)
        c = Counter("own", "Own.", ["i"], registry=reg)
        for i in range(3000):  # two segments
            c.labels(str(i)).inc(2)
        path = reg.store.path  # type: ignore[attr-defined]
        size = os.path.getsize(path)
        if damage == "truncate_0":
            os.truncate(path, 0)
        elif damage == "truncate_4096":
            os.truncate(path, 4096)
        elif damage == "zero_fill":
            with open(path, "r+b") as f:
                f.write(b"\0" * size)
        else:
            os.makedirs(tmp_path / "corrupt", exist_ok=True)
            os.rename(path, tmp_path / "corrupt" / os.path.basename(path))
        reg.get_sample_value("own_total", {"i": "0"})  # a collection: repairs
        for i in range(3000):
            c.labels(str(i)).inc()  # would be a SIGBUS in the lost pages
        c.labels("new").inc()
        return {
            "damaged": reg.self_metrics.errors("own", "multiprocess_file_damaged"),
            "path": reg.store.path,  # type: ignore[attr-defined]
            "old": path,
        }

    out = _in_child(child)
    assert os.path.exists(out["path"])  # a new file (the old one was moved aside)
    side = _sidecar(tmp_path)
    total = _total(side, "own")
    assert side.get_sample_value("own_total", {"i": "new"}) == 1
    if damage == "moved":
        assert out["damaged"] == 0
        assert total == 3000 * 3 + 1  # nothing was lost
    else:
        assert out["damaged"] == 3000
        assert side.get_sample_value("own_total", {"i": "2999"}) == 1  # its old value: lost
        if damage == "truncate_4096":
            assert side.get_sample_value("own_total", {"i": "0"}) == 3  # in the first page
            assert 3001 < total < 3000 * 3 + 1
        else:
            assert total == 3000 + 1
    assert side.get_sample_value("meterhub_multiprocess_files_corrupt_total") == 1


# ------------------------------------------------------- damage under a long-lived collector

COLLECTOR = """
import json, sys
from meterhub import Registry
from meterhub.multiprocess import MultiProcessCollector
def registry():
    reg = Registry(self_metrics=False)
    reg.register(MultiProcessCollector(sys.argv[1]))
    return reg
kept = registry()
for line in sys.stdin:
    # "request": a new registry and collector per scrape (prometheus_client's idiom)
    reg = registry() if sys.argv[2] == "request" else kept
    fams = {f.name: f for f in reg.collect()}
    work = fams["work"].samples if "work" in fams else []
    total = sum(s.value for s in work if s.name == "work_total")
    print(json.dumps({
        "total": total,
        "corrupt": fams["meterhub_multiprocess_files_corrupt"].samples[0].value,
        "unreadable": fams["meterhub_multiprocess_files_unreadable"].samples[0].value,
    }), flush=True)
"""


class _Live:
    """A live worker in a child process: records on command, reports its own view."""

    def __init__(self, path: Path, amount: float) -> None:
        self.cmd_r, self.cmd_w = os.pipe()
        self.out_r, self.out_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                reg = _registry(path)
                c = Counter("work", "Work.", ["i"], registry=reg)
                for i in range(1000):
                    c.labels(str(i)).inc(amount)
                os.write(self.out_w, b"r")
                while os.read(self.cmd_r, 1) == b"m":
                    reg.store.maintain()  # type: ignore[attr-defined]  # as a collection does
                    for i in range(1000):
                        c.labels(str(i)).inc(amount)
                    os.write(self.out_w, b"r")
                code = 0
            finally:
                os._exit(code)
        assert os.read(self.out_r, 1) == b"r"
        self.file = self._file(path)

    def _file(self, path: Path) -> Path:
        (name,) = [n for n in os.listdir(path) if n.startswith(f"p_{self.pid}_")]
        return path / name

    def again(self) -> None:
        os.write(self.cmd_w, b"m")
        assert os.read(self.out_r, 1) == b"r"

    def stop(self) -> None:
        os.write(self.cmd_w, b"q")
        _, status = os.waitpid(self.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0  # never a SIGBUS


def _flip(path: Path, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x10]))


@pytest.mark.parametrize("collector_per", ["process", "request"])
def test_damage_under_a_long_lived_collector_process(tmp_path: Path, collector_per: str) -> None:
    """Truncate, zero-fill and bit-flip live and dead files while a collector process
    holds them open between scrapes: it survives, counts each damaged file once, and
    keeps counting everything else exactly; the live writers survive too. The same with
    a new collector per scrape (they share the process's reader of the directory)."""
    for amount in (1.0, 10.0, 100.0, 1000.0):
        _dead_worker(tmp_path, amount, series=1000)
    dead = sorted(tmp_path.glob("p_*.db"))
    live = [_Live(tmp_path, a) for a in (10_000.0, 100_000.0, 1_000_000.0)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    collector = subprocess.Popen(
        [sys.executable, "-c", COLLECTOR, str(tmp_path), collector_per],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert collector.stdin is not None and collector.stdout is not None

    def scrape() -> dict[str, float]:
        collector.stdin.write("\n")  # type: ignore[union-attr]
        collector.stdin.flush()  # type: ignore[union-attr]
        line = collector.stdout.readline()  # type: ignore[union-attr]
        assert line, "the collector died"
        out: dict[str, float] = json.loads(line)
        return out

    try:
        # Hold every file open: the scrape compacts the dead ones into the archive.
        assert scrape()["total"] == 1000 * 1111 + 1000 * 1_110_000
        _dead_worker(tmp_path, 1.0, series=1000)
        _dead_worker(tmp_path, 2.0, series=1000)
        dead = sorted(p for p in tmp_path.glob("p_*.db") if all(p != w.file for w in live))
        assert len(dead) == 2
        # Dead files damaged before the next scrape compacts them; live ones under it.
        os.truncate(dead[0], 0)
        with open(dead[1], "r+b") as f:
            f.write(b"\0" * os.path.getsize(dead[1]))
        os.truncate(live[0].file, 4096)
        with open(live[1].file, "r+b") as f:  # zero-filled from the first record on
            f.seek(64)
            f.write(b"\0" * (os.path.getsize(live[1].file) - 64))
        _flip(live[2].file, 3)  # a bit of the magic
        out = scrape()
        assert out["corrupt"] == 5
        assert out["total"] == 1000 * 1111  # the archive: everything else was damaged
        archive = next(tmp_path.glob("archive_*.db"))
        _flip(archive, 20)  # the archive's header (its pid field)
        out = scrape()
        assert out["corrupt"] == 6 and out["total"] == 0
        # The live writers notice at their next collection, start new files, go on.
        for w in live:
            w.again()
        out = scrape()
        assert out["corrupt"] == 6
        # Live 0 kept what sat in its first page; 1 and 2 lost only what was zeroed.
        assert out["total"] >= 1000 * 110_000 + 1000 * 1_000_000 * 2
        assert out["total"] < 1000 * 1_110_000 * 2
        assert collector.poll() is None
    finally:
        for w in live:
            w.stop()
        collector.stdin.close()
        collector.wait(30)
    assert collector.returncode == 0


# ------------------------------------------------------------------------------- permissions

NOBODY = 65534


def _as_nobody(fn: Callable[[], Any]) -> Any:
    def run() -> Any:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        return fn()

    return _in_child(run)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="meterhub-perm-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")


def _file_total(path: Path) -> float:
    from meterhub.store.mmap.view import FileView

    view = FileView(str(path))
    try:
        view.refresh()
        return sum(values[0] for _, values in view.read_series("work", 2))
    finally:
        view.close()


def _scrape_as_nobody(d: Path) -> dict[str, float]:
    def scrape() -> dict[str, float]:
        side = _sidecar(d)
        return {
            "total": _total(side, "work"),
            "unreadable": side.get_sample_value("meterhub_multiprocess_files_unreadable") or 0,
            "corrupt": side.get_sample_value("meterhub_multiprocess_files_corrupt_total") or 0,
        }

    out: dict[str, float] = _as_nobody(scrape)
    return out


@needs_root
@pytest.mark.parametrize(
    "case",
    ["readable", "dead_0600", "dead_0600_writable_dir", "live_0600", "damaged_readonly_dir"],
)
def test_permission_matrix_collector_as_another_user(shared_dir: Path, case: str) -> None:
    d = shared_dir
    if case == "dead_0600_writable_dir":
        os.chmod(d, 0o777)
    for amount in (1.0, 10.0, 100.0):
        _dead_worker(d, amount, series=10)
    files = sorted(d.glob("p_*.db"))
    first_file = _file_total(files[0])
    live = None
    if case == "live_0600":
        live = _Live(d, 1000.0)
        os.chmod(live.file, 0o600)
    elif case in ("dead_0600", "dead_0600_writable_dir"):
        os.chmod(files[0], 0o600)
    elif case == "damaged_readonly_dir":
        os.truncate(files[0], 40)
    try:
        out = _scrape_as_nobody(d)
        everything = 10 * 111 + (1000 * 1000 if live else 0)
        first = _sidecar(d)  # root's view, before root compacts: what the files hold
        lost = {"readable": 0, "live_0600": 1000 * 1000}.get(case, first_file)
        assert out["total"] == everything - lost
        assert out["unreadable"] == (0 if case == "readable" else 1)
        assert out["corrupt"] == 0
        if case == "dead_0600_writable_dir":
            # The others were compacted by the other user; the unreadable one was kept.
            assert files[0].exists() and not files[1].exists() and not files[2].exists()
            assert list(d.glob("archive_*.db"))
        elif case != "damaged_readonly_dir":
            assert all(f.exists() for f in files)  # nobody can compact here: all read as is
        # Root (the owner) still reads everything, and compacts the rest.
        expected = everything - (first_file if case == "damaged_readonly_dir" else 0)
        assert _total(first, "work") == expected
    finally:
        if live is not None:
            live.stop()
    root = _sidecar(d)
    assert _total(root, "work") == expected


@pytest.mark.usefixtures("switch_often")
def test_series_move_into_the_file_while_threads_record(
    tmp_path: Path, faults: Callable[..., Faults]
) -> None:
    """Moving a waiting series into the file while 4 threads record into it (1 µs switch
    interval) loses no update: counters, histograms, gauges."""
    import threading

    reg = _registry(tmp_path)
    faults("open", 1, persistent=True)
    c = Counter("race", "Race.", ["i"], registry=reg)
    h = Histogram("race_h", "Race.", ["i"], buckets=(1.0,), registry=reg)
    g = Gauge("race_g", "Race.", ["i"], multiprocess_mode="sum", registry=reg)
    children = [(c.labels(str(i)), h.labels(str(i)), g.labels(str(i))) for i in range(50)]
    assert reg.store.pending == 150  # type: ignore[attr-defined]
    go = threading.Event()

    def record() -> None:
        go.wait()
        for _ in range(40):
            for cc, hh, gg in children:
                cc.inc()
                hh.observe(0.5)
                gg.inc()

    threads = [threading.Thread(target=record) for _ in range(4)]
    for t in threads:
        t.start()
    go.set()
    _mmformat._fault = None
    reg.store.maintain()  # type: ignore[attr-defined]
    for t in threads:
        t.join(60)
    assert reg.store.pending == 0  # type: ignore[attr-defined]
    side = _sidecar(tmp_path)
    for i in range(50):
        assert side.get_sample_value("race_total", {"i": str(i)}) == 160
        assert side.get_sample_value("race_h_bucket", {"i": str(i), "le": "1.0"}) == 160
        assert side.get_sample_value("race_h_sum", {"i": str(i)}) == 80
        assert side.get_sample_value("race_g", {"i": str(i)}) == 160
