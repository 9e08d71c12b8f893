"""Celery task metrics from signals, and the beat task that writes the textfile.

``instrument(app)`` connects Celery's task signals and records, by task name:

* ``celery_tasks_total{task,state}``: ``state`` is one of ``sent``, ``started``,
  ``succeeded``, ``failed``, ``retried``, ``rejected``, ``revoked``;
* ``celery_task_duration_seconds{task}``: run time of the task body (exemplar: the trace);
* ``celery_task_queue_wait_seconds{task}``: publish to start, ETA/countdown tasks excluded;
* ``celery_tasks_in_progress{task}``: started and not yet finished (``livesum``);
* ``celery_task_failures_total{task,exception}``: failures by exception class name.

The publish time travels in the message header ``meterhub_published_at`` (wall-clock
seconds, set in ``before_task_publish``), so the queue wait is measured across processes
and hosts; a negative wait from clock skew is recorded as 0.

**Prefork.** Set ``METERHUB_MULTIPROC_DIR`` in the worker's environment: each pool child
records into its own file of that directory and any collection (the beat task below, an
HTTP scrape in another process, ``meterhub serve``) merges them, so counts survive child
recycling (``--max-tasks-per-child``) exactly. No port is opened per child.

**Beat.** :func:`add_flush_schedule` schedules :data:`flush_metrics_to_file`, which calls
``meterhub.hub.write_metrics()`` (the node_exporter textfile, ``METERHUB_TEXTFILE_PATH``).
In multi-process mode the file holds the *merged* view of every process sharing the
directory, whichever worker runs the task.

Example::

    from celery import Celery
    from meterhub.integrations.celery import add_flush_schedule, instrument

    app = Celery("shop", broker="redis://127.0.0.1:6379/0")
    instrument(app)
    add_flush_schedule(app, every=15.0)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

try:
    from celery import shared_task, signals
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "meterhub.integrations.celery needs Celery: pip install 'meterhub[celery]'"
    ) from exc

from meterhub import REGISTRY, Counter, Gauge, Histogram, Registry, hub, is_enabled, shielded

from .tracing import current_exemplar

__all__ = [
    "DEFAULT_TASK_BUCKETS",
    "PUBLISHED_AT_HEADER",
    "TASK_STATES",
    "CeleryMetrics",
    "add_flush_schedule",
    "flush_metrics_to_file",
    "instrument",
]

PUBLISHED_AT_HEADER = "meterhub_published_at"
"""The message header carrying the publish time (seconds since the epoch)."""

TASK_STATES = ("sent", "started", "succeeded", "failed", "retried", "rejected", "revoked")
"""The values of the ``state`` label of ``celery_tasks_total``."""

DEFAULT_TASK_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip
"""Task durations and queue waits range from milliseconds to an hour."""

_WHAT = "celery_integration"


class CeleryMetrics:
    """The Celery metric family set of one registry (created once per registry)."""

    def __init__(self, registry: Registry, buckets: Sequence[float]) -> None:
        self.registry = registry
        self.buckets = tuple(buckets)
        self.tasks = Counter(
            "celery_tasks",
            "Celery tasks by name and lifecycle state.",
            ("task", "state"),
            registry=registry,
        )
        self.duration = Histogram(
            "celery_task_duration_seconds",
            "Run time of Celery task bodies, in seconds.",
            ("task",),
            buckets=tuple(buckets),
            registry=registry,
        )
        self.queue_wait = Histogram(
            "celery_task_queue_wait_seconds",
            "Time from publish to start of Celery tasks without ETA/countdown, in seconds.",
            ("task",),
            buckets=tuple(buckets),
            registry=registry,
        )
        self.in_progress = Gauge(
            "celery_tasks_in_progress",
            "Celery tasks started and not finished.",
            ("task",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.failures = Counter(
            "celery_task_failures",
            "Failed Celery tasks by name and exception class.",
            ("task", "exception"),
            registry=registry,
        )
        # task_id -> (perf_counter at start, exemplar at start, task name)
        self._running: dict[str, tuple[float, dict[str, str] | None, str]] = {}

    def count(self, task: str, state: str) -> None:
        self.tasks.labels(task, state).inc()

    def started(self, task_id: str, task: str, published_at: Any) -> None:
        self.count(task, "started")
        self.in_progress.labels(task).inc()
        self._running[task_id] = (time.perf_counter(), current_exemplar(), task)
        if isinstance(published_at, (int, float)) and math.isfinite(published_at):
            self.queue_wait.labels(task).observe(max(0.0, time.time() - float(published_at)))

    def finished(self, task_id: str) -> None:
        entry = self._running.pop(task_id, None)
        if entry is None:  # started before instrument() ran: nothing to close
            return
        start, exemplar, task = entry
        self.in_progress.labels(task).dec()
        self.duration.labels(task).observe(
            time.perf_counter() - start, exemplar=current_exemplar() or exemplar
        )


class _Instrumentation:
    """The signal receivers bound to one app and one :class:`CeleryMetrics`."""

    def __init__(self, app: Any, metrics: CeleryMetrics) -> None:
        self.app = app
        self.metrics = metrics

    def _ours(self, task: Any) -> bool:
        return getattr(task, "_app", None) is self.app or getattr(task, "app", None) is self.app

    def _shield(self) -> Any:
        return shielded(self.metrics.registry.self_metrics, _WHAT)

    # Task-side signals: only tasks of this app.

    def on_prerun(
        self, sender: Any = None, task_id: Any = None, task: Any = None, **_: Any
    ) -> None:
        task = task if task is not None else sender
        if not self._ours(task):
            return
        with self._shield():
            published = getattr(task.request, PUBLISHED_AT_HEADER, None)
            self.metrics.started(str(task_id), task.name, published)

    def on_postrun(self, sender: Any = None, task_id: Any = None, **_: Any) -> None:
        if self._ours(sender):
            with self._shield():
                self.metrics.finished(str(task_id))

    def on_success(self, sender: Any = None, **_: Any) -> None:
        if self._ours(sender):
            with self._shield():
                self.metrics.count(sender.name, "succeeded")

    def on_failure(self, sender: Any = None, exception: Any = None, **_: Any) -> None:
        if self._ours(sender):
            with self._shield():
                self.metrics.count(sender.name, "failed")
                self.metrics.failures.labels(sender.name, type(exception).__name__).inc()

    def on_retry(self, sender: Any = None, **_: Any) -> None:
        if self._ours(sender):
            with self._shield():
                self.metrics.count(sender.name, "retried")

    def on_revoked(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        if self._ours(sender):
            with self._shield():
                self.metrics.count(_task_name(sender, request), "revoked")
                # a task revoked while running never reaches task_postrun
                task_id = getattr(request, "id", None)
                if task_id is not None:
                    self.metrics.finished(str(task_id))

    def on_rejected(self, sender: Any = None, message: Any = None, **_: Any) -> None:
        if sender is None or getattr(sender, "app", None) is self.app:
            with self._shield():
                headers = getattr(message, "headers", None) or {}
                self.metrics.count(str(headers.get("task") or "unknown"), "rejected")

    def on_unknown(self, sender: Any = None, name: Any = None, **_: Any) -> None:
        if sender is None or getattr(sender, "app", None) is self.app:
            with self._shield():
                self.metrics.count(str(name or "unknown"), "rejected")

    def connect(self) -> None:
        uid = f"meterhub-{id(self.app)}"
        for signal, receiver in (
            (signals.task_prerun, self.on_prerun),
            (signals.task_postrun, self.on_postrun),
            (signals.task_success, self.on_success),
            (signals.task_failure, self.on_failure),
            (signals.task_retry, self.on_retry),
            (signals.task_revoked, self.on_revoked),
            (signals.task_rejected, self.on_rejected),
            (signals.task_unknown, self.on_unknown),
        ):
            signal.connect(receiver, weak=False, dispatch_uid=uid)


def _task_name(sender: Any, request: Any) -> str:
    name = getattr(sender, "name", None)
    if isinstance(name, str):
        return name
    return str(getattr(request, "task", None) or getattr(request, "name", None) or "unknown")


# Publish-side signals carry no app, only the task name: they are counted once per
# registry, whichever instrumented app published.
_publish_lock = threading.Lock()
_publish_metrics: dict[int, CeleryMetrics] = {}
_metrics_by_registry: dict[int, CeleryMetrics] = {}


def _before_publish(headers: Any = None, body: Any = None, **_: Any) -> None:
    with shielded(REGISTRY.self_metrics, _WHAT):
        if not isinstance(headers, dict):
            return
        eta = headers.get("eta")
        if eta is None and isinstance(body, Mapping):  # task protocol 1
            eta = body.get("eta")
        # Always overwritten: a retry may carry the first publish's headers along.
        if eta is None:
            headers[PUBLISHED_AT_HEADER] = time.time()
        else:
            headers.pop(PUBLISHED_AT_HEADER, None)


def _after_publish(sender: Any = None, headers: Any = None, body: Any = None, **_: Any) -> None:
    name = sender
    if not isinstance(name, str):
        name = (headers or {}).get("task") or (body or {}).get("task") or "unknown"
    for metrics in list(_publish_metrics.values()):
        with shielded(metrics.registry.self_metrics, _WHAT):
            metrics.count(str(name), "sent")


def instrument(
    app: Any, registry: Registry | None = None, *, buckets: Sequence[float] | None = None
) -> CeleryMetrics:
    """Record task metrics for *app* into *registry* (default ``REGISTRY``).

    Call it where the app is defined so that both producers and workers run it.
    Idempotent per app; returns the :class:`CeleryMetrics` in use.

    Example::

        >>> from celery import Celery
        >>> from meterhub import Registry
        >>> from meterhub.integrations.celery import instrument
        >>> reg = Registry(self_metrics=False)
        >>> metrics = instrument(Celery("demo"), registry=reg)
        >>> metrics.tasks.name
        'celery_tasks'
    """
    if not callable(getattr(app, "task", None)) or not hasattr(app, "conf"):
        raise TypeError(f"instrument needs a Celery app, got {app!r}")
    reg = registry if registry is not None else REGISTRY
    if not isinstance(reg, Registry):
        raise TypeError(f"registry must be a meterhub Registry, got {reg!r}")
    with _publish_lock:
        metrics = _metrics_by_registry.get(id(reg))
        wanted = tuple(buckets) if buckets is not None else None
        if (
            metrics is None
            or metrics.registry is not reg
            or (wanted is not None and wanted != metrics.buckets)
        ):
            # a different bucket layout on the same registry raises the core's conflict error
            metrics = CeleryMetrics(reg, wanted if wanted is not None else DEFAULT_TASK_BUCKETS)
            _metrics_by_registry[id(reg)] = metrics
        _publish_metrics[id(reg)] = metrics
        _Instrumentation(app, metrics).connect()
        signals.before_task_publish.connect(_before_publish, dispatch_uid="meterhub-publish")
        signals.after_task_publish.connect(_after_publish, dispatch_uid="meterhub-published")
    return metrics


# -- the beat task ------------------------------------------------------------------------


def _flush_metrics_to_file(path: str | None = None) -> bool:
    """Write the metrics textfile now; returns False when meterhub is disabled."""
    if not is_enabled():
        return False
    hub.write_metrics(path)
    return True


flush_metrics_to_file: Any = shared_task(name="meterhub.flush_metrics_to_file", ignore_result=True)(
    _flush_metrics_to_file
)
"""Celery task: ``hub.write_metrics(path)`` (every process merged in multi-process mode).

