"""The Prometheus metrics an operation log keeps, on the registry it was given.

Re-declaring an identical metric returns the existing one, so every log on a registry
shares these metric objects; the queue-size gauge sums the live logs of its registry.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from ..metrics import Counter, CounterChild, Gauge, Histogram, HistogramChild
from ..registry import Registry

__all__ = ["OplogInstruments", "OTHER_OPERATION"]

OTHER_OPERATION = "__other__"
"""The ``operation_name`` label value of names outside the allowed list."""

_CACHE_MAX = 10_000
_SUCCESS = {True: "true", False: "false"}

# registry -> the pending-record counters of its live logs, summed by the queue gauge.
_live: weakref.WeakKeyDictionary[Any, weakref.WeakSet[Any]] = weakref.WeakKeyDictionary()
_live_lock = threading.Lock()


class OplogInstruments:
    """Creates (or finds) the oplog's metrics and records one operation into them."""

    def __init__(
        self, registry: Registry | None, operation_names: Iterable[str] | None = None
    ) -> None:
        self.names = frozenset(operation_names) if operation_names is not None else None
        by_name = ("operation_name",) if self.names is not None else ()
        self.operations = Counter(
            "meterhub_operations_total",
            "Operations recorded in the operation log, by type and success.",
            ("operation_type", *by_name, "success"),
            registry=registry,
        )
        self.duration = Histogram(
            "meterhub_operation_duration_seconds",
            "Duration of the operations recorded in the operation log.",
            ("operation_type", *by_name),
            registry=registry,
        )
        self.dropped = Counter(
            "meterhub_oplog_dropped_total",
            "Operation records dropped because the operation log's buffer was full.",
            registry=registry,
        )
        self.persisted = Counter(
            "meterhub_oplog_persisted_total",
            "Operation records written to batch files.",
            registry=registry,
        )
        self.write_errors = Counter(
            "meterhub_oplog_write_errors_total",
            "Batch-file writes that failed and were retried.",
            registry=registry,
        )
        self.queue_size = Gauge(
            "meterhub_oplog_queue_size",
            "Operation records accepted and not yet persisted.",
            registry=registry,
        )
        self._registry_key: Any = registry if registry is not None else self
        self._children: dict[tuple[str, str, bool], tuple[CounterChild, HistogramChild]] = {}
        self._caches: list[dict[Any, Any]] = [self._children]
        self.operations.watch_series(self)
        self.duration.watch_series(self)

    def share_cache(self, cache: dict[Any, Any]) -> None:
        """Empty *cache* (of children of these metrics) too when their series are removed."""
        self._caches.append(cache)

    def series_forgotten(self) -> None:
        """``remove()`` or ``clear()`` on the operation metrics: children are re-fetched."""
        for cache in self._caches:
            cache.clear()

    def track_queue(self, log: Any) -> None:
        """Count *log*'s pending records in the queue-size gauge while it is alive."""
        with _live_lock:
            logs = _live.get(self._registry_key)
            if logs is None:
                logs = _live[self._registry_key] = weakref.WeakSet()
                self.queue_size.set_function(_summing(logs))
            logs.add(log)

    def observe(
        self, operation_type: str, operation_name: str, success: bool, duration_ms: float
    ) -> None:
        """Count one operation and observe its duration (children cached per label set)."""
        counter, histogram = self.children(operation_type, operation_name, success)
        counter.inc()
        histogram.observe(duration_ms / 1000.0)

    def children(
        self, operation_type: str, operation_name: str, success: bool
    ) -> tuple[CounterChild, HistogramChild]:
        """The counter and histogram series of one operation."""
        key = (operation_type, operation_name if self.names is not None else "", success)
        pair = self._children.get(key)
        if pair is not None:
            return pair
        if self.names is None:
            counter = self.operations.labels(operation_type, _SUCCESS[success])
            histogram = self.duration.labels(operation_type)
        else:
            name = operation_name if operation_name in self.names else OTHER_OPERATION
            counter = self.operations.labels(operation_type, name, _SUCCESS[success])
            histogram = self.duration.labels(operation_type, name)
        pair = (counter, histogram)
        if len(self._children) < _CACHE_MAX:
            self._children[key] = pair
        return pair


def _summing(logs: weakref.WeakSet[Any]) -> Callable[[], float]:
    def total() -> float:
        return float(sum(log._buffer.pending for log in list(logs)))

    return total
