"""The directory of the multi-process store: naming, liveness, locking, compaction.

File names (everything else in the directory is ignored):

* ``p_<pid>_<start>.db`` (or ``p_<pid>_<start>_<n>.db``) - the file of a live or dead
  process; ``start`` is the process start time (``/proc/<pid>/stat`` field 22, clock
  ticks since boot), so a recycled pid never passes for the process that wrote the file.
  Files are created exclusively (``O_EXCL``, then published with ``os.link``, which never
  replaces): a process whose name is taken - a recycled pid within the same clock tick,
  a second store in one process - takes the next ``_<n>``, and no file of another
  process is ever truncated or replaced;
* ``archive_<generation>.db`` - dead processes' values merged; only the highest
  generation counts, and the files named in its SOURCES record are already inside it;
* ``*.tmp`` / ``*.part`` - files being born (never read; ``p_<pid>_<start>_<token>.tmp``
  for process files);
* ``.lock`` - ``flock``: readers list and open files under a shared lock, compaction
  runs under the exclusive one;
* ``corrupt/`` - damaged files moved aside (their count is a self-metric). A file that
  cannot be opened or read (another user's, an I/O error) is not damaged: it is skipped
  and counted by the reader that met it, never moved, and compaction goes on without it.

Compaction steps, each crash-safe: (1) recover - delete archives older than the newest
and the files its SOURCES record names; (2) merge the newest archive and the dead files
into ``archive_<g+1>.part``, fsync; (3) rename it to ``archive_<g+1>.db`` and fsync the
directory - the commit point; (4) delete the merged files and the old archive. A crash
before (3) leaves the old state intact; after it, readers already ignore the sources and
the next compaction's step (1) deletes them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import secrets
import struct
from collections.abc import Callable, Iterator

from ..._atomicfile import HAVE_PROC as _HAVE_PROC
from ..._atomicfile import process_start
from ..._forksafe import renew_locks_after_fork
from ...samples import MetricType
from ..base import MetricDesc, SeriesData, cell_width
from .format import (
    EXEMPLAR_DOUBLES,
    KIND_ARCHIVE,
    KIND_PROCESS,
    R_EXEMPLAR,
    R_META,
    R_SERIES,
    R_SOURCES,
    CorruptFile,
    FileWriter,
    before_io,
    compact_json,
    desc_to_json,
    exemplar_key,
    series_key,
    write_exemplar,
)
from .merge import SUMMED, FileState, merge_reduced, merge_summed
from .view import FileView

__all__ = [
    "PROC_RE",
    "archive_files",
    "compact",
    "corrupt_count",
    "create_process_file",
    "locked",
    "log",
    "process_alive",
    "process_start",
    "publish_process_file",
    "quarantine",
]

PROC_RE = re.compile(r"^p_(\d+)_(\d+)(?:_\d+)?\.db$")
PROC_TMP_RE = re.compile(r"^p_(\d+)_(\d+)(?:_[0-9a-f]+)?(?:\.db)?\.tmp$")
ARCHIVE_RE = re.compile(r"^archive_(\d+)\.db$")
LOCK_NAME = ".lock"
CORRUPT_DIR = "corrupt"

log = logging.getLogger("meterhub")

_failpoint: Callable[[str], None] | None = None
"""Tests set this to crash compaction at a named step (see tests/test_multiprocess_compaction)."""


def _hit(step: str) -> None:
    if _failpoint is not None:
        _failpoint(step)


def proc_file_name(pid: int, start: int, n: int = 0) -> str:
    return f"p_{pid}_{start}.db" if n == 0 else f"p_{pid}_{start}_{n}.db"


def create_process_file(directory: str, pid: int, start: int) -> FileWriter:
    """A new, empty, unpublished file for process *pid* (see :func:`publish_process_file`)."""
    tmp = os.path.join(directory, f"p_{pid}_{start}_{secrets.token_hex(6)}.tmp")
    name = os.path.join(directory, proc_file_name(pid, start))
    return FileWriter(name, KIND_PROCESS, pid, start, tmp=tmp, exclusive=True)


def publish_process_file(directory: str, writer: FileWriter, pid: int, start: int) -> None:
    """Give *writer*'s file the first free name of its process (never another's file)."""
    for n in range(10_000):
        try:
            writer.publish(os.path.join(directory, proc_file_name(pid, start, n)))
            return
        except FileExistsError:
            continue
    raise FileExistsError(f"{directory}: no free file name for process {pid}")


def process_alive(name: str) -> bool:
    """Whether the process of file *name* still runs (same pid *and* start time)."""
    m = PROC_RE.match(name)
    assert m is not None
    return process_start(int(m.group(1))) == int(m.group(2))


class _HeldLocks:
    """Descriptors of the directory lock held right now, by any thread of this process.

    A child forked while one is held inherits the descriptor, and with it the ``flock``
    (it belongs to the open file description): the lock would outlive the parent's
    release for as long as the child lives, and the child's own next ``locked()`` would
    wait for itself. The child closes its copies (never unlocks: that would release the
    parent's lock) before anything else of meterhub runs (:mod:`meterhub._forksafe`).
    """

    def __init__(self) -> None:
        self.fds: set[int] = set()
        renew_locks_after_fork(self)

    def _renew_locks(self) -> None:
        for fd in list(self.fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()


_HELD = _HeldLocks()


@contextlib.contextmanager
def locked(path: str, exclusive: bool) -> Iterator[None]:
    # A fresh descriptor each time: an inherited one would share its lock with the parent.
    lock = os.path.join(path, LOCK_NAME)
    fd: int | None
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except PermissionError:
        # A reader without write access to the directory (another user): flock works on
        # a read-only descriptor; with no lock file at all nobody compacts: read as is.
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if exclusive:
                raise
            fd = None
    if fd is not None:
        _HELD.fds.add(fd)
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        if fd is not None:
            # Unlocked before it leaves the set: a child forked at any point either closes
            # its copy (in the set: still open, maybe locked) or holds an unlocked one.
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            _HELD.fds.discard(fd)
            os.close(fd)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        before_io("fsync")
        os.fsync(fd)
    finally:
        os.close(fd)


def quarantine(path: str, name: str) -> bool:
    """Move the damaged file *name* into ``corrupt/`` (caller holds the exclusive lock).

    False if it could not be moved (no write access to the directory): the caller skips
    it and counts it as unreadable instead.
    """
    target_dir = os.path.join(path, CORRUPT_DIR)
    try:
        os.makedirs(target_dir, exist_ok=True)
        target, n = os.path.join(target_dir, name), 0
        while os.path.exists(target):
            n += 1
            target = os.path.join(target_dir, f"{name}.{n}")
        before_io("rename")
        os.rename(os.path.join(path, name), target)
    except FileNotFoundError:
        return True  # moved or compacted by someone else meanwhile
    except OSError as exc:
        log.warning("meterhub: cannot move damaged %s aside (%s); skipping it", name, exc)
        return False
    log.warning("meterhub: %s is damaged; moved to %s/", name, CORRUPT_DIR)
    return True


def corrupt_count(path: str) -> int:
    """How many damaged files were ever moved aside in *path* (what ``corrupt/`` holds)."""
    try:
        return len(os.listdir(os.path.join(path, CORRUPT_DIR)))
    except FileNotFoundError:
        return 0


def archive_files(names: list[str]) -> list[tuple[int, str]]:
    """The archives among *names*, as ``(generation, name)``, oldest first."""
    found = [(int(m.group(1)), n) for n in names if (m := ARCHIVE_RE.match(n))]
    return sorted(found)


def _archive_series(desc: MetricDesc, files: list[FileState]) -> list[SeriesData]:
    """What a dead process leaves behind: sums, and gauges in the non-live modes."""
    if desc.native is not None:
        from .native import native_summed

        # counts only (not gen/schema/window): a series that never left zero adds nothing
        end = 1 + len(desc.buckets)
        return [d for d in native_summed(desc, files) if any(d.values[:end])]
    if desc.type in SUMMED:
        # A series that never left zero (a forked child re-creates all its parent's series)
        # adds nothing; archiving it would resurrect series the parent removed.
        # The earliest creation time is kept whether or not it is rendered now.
        return [d for d in merge_summed(desc, files, created=True) if any(d.values[:-1])]
    mode = desc.multiprocess_mode
    if desc.type is MetricType.GAUGE and mode in ("sum", "max", "min", "mostrecent"):
        return list(merge_reduced(desc, files, mode))
    return []


def compact(path: str, pids: frozenset[int] = frozenset()) -> int:
    """Merge dead processes' files into a new archive; return how many files were merged.

    A file whose process ``/proc`` shows running (same pid and start time) is never
    merged; without ``/proc``, files of *pids* count as dead on the caller's word. A
    damaged file is moved aside; a file that cannot be read is left where it is, and
    the others are merged all the same. If the newest archive cannot be read, nothing
    is merged (a new archive without it would lose what it holds).
    """
    with locked(path, exclusive=True):
        names = os.listdir(path)
        base: FileView | None = None
        for _, name in reversed(archive_files(names)):
            try:
                base = FileView(os.path.join(path, name))
                base.refresh()
                break
            except CorruptFile:
                if base is not None:
                    base.close()
                base = None
                quarantine(path, name)
            except FileNotFoundError:
                base = None
            except OSError as exc:
                if base is not None:
                    base.close()
                log.warning("meterhub: cannot read the archive %s (%s); not compacting", name, exc)
                return 0
        try:
            return _compact_locked(path, names, base, pids)
        finally:
            if base is not None:
                base.close()


def _compact_locked(
    path: str, names: list[str], base: FileView | None, pids: frozenset[int]
) -> int:
    merged_before = set(base.sources) if base else set()
    for name in names:  # step 1: finish an interrupted compaction
        old_archive = ARCHIVE_RE.match(name) and (base is None or name != base.name)
        stale = name.endswith((".part", ".part.tmp")) or bool(PROC_TMP_RE.match(name))
        if name in merged_before or old_archive or (stale and not _alive_tmp(name)):
            with contextlib.suppress(FileNotFoundError):
                before_io("unlink")
                os.unlink(os.path.join(path, name))
    dead: list[FileView] = []
    try:
        for name in sorted(names):
            m = PROC_RE.match(name)
            if m is None or name in merged_before:
                continue
            # Without /proc a recycled pid looks alive: then the caller's word decides.
            trust_caller = int(m.group(1)) in pids and not _HAVE_PROC
            if process_alive(name) and not trust_caller:
                continue
            view = _open_dead(path, name)
            if view is not None:
                dead.append(view)
        if not dead:
            return 0
        _write_archive(path, base, dead)
        _hit("after_commit")
        for view in dead:
            with contextlib.suppress(FileNotFoundError):
                before_io("unlink")
                os.unlink(view.path)
            _hit("after_unlink")
        if base is not None:
            with contextlib.suppress(FileNotFoundError):
                before_io("unlink")
                os.unlink(base.path)
        return len(dead)
    finally:
        for view in dead:
            view.close()


def _open_dead(path: str, name: str) -> FileView | None:
    """A dead process's file, read in full; ``None`` if gone, damaged (moved aside) or
    unreadable (left in place: skipped, and the rest is compacted all the same)."""
    view: FileView | None = None
    try:
        view = FileView(os.path.join(path, name))
        view.refresh()
        return view
    except FileNotFoundError:
        pass
    except CorruptFile:
        quarantine(path, name)
    except OSError as exc:
        log.warning("meterhub: cannot read %s (%s); compacting the others", name, exc)
    if view is not None:
        view.close()
    return None


def _alive_tmp(name: str) -> bool:
    m = PROC_TMP_RE.match(name)
    return bool(m) and process_start(int(m.group(1))) == int(m.group(2))  # type: ignore[union-attr]


def _write_archive(path: str, base: FileView | None, dead: list[FileView]) -> None:
    generation = (base.generation if base else 0) + 1
    merged = (base.merged if base else 0) + len(dead)
    final = os.path.join(path, f"archive_{generation}.db")
    part = final + ".part"
    writer = FileWriter(part, KIND_ARCHIVE, 0, 0, generation, merged)
    try:
        files: list[FileState] = [(base, False)] if base else []
        files += [(v, False) for v in dead]
        descs: dict[str, MetricDesc] = {}
        for view, _ in files:
            for name, desc in view.descs.items():
                descs.setdefault(name, desc)
        for desc in descs.values():
            writer.append(R_META, desc_to_json(desc), 0)
            width = cell_width(desc)
            for data in _archive_series(desc, files):
                mm, at = writer.append(R_SERIES, series_key(desc, data.key), width)
                struct.pack_into(f"<{width}d", mm, at, *data.values)
                for slot, ex in data.exemplars.items():
                    mm, at = writer.append(
                        R_EXEMPLAR, exemplar_key(desc, data.key, slot), EXEMPLAR_DOUBLES
                    )
                    write_exemplar(mm, at, ex)
        sources = [base.name] if base else []
        writer.append(R_SOURCES, compact_json(sources + [v.name for v in dead]), 0)
        _hit("before_fsync")
        writer.flush()
    finally:
        writer.close()
    _hit("before_commit")
    before_io("rename")
    os.rename(part, final)
    _fsync_dir(path)
