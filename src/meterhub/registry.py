"""The registry: which collectors exist, and collecting them into snapshots.

A :class:`Registry` is given its value store (or resolves the default once, on first
use); metrics ask ``registry.store`` for their cells. ``collect()`` yields immutable
:class:`~meterhub.samples.MetricFamily` snapshots, which the renderers in
:mod:`meterhub.exposition` turn into text. The registry decides how its collection renders
(:class:`~meterhub.samples.CollectOptions`, e.g. ``_created`` samples) and passes that to
the collectors that take it; stores and metrics never read those settings themselves.

Multi-process mode (``METERHUB_MULTIPROC_DIR`` set, or a registry given a
:class:`~meterhub.store.mmap.MultiProcessStore`): ``collect()`` serves *every* metric of
the directory. It pins one snapshot of the directory's files for the whole collection;
the registry's own metrics read their merged values from it, and every metric that only
other processes declared is rendered from the definitions their files carry, after the
registry's collectors. Each family appears once: a name a collector of this registry
yields is never rendered a second time from the directory (and a
:class:`~meterhub.multiprocess.MultiProcessCollector` of the same directory registered
here - prometheus_client's idiom - takes the place of that second part).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain
from typing import Any, Protocol, TypeVar, runtime_checkable

from ._config import get_config
from ._forksafe import check_pid, renew_locks_after_fork
from .errors import DefinitionError, DuplicateTimeseries
from .families import to_family
from .guard import SelfMetrics
from .samples import CollectOptions, MetricFamily
from .store import ValueStore, default_store

__all__ = ["REGISTRY", "Collector", "CollectorRegistry", "Registry", "configured_options"]

T = TypeVar("T")


@runtime_checkable
class Collector(Protocol):
    """Anything with ``collect()`` yielding metric families (``describe()`` is optional).

    A collector whose output depends on the registry's :class:`CollectOptions` (meterhub's
    metrics, :class:`~meterhub.multiprocess.MultiProcessCollector`) sets the class attribute
    ``collect_takes_options = True`` and defines ``collect(options=None)``: the registry then
    calls ``collect(options)``.
    """

    def collect(self) -> Iterable[Any]: ...


def configured_options() -> CollectOptions:
    """The options the configuration asks for (``METERHUB_CREATED``), read now: what a
    registry created without ``options=`` collects with.

    Example::

        >>> configured_options().created
        False
    """
    return CollectOptions(created=get_config().created)


_PROCESS_SELF_METRICS = SelfMetrics()
"""The self-metrics the default ``REGISTRY`` exposes; every other registry's count here too."""


