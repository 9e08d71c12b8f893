"""The one filesystem helper: atomic writes under injected faults (the N-th open, write,
writev, fchmod, fsync, close or rename fails, for every N), write groups, and the removal
of temporary files left by dead writers, never a live writer's."""

from __future__ import annotations

import errno
import itertools
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from meterhub import _atomicfile
from meterhub._atomicfile import (
    process_start,
    remove_dead_temp_files,
    temp_name,
    write_atomic,
    write_group,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")
CALLS = ["open", "write", "writev", "fchmod", "fsync", "close", "replace"]


@contextmanager
def fail_nth(call: str, n: int) -> Iterator[list[int]]:
    """Make the *n*-th call of ``os.<call>`` raise EIO; yields a list that is non-empty
    once the fault was injected."""
    real = getattr(os, call)
    count = 0
    hit: list[int] = []

    def fake(*args: object, **kwargs: object) -> object:
        nonlocal count
        count += 1
        if count == n:
            hit.append(n)
            if call == "close":  # the descriptor is gone either way, as after a real EIO
                real(*args, **kwargs)
            raise OSError(errno.EIO, f"injected: {call} #{n}")
        return real(*args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(os, call, fake)
    try:
        yield hit
    finally:
        mp.undo()


@pytest.mark.parametrize("fsync", [True, False])
@pytest.mark.parametrize("chunks", [False, True])
@pytest.mark.parametrize("call", CALLS)
def test_write_atomic_under_a_fault_at_every_step(
    tmp_path: Path, call: str, chunks: bool, fsync: bool
) -> None:
    target = tmp_path / "app.prom"
    for n in itertools.count(1):
        assert n < 50
        target.write_bytes(b"old\n")
        new = [b"new ", b"data\n"] if chunks else b"new data\n"
        with fail_nth(call, n) as hit:
            try:
                write_atomic(target, new, fsync=fsync)
            except OSError as exc:
                assert hit and "injected" in str(exc)
                assert target.read_bytes() == b"old\n"  # untouched
            else:
                # no fault left to inject, or one in the best-effort directory fsync
                assert target.read_bytes() == b"new data\n"
                assert oct(target.stat().st_mode & 0o777) == oct(0o644)
        assert os.listdir(tmp_path) == ["app.prom"], f"{call} #{n} left a temporary file"
        if not hit:
            break


@pytest.mark.parametrize("call", CALLS)
def test_write_group_under_a_fault_at_every_step(tmp_path: Path, call: str) -> None:
    files = [(f"metrics_{i}.json", [b'{"n":', str(i).encode(), b"}"]) for i in range(4)]
    for n in itertools.count(1):
        assert n < 80
        d = tmp_path / str(n)
        d.mkdir()
        with fail_nth(call, n) as hit:
            committed, error = write_group(d, files, fsync=True)
        names = sorted(os.listdir(d))
        assert names == [f"metrics_{i}.json" for i in range(committed)]  # a prefix, in order
        for i in range(committed):
            assert (d / f"metrics_{i}.json").read_bytes() == b'{"n":%d}' % i
        assert (error is None) == (committed == len(files))
        if error is not None:
            assert hit
        if not hit:
            break


def test_temp_names_are_unique_and_name_their_writer() -> None:
    a, b = temp_name("app.prom"), temp_name("app.prom")
    assert a != b and a.startswith(".app.prom.") and a.endswith(".tmp")
    pid, start = a[len(".app.prom.") :].split(".")[:2]
    assert int(pid) == os.getpid() and int(start) == process_start(os.getpid())


def test_make_dirs_and_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "no" / "x.txt", b"x")
    write_atomic(tmp_path / "a" / "b" / "x.txt", b"x", make_dirs=True, fsync=False)
    assert (tmp_path / "a" / "b" / "x.txt").read_bytes() == b"x"


def test_remove_dead_temp_files_keeps_live_writers(tmp_path: Path) -> None:
    me, start = os.getpid(), process_start(os.getpid())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    names = {
        "live": f".app.prom.{me}.{start}.0.tmp",
        "reused_pid": f".app.prom.{me}.{(start or 0) + 1}.0.tmp",  # same pid, other process
        "dead": f".app.prom.{dead_pid}.{start}.3.tmp",
        "unowned": ".app.prom.k3j4h5.tmp",  # an older meterhub's mkstemp name
        "other_file": f".other.prom.{dead_pid}.1.0.tmp",
    }
    for n in names.values():
        (tmp_path / n).write_text("partial")
    assert remove_dead_temp_files(tmp_path, ".app.prom.") == 2
    left = set(os.listdir(tmp_path))
    assert left == {names["live"], names["unowned"], names["other_file"]}
    os.utime(tmp_path / names["unowned"], (0, 0))
    assert remove_dead_temp_files(tmp_path, ".app.prom.", unowned_older_than=300) == 1
    assert remove_dead_temp_files(tmp_path, ".app.prom.", everything=True) == 1
    assert os.listdir(tmp_path) == [names["other_file"]]
    assert remove_dead_temp_files(tmp_path / "missing", ".x.") == 0


HANGING_WRITER = textwrap.dedent(
    """
    import os, sys
    from meterhub import Gauge, Registry
    from meterhub.export.textfile import write_to_textfile

    reg = Registry(self_metrics=False)
    Gauge("writer_pid", "The writer.", registry=reg).set(os.getpid())
    real_replace = os.replace

    def replace(src, dst):  # stop between the staged file and the rename
        print(src, flush=True)
        sys.stdin.readline()
        real_replace(src, dst)

    os.replace = replace
    write_to_textfile(sys.argv[1], reg)
    print("done", flush=True)
    """
)


def _writer(target: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HANGING_WRITER, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert proc.stdout is not None
    staged = proc.stdout.readline().strip()
    assert staged and os.path.exists(staged), staged
    return proc, staged


def test_textfile_writers_killed_mid_write_leave_nothing_behind(tmp_path: Path) -> None:
    """kill -9 of real writers mid-write, in a loop, with a live writer stopped at the same
    point: the next write removes every dead writer's temporary file and not the live one's,
    which then completes its rename."""
    from meterhub import Registry
    from meterhub.export.textfile import TextfileExporter, write_to_textfile

    target = tmp_path / "app.prom"
    leftovers = []
    for _ in range(8):
        proc, staged = _writer(target)
        proc.kill()  # SIGKILL between write and rename
        proc.wait(timeout=30)
        leftovers.append(staged)
    assert all(os.path.exists(p) for p in leftovers)
    live, live_staged = _writer(target)
    try:
        write_to_textfile(target, Registry(self_metrics=False))  # cleans after writing
        assert not any(os.path.exists(p) for p in leftovers)
        assert os.path.exists(live_staged)  # a live writer's file is never touched
        proc, staged = _writer(target)
        proc.kill()
        proc.wait(timeout=30)
        exporter = TextfileExporter(target, interval=3600, registry=Registry(self_metrics=False))
        exporter.start()  # cleans on start too
        exporter.stop()
        assert not os.path.exists(staged) and os.path.exists(live_staged)
        assert live.stdin is not None and live.stdout is not None
        live.stdin.write("\n")
        live.stdin.flush()
        assert live.stdout.readline().strip() == "done"
        assert live.wait(timeout=30) == 0
    finally:
        live.kill()
        live.wait(timeout=30)
    assert f"writer_pid {live.pid}" in target.read_text()
    assert os.listdir(tmp_path) == ["app.prom"]


LOOPING_WRITER = textwrap.dedent(
    """
    import sys
    from meterhub import Gauge, Registry
    from meterhub.export.textfile import write_to_textfile

    reg = Registry(self_metrics=False)
    g = Gauge("big", "Big.", ["i"], registry=reg)
    for i in range(300):
        g.labels(str(i)).set(i)
    for _ in range(int(sys.argv[2])):
        write_to_textfile(sys.argv[1], reg)  # raises if its temporary file vanished
    print("ok", flush=True)
    """
)


def test_writers_in_two_processes_never_remove_each_others_files(tmp_path: Path) -> None:
    from meterhub import Gauge, Registry
    from meterhub.export.textfile import write_to_textfile

    target = tmp_path / "app.prom"
    child = subprocess.Popen(
        [sys.executable, "-c", LOOPING_WRITER, str(target), "400"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    reg = Registry(self_metrics=False)
    g = Gauge("big", "Big.", ["i"], registry=reg)
    for i in range(300):
        g.labels(str(i)).set(-i)
    try:
        while child.poll() is None:
            write_to_textfile(target, reg)  # each write cleans up: never the child's file
    finally:
        out, err = child.communicate(timeout=60)
    assert child.returncode == 0 and out.strip() == "ok", err
    assert os.listdir(tmp_path) == ["app.prom"]


def test_helper_is_the_one_implementation() -> None:
    """The modules that replace files use the helper (no private copies left)."""
    import inspect

    from meterhub.cli import _common
    from meterhub.demo import _artifacts, _pipeline
    from meterhub.export import textfile
    from meterhub.oplog import files

    for module in (_common, _artifacts, _pipeline, textfile, files):
        source = inspect.getsource(module)
        assert "os.replace(" not in source and "os.fsync(" not in source, module.__name__
        assert "_atomicfile" in source or "write_atomic" in source
    assert _atomicfile.write_atomic.__module__ == "meterhub._atomicfile"
