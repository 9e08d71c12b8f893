"""The node_exporter textfile: atomic replace under SIGKILL, disk full (RLIMIT_FSIZE and a
tiny tmpfs), read-only directories, self-metrics, the hub's flusher, bad input."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import meterhub
from meterhub import Counter, Gauge, Histogram, Hub, Registry
from meterhub.errors import ExportError
from meterhub.export.textfile import (
    TextfileExporter,
    remove_stale_temp_files,
    write_to_textfile,
)

PROMTOOL = shutil.which("promtool")


def wait_until(cond: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.01)


def leftovers(d: Path, target: str) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name != target)


def test_write_is_complete_0644_and_leaves_nothing(tmp_path: Path, registry: Registry) -> None:
    Counter("jobs", "Jobs.", ["q"], registry=registry).labels('a"b\\c\nd ✓').inc(2)
    Histogram("h", "H.", registry=registry).observe(0.3)
    target = tmp_path / "app.prom"
    old = os.umask(0o077)
    try:
        write_to_textfile(target, registry)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert leftovers(tmp_path, "app.prom") == []
    fams = {f.name: f for f in text_string_to_metric_families(target.read_text())}
    assert fams["jobs"].samples[0].labels == {"q": 'a"b\\c\nd ✓'}
    if PROMTOOL:
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=target.read_bytes(),
                           capture_output=True)  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr


def test_lone_surrogate_label_does_not_block_writes(tmp_path: Path, registry: Registry) -> None:
    """A custom collector bypasses the core's refusal of lone surrogates: writes survive it."""
    from meterhub import GaugeMetricFamily

    class Hostile:
        def collect(self):  # type: ignore[no-untyped-def]
            g = GaugeMetricFamily("g2", "G.", labels=["l"])
            g.add_metric(["x\ud800"], 1)
            yield g

    registry.register(Hostile())
    write_to_textfile(tmp_path / "app.prom", registry)
    assert 'g2{l="x?"} 1' in (tmp_path / "app.prom").read_text()


