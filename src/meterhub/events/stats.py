"""Event stores' counters as metrics: one collector per registry, one series set per store.

``meterhub_event_store_written_total{store}``, ``meterhub_event_store_dropped_total{store,reason}``,
``meterhub_event_store_write_errors_total{store}`` and ``meterhub_event_store_buffered{store}``.
Stores of the same kind (``store`` label = ``sqlite``/``postgres``/``oplog``) are summed.
"""

from __future__ import annotations

import collections
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from ..registry import Registry
from ..samples import MetricFamily, MetricType, Series

__all__ = ["register_store"]

_NAMES = (
    "meterhub_event_store_written",
    "meterhub_event_store_dropped",
    "meterhub_event_store_write_errors",
    "meterhub_event_store_buffered",
)


class _StoreStats:
    def __init__(self) -> None:
        self._stores: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    def add(self, store: Any) -> None:
        with self._lock:
            self._stores.add(store)

    def _sample_names(self) -> tuple[str, ...]:
        return (
            *(n + "_total" for n in _NAMES[:3]),
            *_NAMES[:3],
            _NAMES[3],
        )

    def collect(self) -> Iterator[MetricFamily]:
        with self._lock:
            stores = list(self._stores)
        tally: collections.Counter[tuple[str, str]] = collections.Counter()
        for store in stores:
            kind = str(getattr(store, "name", type(store).__name__))
            for key, value in store.stats().items():
                tally[(kind, key)] += value

        def fam(name: str, help: str, mtype: MetricType, key: str) -> MetricFamily:
            series = tuple(
                Series((("store", kind),), (v,))
                for (kind, k), v in sorted(tally.items())
                if k == key
            )
            return MetricFamily(name, help, mtype, series=series)

        yield fam(
            _NAMES[0], "Events written durably by the event store.", MetricType.COUNTER, "written"
        )
        yield fam(_NAMES[2], "Failed batch writes (retried).", MetricType.COUNTER, "write_errors")
        yield fam(_NAMES[3], "Events waiting in the store's buffer.", MetricType.GAUGE, "buffered")
        dropped = tuple(
            Series((("store", kind), ("reason", k[len("dropped_") :])), (v,))
            for (kind, k), v in sorted(tally.items())
            if k.startswith("dropped_")
        )
        yield MetricFamily(
            _NAMES[1], "Events the store dropped, by reason.", MetricType.COUNTER, series=dropped
        )


def register_store(registry: Registry, store: Any) -> None:
    """Export *store*'s ``stats()`` on *registry* (idempotent per registry)."""
    stats = registry.get_or_register(
        _NAMES[0], lambda existing: isinstance(existing, _StoreStats), _StoreStats
    )
    if not isinstance(stats, _StoreStats):  # pragma: no cover - a foreign collector took the name
        return
    stats.add(store)
