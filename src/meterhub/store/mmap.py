"""The multi-process store: one memory-mapped file per process, merged on collection.

Selected by ``METERHUB_MULTIPROC_DIR`` (see :func:`meterhub.store.default_store`) or
passed explicitly: ``Registry(store=MultiProcessStore(path))``. Recording stays a
``cell[i] += x`` on a ``memoryview`` of doubles over this process's own file: no lock,
no system call, and exact, because no other process ever writes that file.

Binary layout (little-endian; every record starts 8-byte aligned)
------------------------------------------------------------------
::

    header, 64 bytes
      0  8s  magic b"MHUBMMAP"           8  u32 version (1)      12 u32 kind (1 process, 2 archive)
     16  u64 pid                         24  u64 process start (ticks since boot, /proc stat 22)
     32  u64 used: end of the last complete record (written after the record: readers stop there)
     40  u64 archive generation          48  u64 files merged into the archive so far
     56  8 bytes reserved
    records, from byte 64, each:
      0  u32 length (whole record, multiple of 8)   4 u16 type   6 u16 flags (0)
      8  u32 key length                            12 u32 number of 8-byte value slots
     16  key: UTF-8 JSON, zero-padded to a multiple of 8
         values: n doubles (8-byte aligned)

Record types: 1 META (key = the metric's definition: name, help, type, unit, label names,
buckets, states, multiprocess mode; no values) - written before a metric's first series
so that a process without the definitions (the ``meterhub serve`` sidecar) can render
everything; 2 SERIES (key ``[name, type, mode, *label values]``, Info keys carry one more
element: the encoded info pairs; values = the cell, layout in :mod:`.base`); 3 TOMBSTONE
(same key: earlier SERIES of it in this file are void); 4 CLEAR (key ``[name]``: every
earlier series of the metric in this file is void); 5 EXEMPLAR (key ``[name, slot, *label
values]``, 128 slots = 1 KiB holding a u64 sequence lock, a u32 length and a JSON
``[labels, value, timestamp]``: the last exemplar of that series and slot); 6 PAD (only
length and type are meaningful: skip it); 7 SOURCES (archives only: the files merged in).

The file grows by whole segments (64 KiB, or more for a larger record) mapped at
increasing offsets; a record never straddles two segments (the tail is padded). Mappings
are never resized: ``mmap`` refuses to while a ``memoryview`` cell points into it.

Merging rules (every process's file plus the archive)
-----------------------------------------------------
* counters, histograms, summaries: slots add up; ``created`` is the earliest (merged
  only when the collection renders it, ``CollectOptions.created``); the exemplar of a
  slot is the most recent one of any process.
* gauges, by ``multiprocess_mode``: ``all`` one series per process with a ``pid`` label;
  ``sum``/``max``/``min``; ``mostrecent`` the value written last (timestamp slot); the
  ``live*`` variants look at live processes only.
* Info: the union of the distinct info label sets of all processes.
* Enum: one series per process with a ``pid`` label, like gauges in ``all`` mode.

A dead process's file is compacted into the archive (steps and crash safety in
:mod:`._mmdir`): its sums are kept (series that never left zero are not), its gauges in
``sum``/``max``/``min``/``mostrecent`` modes are merged, and everything describing a live
process (``all``/``live*`` gauges, Info, Enum) is dropped - which keeps the directory and
the scrape flat however many workers come and go.

Fork: an ``os.register_at_fork`` hook gives the child a fresh store state; every metric
that uses the store (they register with :meth:`MultiProcessStore.track`) then re-fetches
its children's cells (``MetricBase._reattach``), which creates them, zeroed, in the
child's own file. The parent's cells are never written by the child.

``remove``/``clear`` write a tombstone in *this* process's file: they drop this process's
contribution. Other live processes keep theirs, and values already archived stay.

Example::

    >>> import tempfile
    >>> from meterhub import Counter, Registry
    >>> reg = Registry(store=MultiProcessStore(tempfile.mkdtemp()), self_metrics=False)
    >>> Counter("jobs", "Jobs done.", registry=reg).inc()
    >>> reg.get_sample_value("jobs_total")
    1.0
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, cast

from ..samples import CollectOptions, Exemplar, MetricFamily, MetricType, Series
from ._mmdir import corrupt_count, proc_file_name, process_start
from ._mmformat import (
    EXEMPLAR_DOUBLES,
    KIND_PROCESS,
    R_CLEAR,
    R_EXEMPLAR,
    R_META,
    R_TOMBSTONE,
    FileWriter,
    _dumps,
    desc_to_json,
    exemplar_key,
    series_key,
    write_exemplar,
)
from ._mmmerge import FileState, merge
from ._mmread import Directory
from .base import Cell, LocalCell, MetricDesc, SeriesData, cell_width

__all__ = ["MultiProcessStore"]

log = logging.getLogger("meterhub")
_DEFAULT = CollectOptions()


class MultiProcessStore:
    """Cells in memory-mapped files of *directory*, one file per process.

    Creating series takes a lock; recording does not. Reading merges every process's
    file (see the module docstring for the rules). Fork-safe: in a child forked after
    metrics exist, every metric is re-pointed at cells of the child's own new file.

    Example::

        >>> import tempfile
        >>> from meterhub import Gauge, Registry
        >>> store = MultiProcessStore(tempfile.mkdtemp())
        >>> reg = Registry(store=store, self_metrics=False)
        >>> Gauge("busy", "Busy.", registry=reg, multiprocess_mode="livesum").set(2)
        >>> reg.get_sample_value("busy")
        2.0
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        path = os.fspath(directory)
        if not isinstance(path, str) or not path:
            raise ValueError(f"multi-process directory must be a non-empty path, got {path!r}")
        os.makedirs(path, exist_ok=True)
        self.directory = path
        self._metrics: weakref.WeakSet[Any] = weakref.WeakSet()
        self._registries: weakref.WeakSet[Any] = weakref.WeakSet()
        self._reset()
        _STORES.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        # Reentrant: a collector holds it across snapshot() and the merge of that snapshot
        # (another thread's refresh may remap the files the merge is reading).
        self._read_lock = threading.RLock()
        self._writer: FileWriter | None = None
        self._cells: dict[tuple[str, tuple[str, ...]], memoryview[float]] = {}
        self._metas: set[str] = set()
        self._slots: dict[tuple[str, tuple[str, ...], int], tuple[mmap.mmap, int]] = {}
        self._reader = Directory(self.directory)
        self.files_merged = 0
        self.merge_seconds = 0.0
        self._disk_warned = False

    def __repr__(self) -> str:
        return f"MultiProcessStore({self.directory!r})"

    @property
    def path(self) -> str | None:
        """This process's file, once it has one (files are created on the first series)."""
        return self._writer.path if self._writer else None

    def _file(self) -> FileWriter:
        if self._writer is None:
            pid = os.getpid()
            start = process_start(pid) or 0
            name = os.path.join(self.directory, proc_file_name(pid, start))
            self._writer = FileWriter(name, KIND_PROCESS, pid, start)
        return self._writer

    # -- the ValueStore protocol ------------------------------------------------------------

    def cell(self, desc: MetricDesc, key: tuple[str, ...]) -> Cell:
        with self._lock:
            cell = self._cells.get((desc.name, key))
            if cell is None:
                try:
                    writer = self._file()
                    if desc.name not in self._metas:
                        writer.append(R_META, desc_to_json(desc), 0)
                        self._metas.add(desc.name)
                    cell = writer.cell(series_key(desc, key), cell_width(desc))
                except OSError as exc:
                    # Disk full, file size limit, read-only directory: recording must go
                    # on, so this series lives in this process only (not collected).
                    if not self._disk_warned:
                        self._disk_warned = True
                        log.warning(
                            "meterhub: cannot grow %s (%s); new series of this "
                            "process are not collected",
                            self.directory,
                            exc,
                        )
                    return [0.0] * cell_width(desc)
                self._cells[(desc.name, key)] = cell
            # A memoryview of doubles is a mutable sequence of floats (typeshed disagrees).
            return cast(Cell, cell)

    def remove(self, desc: MetricDesc, key: tuple[str, ...]) -> None:
        with self._lock:
            if self._cells.pop((desc.name, key), None) is None or self._writer is None:
                return
            self._writer.append(R_TOMBSTONE, series_key(desc, key), 0)
            for slot in [s for s in self._slots if s[0] == desc.name and s[1] == key]:
                del self._slots[slot]

    def clear(self, desc: MetricDesc) -> None:
        with self._lock:
            if self._writer is None or desc.name not in self._metas:
                return
            self._writer.append(R_CLEAR, _dumps([desc.name]), 0)
            for k in [k for k in self._cells if k[0] == desc.name]:
                del self._cells[k]
            for slot in [s for s in self._slots if s[0] == desc.name]:
                del self._slots[slot]

    def set_exemplar(
        self, desc: MetricDesc, key: tuple[str, ...], slot: int, exemplar: Exemplar
    ) -> None:
        with self._lock:
            if (desc.name, key) not in self._cells:
                return
            where = self._slots.get((desc.name, key, slot))
            if where is None:
                writer = self._file()
                where = writer.append(R_EXEMPLAR, exemplar_key(desc, key, slot), EXEMPLAR_DOUBLES)
                self._slots[(desc.name, key, slot)] = where
            # An exemplar too big for its slot (only with many escaped characters) is dropped.
            write_exemplar(where[0], where[1], exemplar)

    def read(
        self, desc: MetricDesc, local: Iterable[LocalCell] = (), options: CollectOptions = _DEFAULT
    ) -> Iterator[SeriesData]:
        # This process's cells are in its own file, which read_all merges with the others.
        return iter(self.read_all([desc], options)[desc.name])

    # -- beyond the protocol --------------------------------------------------------------

    def snapshot(self) -> list[FileState]:
        """The files to merge now (dead processes compacted first) - for collectors."""
        with self._read_lock:
            return self._reader.snapshot()

    def read_all(
        self, descs: list[MetricDesc], options: CollectOptions = _DEFAULT
    ) -> dict[str, list[SeriesData]]:
        """Every series of each of *descs*, merged from one consistent snapshot (the
        ``created`` slot only when *options* render it)."""
        t0 = time.perf_counter()
        with self._read_lock:
            files = self._reader.snapshot()
            out = {d.name: list(merge(d, files, created=options.created)) for d in descs}
            self.files_merged = len(files)
            self.merge_seconds += time.perf_counter() - t0
        return out

    def track(self, metric: Any) -> None:
        """Remember *metric* (to re-point its cells after a fork); called by the metric."""
        self._metrics.add(metric)
        registry = getattr(metric, "_registry", None)
        if registry is None or registry in self._registries:
            return
        self._registries.add(registry)
        # Registries that report on themselves also get this store's self-metrics.
        if registry.self_metrics in getattr(registry, "_collectors", {}):
            registry.register(StoreSelfMetrics(self))

    def close(self) -> None:
        """Close the files this store opened to read (its own file stays: cells use it)."""
        with self._read_lock:
            self._reader.close()

    def _after_fork_in_child(self) -> None:
        self._reader.close()
        if self._writer is not None:
            self._writer.detach()
        self._reset()
        for metric in list(self._metrics):
            metric._reattach()


