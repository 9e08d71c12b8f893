"""The file format of the multi-process store: constants, keys, and the writer.

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
element: the encoded info pairs; values = the cell, layout in
:mod:`meterhub.store.layout`); 3 TOMBSTONE
(same key: earlier SERIES of it in this file are void); 4 CLEAR (key ``[name]``: every
earlier series of the metric in this file is void); 5 EXEMPLAR (key ``[name, slot, *label
values]``, 128 slots = 1 KiB holding a u64 sequence lock, a u32 length and a JSON
``[labels, value, timestamp]``: the last exemplar of that series and slot); 6 PAD (only
length and type are meaningful: skip it); 7 SOURCES (archives only: the files merged in).

The file grows by whole segments (64 KiB, or more for a larger record) mapped at
increasing offsets; a record never straddles two segments (the tail is padded). Mappings
are never resized: ``mmap`` refuses to while a ``memoryview`` cell points into it.

Files are created exclusively (``O_EXCL`` under a temporary name, published with
``os.link``, which never replaces): a process whose name is taken - a recycled pid with
the same start tick, a second store in one process - takes ``p_<pid>_<start>_<n>.db``.
No file of another process is ever truncated or replaced.

This module implements it.
:class:`FileWriter` appends records to a file mapped in fixed-size segments (a mapping
is never resized, because live ``memoryview`` cells point into it). The read side is
:mod:`.view`.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from collections.abc import Callable
from typing import Any, TypeGuard

from ...naming import METRIC_NAME_RE
from ...samples import Exemplar, MetricType
from ..base import MetricDesc, NativeSpec

__all__ = [
    "CorruptFile",
    "FileWriter",
    "KIND_ARCHIVE",
    "KIND_PROCESS",
    "before_io",
    "compact_json",
    "desc_from_json",
    "desc_to_json",
    "exemplar_key",
    "read_exemplar",
    "series_key",
    "write_exemplar",
]

MAGIC = b"MHUBMMAP"
VERSION = 1
KIND_PROCESS = 1
KIND_ARCHIVE = 2

HEADER = struct.Struct("<8sIIQQQQQQ")  # magic version kind pid start used generation merged -
HEADER_SIZE = HEADER.size  # 64
USED_AT = 32
RECORD = struct.Struct("<IHHII")  # length type flags key_length n_values
RECORD_HEAD = struct.Struct("<IH")  # the first 6 bytes: enough to skip a pad record

R_META, R_SERIES, R_TOMBSTONE, R_CLEAR, R_EXEMPLAR, R_PAD, R_SOURCES = 1, 2, 3, 4, 5, 6, 7

SEGMENT = 16 * mmap.ALLOCATIONGRANULARITY  # 64 KiB on Linux
EXEMPLAR_DOUBLES = 128  # 1 KiB per exemplar slot: u64 sequence, u32 length, json payload
EXEMPLAR_SEQ = struct.Struct("<Q")
EXEMPLAR_LEN = struct.Struct("<I")
EXEMPLAR_PAYLOAD = EXEMPLAR_DOUBLES * 8 - 16


class CorruptFile(Exception):
    """A file that does not follow the layout (bad magic, truncated, garbled record)."""


_fault: Callable[[str], None] | None = None
"""The I/O fault seam: tests set it to a function that raises ``OSError`` for the calls
they want to fail. It is called with the name of the system call about to be made:
``open``, ``fallocate``, ``ftruncate``, ``mmap``, ``link``, ``rename``, ``unlink``,
``fsync``, ``pread`` (see tests/test_multiprocess_faults.py)."""


def before_io(op: str) -> None:
    """Call the fault seam (tests) before system call *op*."""
    if _fault is not None:
        _fault(op)


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def compact_json(obj: Any) -> bytes:
    """*obj* as compact UTF-8 JSON (the encoding of every record key)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def desc_to_json(desc: MetricDesc) -> bytes:
    """The META record body of *desc*: everything a process without the definition needs."""
    return compact_json(
        {
            "name": desc.name,
            "doc": desc.documentation,
            "type": desc.type.value,
            "unit": desc.unit,
            "labelnames": list(desc.labelnames),
            "buckets": list(desc.buckets),
            "states": list(desc.states),
            "mode": desc.multiprocess_mode,
            **({"native": list(desc.native)} if desc.native is not None else {}),
        }
    )


def _is_name(name: object) -> TypeGuard[str]:
    if not isinstance(name, str) or not name:
        return False
    if METRIC_NAME_RE.match(name):
        return True
    try:
        name.encode("utf-8")  # JSON can carry a lone surrogate; no renderer can write one
    except UnicodeEncodeError:
        return False
    return True


