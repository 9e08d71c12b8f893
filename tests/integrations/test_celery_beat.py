"""The beat task that writes the node_exporter textfile (delivery issue, item 4)."""

from __future__ import annotations

import datetime as dt
import math
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("celery")

from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

import meterhub
from meterhub import REGISTRY, Counter, ExportError
from meterhub.integrations.celery import (
    FLUSH_SCHEDULE_NAME,
    add_flush_schedule,
    flush_metrics_to_file,
)
from support.celery_worker import CeleryWorker

pytest.importorskip("meterhub.export.textfile", reason="the textfile exporter is not built yet")

Metrics = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_file(path: Path) -> Metrics:
    """Parse the whole file (raises on any malformed line)."""
    out: Metrics = {}
    for family in text_string_to_metric_families(path.read_text()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def tasks_total(metrics: Metrics, task: str, state: str) -> float:
    key = ("celery_tasks_total", frozenset({("task", task), ("state", state)}))
    return metrics.get(key, 0.0)


def wait_for_file(
    path: Path,
    expect: Callable[[Metrics], bool],
    timeout: float = 60.0,
    kick: Callable[[], object] | None = None,
) -> Metrics:
    """Poll *path* until *expect* holds, calling *kick* (e.g. send a flush) each round."""
    deadline = time.monotonic() + timeout
    metrics: Metrics = {}
    while time.monotonic() < deadline:
        if kick is not None:
            kick()
        if path.exists():
            metrics = parse_file(path)
            if expect(metrics):
                return metrics
        time.sleep(0.1)
    raise AssertionError(f"{path} never matched; last view: {sorted(metrics)[:50]}")


# -- the task function, called directly ---------------------------------------------------


def test_flush_writes_a_valid_textfile(tmp_path: Path) -> None:
    jobs = Counter("beat_test_jobs", "Jobs seen by the beat test.", ["kind"], registry=REGISTRY)
    jobs.labels('we"ird\nkind\\ü').inc(3)
    target = tmp_path / "app.prom"
    try:
        assert flush_metrics_to_file(str(target)) is True
    finally:
        REGISTRY.unregister(jobs)  # the global registry outlives this test
    metrics = parse_file(target)
    assert metrics[("beat_test_jobs_total", frozenset({("kind", 'we"ird\nkind\\ü')}))] == 3
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.prom"]  # no temp file left


def test_flush_uses_the_configured_path(tmp_path: Path) -> None:
    target = tmp_path / "configured.prom"
    meterhub.configure(strict=True, textfile_path=str(target))
    assert flush_metrics_to_file() is True
    assert flush_metrics_to_file() is True  # the second carries the first's self-metrics
    names = {name for name, _ in parse_file(target)}
    assert "process_cpu_seconds_total" not in names  # node_exporter's own (docs/delivery.md)
    assert ("meterhub_textfile_writes_total", frozenset({("path", str(target))})) in dict(
        parse_file(target)
    )


def test_flush_does_nothing_while_disabled(tmp_path: Path) -> None:
    target = tmp_path / "off.prom"
    meterhub.disable()
    assert flush_metrics_to_file(str(target)) is False
    assert not target.exists()


def test_flush_without_a_path_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="textfile path"):
        flush_metrics_to_file()