_STORES: weakref.WeakSet[MultiProcessStore] = weakref.WeakSet()


def _after_fork() -> None:
    for store in list(_STORES):
        store._after_fork_in_child()


# One hook for every store (a hook per store would pile up: they cannot be unregistered).
os.register_at_fork(after_in_child=_after_fork)


def _family(name: str, doc: str, kind: MetricType, value: float) -> MetricFamily:
    return MetricFamily(name, doc, kind, series=(Series((), (value,)),))


def directory_self_metrics(
    directory: str, files: int, seconds: float, archive_generation: int, archived: int
) -> Iterator[MetricFamily]:
    """The ``meterhub_multiprocess_*`` self-metrics (shared by the store and the collector)."""
    c, g = MetricType.COUNTER, MetricType.GAUGE
    yield _family(
        "meterhub_multiprocess_files_merged",
        "Files (processes and archive) merged by this process's last collection.",
        g,
        files,
    )
    yield _family(
        "meterhub_multiprocess_merge_seconds",
        "Time this process spent reading and merging multi-process files.",
        c,
        seconds,
    )
    yield _family(
        "meterhub_multiprocess_compactions",
        "Compactions of dead processes' files into the archive (directory-wide).",
        c,
        archive_generation,
    )
    yield _family(
        "meterhub_multiprocess_files_compacted",
        "Dead processes' files merged into the archive (directory-wide).",
        c,
        archived,
    )
    yield _family(
        "meterhub_multiprocess_files_corrupt",
        "Damaged multi-process files moved aside into corrupt/ (directory-wide).",
        c,
        corrupt_count(directory),
    )


class StoreSelfMetrics:
    """Collector of a :class:`MultiProcessStore`'s self-metrics (added to its registries)."""

    def __init__(self, store: MultiProcessStore) -> None:
        self._store = store

    def collect(self) -> Iterator[MetricFamily]:
        s = self._store
        archive = s._reader.archive
        gen, archived = (archive.generation, archive.merged) if archive else (0, 0)
        yield from directory_self_metrics(
            s.directory, s.files_merged, s.merge_seconds, gen, archived
        )
