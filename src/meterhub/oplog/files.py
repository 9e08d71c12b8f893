"""Batch files on disk: names, encoding, atomic writes, the directory lock.

A batch file is ``metrics_YYYYMMDD_HHMMSS_ffffff.json`` holding
``{"records": [...], "batch_timestamp": ..., "batch_id": ..., "total_records": N}``
(docs/oplog.md, "Batch files"). It appears whole or not at all: the bytes go to a hidden
temporary file in the same directory, which is fsynced and then ``os.replace``d onto the
final name.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from .. import _atomicfile

try:  # optional: about ten times faster than the standard library's encoder
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None  # type: ignore[assignment]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "BATCH_FILE_RE",
    "LOCK_NAME",
    "BatchIds",
    "DirectoryLock",
    "encode_batch",
    "encode_json",
    "encode_record",
    "remove_stale_temp_files",
    "write_atomic",
    "write_group",
]

BATCH_FILE_RE = re.compile(r"metrics_(\d{8}_\d{6}_\d{6})\.json\Z")
TEMP_PREFIX = ".metrics_"
TEMP_SUFFIX = _atomicfile.TEMP_SUFFIX
LOCK_NAME = ".oplog.lock"

_std_encode = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, separators=(",", ":"), check_circular=False
).encode


fast_dumps: Callable[[Any], bytes] | None = None if _orjson is None else _orjson.dumps
"""``orjson.dumps`` when installed (raises ``TypeError`` on what it refuses), else ``None``."""


def have_orjson() -> bool:
    """Whether the optional ``orjson`` encoder is installed (``pip install meterhub[oplog]``)."""
    return _orjson is not None


def encode_record(record: dict[str, Any], *, fast: bool = True) -> bytes:
    """One record as compact UTF-8 JSON (done when it is recorded, see :func:`encode_batch`).

    orjson is used when installed and *fast*; it refuses a few strings the standard library
    accepts (lone surrogates), and such a record falls back to the standard encoder, which
    escapes them, so one odd record never blocks the log. The result is a new exact-size
    ``bytes``: orjson's own keep a 4 KiB buffer each.

    Example::

        >>> encode_record({"success": True, "metadata": {"code": 200}}, fast=False)
        b'{"success":true,"metadata":{"code":200}}'
    """
    return (encode_json(record) if fast else _std_encode(record)).encode()


def encode_json(value: Any) -> str:
    """*value* (already validated JSON data) as compact JSON text; orjson when installed."""
    if _orjson is not None:
        try:
            return _orjson.dumps(value).decode()
        except TypeError:  # orjson.JSONEncodeError subclasses TypeError
            pass
    return _std_encode(value)


def encode_batch(records: Sequence[bytes], batch_id: str, batch_timestamp: str) -> list[bytes]:
    """The UTF-8 JSON of one batch file, in three chunks, from records already encoded by
    :func:`encode_record`.

    Records are serialised when they are recorded, not here: ``bytes`` are invisible to the
    garbage collector (a buffer of dicts is rescanned by every collection while it waits)
    and take half the memory, and the writer only joins them. The head and tail stay
    separate chunks (written with one ``writev``): gluing them on would copy the body once
    more, and large buffers are what costs here (fresh pages for every copy).

    Example::

        >>> chunks = encode_batch([b'{"n":1}'], "20251216_080005_000000", "2025-12-16T08:05Z")
        >>> b"".join(chunks)[:40]
        b'{"records":[{"n":1}],"batch_timestamp":"'
    """
    tail = (
        f'],"batch_timestamp":"{batch_timestamp}","batch_id":"{batch_id}",'
        f'"total_records":{len(records)}}}'
    )
    return [b'{"records":[', b",".join(records), tail.encode()]


class BatchIds:
    """Batch ids from the clock, strictly increasing: unique even within one microsecond.

    Example::

        >>> ids = BatchIds()
        >>> a, b = ids.next(), ids.next()
        >>> a[0] < b[0]
        True
    """

    def __init__(self) -> None:
        self._last_us = 0

    def next(self) -> tuple[str, str]:
        """``(batch_id, batch_timestamp)`` for a new batch."""
        us = time.time_ns() // 1000
        if us <= self._last_us:
            us = self._last_us + 1
        self._last_us = us
        sec, micro = divmod(us, 1_000_000)
        tm = time.gmtime(sec)
        batch_id = time.strftime("%Y%m%d_%H%M%S", tm) + f"_{micro:06d}"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", tm) + f".{micro:06d}+00:00"
        return batch_id, stamp


def write_atomic(directory: Path, name: str, data: bytes, *, fsync: bool = True) -> Path:
    """Write *data* to ``directory/name`` atomically (temp file, fsync, ``os.replace``).

    Never leaves a partial file under *name*; on error the temporary file is removed and
    the ``OSError`` propagates.
    """
    target = directory / name
    _atomicfile.write_atomic(target, data, fsync=fsync, mode=None)
    return target


def write_group(
    directory: Path,
    files: Sequence[tuple[str, bytes | Sequence[bytes]]],
    *,
    fsync: bool = True,
) -> tuple[int, OSError | None]:
    """Write *files* (name, bytes or a sequence of byte chunks) atomically and in order.

    Every file goes to its own temporary file first, durably when *fsync* (``O_DSYNC``,
    or ``fsync`` where the flag is missing), in one ``writev``; then the files are renamed
    into place in order. Returns how many files were committed and the error that stopped
    the rest (their temporary files are removed), so a failure never leaves a partial file
    or a file out of order. The caller makes the renames durable (an fsync of the
    directory). See ``meterhub._atomicfile.write_group``.
    """
    return _atomicfile.write_group(directory, files, fsync=fsync)


def remove_stale_temp_files(directory: Path) -> int:
    """Delete temporary files a killed writer left behind; returns how many.

    Every one goes: the caller holds the directory lock, so no other writer is live.
    """
    return _atomicfile.remove_dead_temp_files(directory, TEMP_PREFIX, everything=True)


class DirectoryLock:
    """An exclusive ``flock`` on ``<directory>/.oplog.lock``: one live log per directory.

    The kernel releases it when the process dies, so a killed writer never blocks the next.
    ``release()`` removes the file (a stopped log leaves its directory as it found it). The
    removal is why ``acquire()`` checks, once it holds the lock, that the path still names
    the file it locked: a log that opened the file just before its holder unlinked it would
    otherwise hold a lock on a file nobody else can see, next to a new one.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self._file: IO[bytes] | None = None

    def acquire(self) -> None:
        while True:
            handle = open(self.path, "ab")  # noqa: SIM115 - held until release()
            if fcntl is None:
                break
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise RuntimeError(
                    f"{self.path.parent} is in use by another running OperationLog "
                    "(one directory per log)"
                ) from None
            if self._names(handle):
                break
            handle.close()  # its holder removed it while we waited: lock the new one
        self._file = handle

    def _names(self, handle: IO[bytes]) -> bool:
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(handle.fileno())
        return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is None:
            return
        if fcntl is not None:  # without flock a second log may be using the file
            try:
                os.unlink(self.path)  # while still locked: see the class docstring
            except OSError:
                pass  # gone already, or a read-only directory: a stale file blocks nobody
        handle.close()