def desc_from_json(obj: Any) -> MetricDesc:
    """The definition a META record holds, checked like at definition (``ValueError`` if not)."""
    name, labelnames = obj["name"], obj["labelnames"]
    # A garbled definition must not reach a renderer: names are checked like at definition
    # (any non-empty UTF-8 text; renderers escape what the legacy grammar does not allow).
    if not _is_name(name):
        raise ValueError(f"bad metric name {name!r}")
    if not isinstance(labelnames, list) or not all(
        _is_name(n) and not n.startswith("__") for n in labelnames
    ):
        raise ValueError(f"bad label names {labelnames!r}")
    return MetricDesc(
        str(obj["name"]),
        str(obj["doc"]),
        MetricType(obj["type"]),
        str(obj["unit"]),
        tuple(str(n) for n in obj["labelnames"]),
        tuple(float(b) for b in obj["buckets"]),
        tuple(str(s) for s in obj["states"]),
        str(obj["mode"]),
        _native_from_json(obj.get("native")),
    )


def _native_from_json(spec: Any) -> NativeSpec | None:
    """A histogram's native settings from its META record (absent: none)."""
    if spec is None:
        return None
    schema, zero_threshold, max_buckets, min_reset = spec
    if not -4 <= int(schema) <= 8 or not 1 <= int(max_buckets) <= 1 << 20:
        raise ValueError(f"bad native histogram settings {spec!r}")
    return NativeSpec(int(schema), float(zero_threshold), int(max_buckets), float(min_reset))


def series_key(desc: MetricDesc, key: tuple[str, ...]) -> bytes:
    """The key of a SERIES/TOMBSTONE record: name, type, mode, then the label values."""
    return compact_json([desc.name, desc.type.value, desc.multiprocess_mode, *key])


def exemplar_key(desc: MetricDesc, key: tuple[str, ...], slot: int) -> bytes:
    return compact_json([desc.name, slot, *key])