Registered on every Celery app as ``meterhub.flush_metrics_to_file``. A failed write
raises :class:`~meterhub.errors.ExportError`, so the task shows as failed.
"""

FLUSH_SCHEDULE_NAME = "meterhub-flush-metrics"


def add_flush_schedule(
    app: Any,
    every: float | timedelta = 15.0,
    path: str | None = None,
    *,
    name: str = FLUSH_SCHEDULE_NAME,
) -> dict[str, Any]:
    """Add :data:`flush_metrics_to_file` to ``app.conf.beat_schedule`` every *every* seconds.

    The entry expires after one period so that flushes queued while no worker runs do not
    pile up. Returns the schedule entry.

    Example::

        >>> from celery import Celery
        >>> app = Celery("demo")
        >>> add_flush_schedule(app, every=15.0)["task"]
        'meterhub.flush_metrics_to_file'
    """
    seconds = every.total_seconds() if isinstance(every, timedelta) else every
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"every must be seconds or a timedelta, got {every!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"every must be a positive, finite period, got {every!r}")
    if path is not None and (not isinstance(path, str) or not path or "\0" in path):
        raise ValueError(f"path must be a non-empty file path, got {path!r}")
    if not hasattr(app, "conf"):
        raise TypeError(f"add_flush_schedule needs a Celery app, got {app!r}")
    entry: dict[str, Any] = {
        "task": flush_metrics_to_file.name,
        "schedule": float(seconds),
        "args": (path,) if path else (),
        "options": {"expires": float(seconds)},
    }
    schedule = dict(app.conf.beat_schedule or {})
    schedule[name] = entry
    app.conf.beat_schedule = schedule
    return entry
