"""``Component``: the metrics of one external integration (Jira, a payment API, S3 ...).

The pattern every integration needs, in one object::

    jira = hub.component("jira")
    try:
        client = connect()
    except Exception:
        jira.initialization_failed()
        raise
    with jira.call("create_issue"):          # also `async with`, also a decorator
        client.create_issue(...)

It records, on the hub's registry and under the hub's namespace ``<ns>``:

* ``<ns>_component_initialization_errors_total{component}``
* ``<ns>_component_calls_total{component,operation,status}`` (status ``success``/``failure``)
* ``<ns>_component_call_duration_seconds{component,operation}``
* ``<ns>_component_last_success_timestamp_seconds{component}`` (moves on success only)

and, when given an :class:`~meterhub.oplog.OperationLog`, one record per call
(``operation_type`` = the component, ``operation_name`` = the operation).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ._definition.scope import Scope
from .guard import shielded
from .metrics import DEFAULT_BUCKETS, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from ._hub import Hub
    from .oplog import OperationLog

__all__ = ["Component"]


class _CallMetrics:
    """The children one (component, operation) pair records into."""

    __slots__ = ("duration", "failure", "success")

    def __init__(self, success: Any, failure: Any, duration: Any) -> None:
        self.success = success
        self.failure = failure
        self.duration = duration


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Component:
    """Tracks calls to one external integration; get it from ``hub.component(name)``.

    Example::

        >>> from meterhub import Hub, Registry
        >>> reg = Registry(self_metrics=False)
        >>> jira = Hub(registry=reg, namespace="sentryhub").component("jira")
        >>> with jira.call("create_issue"):
        ...     pass
        >>> reg.get_sample_value("sentryhub_component_calls_total",
        ...     {"component": "jira", "operation": "create_issue", "status": "success"})
        1.0
    """

    def __init__(
        self, name: str, hub: Hub | None = None, *, oplog: OperationLog | None = None
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"component name must be a non-empty str, got {name!r}")
        if hub is None:
            from ._hub import hub as default_hub

            hub = default_hub
        self.name = name
        self.hub = hub
        self.oplog = oplog
        ns, registry = hub.namespace, hub.registry
        buckets = hub._buckets if hub._buckets is not None else DEFAULT_BUCKETS
        self._init_errors = Counter(
            "component_initialization_errors_total",
            "Failed initialisations of external components (clients that could not be built).",
            ("component",),
            namespace=ns,
            registry=registry,
        ).labels(name)
        self._calls = Counter(
            "component_calls_total",
            "Calls to external components, by operation and status (success/failure).",
            ("component", "operation", "status"),
            namespace=ns,
            registry=registry,
        )
        self._durations = Histogram(
            "component_call_duration_seconds",
            "Duration of calls to external components, by operation.",
            ("component", "operation"),
            namespace=ns,
            registry=registry,
            buckets=buckets,
        )
        self._last_success = Gauge(
            "component_last_success_timestamp_seconds",
            "Unix time of the last successful call to each external component.",
            ("component",),
            namespace=ns,
            registry=registry,
            multiprocess_mode="max",  # the latest success of any process, no pid label
        ).labels(name)
        self._ops: dict[str, _CallMetrics] = {}

    def __repr__(self) -> str:
        return f"<Component {self.name!r}>"

    def initialization_failed(self) -> None:
        """Count a failed initialisation (the client could not be created)."""
        self._init_errors.inc()

    def call(self, operation: str) -> Scope[float]:
        """Time one call of *operation*: ``with``, ``async with`` or a decorator.

        An exception marks the call ``failure`` and is re-raised; the last-success
        timestamp only moves on success.
        """
        metrics = self._ops.get(operation)
        if metrics is None:
            metrics = self._metrics_for(operation)

        def done(start: float, exc: BaseException | None) -> None:
            elapsed = time.perf_counter() - start
            metrics.duration.observe(elapsed)
            if exc is None:
                metrics.success.inc()
                self._last_success.set(time.time())
            else:
                metrics.failure.inc()
            log = self.oplog
            if log is not None:
                with shielded(self.hub.registry.self_metrics, f"component:{self.name}", "oplog"):
                    log.record_operation_nowait(
                        self.name,
                        operation,
                        elapsed * 1000.0,
                        exc is None,
                        None if exc is None else _error_text(exc),
                    )

        return Scope(time.perf_counter, done)

    def _metrics_for(self, operation: str) -> _CallMetrics:
        if not isinstance(operation, str) or not operation:
            raise ValueError(
                f"component {self.name!r}: operation must be a non-empty str, got {operation!r}"
            )
        metrics = _CallMetrics(
            self._calls.labels(self.name, operation, "success"),
            self._calls.labels(self.name, operation, "failure"),
            self._durations.labels(self.name, operation),
        )
        if len(self._ops) < 1000:
            self._ops[operation] = metrics
        return metrics