class Registry:
    """Holds collectors and collects them.

    Only the default ``REGISTRY`` exposes meterhub's self-metrics (``meterhub_errors_total``,
    ``meterhub_series_dropped_total``): a fresh registry renders only what it was given,
    as in prometheus_client, and its errors are counted both in its own
    ``registry.self_metrics`` and in the default registry's. ``self_metrics=True`` makes
    it expose its own.

    Example::

        >>> from meterhub import Counter, Registry
        >>> reg = Registry(self_metrics=False)
        >>> c = Counter("orders", "Orders placed.", ["shop"], registry=reg)
        >>> c.labels("eu").inc(3)
        >>> reg.get_sample_value("orders_total", {"shop": "eu"})
        3.0
    """

    def __init__(
        self,
        store: ValueStore | None = None,
        *,
        auto_describe: bool = False,
        target_info: Mapping[str, str] | None = None,
        self_metrics: bool = False,
        options: CollectOptions | None = None,
        support_collectors_without_names: bool = False,
    ) -> None:
        self._lock = threading.RLock()
        self._store = store
        self._options = options
        self._collectors: dict[Any, tuple[str, ...]] = {}
        self._names: dict[str, Any] = {}
        self._auto_describe = auto_describe
        if store is not None and hasattr(store, "attach"):
            _multiprocess()  # imported now, not mid-scrape (see _multiprocess)
        self._with_nameless = support_collectors_without_names
        self._target_info: _Static | None = None
        renew_locks_after_fork(self)
        self.self_metrics = SelfMetrics(None if self_metrics else _PROCESS_SELF_METRICS)
        if self_metrics:
            self.register(self.self_metrics)
        if target_info:
            self.set_target_info(target_info)

    def _renew_locks(self) -> None:
        self._lock = threading.RLock()

    @property
    def store(self) -> ValueStore:
        """The value store of this registry's metrics (resolved once, on first use)."""
        store = self._store
        if store is None:
            with self._lock:
                if self._store is None:
                    self._store = default_store()
                    if hasattr(self._store, "attach"):
                        _multiprocess()
                store = self._store
        return store

    @property
    def options(self) -> CollectOptions:
        """How this registry collects: the ``options=`` it was given, else
        :func:`configured_options` (so ``configure(created=True)`` applies from then on)."""
        options = self._options
        return options if options is not None else configured_options()

    def register(self, collector: Any) -> None:
        """Add *collector*; raises ``ValueError`` if one of its names is taken."""
        if not callable(getattr(collector, "collect", None)):
            raise TypeError(f"{collector!r} has no collect() method")
        with self._lock:
            if collector in self._collectors:
                raise DefinitionError(f"collector {collector!r} is already registered")
            names = self._names_of(collector)
            for name in names:
                other = self._names.get(name)
                if other is not None:
                    raise DuplicateTimeseries(
                        f"duplicated timeseries {name!r}: {collector!r} conflicts with "
                        f"the registered {other!r}"
                    )
            for name in names:
                self._names[name] = collector
            self._collectors[collector] = names

    def unregister(self, collector: Any) -> None:
        """Remove *collector* (a ``KeyError`` if it was not registered)."""
        with self._lock:
            names = self._collectors.pop(collector)
            for name in names:
                self._names.pop(name, None)

    def get_or_register(self, name: str, same: Callable[[Any], bool], create: Callable[[], T]) -> T:
        """Return the collector registered under *name* if ``same(it)``, else create one.

        This is what makes an identical re-declaration of a metric return the existing
        one; ``same`` raises to report a conflicting definition.
        """
        with self._lock:
            existing = self._names.get(name)
            if existing is not None and same(existing):
                return existing  # type: ignore[no-any-return]
            created = create()
            self.register(created)
            return created

    def _names_of(self, collector: Any) -> tuple[str, ...]:
        names_fn = getattr(collector, "_sample_names", None)
        if names_fn is not None:
            return tuple(names_fn())
        describe = getattr(collector, "describe", None)
        if describe is not None:
            families: Iterable[Any] = describe()
        elif self._auto_describe:
            families = collector.collect()
        else:
            return ()
        names: list[str] = []
        for family in families:
            f = to_family(family)
            names.extend({s.name for s in f.samples} | {f.name})
        return tuple(names)

    def collect(
        self, names: Iterable[str] | None = None, options: CollectOptions | None = None
    ) -> Iterator[MetricFamily]:
        """Snapshot every collector. With *names*, only families with a sample of those names;
        *options* (default: :attr:`options`) go to the collectors that take them.

        In multi-process mode, every other metric of the directory follows (see the module
        docstring).
        """
        check_pid()  # a fork Python's hooks never saw is repaired before anything is read
        directory = self._directory_store()
        with self._lock:
            collectors = list(self._collectors)
        if options is None:
            options = self.options
        wanted = None if names is None else set(names)
        if directory is not None:
            yield from self._collect_directory(directory, collectors, wanted, options)
            return
        for collector in collectors:
            for family in _collect_one(collector, options):
                f = to_family(family)
                if wanted is None or _wanted(f, wanted):
                    yield f

    def _directory_store(self) -> Any:
        """This registry's multi-process store, or ``None`` (resolved on first collection
        too, so that a process which declared nothing still serves the directory)."""
        store = self._store
        if store is None:
            if not get_config().multiproc_dir:
                return None  # left unresolved: a metric may still pick the store
            store = self.store
        attach = getattr(store, "attach", None)
        if attach is None:
            return None
        attach(self)
        return store

    def _collect_directory(
        self,
        store: Any,
        collectors: list[Any],
        wanted: set[str] | None,
        options: CollectOptions,
    ) -> Iterator[MetricFamily]:
        mp = _multiprocess()
        out: list[MetricFamily] = []
        seen: set[str] = set()
        # Families are materialised under the store's read lock (one snapshot for all).
        with store.collection() as files:
            mine = []
            for collector in collectors:
                if isinstance(collector, mp.MultiProcessCollector) and collector.covers(store):
                    mine.append(collector)
                    continue
                for family in _collect_one(collector, options):
                    f = to_family(family)
                    seen.add(f.name)
                    if wanted is None or _wanted(f, wanted):
                        out.append(f)
            if mine:
                rest: Iterable[Any] = (fam for c in mine for fam in c.collect(options))
            else:
                rest = mp.directory_families(store, files, seen, wanted, options)
            for family in rest:
                f = to_family(family)
                if f.name not in seen and (wanted is None or _wanted(f, wanted)):
                    seen.add(f.name)
                    out.append(f)
        yield from out

    def restricted_registry(self, names: Iterable[str]) -> _Restricted:
        """A view whose ``collect()`` yields, as prometheus_client's, only the samples named
        in *names* (each family cut down to them; a family named in *names* whole),
        collecting only the collectors that registered one of those names (and the
        nameless ones with ``support_collectors_without_names=True``)."""
        return _Restricted(self, frozenset(names))

    def set_target_info(self, labels: Mapping[str, str] | None) -> None:
        """Expose ``target_info`` with *labels* (``None`` or ``{}`` removes it)."""
        from .families import InfoMetricFamily

        with self._lock:
            new = None
            if labels:
                info = InfoMetricFamily("target", "Target metadata", value=dict(labels))
                new = _Static(to_family(info))
                taken = [n for n in new._sample_names() if n in self._names]
                if taken and (
                    self._target_info is None or self._names[taken[0]] is not self._target_info
                ):
                    raise DuplicateTimeseries(f"target_info: {taken[0]!r} is already registered")
            if self._target_info is not None:
                self.unregister(self._target_info)
            self._target_info = new
            if new is not None:
                self.register(new)

    def get_target_info(self) -> dict[str, str] | None:
        """The labels of ``target_info``, or ``None``."""
        with self._lock:
            if self._target_info is None:
                return None
            return dict(self._target_info._family.series[0].labels)

    def get(self, name: str) -> Any:
        """The collector registered under sample or family name *name*, or ``None``."""
        with self._lock:
            return self._names.get(name)

    def get_sample_value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The value of sample *name* with exactly *labels*, or ``None`` (for tests).

        Samples of a prometheus_client-style custom collector are read as it gave them
        (``le="0"`` stays ``"0"``, an ``int`` stays an ``int``)."""
        labels = dict(labels or {})
        with self._lock:
            collectors = list(self._collectors)
        sources: Iterator[Iterable[Any]] = (c.collect() for c in collectors)
        if self._directory_store() is not None:  # the directory's other metrics too
            sources = chain(sources, [self.collect()])
        for families in sources:
            for family in families:
                for sample in family.samples:
                    if sample.name == name and dict(sample.labels) == labels:
                        return sample.value  # type: ignore[no-any-return]
        return None


def _collect_one(collector: Any, options: CollectOptions) -> Iterable[Any]:
    if getattr(collector, "collect_takes_options", False):
        return collector.collect(options)  # type: ignore[no-any-return]
    return collector.collect()  # type: ignore[no-any-return]


_mp: Any = None


def _multiprocess() -> Any:
    """:mod:`meterhub.store.mmap.collector`, imported once, when a registry first gets a
    multi-process store: an ``import`` statement run during every scrape would take the
    module's import lock, and a child forked while another thread held it would hang."""
    global _mp
    if _mp is None:
        from .store.mmap import collector

        _mp = collector
    return _mp


