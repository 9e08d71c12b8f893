"""What every metric type shares: definition, children, switches, the series cap.

A metric object (the *parent*, e.g. ``Counter``) holds its immutable ``MetricDesc`` and a dict of
*children*, one per label-value tuple. A child holds its cell and records into it; it is what
``labels()`` returns. An unlabeled metric has one child whose recording methods are bound onto the
parent at construction, so ``counter.inc()`` costs exactly ``child.inc()``.

While a metric's switch (or the global one) is off, each child's active cell ``_v`` is swapped for
a private scratch list: recording costs the same and changes nothing that is collected.

The seam for meterhub's own subsystems that cache children or write a child's fast path out inline
(the event router, the operation log, the hub) is public and small: ``metric.desc``,
``metric.children``, ``metric.null_child()``, ``metric.report_error()`` and ``child.active_cell``
(with the slots of :mod:`meterhub.store.layout`).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, Generic, TypeVar

from .._config import get_config, is_enabled, watch_switch
from .._forksafe import check_pid, renew_locks_after_fork
from ..errors import DefinitionError, DuplicateTimeseries, LabelValueError, RecordingError
from ..guard import OVERFLOW_VALUE, SelfMetrics, recording_error
from ..naming import build_name, validate_label_names
from ..registry import REGISTRY, Registry
from ..samples import CollectOptions, LabelPairs, MetricFamily, MetricType, Series
from ..store import LocalStore, MetricDesc, SeriesData, ValueStore
from ..store.base import Cell, LocalCell
from ..store.layout import CellLayout, layout_of
from .child import Child, SeriesWatcher, encodable, keyword_key, move_cell, read_columns
from .labelcall import keyword_labels

__all__ = ["Child", "MetricBase"]

C = TypeVar("C", bound="Child")
M = TypeVar("M", bound="MetricBase[Any]")

_UNREGISTERED = Registry(store=LocalStore(), self_metrics=False)


SeriesMaker = Callable[[MetricDesc, LabelPairs, SeriesData, bool], Series]
"""``(desc, labels, data, created) -> Series``: one read-back series as a snapshot."""


class MetricBase(Generic[C]):
    """The parent of a metric type: definition, labels, children, collection."""

    _type: ClassVar[MetricType]
    _child_cls: ClassVar[type[Child]]
    _child_methods: ClassVar[tuple[str, ...]] = ()
    _reserved_labels: ClassVar[tuple[str, ...]] = ()
    _suffixes: ClassVar[tuple[str, ...]] = ()
    collect_takes_options: ClassVar[bool] = True
    """``collect(options)`` renders by the registry's :class:`~meterhub.samples.CollectOptions`."""

    _desc: MetricDesc
    _layout: CellLayout
    _registry: Registry
    _store: ValueStore
    _self_metrics: SelfMetrics | None
    _children: dict[tuple[Any, ...], C]

    def __new__(
        cls: type[M],
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
        *,
        switch: str | None = None,
        max_series: int | None = None,
    ) -> M:
        """prometheus_client's constructor (types with extra parameters define their own)."""
        return cls._define(
            name, documentation, labelnames, namespace, subsystem, unit, registry, switch,
            max_series,
        )  # fmt: skip

    @classmethod
    def _define(
        cls: type[M],
        name: str,
        documentation: str,
        labelnames: Any,
        namespace: str,
        subsystem: str,
        unit: str,
        registry: Registry | None,
        switch: str | None,
        max_series: int | None,
        **extra: Any,
    ) -> M:
        full = build_name(name, namespace, subsystem, unit, cls._type.value)
        if not isinstance(documentation, str) or not encodable((documentation,)):
            raise DefinitionError(f"metric {full!r}: documentation must be a valid unicode str")
        names = validate_label_names(full, labelnames, cls._reserved_labels)
        if switch is not None and (not isinstance(switch, str) or not switch):
            raise DefinitionError(f"metric {full!r}: switch must be a non-empty str")
        if max_series is not None and (not isinstance(max_series, int) or max_series < 1):
            raise DefinitionError(f"metric {full!r}: max_series must be a positive int")
        desc = MetricDesc(full, documentation, cls._type, unit, names, **extra)

        def create() -> M:
            metric = object.__new__(cls)
            metric._setup(desc, registry or _UNREGISTERED, switch, max_series)
            return metric

        if registry is None:
            return create()

        def same(existing: Any) -> bool:
            if type(existing) is cls and existing._desc == desc:
                if get_config().compat is None:
                    return True
                raise DuplicateTimeseries(  # prometheus_client refuses any second definition
                    f"Duplicated timeseries in CollectorRegistry: {full!r} "
                    "(METERHUB_COMPAT=prometheus_client: a re-declaration is refused)"
                )
            theirs = getattr(existing, "_desc", existing)
            raise DuplicateTimeseries(
                f"metric {full!r} is already registered as {theirs!r}; "
                f"the new definition {desc!r} conflicts with it"
            )

        return registry.get_or_register(full, same, create)

    def _setup(
        self, desc: MetricDesc, registry: Registry, switch: str | None, max_series: int | None
    ) -> None:
        self._desc = desc
        self._layout = layout_of(desc)
        self._created_slot = self._layout.created_slot(desc)
        self._registry = registry
        self._store = registry.store
        self._self_metrics = registry.self_metrics
        self._switch_name = switch
        self._max_series = max_series or get_config().max_series
        self._lock = threading.Lock()
        renew_locks_after_fork(self)  # a child forked mid-labels() must not inherit it held
        self._children = {}
        self._label_count = len(desc.labelnames)
        self._kw_key = keyword_key(desc.labelnames)
        if fast := keyword_labels(desc.labelnames, self._children, self._labels_slow):
            self.__dict__["labels"] = fast  # shadows labels() below (see labelcall)
        self._null: C | None = None
        self._series_watchers: weakref.WeakSet[SeriesWatcher] | None = None
        self._recording = is_enabled(switch)
        watch_switch(switch, self)
        # Stores whose cells must be re-fetched after a fork (the mmap store) track metrics.
        track = getattr(self._store, "track", None)
        if track is not None:
            track(self)
        if not desc.labelnames:
            child = self._new_child(())
            for method in self._bound_methods(child):
                setattr(self, method, getattr(child, method))

    def _bound_methods(self, child: C) -> tuple[str, ...]:
        """The methods of an unlabeled metric's one series that go onto the metric itself
        (as bound methods in its ``__dict__``); a class may serve some itself instead."""
        return self._child_methods

    # -- identity -------------------------------------------------------------------------

    def _sample_names(self) -> tuple[str, ...]:
        return (self._desc.name, *(self._desc.name + s for s in self._suffixes))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._desc.name!r}, labelnames={self._desc.labelnames})"

    @property
    def desc(self) -> MetricDesc:
        """The metric's immutable definition (name, type, label names, buckets, ...)."""
        return self._desc

    @property
    def children(self) -> Mapping[tuple[str, ...], C]:
        """The live children by label values: the very mapping ``labels()`` consults, so
        ``remove()``/``clear()`` show at once. Read-only; for code that caches children."""
        return self._children

    @property
    def name(self) -> str:
        """The metric's full name (namespace, subsystem and unit included)."""
        return self._desc.name

    @property
    def documentation(self) -> str:
        return self._desc.documentation

    @property
    def labelnames(self) -> tuple[str, ...]:
        return self._desc.labelnames

    # -- children -------------------------------------------------------------------------

    def labels(self, *labelvalues: Any, **labelkwargs: Any) -> C:
        """The child for these label values (by position or by name), created on first use.

        Example::

            >>> from meterhub import Counter, Registry
            >>> c = Counter("calls", "Calls.", ["service", "status"], registry=Registry())
            >>> c.labels("jira", "ok").inc()
            >>> c.labels(service="jira", status="ok").inc()
        """
        try:
            if not labelkwargs:
                child = self._children.get(labelvalues)
            elif not labelvalues and len(labelkwargs) == self._label_count:
                # names that cannot be parameters (labelcall); the rest go the slow way
                child = self._children.get(self._kw_key(labelkwargs))
            else:
                child = None
        except Exception:  # unhashable (the slow path converts it to str) or a missing name
            child = None
        if child is not None:
            return child
        return self._labels_slow(labelvalues, labelkwargs)

    def _key_for(self, values: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, ...] | None:
        names = self._desc.labelnames
        if not names:
            self._error("no_labels", "labels() called on a metric without label names")
            return None
        if kwargs:
            if values:
                self._error("label_mix", "labels() takes positional or keyword values, not both")
                return None
            if set(kwargs) != set(names):
                self._error(
                    "label_names",
                    f"labels() got names {sorted(kwargs)}, expected {list(names)}",
                )
                return None
            values = tuple(kwargs[n] for n in names)
        if len(values) != len(names):
            self._error(
                "label_count",
                f"labels() got {len(values)} values, expected {len(names)} {list(names)}",
            )
            return None
        try:
            key = tuple(v if type(v) is str else str(v) for v in values)
            if all(type(k) is str for k in key):
                return key
            problem = "str() did not return a str"
        except Exception as exc:
            problem = f"str() failed: {type(exc).__name__}"
        self._error(
            "label_value", f"a label value cannot be made a str ({problem})", LabelValueError
        )
        return None

    def _labels_slow(self, values: tuple[Any, ...], kwargs: dict[str, Any]) -> C:
        key = self._key_for(values, kwargs)
        if key is None:
            return self._null_child()
        child = self._children.get(key)
        if child is None:
            check_pid()  # a new series: the cheap place to notice a fork Python never saw
            if not encodable(key):
                self._error(
                    "label_value",
                    f"label values {key!r} are not valid unicode "
                    "(lone surrogates cannot be exposed)",
                )
                return self._null_child()
            with self._lock:
                child = self._children.get(key)
                if child is None:
                    if len(self._children) >= self._max_series:
                        return self._overflow()
                    child = self._new_child(key)
        return child

    def _new_child(self, key: tuple[str, ...]) -> C:
        cell = self._cell_for(key)
        child: C = self._child_cls(self, key, cell)  # type: ignore[assignment]
        self._stamp_created(cell)
        self._children[key] = child
        return child

    def _cell_for(self, key: tuple[str, ...]) -> Cell:
        return self._store.cell(self._desc, key)

    def _renew_locks(self) -> None:
        """In a forked child: a lock another parent thread held at the fork stays held."""
        self._lock = threading.Lock()

    def reattach_cells(self) -> None:
        """Give every child a fresh cell from the store (called by the mmap store in a
        forked child, so that it never writes into its parent's cells; the locks were
        renewed just before, see :mod:`meterhub._forksafe`)."""
        for key, child in list(self._children.items()):
            cell = self._cell_for(key)
            self._stamp_created(cell)
            child._cell = cell
            child._switch(self._recording)

    def move_series_cell(
        self, key: tuple[str, ...], old: Cell, new_cell: Callable[[], Cell]
    ) -> bool:
        """Re-point the child recording into *old* at ``new_cell()``, carrying its values
        over; False (and no call to *new_cell*) if no child of *key* holds *old*. The
        multi-process store moves series this way out of a process-local cell (the file
        could not grow) or a damaged file, while other threads record."""
        child = self._children.get(key)
        if child is None or child._cell is not old:
            return False
        # A native histogram's cell adds up like a summed one into a zeroed cell (its window
        # header included), provided its window does not move meanwhile: its lock.
        native = self._desc.native is not None
        lock = child._window_lock() if native else None  # type: ignore[attr-defined]
        if lock is None:
            move_cell(child, old, new_cell(), self._layout.summed)
        else:
            with lock:
                move_cell(child, old, new_cell(), True)
        return True

    def _stamp_created(self, cell: Cell) -> None:
        # Only while _created samples are on: the timestamp is a float object per series,
        # a tenth of a series' memory, for samples that are off by default. A series
        # created while they were off renders without one (0.0 means "not recorded").
        slot = self._created_slot
        if slot is not None and cell[slot] == 0.0 and self._registry.options.created:
            cell[slot] = time.time()

    def _overflow(self) -> C:
        if self._self_metrics is not None:
            self._self_metrics.count_dropped(self._desc.name)
        key = (OVERFLOW_VALUE,) * len(self._desc.labelnames)
        child = self._children.get(key)
        return child if child is not None else self._new_child(key)

    def null_child(self) -> C:
        """A child that records nowhere: what a failed ``labels()`` returns outside strict
        mode, and what code that reports a mistake with :meth:`report_error` hands back."""
        if self._null is None:
            self._null = self._child_cls(self, (), [0.0] * self._layout.width(self._desc))  # type: ignore[assignment]
        assert self._null is not None
        return self._null

    def remove(self, *labelvalues: Any) -> None:
        """Forget the series with these label values."""
        key = self._key_for(labelvalues, {})
        if key is None:
            return
        with self._lock:
            child = self._children.pop(key, None)
        if child is not None:
            child._drop()
            self._series_forgotten()

    def remove_by_labels(self, labels: Mapping[str, str]) -> None:
        """Forget every series whose labels include all of *labels* (``{}``: none).

        Example::

            >>> from meterhub import Counter, Registry
            >>> c = Counter("hits", "Hits.", ["tenant", "path"], registry=Registry())
            >>> c.labels("acme", "/").inc(); c.labels("globex", "/").inc()
            >>> c.remove_by_labels({"tenant": "acme"})
            >>> [k for k in c._children]
            [('globex', '/')]
        """
        if not labels:
            return
        names = self._desc.labelnames
        unknown = set(labels) - set(names)
        if unknown:
            raise DefinitionError(
                f"metric {self._desc.name!r}: unknown label names {sorted(unknown)} "
                f"(its labels are {list(names)})"
            )
        wanted = [(names.index(k), str(v)) for k, v in labels.items()]
        with self._lock:
            keys = [k for k in self._children if all(k[i] == v for i, v in wanted)]
        for key in keys:
            self.remove(*key)

    def clear(self) -> None:
        """Forget every series (a metric without labels: nothing to do, as prometheus_client)."""
        if not self._desc.labelnames:
            return
        with self._lock:
            self._children.clear()
        self._store.clear(self._desc)
        self._series_forgotten()

    def watch_series(self, watcher: SeriesWatcher) -> None:
        """Call ``watcher.series_forgotten()`` whenever ``remove()`` or ``clear()`` drops
        series of this metric. For code that caches children to skip ``labels()`` on a
        hot path: a removed child keeps updating a cell nobody exports, so the cache must
        be emptied. *watcher* is held weakly (watching never keeps it alive).

        Example::

            >>> from meterhub import Counter, Registry
            >>> hits = Counter("hits", "Hits.", ["page"], registry=Registry())
            >>> class Cache:
            ...     def __init__(self):
            ...         self.children = {"home": hits.labels("home")}
            ...     def series_forgotten(self):
            ...         self.children.clear()
            >>> cache = Cache()
            >>> hits.watch_series(cache)
            >>> hits.remove("home")
            >>> cache.children
            {}
        """
        with self._lock:
            if self._series_watchers is None:
                self._series_watchers = weakref.WeakSet()
            self._series_watchers.add(watcher)

    def _series_forgotten(self) -> None:
        watchers = self._series_watchers
        if watchers is not None:
            for watcher in list(watchers):
                watcher.series_forgotten()

    # -- switches and errors --------------------------------------------------------------

    def _switch_changed(self) -> None:
        on = is_enabled(self._switch_name)
        self._recording = on
        for child in list(self._children.values()):
            child._switch(on)

    def report_error(
        self, reason: str, message: str, error: type[RecordingError] = RecordingError
    ) -> None:
        """Report a recording mistake about this metric under the error policy: raised as
        :class:`~meterhub.errors.RecordingError` in strict mode, else logged once per
        *reason* and counted in ``meterhub_errors_total{metric,reason}``.

        Example (what :class:`~meterhub.hub.Hub` does with labels a metric has not)::

            metric.report_error("label_names", "labels given to a metric without labels")
            return metric.null_child()
        """
        recording_error(self._self_metrics, self._desc.name, reason, message, error=error)

    _error = report_error  # the short name the core's own modules use
    _null_child = null_child

    def _labeled_parent(self, method: str) -> None:
        self._error(
            "labeled_parent",
            f"{method}() called on a metric with labels {list(self._desc.labelnames)}: "
            "missing label values; "
            f"call .labels(...).{method}() instead",
        )

    # -- collection -----------------------------------------------------------------------

    def collect(self, options: CollectOptions | None = None) -> Iterator[MetricFamily]:
        """Yield this metric's snapshot, rendered by *options* (default: its registry's)."""
        if options is None:
            options = self._registry.options
        created = options.created
        d = self._desc
        names = d.labelnames
        to_series = self._series_maker()
        # counters read as columns (no object per series); the others series by series
        series = read_columns(self, options) or tuple([
            to_series(
                d,
                tuple(zip(names, data.key)) + data.extra_labels
                if data.extra_labels
                else tuple(zip(names, data.key)),
                data,
                created,
            )
            for data in self._store.read(d, self._local_cells(), options)
        ])  # fmt: skip
        yield MetricFamily(
            d.name, d.documentation, self._family_type(), d.unit, series, d.buckets, d.states
        )

    def _local_cells(self) -> list[LocalCell]:
        """The ``(key, cell)`` pairs this process's children record into."""
        return [(key, child._cell) for key, child in list(self._children.items())]

    def _family_type(self) -> MetricType:
        return self._type

    def _series_maker(self) -> SeriesMaker:
        """How collection turns a read-back series into a snapshot: the cell layout's way."""
        return self._layout.to_series
