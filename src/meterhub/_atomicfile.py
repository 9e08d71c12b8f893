"""Atomic file replacement, written once: every file meterhub writes goes through here.

A file is replaced by writing a temporary file in the *same directory* (so the rename never
crosses a filesystem), fsyncing it, renaming it over the target with ``os.replace`` and
fsyncing the directory, so readers see the old file or the new one, never a part, and the
rename survives a power cut. On any error the temporary file is removed and the
``OSError`` propagates; the target is untouched.

A writer killed mid-write (SIGKILL, OOM, power loss) still leaves its temporary file. Its
name records who wrote it: ``.NAME.PID.START.N.tmp``, with the writer's pid and process
start time (``/proc/PID/stat`` field 22), so :func:`remove_dead_temp_files` removes exactly
the files of writers that are gone (a reused pid has another start time) and never those
of a live writer, in this process or another.

Example::

    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> write_atomic(os.path.join(d, "app.prom"), b"up 1\\n")
    >>> os.listdir(d)
    ['app.prom']
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Sequence

__all__ = [
    "TEMP_SUFFIX",
    "fsync_dir",
    "process_start",
    "remove_dead_temp_files",
    "stage",
    "temp_name",
    "write_atomic",
    "write_group",
]

TEMP_SUFFIX = ".tmp"
FILE_MODE = 0o644

Data = bytes | Sequence[bytes]
"""File contents: bytes, or chunks written in order with one ``writev``."""

HAVE_PROC = os.path.isdir("/proc/self")
"""Whether ``/proc`` tells process start times (Linux); else liveness is ``kill(pid, 0)``."""
# With O_DSYNC a write returns once its data is on disk: no separate fsync call (and one
# GIL hand-over less for the oplog's writer thread).
_DSYNC = getattr(os, "O_DSYNC", 0)
_counter = itertools.count()
_self: tuple[int, str] = (0, "")


def process_start(pid: int) -> int | None:
    """The start time of process *pid* (``/proc/<pid>/stat`` field 22), ``None`` if none runs.

    Without ``/proc`` (not Linux) it is 0 for any existing process.

    Example::

        >>> process_start(os.getpid()) is not None
        True
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        if HAVE_PROC:
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    if len(fields) > 19 and fields[0] not in (b"Z", b"X"):  # zombies are dead
        return int(fields[19])
    return None


def _owner() -> str:
    """``PID.START`` of this process (computed again after a fork)."""
    global _self
    pid = os.getpid()
    if _self[0] != pid:
        _self = (pid, f"{pid}.{process_start(pid) or 0}")
    return _self[1]


def temp_name(name: str) -> str:
    """A fresh temporary name for *name* owned by this process: ``.NAME.PID.START.N.tmp``."""
    return f".{name}.{_owner()}.{next(_counter)}{TEMP_SUFFIX}"


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make renames in *directory* durable; best effort (some platforms cannot)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # e.g. Windows: directories cannot be opened; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; nothing more can be done
    finally:
        with contextlib.suppress(OSError):  # the rename is done: never report it failed
            os.close(fd)


def _write_all(fd: int, chunks: Sequence[bytes]) -> None:
    """Write *chunks* in order, in one ``writev`` when the kernel takes them whole."""
    if len(chunks) == 1:
        view = memoryview(chunks[0])
        while view:
            view = view[os.write(fd, view) :]
        return
    written = os.writev(fd, chunks)
    if written == sum(map(len, chunks)):
        return
    view = memoryview(b"".join(chunks))[written:]  # a short write: finish the rest
    while view:
        view = view[os.write(fd, view) :]


def stage(
    directory: str | os.PathLike[str],
    name: str,
    data: Data,
    *,
    fsync: bool = True,
    mode: int | None = FILE_MODE,
) -> str:
    """Write *data* to a new temporary file for ``directory/name``; returns its path.

    Durable when *fsync* (``O_DSYNC`` where there is one, else ``fsync``); *mode* is set
    exactly (not masked by the umask: node_exporter may run as another user), or with
    ``None`` left to the umask (one system call less). On error the temporary file is
    removed and the ``OSError`` propagates.
    """
    tmp = os.path.join(directory, temp_name(name))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags | (_DSYNC if fsync else 0), FILE_MODE if mode is None else mode)
    try:
        try:
            _write_all(fd, (data,) if isinstance(data, bytes) else data)
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(fd, mode)
            if fsync and not _DSYNC:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def write_atomic(
    path: str | os.PathLike[str],
    data: Data,
    *,
    fsync: bool = True,
    mode: int | None = FILE_MODE,
    make_dirs: bool = False,
) -> None:
    """Replace *path* with *data* atomically, durably when *fsync* (see the module docstring).

    With *make_dirs* the parent directories are created first. Raises ``OSError``; the
    previous file is then untouched and no temporary file is left.
    """
    target = os.fspath(path)
    directory, base = os.path.split(os.path.abspath(target))
    if make_dirs:
        os.makedirs(directory, exist_ok=True)
    tmp = stage(directory, base, data, fsync=fsync, mode=mode)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_dir(directory)


def write_group(
    directory: str | os.PathLike[str],
    files: Sequence[tuple[str, Data]],
    *,
    fsync: bool = True,
    mode: int | None = None,
) -> tuple[int, OSError | None]:
    """Write *files* (name, data) into *directory* atomically and in order.

    Every file is staged first (:func:`stage`), then all are renamed into place in
    order. Returns how many were committed and the error that stopped the rest (their
    temporary files are removed), so a failure never leaves a partial file or a file out
    of order. The caller makes the renames durable (:func:`fsync_dir`, or a kept-open
    directory descriptor).
    """
    staged: list[tuple[str, str]] = []
    error: OSError | None = None
    for name, data in files:
        try:
            staged.append((stage(directory, name, data, fsync=fsync, mode=mode), name))
        except OSError as exc:
            error = exc
            break
    committed = 0
    for tmp, name in staged:
        try:
            os.replace(tmp, os.path.join(directory, name))
        except OSError as exc:
            error = exc
            break
        committed += 1
    for tmp, _ in staged[committed:]:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return committed, error


def _owner_alive(owner: str) -> bool | None:
    """Whether the writer ``PID.START`` runs; ``None`` if *owner* is not in that form."""
    pid, _, start = owner.partition(".")
    if not (pid.isdigit() and start.isdigit() and pid.isascii() and start.isascii()):
        return None
    running = process_start(int(pid))
    return running is not None and running == int(start)


def remove_dead_temp_files(
    directory: str | os.PathLike[str],
    prefix: str,
    *,
    unowned_older_than: float | None = None,
    everything: bool = False,
) -> int:
    """Delete temporary files ``PREFIX*.tmp`` in *directory* whose writer is dead.

    A file named by :func:`temp_name` is removed when its writer process is gone (or its
    pid now belongs to a process started at another time), and kept while it runs. A
    file without an owner in its name (an older meterhub's) is removed once older than
    *unowned_older_than* seconds (kept when ``None``). *everything* removes every match,
    for a caller that holds an exclusive lock on the directory. Returns how many files
    were removed; never raises.
    """
    removed = 0
    cutoff = None if unowned_older_than is None else time.time() - unowned_older_than
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(TEMP_SUFFIX)):
            continue
        if not everything:
            parts = name[: -len(TEMP_SUFFIX)].rsplit(".", 3)
            alive = _owner_alive(f"{parts[1]}.{parts[2]}") if len(parts) == 4 else None
            if not parts[-1].isdigit():
                alive = None
            if alive:
                continue
            if alive is None:
                try:
                    if cutoff is None or entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                        continue
                except OSError:
                    continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed += 1
    return removed