class FileWriter:
    """Appends records to one file; hands out ``memoryview`` cells into its segments.

    Not thread-safe: the store serializes calls. Cells stay valid for the life of the
    process because segments are mapped once and never remapped.

    The file is born as *tmp* (readers ignore it) and appears under its final name with
    a valid header: ``os.rename`` for archives (written under the directory's exclusive
    lock), and for process files - ``exclusive=True`` - ``os.link``, which never replaces
    an existing file: :meth:`publish` then raises ``FileExistsError`` and the caller
    tries another name. A failure here leaves nothing behind (no descriptor, no file).
    """

    def __init__(
        self,
        path: str,
        kind: int,
        pid: int,
        start: int,
        generation: int = 0,
        merged: int = 0,
        *,
        tmp: str | None = None,
        exclusive: bool = False,
    ) -> None:
        self.path = path
        self._tmp = tmp or path + ".tmp"
        self._exclusive = exclusive
        self._segments: list[tuple[int, mmap.mmap]] = []
        self._seg_start = self._seg_end = 0
        self._head = (kind, pid, start, generation, merged)
        flags = os.O_RDWR | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
        before_io("open")
        self._fd = os.open(self._tmp, flags, 0o644)
        try:
            self._map_segment(0, SEGMENT)
            first = self._segments[0][1]
            HEADER.pack_into(
                first, 0, MAGIC, VERSION, kind, pid, start, HEADER_SIZE, generation, merged, 0
            )
            self._end = HEADER_SIZE
            self._first = bytes(16)
            if not exclusive:
                before_io("rename")
                os.rename(self._tmp, path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Close the mappings and the file without writing anything more (the file is given up)."""
        for _, mm in self._segments:
            mm.close()
        self._segments.clear()
        os.close(self._fd)
        try:
            os.unlink(self._tmp)
        except OSError:
            pass

    def publish(self, path: str) -> None:
        """Give the exclusive file its final name *path*; ``FileExistsError`` if taken."""
        before_io("link")
        try:
            os.link(self._tmp, path)
        except FileExistsError:
            raise
        except OSError:
            # A filesystem without hard links: rename, which replaces; the name was free
            # a moment ago and creators of the same name are this very process.
            if os.path.lexists(path):
                raise FileExistsError(path) from None
            before_io("rename")
            os.rename(self._tmp, path)
        else:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass  # a stale *.tmp is removed by the next compaction
        self.path = path

    def _map_segment(self, start: int, size: int) -> None:
        # Reserve the blocks now: on a full disk a store into a sparse mapping is a SIGBUS
        # that kills the process; here it is an OSError the store can absorb.
        self._reserve(start, size)
        before_io("mmap")
        mm = mmap.mmap(self._fd, size, offset=start)
        self._segments.append((start, mm))
        self._seg_start, self._seg_end = start, start + size

    def _reserve(self, start: int, size: int) -> None:
        if hasattr(os, "posix_fallocate"):
            before_io("fallocate")
            os.posix_fallocate(self._fd, start, size)
        else:
            before_io("ftruncate")
            os.ftruncate(self._fd, start + size)

    def append(self, rtype: int, key: bytes, n_values: int) -> tuple[mmap.mmap, int]:
        """Append a record; return its segment and the offset of its values in it.

        Raises ``OSError`` (and changes nothing a reader sees) when the file cannot grow.
        """
        key_room = _pad8(len(key))
        length = RECORD.size + key_room + 8 * n_values
        if self._end + length > self._seg_end:
            gran = mmap.ALLOCATIONGRANULARITY
            self._map_segment(self._seg_end, max(SEGMENT, (length + gran - 1) // gran * gran))
            room = self._seg_start - self._end
            if room:
                mm = self._segments[-2][1]
                RECORD_HEAD.pack_into(mm, self._end - self._segments[-2][0], room, R_PAD)
            self._end = self._seg_start
        mm = self._segments[-1][1]
        at = self._end - self._seg_start
        RECORD.pack_into(mm, at, length, rtype, 0, len(key), n_values)
        mm[at + RECORD.size : at + RECORD.size + len(key)] = key
        if self._end == HEADER_SIZE:
            self._first = bytes(mm[at : at + RECORD.size])
        self._end += length
        # Publish last: a reader never parses a record whose bytes are not all written.
        struct.pack_into("<Q", self._segments[0][1], USED_AT, self._end)
        return mm, at + RECORD.size + key_room

    def cell(self, key: bytes, width: int) -> memoryview[float]:
        mm, at = self.append(R_SERIES, key, width)
        return memoryview(mm)[at : at + 8 * width].cast("d")

    def damage(self) -> int | None:
        """Check the file under this writer; ``None`` if intact, else the byte from which
        its content is lost (0: all of it).

        A file truncated under its writer is grown back first (sparse, then reserved when
        the disk allows), so that no cell of it faults (SIGBUS) from then on; a header
        that no longer says what this writer wrote means the file was overwritten.
        """
        size = os.fstat(self._fd).st_size
        lost: int | None = None
        if size < self._seg_end:
            lost = size
            # If even this fails (the file hit a size limit), the next store into the lost
            # pages is a SIGBUS: nothing in Python can prevent it.
            before_io("ftruncate")
            os.ftruncate(self._fd, self._seg_end)
            try:
                self._reserve(0, self._seg_end)
            except OSError:
                pass  # sparse: reads are safe; the store moves its cells out right away
        first = self._segments[0][1]
        magic, version, kind, pid, start, used, gen, merged, _ = HEADER.unpack_from(first, 0)
        if (magic, version) != (MAGIC, VERSION) or (kind, pid, start, gen, merged) != self._head:
            lost = 0
        elif lost is None and (
            used != self._end or self._first != first[HEADER_SIZE : HEADER_SIZE + RECORD.size]
        ):
            lost = HEADER_SIZE  # overwritten from the first record on (zero-filled?)
        return lost

    def identity(self) -> tuple[int, int]:
        """Device and inode of the file (to tell whether its name still points at it)."""
        st = os.fstat(self._fd)
        return st.st_dev, st.st_ino

    def detach(self) -> None:
        """Close the descriptor only (a forked child drops its parent's file this way:
        the mappings die with the cells that still point into them)."""
        os.close(self._fd)

    def close(self) -> None:
        """Unmap and close (only for files whose cells were all released: archives)."""
        for _, mm in self._segments:
            mm.close()
        self._segments.clear()
        os.close(self._fd)

    def flush(self) -> None:
        for _, mm in self._segments:
            mm.flush()
        before_io("fsync")
        os.fsync(self._fd)


def write_exemplar(mm: mmap.mmap, at: int, exemplar: Exemplar) -> bool:
    """Store *exemplar* in the slot at *at* under a sequence lock; False if it is too big."""
    payload = compact_json([dict(exemplar.labels), exemplar.value, exemplar.timestamp])
    if len(payload) > EXEMPLAR_PAYLOAD:
        return False
    (seq,) = EXEMPLAR_SEQ.unpack_from(mm, at)
    EXEMPLAR_SEQ.pack_into(mm, at, seq + 1)  # odd: a write is in progress
    EXEMPLAR_LEN.pack_into(mm, at + 8, len(payload))
    mm[at + 16 : at + 16 + len(payload)] = payload
    EXEMPLAR_SEQ.pack_into(mm, at, seq + 2)
    return True


def read_exemplar(buf: bytes, at: int) -> Exemplar | None:
    """The exemplar in a copy of the slot at *at*; ``None`` if empty, being written (odd
    sequence: read the slot again) or garbled."""
    (seq,) = EXEMPLAR_SEQ.unpack_from(buf, at)
    if seq == 0 or seq & 1:
        return None
    (n,) = EXEMPLAR_LEN.unpack_from(buf, at + 8)
    payload = bytes(buf[at + 16 : at + 16 + min(n, EXEMPLAR_PAYLOAD)])
    try:
        labels, value, ts = json.loads(payload)
        return Exemplar(dict(labels), float(value), None if ts is None else float(ts))
    except (ValueError, TypeError):
        return None
