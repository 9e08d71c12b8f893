"""The read side of the multi-process file format: a read-only, incrementally indexed view.

:class:`FileView` maps a file read-only and indexes its records incrementally, so a
scrape parses only what was appended since the previous one; :class:`Columns` lets a
merge read one metric's values from a file with a single ``unpack_from``.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from collections.abc import Iterator, Sequence
from typing import Any, cast

from ..samples import Exemplar
from ._mmformat import (
    HEADER,
    HEADER_SIZE,
    KIND_ARCHIVE,
    KIND_PROCESS,
    MAGIC,
    R_CLEAR,
    R_EXEMPLAR,
    R_META,
    R_PAD,
    R_SERIES,
    R_SOURCES,
    R_TOMBSTONE,
    RECORD,
    RECORD_HEAD,
    USED_AT,
    VERSION,
    CorruptFile,
    _desc_from_json,
    _pad8,
    read_exemplar,
)
from .base import MetricDesc

__all__ = ["Columns", "FileView"]


class Columns:
    """Where the series of one metric sit in a file: keys in file order, and a ``Struct``
    that skips the bytes between their values, so one ``unpack_from`` reads them all."""

    __slots__ = ("keys", "lo", "sig", "struct", "width")

    def __init__(self, keys: tuple[tuple[str, ...], ...], starts: list[int], width: int) -> None:
        self.keys, self.width = keys, width
        self.sig = hash(keys)  # tuples do not cache their hash; merging groups files by it
        self.lo = starts[0] if starts else 0
        parts, end = ["<"], self.lo
        for at in starts:  # byte offsets, ascending (records are appended in key order)
            parts.append(f"{at - end}x{width}d" if at > end else f"{width}d")
            end = at + 8 * width
        self.struct = struct.Struct("".join(parts))


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
        # A file object, not a bare descriptor: closed by the collector even if close()
        # never runs (a one-shot collector dropped by its caller).
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115
        self._fd = self._file.fileno()
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
        self._file.close()

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
        if self._columns and rtype != R_META and rtype != R_SOURCES:
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
            items = sorted(
                ((at, k) for k, (at, n) in self.series.get(name, {}).items() if n == width),
                key=lambda item: item[0],
            )
            cached = Columns(tuple(k for _, k in items), [at for at, _ in items], width)
            self._columns[(name, width)] = cached
        return cached

    def read_columns(self, cols: Columns) -> list[Sequence[float]]:
        """The current values of *cols*: one sequence per slot, in the order of ``cols.keys``."""
        if not cols.keys:
            return [() for _ in range(cols.width)]
        # One C call reads exactly the values (no per-series Python code, no copies of keys).
        flat = cols.struct.unpack_from(self.buf, cols.lo)
        return [flat[j :: cols.width] for j in range(cols.width)]

    def exemplars_of(self, name: str, key: tuple[str, ...]) -> dict[int, Exemplar]:
        out: dict[int, Exemplar] = {}
        for slot, at in self.exemplars.get(name, {}).get(key, {}).items():
            ex = read_exemplar(self.buf, at)
            if ex is not None:
                out[slot] = ex
        return out
