"""The file format of the multi-process store: one writer, many readers.

The layout is documented in :mod:`meterhub.store.mmap`; this module implements it.
:class:`FileWriter` appends records to a file mapped in fixed-size segments (a mapping
is never resized, because live ``memoryview`` cells point into it). :class:`FileView`
maps a file read-only and indexes its records incrementally, so a scrape parses only
what was appended since the previous one.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from collections.abc import Iterator
from operator import itemgetter
from typing import Any, cast

from ..naming import LABEL_NAME_RE, METRIC_NAME_RE
from ..samples import Exemplar, MetricType
from .base import MetricDesc

__all__ = [
    "KIND_ARCHIVE",
    "KIND_PROCESS",
    "CorruptFile",
    "FileView",
    "FileWriter",
    "desc_to_json",
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


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def desc_to_json(desc: MetricDesc) -> bytes:
    """The META record body of *desc*: everything a process without the definition needs."""
    return _dumps(
        {
            "name": desc.name,
            "doc": desc.documentation,
            "type": desc.type.value,
            "unit": desc.unit,
            "labelnames": list(desc.labelnames),
            "buckets": list(desc.buckets),
            "states": list(desc.states),
            "mode": desc.multiprocess_mode,
        }
    )


def _desc_from_json(obj: Any) -> MetricDesc:
    name, labelnames = obj["name"], obj["labelnames"]
    # A garbled definition must not reach a renderer: names are checked like at definition.
    if not isinstance(name, str) or not METRIC_NAME_RE.match(name):
        raise ValueError(f"bad metric name {name!r}")
    if not isinstance(labelnames, list) or not all(
        isinstance(n, str) and LABEL_NAME_RE.match(n) for n in labelnames
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
    )


def series_key(desc: MetricDesc, key: tuple[str, ...]) -> bytes:
    """The key of a SERIES/TOMBSTONE record: name, type, mode, then the label values."""
    return _dumps([desc.name, desc.type.value, desc.multiprocess_mode, *key])


def exemplar_key(desc: MetricDesc, key: tuple[str, ...], slot: int) -> bytes:
    return _dumps([desc.name, slot, *key])


class FileWriter:
    """Appends records to one file; hands out ``memoryview`` cells into its segments.

    Not thread-safe: the store serializes calls. Cells stay valid for the life of the
    process because segments are mapped once and never remapped.
    """

    def __init__(
        self, path: str, kind: int, pid: int, start: int, generation: int = 0, merged: int = 0
    ) -> None:
        # Readers ignore *.tmp: the file appears under its final name with a valid header.
        tmp = path + ".tmp"
        self.path = path
        self._fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self._segments: list[tuple[int, mmap.mmap]] = []
        self._seg_start = 0
        self._seg_end = 0
        self._map_segment(0, SEGMENT)
        first = self._segments[0][1]
        HEADER.pack_into(
            first, 0, MAGIC, VERSION, kind, pid, start, HEADER_SIZE, generation, merged, 0
        )
        self._end = HEADER_SIZE
        os.rename(tmp, path)

    def _map_segment(self, start: int, size: int) -> None:
        os.ftruncate(self._fd, start + size)
        mm = mmap.mmap(self._fd, size, offset=start)
        self._segments.append((start, mm))
        self._seg_start, self._seg_end = start, start + size

    def append(self, rtype: int, key: bytes, n_values: int) -> tuple[mmap.mmap, int]:
        """Append a record; return its segment and the offset of its values in it."""
        key_room = _pad8(len(key))
        length = RECORD.size + key_room + 8 * n_values
        if self._end + length > self._seg_end:
            room = self._seg_end - self._end
            if room:
                mm = self._segments[-1][1]
                RECORD_HEAD.pack_into(mm, self._end - self._seg_start, room, R_PAD)
            gran = mmap.ALLOCATIONGRANULARITY
            self._map_segment(self._seg_end, max(SEGMENT, (length + gran - 1) // gran * gran))
            self._end = self._seg_start
        mm = self._segments[-1][1]
        at = self._end - self._seg_start
        RECORD.pack_into(mm, at, length, rtype, 0, len(key), n_values)
        mm[at + RECORD.size : at + RECORD.size + len(key)] = key
        self._end += length
        # Publish last: a reader never parses a record whose bytes are not all written.
        struct.pack_into("<Q", self._segments[0][1], USED_AT, self._end)
        return mm, at + RECORD.size + key_room

    def cell(self, key: bytes, width: int) -> memoryview[float]:
        mm, at = self.append(R_SERIES, key, width)
        return memoryview(mm)[at : at + 8 * width].cast("d")

    def close(self) -> None:
        """Unmap and close (only for files whose cells were all released: archives)."""
        for _, mm in self._segments:
            mm.close()
        self._segments.clear()
        os.close(self._fd)

    def flush(self) -> None:
        for _, mm in self._segments:
            mm.flush()
        os.fsync(self._fd)


def write_exemplar(mm: mmap.mmap, at: int, exemplar: Exemplar) -> bool:
    """Store *exemplar* in the slot at *at* under a sequence lock; False if it is too big."""
    payload = _dumps([dict(exemplar.labels), exemplar.value, exemplar.timestamp])
    if len(payload) > EXEMPLAR_PAYLOAD:
        return False
    (seq,) = EXEMPLAR_SEQ.unpack_from(mm, at)
    EXEMPLAR_SEQ.pack_into(mm, at, seq + 1)  # odd: a write is in progress
    EXEMPLAR_LEN.pack_into(mm, at + 8, len(payload))
    mm[at + 16 : at + 16 + len(payload)] = payload
    EXEMPLAR_SEQ.pack_into(mm, at, seq + 2)
    return True


def read_exemplar(buf: mmap.mmap, at: int) -> Exemplar | None:
    for _ in range(100):
        (seq,) = EXEMPLAR_SEQ.unpack_from(buf, at)
        if seq == 0:
            return None
        if seq & 1:
            continue
        (n,) = EXEMPLAR_LEN.unpack_from(buf, at + 8)
        payload = bytes(buf[at + 16 : at + 16 + min(n, EXEMPLAR_PAYLOAD)])
        if EXEMPLAR_SEQ.unpack_from(buf, at)[0] != seq:
            continue
        try:
            labels, value, ts = json.loads(payload)
            return Exemplar(dict(labels), float(value), None if ts is None else float(ts))
        except (ValueError, TypeError):
            return None
    return None


class Columns:
    """Where the series of one metric sit in a file: keys in file order, and one
    ``itemgetter`` per slot that gathers that slot of every series from a copied span."""

    __slots__ = ("getters", "hi", "keys", "lo", "sig", "width")

    def __init__(self, keys: tuple[tuple[str, ...], ...], starts: list[int], width: int) -> None:
        self.keys, self.width = keys, width
        self.sig = hash(keys)  # tuples do not cache their hash; merging groups files by it
        self.lo = min(starts, default=0)
        self.hi = max(starts, default=0) + width
        multi = len(starts) > 1  # itemgetter returns a tuple only for two indexes or more
        self.getters = [
            itemgetter(*(i - self.lo + j for i in starts)) for j in range(width) if multi
        ]


Index = dict[str, dict[tuple[str, ...], tuple[int, int]]]


class FileView:
    """A read-only mapping of one store file and an index of its live records.

    ``series[name][key]`` is the byte offset and slot count of a series' values;
    ``exemplars[name][key]`` maps a slot to its exemplar record. :meth:`refresh` parses
    the records appended since the last call and raises :class:`CorruptFile` if the file
    breaks the layout.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = os.path.basename(path)
        self._fd = os.open(path, os.O_RDONLY)
        self._mm: mmap.mmap | None = None
        self._dv: memoryview[float] | None = None
        self._pos = HEADER_SIZE
        self.kind = self.pid = self.start = self.generation = self.merged = 0
        self.series: Index = {}
        self.exemplars: dict[str, dict[tuple[str, ...], dict[int, int]]] = {}
        self.descs: dict[str, MetricDesc] = {}
        self.sources: list[str] = []
        self._columns: dict[tuple[str, int], Columns] = {}
        try:
            self._map()
            magic, version, kind, pid, start, _, gen, merged, _ = HEADER.unpack_from(self.buf, 0)
        except (OSError, ValueError, struct.error) as exc:
            self.close()
            raise CorruptFile(f"{path}: unreadable header: {exc}") from None
        if magic != MAGIC or version != VERSION or kind not in (KIND_PROCESS, KIND_ARCHIVE):
            self.close()
            raise CorruptFile(f"{path}: not a meterhub store file (magic/version/kind)")
        self.kind, self.pid, self.start, self.generation, self.merged = (
            kind,
            pid,
            start,
            gen,
            merged,
        )

    @property
    def buf(self) -> mmap.mmap:
        assert self._mm is not None
        return self._mm

    def _map(self) -> None:
        self._unmap()
        size = os.fstat(self._fd).st_size
        if size < HEADER_SIZE or size % 8:
            raise CorruptFile(f"{self.path}: {size} bytes, not a whole number of slots")
        self._mm = mmap.mmap(self._fd, size, access=mmap.ACCESS_READ)

    def _unmap(self) -> None:
        if self._dv is not None:
            self._dv.release()
            self._dv = None
        if self._mm is not None:
            self._mm.close()
            self._mm = None

    def doubles(self) -> memoryview[float]:
        """The whole mapping as doubles: a series at byte ``at`` starts at ``at // 8``."""
        if self._dv is None:
            self._dv = memoryview(self.buf).cast("d")
        assert self._dv is not None
        return self._dv

    def close(self) -> None:
        self._unmap()
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def refresh(self) -> None:
        """Index the records appended since the last call."""
        (used,) = struct.unpack_from("<Q", self.buf, USED_AT)
        if used > len(self.buf):
            self._map()
            if used > len(self.buf):
                raise CorruptFile(f"{self.path}: truncated ({len(self.buf)} < {used} bytes)")
        try:
            self._parse(used)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError, struct.error) as exc:
            raise CorruptFile(f"{self.path}: bad record at byte {self._pos}: {exc}") from None

    def _parse(self, used: int) -> None:
        buf, pos = self.buf, self._pos
        while pos < used:
            length, rtype = RECORD_HEAD.unpack_from(buf, pos)
            if length < 8 or length % 8 or pos + length > used:
                raise ValueError(f"record length {length}")
            if rtype == R_PAD:
                pos += length
                continue
            _, _, _, key_len, n_values = RECORD.unpack_from(buf, pos)
            values_at = pos + RECORD.size + _pad8(key_len)
            if values_at + 8 * n_values != pos + length:
                raise ValueError("record sizes disagree")
            key = json.loads(bytes(buf[pos + RECORD.size : pos + RECORD.size + key_len]))
            self._apply(rtype, key, values_at, n_values)
            pos += length
            self._pos = pos

    def _apply(self, rtype: int, key: Any, at: int, n_values: int) -> None:
        if rtype != R_META and rtype != R_SOURCES:
            name = str(key[0])
            self._columns = {k: v for k, v in self._columns.items() if k[0] != name}
        if rtype == R_SERIES:
            labels = tuple(str(v) for v in key[3:])
            self.series.setdefault(str(key[0]), {})[labels] = (at, n_values)
            self.exemplars.get(str(key[0]), {}).pop(labels, None)
        elif rtype == R_EXEMPLAR:
            slots = self.exemplars.setdefault(str(key[0]), {})
            slots.setdefault(tuple(str(v) for v in key[2:]), {})[int(key[1])] = at
        elif rtype == R_TOMBSTONE:
            labels = tuple(str(v) for v in key[3:])
            self.series.get(str(key[0]), {}).pop(labels, None)
            self.exemplars.get(str(key[0]), {}).pop(labels, None)
        elif rtype == R_CLEAR:
            self.series.pop(str(key[0]), None)
            self.exemplars.pop(str(key[0]), None)
        elif rtype == R_META:
            desc = _desc_from_json(key)
            self.descs[desc.name] = desc
        elif rtype == R_SOURCES:
            self.sources.extend(str(n) for n in key)
        else:
            raise ValueError(f"unknown record type {rtype}")

    def read_series(self, name: str, width: int) -> Iterator[tuple[tuple[str, ...], list[float]]]:
        """Every live series of metric *name* in this file whose cell has *width* slots."""
        dv = self.doubles()
        for key, (at, n) in self.series.get(name, {}).items():
            # A definition changed between deploys (other buckets) cannot be merged: skip it.
            if n == width:
                i = at >> 3
                yield key, cast("list[float]", dv[i : i + width].tolist())

    def columns(self, name: str, width: int) -> Columns:
        """Metric *name*'s series with *width* slots, laid out for reading column by column
        (cached until a record of that metric is appended)."""
        cached = self._columns.get((name, width))
        if cached is None:
            items = [(k, at >> 3) for k, (at, n) in self.series.get(name, {}).items() if n == width]
            cached = Columns(tuple(k for k, _ in items), [i for _, i in items], width)
            self._columns[(name, width)] = cached
        return cached

    def read_columns(self, cols: Columns) -> list[list[float]]:
        """The current values of *cols*: one list per slot, in the order of ``cols.keys``."""
        if not cols.keys:
            return [[] for _ in range(cols.width)]
        # One C-level copy of the span, then C-level gathers: no Python code per series.
        chunk = self.doubles()[cols.lo : cols.hi].tolist()
        if len(cols.keys) == 1:
            return [[chunk[i]] for i in range(cols.width)]
        return [list(get(chunk)) for get in cols.getters]

    def exemplars_of(self, name: str, key: tuple[str, ...]) -> dict[int, Exemplar]:
        out: dict[int, Exemplar] = {}
        for slot, at in self.exemplars.get(name, {}).get(key, {}).items():
            ex = read_exemplar(self.buf, at)
            if ex is not None:
                out[slot] = ex
        return out
