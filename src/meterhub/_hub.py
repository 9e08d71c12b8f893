"""The hub: a central manager for code that only wants to signal what happened.

``hub.inc_counter("jira_errors_total", {"operation": "create_issue"})`` creates the metric
on first use and records into it afterwards; the metric's type and label *names* are
fixed by that first use. The hub also owns the background flushers (the node_exporter
textfile) and hands out :class:`~meterhub.component.Component` trackers.

This module is private so that ``meterhub.hub`` means one thing: the process-wide
:class:`Hub` instance (``from meterhub import Hub, hub``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ._config import get_config
from ._forksafe import renew_locks_after_fork
from .errors import DefinitionError
from .metrics import Counter, Gauge, Histogram
from .registry import REGISTRY, Registry

if TYPE_CHECKING:
    from .component import Component
    from .export.textfile import TextfileExporter
    from .oplog import OperationLog

__all__ = ["Hub", "hub"]

_EMPTY: Mapping[str, Any] = {}


_Series = dict[tuple[tuple[str, Any], ...], Any]
"""One hub metric's children by the label items exactly as the caller passed them.

Only what ``labels()`` returns as the live series of those very values is kept (never the
overflow or null child), and only for ``str`` values: ``1 == 1.0 == True`` would share an
entry that ``labels()`` renders three ways. Entries per series are thus bounded by the
orders the label names come in, whatever the values; :meth:`Hub._remember` also empties
it past twice the metric's series. A plain dict: the hot path's subscript is the fastest.
"""


class _Forget:
    """Empties a :data:`_Series` when its metric's ``remove()``/``clear()`` drops series,
    so a removed child receives nothing through the cache (held by the entry: the metric
    only holds its watchers weakly)."""

    __slots__ = ("__weakref__", "series")

    def __init__(self, series: _Series) -> None:
        self.series = series

    def series_forgotten(self) -> None:
        self.series.clear()


class _Entry(NamedTuple):
    kind: type[Any]
    labelnames: tuple[str, ...]
    metric: Any
    series: _Series
    forget: _Forget


class Hub:
    """Creates metrics on first use by name and runs the background flushers.

    A repeated call with ``str`` label values finds its series in a cache (about a fifth
    of prometheus_client's ``labels(**d).inc()``); other values (``{"code": 200}``) are
    converted by ``labels()`` on every call, as are calls the error policy or the series
    cap must see.

    Example::

        >>> from meterhub import Hub, Registry
        >>> h = Hub(registry=Registry(self_metrics=False), namespace="shop")
        >>> h.inc_counter("orders_total", {"country": "fr"})
        >>> h.set_gauge("basket_items", {"country": "fr"}, 3)
        >>> h.observe("checkout_seconds", None, 0.42)
        >>> h.registry.get_sample_value("shop_orders_total", {"country": "fr"})
        1.0
    """

    def __init__(
        self,
        registry: Registry | None = None,
        namespace: str = "",
        *,
        textfile_path: str | None = None,
        textfile_interval: float | None = None,
        buckets: tuple[float, ...] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else REGISTRY
        self.namespace = namespace
        self._textfile_path = textfile_path
        self._textfile_interval = textfile_interval
        self._buckets = buckets
        self._lock = threading.Lock()
        renew_locks_after_fork(self)
        self._entries: dict[str, _Entry] = {}
        self._counters: dict[str, _Series] = {}
        self._gauges: dict[str, _Series] = {}
        self._histograms: dict[str, _Series] = {}
        self._caches = {Counter: self._counters, Gauge: self._gauges, Histogram: self._histograms}
        self._components: dict[str, Component] = {}
        self._exporter: TextfileExporter | None = None

    def _renew_locks(self) -> None:
        self._lock = threading.Lock()  # in a forked child (see meterhub._forksafe)

    # -- recording ------------------------------------------------------------------------

    # The three recording methods first try their cache, a dict per type of name -> _Series:
    # a repeated call costs two lookups, a tuple and the child's method. Everything that
    # decides what is recorded stays where labels() has it: switches swap the child's
    # cell, a fork re-points it, type/label-name errors, the series cap and non-str values
    # are never cached, so they take _child() (and labels()) on every call.

    def inc_counter(
        self,
        name: str,
        labels: Mapping[str, Any] | None = None,
        value: float = 1.0,
        *,
        help: str | None = None,
    ) -> None:
        """Add *value* to counter *name* (created on first use with these label names)."""
        try:
            child = self._counters[name][() if labels is None else tuple(labels.items())]
        except Exception:  # not cached (KeyError), or labels not a mapping of hashables
            child = self._child(Counter, name, labels, help)
        child.inc(value)

    def set_gauge(
        self,
        name: str,
        labels: Mapping[str, Any] | None = None,
        value: float = 0.0,
        *,
        help: str | None = None,
    ) -> None:
        """Set gauge *name* to *value*."""
        try:
            child = self._gauges[name][() if labels is None else tuple(labels.items())]
        except Exception:
            child = self._child(Gauge, name, labels, help)
        child.set(value)

    def observe(
        self,
        name: str,
        labels: Mapping[str, Any] | None = None,
        value: float = 0.0,
        *,
        help: str | None = None,
    ) -> None:
        """Observe *value* in histogram *name*."""
        try:
            child = self._histograms[name][() if labels is None else tuple(labels.items())]
        except Exception:
            child = self._child(Histogram, name, labels, help)
        child.observe(value)

    def _child(
        self, kind: type[Any], name: str, labels: Mapping[str, Any] | None, help: str | None
    ) -> Any:
        entry = self._entries.get(name)
        if entry is None or entry.kind is not kind:
            entry = self._entry(kind, name, labels or _EMPTY, help)
        metric = entry.metric
        if not entry.labelnames:
            if labels:
                metric.report_error(
                    "label_names",
                    f"labels {sorted(labels)} given to a metric first used without labels",
                )
                return metric.null_child()
            child = metric.children.get(())
            if child is not None:
                self._remember(entry, (), (), child)
            return metric
        if labels is None:
            return metric.labels()  # reports the missing labels under the error policy
        child = metric.labels(**labels)
        values = tuple(labels.get(n) for n in entry.labelnames)
        if len(labels) == len(values) and all(type(v) is str for v in values):
            self._remember(entry, tuple(labels.items()), values, child)
        return child

    def _remember(
        self, entry: _Entry, key: tuple[tuple[str, Any], ...], values: tuple[Any, ...], child: Any
    ) -> None:
        """Cache *child* under *key* if it is the live series of *values* (not the overflow)."""
        metric, series = entry.metric, entry.series
        children = metric.children
        if children.get(values) is not child:
            return
        if len(series) >= 2 * len(children) + 16:  # label names in ever new orders
            series.clear()
        series[key] = child
        # A remove() between labels() and the line above emptied the cache before this
        # entry existed: look again, now that it does, so that it cannot outlive the series.
        if children.get(values) is not child:
            series.pop(key, None)

    def _entry(
        self, kind: type[Any], name: str, labels: Mapping[str, Any], help: str | None
    ) -> _Entry:
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None:
                if entry.kind is not kind:
                    raise DefinitionError(
                        f"metric {name!r} was first used as a {entry.kind.__name__}, "
                        f"not a {kind.__name__}"
                    )
                return entry
            labelnames = tuple(sorted(labels))
            extra: dict[str, Any] = {}
            if kind is Histogram and self._buckets is not None:
                extra["buckets"] = self._buckets
            metric = kind(
                name,
                help or f"{name} (recorded through the meterhub hub)",
                labelnames,
                namespace=self.namespace,
                registry=self.registry,
                **extra,
            )
            series: _Series = {}
            forget = _Forget(series)
            metric.watch_series(forget)
            entry = self._entries[name] = _Entry(kind, labelnames, metric, series, forget)
            self._caches[kind][name] = series
            return entry

    # -- components -----------------------------------------------------------------------

    def component(self, name: str, *, oplog: OperationLog | None = None) -> Component:
        """The tracker of external integration *name* (one per name); with *oplog*, each
        call is also recorded in that operation log.

        Example::

            >>> from meterhub import Hub, Registry
            >>> jira = Hub(registry=Registry(self_metrics=False)).component("jira")
            >>> with jira.call("create_issue"):
            ...     pass
        """
        component = self._components.get(name)
        if component is None:
            from .component import Component

            with self._lock:
                component = self._components.get(name)
                if component is None:
                    component = self._components[name] = Component(name, hub=self)
        if oplog is not None:
            component.oplog = oplog
        return component

    def track(self, component: str, operation: str) -> Any:
        """Short for ``hub.component(component).call(operation)``."""
        return self.component(component).call(operation)

    # -- delivery -------------------------------------------------------------------------

    def _textfile_exporter(self, path: str | None = None) -> TextfileExporter:
        from .export.textfile import TextfileExporter

        cfg = get_config()
        target = path or self._textfile_path or cfg.textfile_path
        if not target:
            raise ValueError(
                "no textfile path: pass path=, Hub(textfile_path=...) or set METERHUB_TEXTFILE_PATH"
            )
        interval = self._textfile_interval or cfg.textfile_interval
        exporter = self._exporter
        if exporter is None or exporter.path != target:
            exporter = TextfileExporter(target, interval=interval, registry=self.registry)
            if path is None:
                self._exporter = exporter
        return exporter

    def write_metrics(self, path: str | None = None) -> None:
        """Render the whole registry (every process, in multi-process mode) to the textfile,
        atomically. Raises :class:`~meterhub.errors.ExportError` if the write fails."""
        self._textfile_exporter(path).write()

    def start(self) -> None:
        """Start the background flushers (the textfile one when a path is configured)."""
        if self._textfile_path or get_config().textfile_path:
            self._textfile_exporter().start()

    def stop(self) -> None:
        """Stop the background flushers, writing one last time."""
        exporter = self._exporter
        if exporter is not None:
            exporter.stop()


hub = Hub()
"""The process-wide default :class:`Hub`, on ``REGISTRY``."""
