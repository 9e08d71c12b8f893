"""The multi-process store: one memory-mapped file per process, merged on collection.

Selected by ``METERHUB_MULTIPROC_DIR`` (see :func:`meterhub.store.default_store`) or
passed explicitly: ``Registry(store=MultiProcessStore(path))``. Recording stays a
``cell[i] += x`` on a ``memoryview`` of doubles over this process's own file: no lock,
no system call, and exact, because no other process ever writes that file.

Layout: :mod:`.format`; merge rules: :mod:`.merge`; faults and forks:
:mod:`meterhub.store.mmap`. ``remove``/``clear`` write a tombstone in *this* process's
file: they drop its contribution (other processes keep theirs, archived values stay).

Example::

    >>> import tempfile
    >>> from meterhub import Counter, Registry
    >>> reg = Registry(store=MultiProcessStore(tempfile.mkdtemp()), self_metrics=False)
    >>> Counter("jobs", "Jobs done.", registry=reg).inc()
    >>> reg.get_sample_value("jobs_total")
    1.0
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, cast

from ..._forksafe import after_fork_hook, check_pid
from ...samples import CollectOptions, Exemplar, MetricFamily, MetricType
from ..base import Cell, LocalCell, MetricDesc, SeriesData, cell_width
from .directory import (
    create_process_file,
    locked,
    process_start,
    publish_process_file,
    quarantine,
)
from .format import (
    EXEMPLAR_DOUBLES,
    R_CLEAR,
    R_EXEMPLAR,
    R_META,
    R_TOMBSTONE,
    FileWriter,
    compact_json,
    desc_to_json,
    exemplar_key,
    series_key,
    write_exemplar,
)
from .merge import FileState, merge
from .reader import Directory
from .selfmetrics import directory_self_metrics

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
        self._identity: tuple[int, int] | None = None
        self._cells: dict[tuple[str, tuple[str, ...]], memoryview[float]] = {}
        self._metas: set[str] = set()
        self._slots: dict[tuple[str, tuple[str, ...], int], tuple[mmap.mmap, int]] = {}
        # Series that have no cell in the file yet (it could not grow, or was damaged):
        # they record into this cell meanwhile and move into the file at the next chance.
        self._pending: dict[tuple[str, tuple[str, ...]], tuple[MetricDesc, Cell]] = {}
        # Tombstones and clears that found no room: written before any later record.
        self._records: list[tuple[int, bytes]] = []
        self._reader = Directory(self.directory)
        self._pinned: list[FileState] | None = None
        self._pid = os.getpid()
        self.files_merged = 0
        self.merge_seconds = 0.0
        self._disk_warned = False

    def __repr__(self) -> str:
        return f"MultiProcessStore({self.directory!r})"

    @property
    def path(self) -> str | None:
        """This process's file, once it has one (files are created on the first series)."""
        return self._writer.path if self._writer else None

    @property
    def pending(self) -> int:
        """Series recording into process-local cells until the file can take them."""
        return len(self._pending)

    def _file(self) -> FileWriter:
        if self._writer is None:
            pid = os.getpid()
            start = process_start(pid) or 0
            writer = create_process_file(self.directory, pid, start)
            try:
                publish_process_file(self.directory, writer, pid, start)
            except BaseException:
                writer.discard()
                raise
            self._writer = writer
            self._identity = writer.identity()
        return self._writer

    # -- the ValueStore protocol ------------------------------------------------------------

    def cell(self, desc: MetricDesc, key: tuple[str, ...]) -> Cell:
        if self._pid != os.getpid():
            check_pid()  # forked behind Python's back: get this process its own file first
        with self._lock:
            cell = self._cells.get((desc.name, key))
            if cell is not None:
                # A memoryview of doubles is a mutable sequence of floats (typeshed disagrees).
                return cast(Cell, cell)
            waiting = self._pending.get((desc.name, key))
            if waiting is not None:
                return waiting[1]
            self._maintain(check_name=False)
            try:
                if self._records:
                    raise OSError("earlier records still wait for room")
                cell = self._new_cell(desc, key)
            except OSError as exc:
                # Disk full, file size limit, read-only directory: recording goes on in a
                # process-local cell, which moves into the file as soon as it can grow.
                local = [0.0] * cell_width(desc)
                self._pending[(desc.name, key)] = (desc, local)
                self._count(
                    desc.name,
                    "multiprocess_file_full",
                    f"cannot grow the multi-process file in {self.directory} ({exc}); new "
                    "series record in this process until it can, then move into the file",
                )
                return local
            self._cells[(desc.name, key)] = cell
            return cast(Cell, cell)

    def _new_cell(self, desc: MetricDesc, key: tuple[str, ...]) -> memoryview[float]:
        writer = self._file()
        if desc.name not in self._metas:
            writer.append(R_META, desc_to_json(desc), 0)
            self._metas.add(desc.name)
        return writer.cell(series_key(desc, key), cell_width(desc))

    def _count(self, name: str, reason: str, message: str) -> None:
        """Count a fault of this store against metric *name* in ``meterhub_errors_total``.

        Never raises, not even in strict mode: a full disk is not a programming error.
        """
        counted = False
        for metric in list(self._metrics):
            sm = getattr(metric, "_self_metrics", None)
            if sm is not None and metric.desc.name == name:
                sm.count_error(name, reason, message)
                counted = True
                break
        if not counted:
            log.warning("meterhub: metric %s: %s", name, message)

    def _maintain(self, check_name: bool) -> None:
        """Repair what a fault left behind (caller holds ``_lock``); cheap when nothing did.

        Checks that this process's file is intact (not truncated, not overwritten and,
        with *check_name*, still in the directory under its name), moving every series
        into a new file if not; then writes the records and moves the pending series
        that waited for room.
        """
        writer = self._writer
        if writer is not None:
            try:
                lost = writer.damage()
                moved = check_name and self._moved(writer)
            except OSError:
                lost, moved = None, False
            if lost is not None or moved:
                self._rehome(lost)
        if self._records and self._writer is not None:
            try:
                while self._records:
                    self._writer.append(*self._records[0], 0)
                    del self._records[0]
            except OSError:
                return
        if self._pending:
            self._move_pending()

    def _moved(self, writer: FileWriter) -> bool:
        try:
            st = os.stat(writer.path)
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self._identity

    def _rehome(self, lost: int | None) -> None:
        """Move every series of this process into a new file: the old one was damaged
        (from byte *lost* on) or moved aside. The old file is moved aside first, if still
        there: readers never see both."""
        old = self._writer
        assert old is not None
        metrics = {m.desc.name: m for m in list(self._metrics)}
        if lost is not None:
            log.warning("meterhub: %s was damaged under its process; starting a new file", old.path)
            message = (
                f"{old.path} was truncated or overwritten under this process; the values "
                "its series held may be lost (one count per series), new ones go to a new file"
            )
            for name, _ in self._cells:
                sm = getattr(metrics.get(name), "_self_metrics", None)
                if sm is not None:
                    sm.count_error(name, "multiprocess_file_damaged", message)
        descs = {name: m.desc for name, m in metrics.items()}
        for (name, key), cell in self._cells.items():
            desc = descs.get(name)
            if desc is not None:
                self._pending[(name, key)] = (desc, cast(Cell, cell))
        self._cells.clear()
        self._metas.clear()
        self._slots.clear()
        self._records.clear()  # they void series of the old file only
        try:
            with locked(self.directory, exclusive=True):
                if not self._moved(old):
                    quarantine(self.directory, os.path.basename(old.path))
        except OSError:
            pass
        old.detach()  # its mappings live on while pending cells still point into them
        self._writer = None
        self._identity = None

    def _move_pending(self) -> None:
        holders: dict[str, list[Any]] = {}
        for metric in list(self._metrics):
            holders.setdefault(metric.desc.name, []).append(metric)
        for (name, key), (desc, old) in list(self._pending.items()):
            metrics = holders.get(name)
            if not metrics:
                del self._pending[(name, key)]  # its metric is gone
                continue
            made: list[memoryview[float]] = []

            def new_cell(
                desc: MetricDesc = desc,
                key: tuple[str, ...] = key,
                made: list[memoryview[float]] = made,
            ) -> Cell:
                made.append(self._new_cell(desc, key))
                return cast(Cell, made[-1])

            try:
                moved = any(m.move_series_cell(key, old, new_cell) for m in metrics)
            except OSError:
                return  # still no room: try again later
            if moved:
                del self._pending[(name, key)]
                self._cells[(name, key)] = made[-1]
            elif made:  # its child went away meanwhile
                self._append_record(name, R_TOMBSTONE, series_key(desc, key))

    def remove(self, desc: MetricDesc, key: tuple[str, ...]) -> None:
        with self._lock:
            self._pending.pop((desc.name, key), None)
            if self._cells.pop((desc.name, key), None) is None or self._writer is None:
                return
            for slot in [s for s in self._slots if s[0] == desc.name and s[1] == key]:
                del self._slots[slot]
            self._append_record(desc.name, R_TOMBSTONE, series_key(desc, key))

    def clear(self, desc: MetricDesc) -> None:
        with self._lock:
            for k in [k for k in self._pending if k[0] == desc.name]:
                del self._pending[k]
            if self._writer is None or desc.name not in self._metas:
                return
            for k in [k for k in self._cells if k[0] == desc.name]:
                del self._cells[k]
            for slot in [s for s in self._slots if s[0] == desc.name]:
                del self._slots[slot]
            self._append_record(desc.name, R_CLEAR, compact_json([desc.name]))

    def _append_record(self, name: str, rtype: int, key: bytes) -> None:
        assert self._writer is not None
        if not self._records:
            try:
                self._writer.append(rtype, key, 0)
                return
            except OSError:
                pass
        # No room: the series stays visible until space is back, then it goes.
        self._records.append((rtype, key))
        self._count(
            name,
            "multiprocess_file_full",
            f"cannot grow the multi-process file in {self.directory}; a removal is "
            "written when it can",
        )

    def set_exemplar(
        self, desc: MetricDesc, key: tuple[str, ...], slot: int, exemplar: Exemplar
    ) -> None:
        with self._lock:
            if (desc.name, key) not in self._cells:
                if (desc.name, key) in self._pending:
                    self._count(desc.name, "multiprocess_exemplar_dropped", "no room for exemplars")
                return
            where = self._slots.get((desc.name, key, slot))
            if where is None:
                try:
                    if self._records:
                        raise OSError("earlier records still wait for room")
                    writer = self._file()
                    where = writer.append(
                        R_EXEMPLAR, exemplar_key(desc, key, slot), EXEMPLAR_DOUBLES
                    )
                except OSError:
                    self._count(desc.name, "multiprocess_exemplar_dropped", "no room for exemplars")
                    return
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
        self.maintain()
        with self._read_lock:
            if self._pinned is not None:
                return self._pinned
            return self._reader.snapshot()

    def maintain(self) -> None:
        """Repair this process's file if it was damaged and move series that waited for
        room into it; collection does this by itself (so the textfile flusher does too)."""
        if self._writer is None and not self._pending:
            return
        with self._lock:
            self._maintain(check_name=True)

    @contextlib.contextmanager
    def collection(self) -> Iterator[list[FileState]]:
        """Pin one snapshot of the directory for a whole registry collection: every
        :meth:`read` / :meth:`read_all` of this thread inside uses it (other threads'
        collections wait: the read lock is held throughout)."""
        if self._pid != os.getpid():
            check_pid()
        self.maintain()
        with self._read_lock:
            if self._pinned is not None:  # nested (a collector collecting this registry)
                yield self._pinned
                return
            t0 = time.perf_counter()
            files = self._pinned = self._reader.snapshot()
            self.files_merged = len(files)
            self.merge_seconds += time.perf_counter() - t0
            try:
                yield files
            finally:
                self._pinned = None

    def read_all(
        self, descs: list[MetricDesc], options: CollectOptions = _DEFAULT
    ) -> dict[str, list[SeriesData]]:
        """Every series of each of *descs*, merged from one consistent snapshot (the
        ``created`` slot only when *options* render it)."""
        if self._pid != os.getpid():
            check_pid()
        t0 = time.perf_counter()
        self.maintain()
        with self._read_lock:
            files = self._pinned  # inside a registry's collection: its snapshot
            if files is None:
                files = self._reader.snapshot()
                self.files_merged = len(files)
            out = {d.name: list(merge(d, files, created=options.created)) for d in descs}
            self.merge_seconds += time.perf_counter() - t0
        return out

    def self_metrics(self) -> Iterator[MetricFamily]:
        """The ``meterhub_multiprocess_*`` self-metrics: this store's last collection
        (files merged, unreadable, merge time), the directory's compactions and corrupt
        files, and this process's pending series."""
        archive = self._reader.archive
        gen, archived = (archive.generation, archive.merged) if archive else (0, 0)
        return directory_self_metrics(
            self.directory,
            self.files_merged,
            self.merge_seconds,
            gen,
            archived,
            len(self._reader.unreadable),
            self.pending,
        )

    def track(self, metric: Any) -> None:
        """Remember *metric* (to re-point its cells after a fork); called by the metric."""
        self._metrics.add(metric)
        registry = getattr(metric, "_registry", None)
        if registry is not None:
            self.attach(registry)

    def attach(self, registry: Any) -> None:
        """Note that *registry* uses this store: if it reports on itself, it also gets
        this store's self-metrics (called by the metrics and by the registry)."""
        if registry in self._registries:
            return
        self._registries.add(registry)
        if registry.self_metrics in getattr(registry, "_collectors", {}):
            registry.register(StoreSelfMetrics(self))

    def close(self) -> None:
        """Close the files this store opened to read (its own file stays: cells use it)."""
        with self._read_lock:
            self._reader.close()

    def _after_fork_in_child(self, late: bool) -> None:
        self._reader.close()
        if self._writer is not None:
            self._writer.detach()
        self._reset()
        for metric in list(self._metrics):
            metric.reattach_cells()
        if late and self._metrics:
            # Counted in this process's own (new) file: every collector of the directory
            # sees it, whichever process serves the scrape.
            self.cell(_FORKS_UNDETECTED, ())[0] += 1.0


_FORKS_UNDETECTED = MetricDesc(
    "meterhub_multiprocess_forks_undetected",
    "Forks noticed only afterwards by pid (they bypassed Python's at-fork hooks): the "
    "child wrote into its parent's file until then.",
    MetricType.COUNTER,
)

_STORES: weakref.WeakSet[MultiProcessStore] = weakref.WeakSet()


def _after_fork(late: bool) -> None:
    for store in list(_STORES):
        store._after_fork_in_child(late)


# One hook for every store (a hook per store would pile up: they cannot be unregistered).
after_fork_hook(_after_fork)


class StoreSelfMetrics:
    """Collector of a :class:`MultiProcessStore`'s self-metrics (added to its registries)."""

    def __init__(self, store: MultiProcessStore) -> None:
        self._store = store

    def collect(self) -> Iterator[MetricFamily]:
        return self._store.self_metrics()