def test_errors_name_the_path_and_leave_nothing(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(ExportError, match="no/such/dir"):
        write_to_textfile(tmp_path / "no/such/dir/app.prom", registry)
    (tmp_path / "adir").mkdir()
    with pytest.raises(ExportError, match="adir"):
        write_to_textfile(tmp_path / "adir", registry)
    assert leftovers(tmp_path, "adir") == []


@pytest.mark.parametrize(
    ("path", "reg", "exc"),
    [(123, None, TypeError), ("", None, ValueError), ("x/", None, ValueError),
     ("ok.prom", object(), TypeError)],
)  # fmt: skip
def test_write_bad_arguments(path: object, reg: object, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        write_to_textfile(path, reg if reg is not None else Registry())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [({"interval": 0}, ValueError), ({"interval": -1}, ValueError),
     ({"interval": float("nan")}, ValueError), ({"interval": float("inf")}, ValueError),
     ({"interval": "5"}, TypeError), ({"interval": True}, TypeError),
     ({"registry": object()}, TypeError)],
)  # fmt: skip
def test_exporter_bad_arguments(kwargs: dict[str, object], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        TextfileExporter("x.prom", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        TextfileExporter(None)  # type: ignore[arg-type]


def test_exporter_self_metrics_and_stop_writes_last(tmp_path: Path) -> None:
    reg = Registry(self_metrics=False)
    g = Gauge("g", "G.", registry=reg)
    target = str(tmp_path / "app.prom")
    exp = TextfileExporter(target, interval=0.02, registry=reg)
    exp.start()
    exp.start()  # idempotent
    wait_until(lambda: exp.writes >= 3)
    g.set(42)
    exp.stop()
    assert "g 42\n" in Path(target).read_text()
    labels = {"path": target}
    assert reg.get_sample_value("meterhub_textfile_writes_total", labels) == exp.writes
    assert reg.get_sample_value("meterhub_textfile_write_failures_total", labels) == 0
    assert reg.get_sample_value("meterhub_textfile_write_duration_seconds", labels) > 0
    last = reg.get_sample_value("meterhub_textfile_last_success_timestamp_seconds", labels)
    assert last is not None and abs(last - time.time()) < 60
    assert "meterhub_textfile_writes_total{path=" in Path(target).read_text()
    writes = exp.writes
    time.sleep(0.1)  # the loop is gone: no more writes
    assert exp.writes == writes


def test_explicit_write_raises_and_counts(tmp_path: Path, registry: Registry) -> None:
    exp = TextfileExporter(tmp_path / "missing" / "app.prom", registry=registry)
    with pytest.raises(ExportError, match="missing"):
        exp.write()
    assert exp.failures == 1
    exp.stop()  # never raises, counts the final failure
    assert exp.failures == 2


def test_hub_write_metrics_and_start_stop(tmp_path: Path) -> None:
    reg = Registry(self_metrics=False)
    h = Hub(registry=reg, textfile_path=str(tmp_path / "hub.prom"), textfile_interval=0.02)
    h.inc_counter("orders_total", {"shop": "eu"})
    h.write_metrics()
    assert 'orders_total{shop="eu"} 1' in (tmp_path / "hub.prom").read_text()
    h.write_metrics(str(tmp_path / "other.prom"))
    assert (tmp_path / "other.prom").exists()
    h.start()
    h.inc_counter("orders_total", {"shop": "eu"}, 2)
    h.stop()
    assert 'orders_total{shop="eu"} 3' in (tmp_path / "hub.prom").read_text()
    with pytest.raises(ExportError):
        h.write_metrics(str(tmp_path / "nope" / "x.prom"))


def test_hub_uses_configured_path(tmp_path: Path) -> None:
    meterhub.configure(
        strict=True, textfile_path=str(tmp_path / "cfg.prom"), textfile_interval=0.05
    )
    reg = Registry(self_metrics=False)
    h = Hub(registry=reg)
    h.set_gauge("temp", None, 3)
    h.start()
    h.stop()
    assert "temp 3\n" in (tmp_path / "cfg.prom").read_text()


def test_hub_reads_the_environment(tmp_path: Path) -> None:
    target = tmp_path / "env.prom"
    env = {"METERHUB_TEXTFILE_PATH": str(target), "METERHUB_TEXTFILE_INTERVAL": "0.05",
           "METERHUB_STRICT": "true"}  # fmt: skip
    meterhub.configure(env=env)
    h = Hub(registry=Registry(self_metrics=False))
    h.inc_counter("env_events_total")
    h.write_metrics()
    assert "env_events_total 1\n" in target.read_text()
    with pytest.raises(ValueError, match="METERHUB_TEXTFILE_PATH"):
        meterhub.configure(strict=True)
        Hub(registry=Registry(self_metrics=False)).write_metrics()


def test_start_removes_only_stale_temp_files(tmp_path: Path, registry: Registry) -> None:
    target = tmp_path / "app.prom"
    old, fresh, other = (tmp_path / n for n in (".app.prom.a1.tmp", ".app.prom.b2.tmp",
                                                 ".other.prom.c3.tmp"))  # fmt: skip
    for p in (old, fresh, other):
        p.write_text("partial")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    os.utime(other, (time.time() - 3600, time.time() - 3600))
    exp = TextfileExporter(target, interval=60, registry=registry)
    exp.start()
    exp.stop()
    assert not old.exists() and fresh.exists() and other.exists()
    assert remove_stale_temp_files(tmp_path / "missing-dir" / "x.prom") == 0


def test_concurrent_writers_to_one_path(tmp_path: Path) -> None:
    target = tmp_path / "app.prom"
    regs = []
    for n in range(4):
        reg = Registry(self_metrics=False)
        g = Gauge("writer", "W.", ["i"], registry=reg)
        for i in range(200):
            g.labels(str(i)).set(n)
        regs.append(reg)
    errors: list[BaseException] = []

    def run(reg: Registry) -> None:
        try:
            for _ in range(30):
                write_to_textfile(target, reg)
                fams = list(text_string_to_metric_families(target.read_text()))
                assert len(fams[0].samples) == 200
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in regs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert leftovers(tmp_path, "app.prom") == []


# ------------------------------------------------------------------ SIGKILL atomicity

N_SERIES = 300


def _writer_loop(path: str) -> None:  # runs in a forked child until SIGKILLed
    reg = Registry(self_metrics=False)
    g = Gauge("value", "Changes every write.", ["i"], registry=reg)
    done = Gauge("zz_complete", "Last family: present iff the file is whole.", registry=reg)
    done.set(1)
    n = 0
    while True:
        n += 1
        for i in range(N_SERIES):
            g.labels(str(i)).set(n)
        write_to_textfile(path, reg)


def _check_whole(text: str) -> None:
    assert text, "empty file"
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert len(fams["value"].samples) == N_SERIES, "partial file"
    assert {s.value for s in fams["value"].samples} == {fams["value"].samples[0].value}
    assert fams["zz_complete"].samples[0].value == 1


def test_sigkill_200_times_never_exposes_a_partial_file(tmp_path: Path) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    target = tmp_path / "app.prom"
    reg = Registry(self_metrics=False)
    Gauge("value", "x", ["i"], registry=reg)
    pid = os.fork()
    if pid == 0:  # first, one complete write, so the file exists before any kill
        try:
            reg2 = Registry(self_metrics=False)
            g = Gauge("value", "Changes every write.", ["i"], registry=reg2)
            Gauge("zz_complete", "Last.", registry=reg2).set(1)
            for i in range(N_SERIES):
                g.labels(str(i)).set(0)
            write_to_textfile(str(target), reg2)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    _check_whole(target.read_text())

    errors: list[str] = []
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                _check_whole(target.read_text())
                reads += 1
            except Exception as exc:
                errors.append(repr(exc))

    t = threading.Thread(target=reader)
    t.start()
    rng = random.Random(1234)
    try:
        for _ in range(200):
            pid = os.fork()
            if pid == 0:
                try:
                    _writer_loop(str(target))
                finally:
                    os._exit(1)
            time.sleep(rng.uniform(0.0, 0.03))
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    finally:
        stop.set()
        t.join()
    assert errors == []
    assert reads > 0
    _check_whole(target.read_text())
    # killed writers may leave temp files, never anything node_exporter would read
    assert all(n.startswith(".app.prom.") and n.endswith(".tmp")
               for n in leftovers(tmp_path, "app.prom"))  # fmt: skip
    # ... which the next write removes: their writers are dead
    write_to_textfile(str(target), reg)
    assert leftovers(tmp_path, "app.prom") == []


# ------------------------------------------------------------------ disk full / read-only

_FSIZE_SCRIPT = textwrap.dedent(
    """
    import json, os, resource, signal, sys, time
    from meterhub import Gauge, Registry
    from meterhub.export.textfile import TextfileExporter
    path = sys.argv[1]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    reg = Registry(self_metrics=False)
    g = Gauge("g", "G.", ["i"], registry=reg)
    g.labels("0").set(1)
    exp = TextfileExporter(path, interval=0.02, registry=reg)
    exp.write()
    before = open(path).read()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    for i in range(1, 2000):
        g.labels(str(i)).set(i)
    exp.start()
    deadline = time.monotonic() + 30
    while exp.failures < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    during = open(path).read()
    files = sorted(os.listdir(os.path.dirname(path)))
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    writes = exp.writes
    while exp.writes <= writes + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    exp.stop()
    print(json.dumps({"before": before, "during": during, "files": files,
                      "failures": exp.failures, "after": open(path).read()}))
    """
)


def test_disk_full_rlimit_fsize(tmp_path: Path) -> None:
    target = tmp_path / "app.prom"
    r = subprocess.run([sys.executable, "-c", _FSIZE_SCRIPT, str(target)],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["failures"] >= 3
    assert out["during"] == out["before"]  # the previous file stayed intact
    assert out["files"] == ["app.prom"]  # no temp file left behind
    assert 'g{i="1999"} 1999' in out["after"]  # the next successful write recovered
    assert "meterhub_textfile_write_failures_total" in out["after"]


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                        str(path)], capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _periodic_failure_then_recovery(exp: TextfileExporter, target: Path, fix: object) -> None:
    before = target.read_text()
    failures = exp.failures
    exp.start()
    wait_until(lambda: exp.failures >= failures + 3)
    assert target.read_text() == before
    assert leftovers(target.parent, target.name) == []
    fix()  # type: ignore[operator]
    writes = exp.writes
    wait_until(lambda: exp.writes >= writes + 2)
    exp.stop()
    assert target.read_text() != before


def test_disk_full_tiny_tmpfs(tmp_path: Path, lenient: None) -> None:
    with tmpfs(tmp_path / "mnt", "16k") as mnt:
        target = mnt / "app.prom"
        reg = Registry()
        g = Gauge("g", "G.", ["i"], registry=reg)
        g.labels("0").set(1)
        exp = TextfileExporter(target, interval=0.02, registry=reg)
        exp.write()
        for i in range(1, 3000):  # far more than 16k
            g.labels(str(i)).set(i)
        _periodic_failure_then_recovery(exp, target, g.clear)
        assert exp.failures >= 3
        assert "meterhub_textfile_write_failures_total" in target.read_text()


def test_read_only_directory(tmp_path: Path, lenient: None) -> None:
    reg = Registry()
    Counter("c", "C.", registry=reg).inc()
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        exp = TextfileExporter(d / "app.prom", interval=0.02, registry=reg)
        exp.write()
        d.chmod(0o555)
        try:
            _periodic_failure_then_recovery(exp, d / "app.prom", lambda: d.chmod(0o755))
        finally:
            d.chmod(0o755)
        return
    with tmpfs(tmp_path / "mnt", "1m") as mnt:  # root ignores modes: a read-only mount
        exp = TextfileExporter(mnt / "app.prom", interval=0.02, registry=reg)
        exp.write()
        remount = ["mount", "-o", "remount,ro", str(mnt)]
        subprocess.run(remount, check=True)
        rw = ["mount", "-o", "remount,rw", str(mnt)]
        _periodic_failure_then_recovery(
            exp, mnt / "app.prom", lambda: subprocess.run(rw, check=True)
        )
        assert exp.failures >= 3


PROCESS_FAMILIES = ("process_", "python_info", "python_gc_")


def families_in(path: Path) -> set[str]:
    return {f.name for f in text_string_to_metric_families(path.read_text())}


def with_defaults(reg: Registry) -> Registry:
    meterhub.register_defaults(reg)  # what REGISTRY has: process, platform, GC
    return reg


def test_default_collectors_stay_out_of_the_file(tmp_path: Path, lenient: None) -> None:
    # node_exporter exports its own process_*: the file's would be dropped as duplicates.
    reg = with_defaults(Registry(self_metrics=True))
    meterhub.ProcessCollector(namespace="myapp", registry=reg)  # whatever the namespace
    Counter("process_jobs", "A metric of the app's own named process_*.", registry=reg).inc()
    Counter("orders", "Orders.", registry=reg).inc(2)
    Counter("bad", "B.", registry=reg).inc(-1)  # counted: a self-metric series to carry
    assert reg.get_sample_value("process_open_fds") is not None  # the registry has them
    target = tmp_path / "app.prom"
    write_to_textfile(target, reg)
    names = families_in(target)
    assert {"orders", "process_jobs", "meterhub_errors"} <= names
    assert not [n for n in names if n.startswith(PROCESS_FAMILIES) and n != "process_jobs"]
    assert not [n for n in names if n.startswith("myapp_process_")]
    # meterhub's own series say which file they are in: two apps' files never collide
    own = f'metric="bad",reason="negative_increment",path="{target}"'
    assert f"meterhub_errors_total{{{own}}} 1" in target.read_text()


def test_process_metrics_on_request_by_argument_setting_and_exporter(tmp_path: Path) -> None:
    reg = with_defaults(Registry(self_metrics=False))
    wanted = {"process_open_fds", "python_info", "python_gc_collections"}
    write_to_textfile(tmp_path / "arg.prom", reg, process_metrics=True)
    assert wanted <= families_in(tmp_path / "arg.prom")
    TextfileExporter(tmp_path / "exp.prom", registry=reg, process_metrics=True).write()
    assert wanted <= families_in(tmp_path / "exp.prom")
    meterhub.configure(env={"METERHUB_TEXTFILE_PROCESS_METRICS": "true", "METERHUB_STRICT": "1"})
    Hub(registry=reg).write_metrics(str(tmp_path / "env.prom"))
    assert wanted <= families_in(tmp_path / "env.prom")
    # the argument wins over the setting
    write_to_textfile(tmp_path / "off.prom", reg, process_metrics=False)
    assert not wanted & families_in(tmp_path / "off.prom")
    with pytest.raises(ValueError, match="METERHUB_TEXTFILE_PROCESS_METRICS"):
        meterhub.configure(env={"METERHUB_TEXTFILE_PROCESS_METRICS": "sometimes"})


def test_the_default_hub_writes_registry_without_process_metrics(tmp_path: Path) -> None:
    target = tmp_path / "hub.prom"
    meterhub.hub.write_metrics(str(target))  # REGISTRY: the default collectors registered
    assert meterhub.REGISTRY.get_sample_value("process_open_fds") is not None
    names = families_in(target)
    assert "meterhub_textfile_writes" in names or "meterhub_errors" in names
    assert not [n for n in names if n.startswith(PROCESS_FAMILIES)]


def test_multi_process_registry_keeps_directory_and_self_metrics(tmp_path: Path) -> None:
    from meterhub.multiprocess import MultiProcessStore

    mpdir = tmp_path / "mp"
    mpdir.mkdir()
    code = textwrap.dedent(
        """
        import sys
        from meterhub import Counter, Registry
        from meterhub.multiprocess import MultiProcessStore
        reg = Registry(MultiProcessStore(sys.argv[1]), self_metrics=False)
        Counter("worker_jobs", "Jobs of another process.", registry=reg).inc(7)
        """
    )
    subprocess.run([sys.executable, "-c", code, str(mpdir)], check=True, timeout=120)
    reg = with_defaults(Registry(MultiProcessStore(str(mpdir)), self_metrics=True))
    target = tmp_path / "mp.prom"
    write_to_textfile(target, reg)
    text = target.read_text()
    names = families_in(target)
    assert "worker_jobs_total 7" in text
    assert [n for n in names if n.startswith("meterhub_multiprocess_")]
    assert not [n for n in names if n.startswith(PROCESS_FAMILIES)]


def test_each_file_carries_its_own_write_statistics(tmp_path: Path) -> None:
    # node_exporter reads both files: the same series in each would be a duplicate.
    reg = Registry(self_metrics=False)
    a = TextfileExporter(tmp_path / "a.prom", registry=reg)
    b = TextfileExporter(tmp_path / "b.prom", registry=reg)
    for _ in range(2):
        a.write()
        b.write()
    write_to_textfile(tmp_path / "c.prom", reg)  # no exporter: no statistics of its own
    for name, own in (("a.prom", "a.prom"), ("b.prom", "b.prom"), ("c.prom", None)):
        paths = {
            s.labels["path"]
            for f in text_string_to_metric_families((tmp_path / name).read_text())
            for s in f.samples
            if s.name == "meterhub_textfile_writes_total"
        }
        assert paths == ({str(tmp_path / own)} if own else set()), name


def test_meterhub_lint_passes_the_file_s_self_metrics(tmp_path: Path, lenient: None) -> None:
    from meterhub.tools.lint import lint_text

    reg = Registry(self_metrics=True)
    Counter("bad", "B.", registry=reg).inc(-1)  # a meterhub_errors_total series, with path
    target = tmp_path / "1000" / "app.prom"  # a numeric segment: "looks like an id" elsewhere
    target.parent.mkdir()
    exporter = TextfileExporter(target, registry=reg)
    exporter.write()
    exporter.write()
    text = target.read_text()
    assert f'path="{target}"' in text
    assert lint_text(text) == []
