"""Celery task metrics: a real worker with a real Redis broker, and in-process checks."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("celery")

from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from meterhub import Registry
from meterhub.integrations.celery import (
    DEFAULT_TASK_BUCKETS,
    PUBLISHED_AT_HEADER,
    add_flush_schedule,
    flush_metrics_to_file,
    instrument,
)
from support.celery_worker import CeleryWorker

Metrics = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Metrics:
    out: Metrics = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def tasks_total(metrics: Metrics, task: str, state: str) -> float:
    return value(metrics, "celery_tasks_total", task=task, state=state)


def worker_view(
    worker: CeleryWorker, app: Celery, expect: Callable[[Metrics], bool], timeout: float = 60.0
) -> Metrics:
    """Poll the worker's metrics (through its ``dump`` task) until *expect* holds."""
    path = str(worker.directory / "worker.prom")
    deadline = time.monotonic() + timeout
    metrics: Metrics = {}
    while time.monotonic() < deadline:
        app.send_task("mh_tasks.dump", (path,)).get(timeout=30)
        metrics = parse(Path(path).read_text())
        if expect(metrics):
            return metrics
        time.sleep(0.1)
    return metrics


def run_workload(app: Celery) -> None:
    """6 ok + 1 ok with countdown, 3 failing, 2 retrying once, 1 expired, 1 unknown task."""
    ok = [app.send_task("mh_tasks.ok", (i,)) for i in range(6)]
    later = app.send_task("mh_tasks.ok", (100,), countdown=0.3)
    boom = [app.send_task("mh_tasks.boom", (i,)) for i in range(3)]
    flaky = [app.send_task("mh_tasks.flaky", (i,)) for i in range(2)]
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    expired = app.send_task("mh_tasks.ok", (-1,), expires=past)
    app.send_task("mh_tasks.nope", (1,))
    assert [r.get(timeout=60) for r in ok] == [2 * i for i in range(6)]
    assert later.get(timeout=60) == 200
    for r in boom:
        r.get(timeout=60, propagate=False)
        assert r.failed()
        assert isinstance(r.result, ValueError)
    assert [r.get(timeout=60) for r in flaky] == [0, 1]
    expired.get(timeout=60, propagate=False)
    assert expired.state == "REVOKED"


def check_worker_counts(m: Metrics) -> None:
    assert tasks_total(m, "mh_tasks.ok", "started") == 7
    assert tasks_total(m, "mh_tasks.ok", "succeeded") == 7
    assert tasks_total(m, "mh_tasks.ok", "revoked") == 1
    assert tasks_total(m, "mh_tasks.boom", "started") == 3
    assert tasks_total(m, "mh_tasks.boom", "failed") == 3
    assert tasks_total(m, "mh_tasks.flaky", "started") == 4
    assert tasks_total(m, "mh_tasks.flaky", "retried") == 2
    assert tasks_total(m, "mh_tasks.flaky", "succeeded") == 2
    assert tasks_total(m, "mh_tasks.flaky", "sent") == 2  # the retries, published by the worker
    assert tasks_total(m, "mh_tasks.nope", "rejected") == 1
    failures = "celery_task_failures_total"
    assert value(m, failures, task="mh_tasks.boom", exception="ValueError") == 3
    duration = "celery_task_duration_seconds_count"
    assert value(m, duration, task="mh_tasks.ok") == 7
    assert value(m, duration, task="mh_tasks.boom") == 3
    assert value(m, duration, task="mh_tasks.flaky") == 4
    # ETA/countdown tasks (the delayed ok and both retries) have no queue wait
    wait = "celery_task_queue_wait_seconds_count"
    assert value(m, wait, task="mh_tasks.ok") == 6
    assert value(m, wait, task="mh_tasks.flaky") == 2
    for task in ("mh_tasks.ok", "mh_tasks.boom", "mh_tasks.flaky"):
        assert value(m, "celery_tasks_in_progress", task=task) == 0


def settled(m: Metrics) -> bool:
    return (
        value(m, "celery_task_duration_seconds_count", task="mh_tasks.flaky") >= 4
        and value(m, "celery_task_duration_seconds_count", task="mh_tasks.ok") >= 7
        and value(m, "celery_task_duration_seconds_count", task="mh_tasks.boom") >= 3
        and tasks_total(m, "mh_tasks.nope", "rejected") >= 1
    )