def _wanted(family: MetricFamily, wanted: set[str]) -> bool:
    return family.name in wanted or any(s.name in wanted for s in family.samples)


class _Static:
    def __init__(self, family: MetricFamily) -> None:
        self._family = family

    def _sample_names(self) -> tuple[str, ...]:
        return (self._family.name, *{s.name for s in self._family.samples})

    def collect(self) -> Iterator[MetricFamily]:
        yield self._family


class _Restricted:
    def __init__(self, registry: Registry, names: frozenset[str]) -> None:
        self._registry, self._names = registry, names

    def collect(self) -> Iterator[Any]:
        from .families import Metric

        reg, wanted = self._registry, self._names
        families: Iterable[Any]
        if reg._directory_store() is not None:
            # multi-process mode: the directory's metrics count too, not only collectors
            families = reg.collect(wanted)
        else:
            with reg._lock:
                collectors = {reg._names[n] for n in wanted if n in reg._names}
                if reg._with_nameless:
                    collectors.update(c for c, names in reg._collectors.items() if not names)
                ordered = [c for c in reg._collectors if c in collectors]
            families = (family for collector in ordered for family in collector.collect())
        for family in families:
            samples = family.samples
            if family.name not in wanted:  # a family name (meterhub) keeps all of it
                samples = [s for s in samples if s.name in wanted]
            if samples:
                kind = getattr(family.type, "value", family.type)
                m = Metric(family.name, family.documentation, kind)
                m.samples = samples
                yield m


CollectorRegistry = Registry
"""prometheus_client's name for :class:`Registry`."""

REGISTRY = Registry()
"""The default registry: process-wide, with the default collectors added by ``meterhub``
and meterhub's self-metrics."""
REGISTRY.self_metrics = _PROCESS_SELF_METRICS
REGISTRY.register(_PROCESS_SELF_METRICS)
