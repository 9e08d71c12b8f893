"""The reader's side of the multi-process directory: which files to merge, and are their
processes alive (naming, locking and compaction: :mod:`.directory`)."""

from __future__ import annotations

import contextlib
import os
import select
import weakref

from .directory import (
    PROC_RE,
    archive_files,
    compact,
    locked,
    log,
    process_alive,
    process_start,
    quarantine,
)
from .format import CorruptFile
from .merge import FileState
from .view import FileView

__all__ = ["Directory"]


def _close_fds(fds: dict[str, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


class Directory:
    """A reader's cached view of the directory: open files and their indexes.

    Not thread-safe; the store serializes calls. :meth:`snapshot` returns the files to
    merge with their liveness, compacting dead processes first when there are any.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._views: dict[str, FileView] = {}
        self._dead: set[str] = set()
        self._pidfds: dict[str, int] = {}
        self.archive: FileView | None = None
        self.unreadable: set[str] = set()
        """Files the last snapshot skipped: not readable by this process (permissions,
        I/O errors), or damaged but not movable aside by it."""
        self._stuck: dict[str, tuple[int, int]] = {}  # damaged, not movable: name -> inode
        self._failed_compaction: frozenset[str] | None = None
        weakref.finalize(self, _close_fds, self._pidfds)

    def _still_alive(self, name: str) -> bool:
        """Liveness by pid and start time, then by a pidfd: a pidfd names one process (not
        a pid), so polling it is immune to pid reuse and costs no ``/proc`` read."""
        fd = self._pidfds.get(name)
        if fd is not None:
            return not select.select([fd], [], [], 0)[0]  # readable once it has exited
        m = PROC_RE.match(name)
        assert m is not None
        pid = int(m.group(1))
        try:
            fd = os.pidfd_open(pid)  # type: ignore[attr-defined,unused-ignore]
        except (AttributeError, OSError):
            return process_alive(name)
        # Opened first, checked second: if the start time matches, fd is that very process.
        if process_start(pid) != int(m.group(2)):
            os.close(fd)
            return False
        self._pidfds[name] = fd
        return True

    def _forget(self, name: str) -> None:
        fd = self._pidfds.pop(name, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """Close every open file and pidfd (a forked child drops its parent's reader)."""
        for view in self._views.values():
            view.close()
        self._views.clear()
        for name in list(self._pidfds):
            self._forget(name)

    def snapshot(self, compact_dead: bool = True) -> list[FileState]:
        for attempt in range(3):
            states, corrupt, leftovers = self._scan()
            if corrupt:
                try:
                    with locked(self.path, exclusive=True):
                        for name in corrupt:
                            if not quarantine(self.path, name):
                                self._stick(name)
                except OSError:  # no lock file, and no right to create one: skip them
                    for name in corrupt:
                        self._stick(name)
                continue
            dead = frozenset(v.name for v, alive in states[1:] if v is not None and not alive)
            if dead == self._failed_compaction:
                compact_dead = False  # it failed with these very files: wait for a change
            if compact_dead and attempt < 2 and (dead or leftovers):
                try:
                    compact(self.path)
                except Exception as exc:  # a scrape must succeed even when compaction cannot
                    if self._failed_compaction is None:
                        log.warning("meterhub: compacting %s failed: %s", self.path, exc)
                    self._failed_compaction = dead
                    compact_dead = False
                else:
                    self._failed_compaction = None
                continue
            return [s for s in states if s[0] is not None]  # type: ignore[misc]
        return [s for s in states if s[0] is not None]  # type: ignore[misc]

    def _stick(self, name: str) -> None:
        try:
            st = os.stat(os.path.join(self.path, name))
        except OSError:
            return
        self._stuck[name] = (st.st_dev, st.st_ino)
        self.unreadable.add(name)

    def _is_stuck(self, name: str) -> bool:
        where = self._stuck.get(name)
        if where is None:
            return False
        try:
            st = os.stat(os.path.join(self.path, name))
        except OSError:
            del self._stuck[name]
            return False
        if (st.st_dev, st.st_ino) != where:
            del self._stuck[name]  # another file under that name now
            return False
        return True

    def _open(self, name: str, corrupt: list[str]) -> FileView | None:
        if self._stuck and self._is_stuck(name):
            self.unreadable.add(name)
            return None
        view = self._views.get(name)
        try:
            if view is None:
                view = self._views[name] = FileView(os.path.join(self.path, name))
            view.refresh()
            return view
        except FileNotFoundError:
            return None  # gone (compacted meanwhile)
        except OSError:
            self.unreadable.add(name)  # another user's, an I/O error: skipped and counted
            if view is not None:
                view.close()
                del self._views[name]
            return None
        except CorruptFile:
            if view is not None:
                view.close()
                del self._views[name]
            corrupt.append(name)
            return None

    def _scan(self) -> tuple[list[tuple[FileView | None, bool]], list[str], bool]:
        corrupt: list[str] = []
        self.unreadable = set()
        with locked(self.path, exclusive=False):
            names = os.listdir(self.path)
            archive: FileView | None = None
            archives = archive_files(names)
            for _, name in reversed(archives):
                archive = self._open(name, corrupt)
                if archive is not None:
                    break
            skip = set(archive.sources) if archive else set()
            # Left by a compaction that crashed after its commit point (no lock is held
            # now, so none is running): the next compaction's recovery removes them.
            leftovers = (
                len(archives) > 1
                or bool(skip.intersection(names))
                or any(n.endswith((".part", ".part.tmp")) for n in names)
            )
            wanted = {archive.name} if archive else set()
            states: list[tuple[FileView | None, bool]] = [(archive, False)]
            for name in sorted(names):
                if name in skip or not name.endswith(".db") or not PROC_RE.match(name):
                    continue
                view = self._open(name, corrupt)
                if view is not None:
                    wanted.add(name)
                    if name not in self._dead and not self._still_alive(name):
                        self._dead.add(name)
                    states.append((view, name not in self._dead))
        for name in list(self._views):
            if name not in wanted:
                self._views.pop(name).close()
                self._forget(name)
        self.archive = archive
        return states, corrupt, leftovers
