"""The directory collector of the multi-process store, and compaction on demand.

Public in :mod:`meterhub.multiprocess`, whose docstring explains multi-process mode. Here:
:func:`mark_process_dead` and :func:`compact_directory` (compaction now, steps in
:mod:`.directory`); :class:`MultiProcessCollector` / :func:`collect_directory` (every metric
of a directory, rendered from the metadata its files carry); and
:func:`directory_families`, what a multi-process registry adds to its own collectors.

Example::

    >>> import tempfile
    >>> from meterhub import Counter, Registry
    >>> path = tempfile.mkdtemp()
    >>> Counter("jobs", "Jobs.", registry=Registry(store=MultiProcessStore(path))).inc()
    >>> sidecar = Registry(self_metrics=False)
    >>> sidecar.register(MultiProcessCollector(path))
    >>> sidecar.get_sample_value("jobs_total")
    1.0
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Container, Iterable, Iterator, Sequence
from typing import Any

from ..._config import get_config
from ..._forksafe import renew_locks_after_fork
from ...registry import configured_options
from ...samples import CollectOptions, MetricFamily, MetricType, Series, SeriesColumns
from ..base import MetricDesc, SeriesData
from ..layout import CounterLayout, layout_of
from .directory import compact
from .merge import FileState, Summed, merge, summed_columns
from .store import MultiProcessStore

__all__ = [
    "MultiProcessCollector",
    "MultiProcessStore",
    "collect_directory",
    "compact_directory",
    "directory_families",
    "mark_process_dead",
]


def _directory(directory: str | os.PathLike[str] | None) -> str:
    path = os.fspath(directory) if directory is not None else get_config().multiproc_dir
    if not path:
        raise ValueError("no multi-process directory: pass one or set METERHUB_MULTIPROC_DIR")
    if not os.path.isdir(path):
        raise ValueError(f"multi-process directory {path!r} does not exist")
    return path


def mark_process_dead(pid: int, directory: str | os.PathLike[str] | None = None) -> int:
    """Merge the files of exited process *pid* into the archive; return files merged.

    Other dead processes' files found on the way are merged too. A pid that ``/proc``
    shows running with the very start time of its file is left alone. Without
    *directory* in a process not in multi-process mode (no ``METERHUB_MULTIPROC_DIR``) it
    does nothing and returns 0, so one ``gunicorn.conf.py`` serves both modes.

    Example (``gunicorn.conf.py``)::

        from meterhub.multiprocess import mark_process_dead

        def child_exit(server, worker):
            mark_process_dead(worker.pid)
    """
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise ValueError(f"pid must be a positive int, got {pid!r}")
    if directory is None and not get_config().multiproc_dir:
        return 0
    return compact(_directory(directory), frozenset({pid}))


def compact_directory(directory: str | os.PathLike[str] | None = None) -> int:
    """Merge every dead process's files into the archive now; return files merged.

    Collection does this by itself; call it from a supervisor or a cron job to keep the
    directory small while nobody scrapes.

    Example::

        >>> import tempfile
        >>> compact_directory(tempfile.mkdtemp())
        0
    """
    return compact(_directory(directory))


def _series(desc: MetricDesc, merged: Iterable[SeriesData], created: bool) -> tuple[Series, ...]:
    """Merged series in the snapshot layout of :mod:`meterhub.samples` (the cell layout's)."""
    to_series, names = layout_of(desc).to_series, desc.labelnames
    return tuple(
        to_series(desc, tuple(zip(names, data.key)) + data.extra_labels, data, created)
        for data in merged
    )


def _counter_series(desc: MetricDesc, summed: Summed, created: bool) -> SeriesColumns:
    """Counters as columns (no object per series): the common case of a large scrape."""
    ex = summed.exemplars
    exemplars = {k: e[0] for k, e in ex.items() if 0 in e} if ex else None
    # a created slot of 0.0 was never stamped: no sample (as CounterLayout.to_series)
    stamps = [s or None for s in summed.cols[CounterLayout.CREATED]] if created else None
    return SeriesColumns(
        desc.labelnames, summed.keys, summed.cols[CounterLayout.TOTAL], stamps, exemplars
    )


def _families(
    store: MultiProcessStore,
    options: CollectOptions,
    files: list[FileState] | None = None,
    exclude: Container[str] = (),
    wanted: Container[str] | None = None,
) -> Iterator[MetricFamily]:
    if files is None:
        files = store.snapshot()
    descs: dict[str, MetricDesc] = {}
    # The newest process's definition wins when a deploy changed one (others are skipped).
    for view, _ in sorted(files, key=lambda f: (f[0].kind == 1, f[0].start), reverse=True):
        for name, desc in view.descs.items():
            descs.setdefault(name, desc)
    created = options.created
    for name in sorted(descs):
        if name in exclude or (wanted is not None and not _named(descs[name], wanted)):
            continue
        d = descs[name]
        try:
            if d.type is MetricType.COUNTER:
                summed = summed_columns(d, files, created=created)
                series: Sequence[Series] = _counter_series(d, summed, created)
            else:
                series = _series(d, merge(d, files, created=created), created)
        except (ValueError, IndexError, TypeError):
            continue  # a garbled info key: skip the family, keep the scrape
        kind = d.type
        yield MetricFamily(d.name, d.documentation, kind, d.unit, series, d.buckets, d.states)


_SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum", "_info")


def _named(desc: MetricDesc, wanted: Container[str]) -> bool:
    """Whether *desc*'s family could have a sample named in *wanted* (a cheap superset)."""
    return desc.name in wanted or any(desc.name + s in wanted for s in _SUFFIXES)


def directory_families(
    store: MultiProcessStore,
    files: list[FileState],
    exclude: Container[str],
    wanted: Container[str] | None,
    options: CollectOptions,
) -> Iterator[MetricFamily]:
    """The metrics of *files* (a snapshot of *store*'s directory) not named in *exclude*:
    what a multi-process registry adds to its own collectors (see :mod:`meterhub.registry`)."""
    t0 = time.perf_counter()
    families = list(_families(store, options, files, exclude, wanted))
    store.merge_seconds += time.perf_counter() - t0
    return iter(families)


class _Readers:
    """One reading store per directory for the whole process, shared by every collector
    of that directory: a collector made per request (prometheus_client's idiom) then
    finds the files open and indexed instead of reading them all again. The last
    :data:`READERS_MAX` directories are kept (the others' files are closed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stores: dict[str, MultiProcessStore] = {}
        renew_locks_after_fork(self)

    def _renew_locks(self) -> None:
        self._lock = threading.Lock()  # in a forked child (see meterhub._forksafe)

    def get(self, directory: str) -> MultiProcessStore:
        key = os.path.realpath(directory)
        with self._lock:
            store = self._stores.pop(key, None)  # put back last: most recently used
            if store is None or not os.path.isdir(store.directory):
                store = MultiProcessStore(directory)
            self._stores[key] = store
            evicted = []
            while len(self._stores) > READERS_MAX:
                evicted.append(self._stores.pop(next(iter(self._stores))))
        for old in evicted:
            old.close()  # a collector still holding it opens the files again if it collects
        return store


READERS_MAX = 8
"""How many directories' readers a process keeps open between collections."""

_READERS = _Readers()


class MultiProcessCollector:
    """Collects every metric of a multi-process directory, with no definitions needed.

    In multi-process mode ``REGISTRY`` (and any registry on the directory's store) already
    serves every metric of the directory, so this is for a registry elsewhere: a sidecar,
    a script reading a directory it does not record into. Registered anyway on a registry
    of the same directory (prometheus_client's idiom), it is harmless: each family is
    rendered once, from the registry's own metric where there is one. It renders by
    the registry's options (``_created`` samples) and also yields the
    ``meterhub_multiprocess_*`` self-metrics, among them
    ``meterhub_multiprocess_collection_duration_seconds``.

    The collectors of one directory share a process-wide reader (its open files and their
    indexes, kept up to date incrementally), so making one per request, as
    prometheus_client's users do, costs what keeping one does.

    Example::

        >>> import tempfile
        >>> from meterhub import Registry
        >>> reg = Registry(self_metrics=False)
        >>> reg.register(MultiProcessCollector(tempfile.mkdtemp()))
    """

    collect_takes_options = True

    def __init__(
        self,
        directory: str | os.PathLike[str] | Any | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> None:
        # prometheus_client's signature is (registry, path=None): the collector registers
        # itself on the registry it is given.
        registry: Any = None
        if directory is not None and callable(getattr(directory, "register", None)):
            registry, directory = directory, path
        elif path is not None:
            directory = path
        where = _directory(directory)
        if not os.path.isdir(where):
            raise ValueError(f"multi-process directory {where!r} is not a directory")
        # The directory's reader is shared process-wide: a new collector costs nothing.
        self._store = _READERS.get(where)
        if registry is not None:
            registry.register(self)

    def covers(self, store: MultiProcessStore) -> bool:
        """Whether this collector reads *store*'s directory (a registry on that store then
        lets it render the directory's other metrics instead of doing so itself)."""
        return os.path.realpath(self._store.directory) == os.path.realpath(store.directory)

    def close(self) -> None:
        """Close the files kept open between scrapes. They belong to the directory's
        reader, which every collector of the directory in this process shares: the next
        collection of any of them opens (and indexes) them again."""
        self._store.close()

    def collect(self, options: CollectOptions | None = None) -> Iterator[MetricFamily]:
        """Every metric of the directory, then the self-metrics; *options* default to
        :func:`~meterhub.registry.configured_options` (the registry passes its own)."""
        if options is None:
            options = configured_options()
        t0 = time.perf_counter()
        s = self._store
        before = s.merge_seconds
        with s.collection() as files:  # one snapshot, held while it is merged
            families = list(_families(s, options, files))
        elapsed = time.perf_counter() - t0
        s.merge_seconds = before + elapsed  # the snapshot's time included once
        yield from families
        yield from s.self_metrics()
        yield MetricFamily(
            "meterhub_multiprocess_collection_duration_seconds",
            "How long the last collection of the whole directory took.",
            MetricType.GAUGE,
            series=(Series((), (elapsed,)),),
        )


def collect_directory(
    directory: str | os.PathLike[str] | None = None, options: CollectOptions | None = None
) -> Iterator[MetricFamily]:
    """Every metric of *directory*, merged across processes, rendered by *options*
    (default: :func:`~meterhub.registry.configured_options`). It reads through the
    directory's shared reader (see :class:`MultiProcessCollector`), so calling it again
    costs what a kept collector's scrape does.

    Example::

        >>> import tempfile
        >>> [f.name for f in collect_directory(tempfile.mkdtemp())][:1]
        ['meterhub_multiprocess_files_merged']
    """
    return iter(list(MultiProcessCollector(directory).collect(options)))