def test_threads_worker_counts_exact(
    tmp_path: Path, redis_url: str, celery_worker: Callable[..., CeleryWorker], registry: Registry
) -> None:
    worker = celery_worker(tmp_path, redis_url, pool="threads", concurrency=2)
    app = worker.app(registry)
    try:
        run_workload(app)
        check_worker_counts(worker_view(worker, app, settled))
    finally:
        app.close()
    # producer side: what this process published
    assert (
        registry.get_sample_value("celery_tasks_total", {"task": "mh_tasks.ok", "state": "sent"})
        == 8
    )
    assert (
        registry.get_sample_value("celery_tasks_total", {"task": "mh_tasks.nope", "state": "sent"})
        == 1
    )


# -- in-process (eager) checks ------------------------------------------------------------


def eager_app(registry: Registry, name: str = "eager") -> Celery:
    app = Celery(name)
    app.conf.task_always_eager = True
    instrument(app, registry=registry)
    return app


def get(registry: Registry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_eager_success_and_failure(registry: Registry) -> None:
    app = eager_app(registry)

    @app.task(name="shop.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="shop.fail")
    def fail() -> None:
        raise KeyError("nope")

    assert add.delay(1, 2).get() == 3
    assert fail.apply().failed()
    assert get(registry, "celery_tasks_total", task="shop.add", state="started") == 1
    assert get(registry, "celery_tasks_total", task="shop.add", state="succeeded") == 1
    assert get(registry, "celery_tasks_total", task="shop.fail", state="failed") == 1
    assert get(registry, "celery_task_failures_total", task="shop.fail", exception="KeyError") == 1
    assert get(registry, "celery_task_duration_seconds_count", task="shop.add") == 1
    assert get(registry, "celery_task_duration_seconds_count", task="shop.fail") == 1
    assert get(registry, "celery_tasks_in_progress", task="shop.add") == 0
    # eager tasks are never published: no queue wait
    assert get(registry, "celery_task_queue_wait_seconds_count", task="shop.add") == 0


def test_instrument_is_idempotent_and_per_app(registry: Registry) -> None:
    app = eager_app(registry, "one")
    instrument(app, registry=registry)
    other_registry = Registry(self_metrics=False)
    other = eager_app(other_registry, "two")

    @app.task(name="one.t")
    def t() -> int:
        return 1

    @other.task(name="two.t")
    def u() -> int:
        return 2

    t.delay().get()
    u.delay().get()
    assert get(registry, "celery_tasks_total", task="one.t", state="started") == 1
    assert get(registry, "celery_tasks_total", task="two.t", state="started") == 0
    assert get(other_registry, "celery_tasks_total", task="two.t", state="started") == 1


def test_hostile_task_names_render(registry: Registry) -> None:
    from meterhub import generate_latest

    app = eager_app(registry)
    names = ['q"uote', "new\nline", "back\\slash", "ünï©ødé ✓"]

    def noop() -> None:
        return None

    for name in names:
        app.task(name=name)(noop).delay().get()
    parsed = parse(generate_latest(registry).decode())
    for name in names:
        assert tasks_total(parsed, name, "succeeded") == 1


def test_instrument_bad_input(registry: Registry) -> None:
    with pytest.raises(TypeError, match="Celery app"):
        instrument(object(), registry=registry)
    with pytest.raises(TypeError, match="Registry"):
        instrument(Celery("x"), registry="REGISTRY")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bucket"):
        instrument(Celery("y"), registry=Registry(self_metrics=False), buckets=[2.0, 1.0])
    instrument(Celery("z"), registry=registry)
    with pytest.raises(ValueError, match="celery_task_duration_seconds"):
        instrument(Celery("z2"), registry=registry, buckets=[1.0, 2.0])
    assert instrument(Celery("z3"), registry=registry).buckets == DEFAULT_TASK_BUCKETS


def test_publish_header_and_eta(redis_url: str, registry: Registry) -> None:
    """The publish time rides in a header; ETA/countdown messages do not carry it."""
    from kombu import Connection

    queue = f"hdr-{time.monotonic_ns()}"
    base = redis_url.rsplit("/", 1)[0]
    app = Celery("hdr", broker=f"{base}/2")
    app.conf.task_default_queue = queue
    instrument(app, registry=registry)
    before = time.time()
    app.send_task("hdr.now")
    app.send_task("hdr.later", countdown=30)
    with Connection(f"{base}/2") as conn:
        q = conn.SimpleQueue(queue)
        try:
            messages = [q.get(timeout=10) for _ in range(2)]
        finally:
            q.close()
    headers = {m.headers["task"]: m.headers for m in messages}
    assert before <= headers["hdr.now"][PUBLISHED_AT_HEADER] <= time.time()
    assert PUBLISHED_AT_HEADER not in headers["hdr.later"]
    assert get(registry, "celery_tasks_total", task="hdr.now", state="sent") == 1
    app.close()


def test_flush_task_is_registered_on_apps() -> None:
    app = Celery("reg")
    assert flush_metrics_to_file.name in app.tasks
    assert add_flush_schedule(app)["task"] == "meterhub.flush_metrics_to_file"


# -- prefork + multi-process mode ---------------------------------------------------------


def test_prefork_worker_counts_exact_in_multiprocess_mode(
    tmp_path: Path, redis_url: str, celery_worker: Callable[..., CeleryWorker], registry: Registry
) -> None:
    pytest.importorskip("meterhub.multiprocess", reason="the multi-process store is not built")
    from meterhub import generate_latest
    from meterhub.multiprocess import MultiProcessCollector

    mp = tmp_path / "mp"
    mp.mkdir()
    worker = celery_worker(
        tmp_path,
        redis_url,
        pool="prefork",
        concurrency=2,
        max_tasks_per_child=2,
        env={"METERHUB_MULTIPROC_DIR": str(mp)},
    )
    app = worker.app(registry)
    try:
        run_workload(app)
        # --max-tasks-per-child 2 recycles the pool children: more pids than slots ran tasks
        pids = {app.send_task("mh_tasks.whoami").get(timeout=60) for _ in range(6)}
        assert len(pids) > 2
        # the merged view, as collected inside a pool child
        check_worker_counts(worker_view(worker, app, settled))
    finally:
        app.close()
    worker.stop()
    # the merged view of the directory from another process, after every child exited
    sidecar = Registry(self_metrics=False)
    sidecar.register(MultiProcessCollector(mp))
    merged = parse(generate_latest(sidecar).decode())
    check_worker_counts(merged)
    assert tasks_total(merged, "mh_tasks.whoami", "succeeded") == 6


def test_prefork_child_killed_mid_task(
    tmp_path: Path, redis_url: str, celery_worker: Callable[..., CeleryWorker]
) -> None:
    """SIGKILL of a pool child: its counts survive, the failure is counted, nothing stuck."""
    pytest.importorskip("meterhub.multiprocess", reason="the multi-process store is not built")
    from meterhub import generate_latest
    from meterhub.multiprocess import MultiProcessCollector

    mp = tmp_path / "mp"
    mp.mkdir()
    worker = celery_worker(
        tmp_path, redis_url, pool="prefork", env={"METERHUB_MULTIPROC_DIR": str(mp)}
    )
    app = worker.app()
    try:
        result = app.send_task("mh_tasks.suicide")
        result.get(timeout=60, propagate=False)
        assert result.state == "FAILURE"
        assert app.send_task("mh_tasks.ok", (1,)).get(timeout=60) == 2  # the pool recovered
    finally:
        app.close()
    sidecar = Registry(self_metrics=False)
    sidecar.register(MultiProcessCollector(mp))
    # a result is stored before the success signal fires: poll for the ok task's success
    deadline = time.monotonic() + 30
    while True:
        m = parse(generate_latest(sidecar).decode())
        if tasks_total(m, "mh_tasks.ok", "succeeded") == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert tasks_total(m, "mh_tasks.suicide", "started") == 1  # recorded by the dead child
    assert tasks_total(m, "mh_tasks.suicide", "failed") == 1  # by the main process
    failures = "celery_task_failures_total"
    assert value(m, failures, task="mh_tasks.suicide", exception="WorkerLostError") == 1
    assert value(m, "celery_tasks_in_progress", task="mh_tasks.suicide") == 0
    assert tasks_total(m, "mh_tasks.ok", "succeeded") == 1