def test_flush_failure_raises_and_keeps_nothing_behind(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(ExportError, match="not-a-dir"):
        flush_metrics_to_file(str(blocker / "app.prom"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-dir"]


# -- the schedule helper ------------------------------------------------------------------


def test_add_flush_schedule_entry() -> None:
    app = Celery("sched")
    app.conf.beat_schedule = {"other": {"task": "x", "schedule": 60.0}}
    entry = add_flush_schedule(app, every=dt.timedelta(seconds=30), path="/tmp/m.prom")
    assert app.conf.beat_schedule["other"]["task"] == "x"
    assert app.conf.beat_schedule[FLUSH_SCHEDULE_NAME] == entry
    assert entry == {
        "task": "meterhub.flush_metrics_to_file",
        "schedule": 30.0,
        "args": ("/tmp/m.prom",),
        "options": {"expires": 30.0},
    }
    assert add_flush_schedule(app)["args"] == ()  # the configured path, every 15 s
    assert app.conf.beat_schedule[FLUSH_SCHEDULE_NAME]["schedule"] == 15.0


@pytest.mark.parametrize(
    "every", [0, -1, math.nan, math.inf, dt.timedelta(0), dt.timedelta(seconds=-5)]
)
def test_add_flush_schedule_rejects_bad_periods(every: object) -> None:
    with pytest.raises(ValueError, match="every"):
        add_flush_schedule(Celery("bad"), every=every)  # type: ignore[arg-type]


@pytest.mark.parametrize("every", ["15", None, True, [15]])
def test_add_flush_schedule_rejects_bad_types(every: object) -> None:
    with pytest.raises(TypeError, match="every"):
        add_flush_schedule(Celery("bad"), every=every)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["", "bad\0path", 42, b"/tmp/x.prom"])
def test_add_flush_schedule_rejects_bad_paths(path: object) -> None:
    with pytest.raises(ValueError, match="path"):
        add_flush_schedule(Celery("bad"), path=path)  # type: ignore[arg-type]


def test_add_flush_schedule_rejects_non_apps() -> None:
    with pytest.raises(TypeError, match="Celery app"):
        add_flush_schedule(object())


# -- through real workers -----------------------------------------------------------------


def test_flush_task_via_real_worker(
    tmp_path: Path, redis_url: str, celery_worker: Callable[..., CeleryWorker]
) -> None:
    target = tmp_path / "worker.prom"
    worker = celery_worker(
        tmp_path, redis_url, pool="threads", env={"METERHUB_TEXTFILE_PATH": str(target)}
    )
    app = worker.app()
    try:
        assert app.send_task("mh_tasks.ok", (4,)).get(timeout=60) == 8
        # the ok task's success is counted just after its result is stored: flush until seen
        metrics = wait_for_file(
            target,
            lambda m: tasks_total(m, "mh_tasks.ok", "succeeded") == 1,
            kick=lambda: app.send_task("meterhub.flush_metrics_to_file"),
        )
    finally:
        app.close()
    assert tasks_total(metrics, "mh_tasks.ok", "started") == 1
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644


def test_beat_writes_the_merged_view_of_prefork_children(
    tmp_path: Path, redis_url: str, celery_worker: Callable[..., CeleryWorker]
) -> None:
    """Embedded beat schedules the flush; whichever child runs it writes every process."""
    pytest.importorskip("meterhub.multiprocess", reason="the multi-process store is not built")
    target = tmp_path / "beat.prom"
    mp = tmp_path / "mp"
    mp.mkdir()
    worker = celery_worker(
        tmp_path,
        redis_url,
        pool="prefork",
        concurrency=2,
        max_tasks_per_child=2,
        beat=True,
        env={
            "METERHUB_MULTIPROC_DIR": str(mp),
            "METERHUB_TEXTFILE_PATH": str(target),
            "MH_FLUSH_EVERY": "0.5",
        },
    )
    app = worker.app()
    try:
        results = [app.send_task("mh_tasks.ok", (i,)) for i in range(6)]
        assert [r.get(timeout=60) for r in results] == [2 * i for i in range(6)]
        # 6 tasks over children recycled every 2 tasks: only the merged view counts 6; a
        # flush counts its own success after writing, so a later flush shows an earlier one
        metrics = wait_for_file(
            target,
            lambda m: (
                tasks_total(m, "mh_tasks.ok", "succeeded") == 6
                and tasks_total(m, "meterhub.flush_metrics_to_file", "succeeded") >= 1
            ),
        )
    finally:
        app.close()
    assert tasks_total(metrics, "mh_tasks.ok", "started") == 6
    assert tasks_total(metrics, "meterhub.flush_metrics_to_file", "succeeded") >= 1
