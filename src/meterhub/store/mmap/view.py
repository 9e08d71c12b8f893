"""The read side of the multi-process file format: a read-only, incrementally indexed view.

:class:`FileView` reads a file with ``pread`` into a private copy at each refresh and
indexes its records incrementally, so a scrape parses only what was appended since the
previous one; :class:`Columns` lets a merge read one metric's values from a file with a
single ``unpack_from``. A reader never maps another process's file: a mapping of a file
truncated under it faults (SIGBUS) on the next read, a copy cannot.
"""

from __future__ import annotations

import json
import json.scanner
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

from ...samples import Exemplar
from ..base import MetricDesc
from .format import (
    EXEMPLAR_DOUBLES,
    EXEMPLAR_SEQ,
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
    _pad8,
    before_io,
    desc_from_json,
    read_exemplar,
)

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


# The C scanner where there is one (typeshed types make_scanner's argument oddly).
_scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    cast(Any, json.JSONDecoder())
)


def _key(raw: bytes) -> Any:
    """A record's key: its JSON, UTF-8 (what the writer wrote), scanned with no
    Python-level call around the C scanner (the first read of a directory decodes one
    key per series). Anything else raises ``ValueError`` (the file is then damaged)."""
    text = str(raw, "utf-8")
    try:
        key, end = _scan(text, 0)
    except StopIteration:
        raise ValueError("record key is not JSON") from None
    if end != len(text):
        raise ValueError("record key has trailing bytes")
    return key


class FileView:
    """A private copy of one store file and an index of its live records.

    ``series[name][key]`` is the byte offset and slot count of a series' values;
    ``exemplars[name][key]`` maps a slot to its exemplar record. :meth:`refresh` reads
    the file again (one ``pread``), parses the records appended since the last call and
    raises :class:`CorruptFile` if the file breaks the layout: bad magic, a header that
    changed (zero-filled or overwritten), fewer bytes than it claims (truncated), a
    record that went away. ``OSError`` means the file could not be opened or read.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = os.path.basename(path)
        # A file object, not a bare descriptor: closed by the collector even if close()
        # never runs (a one-shot collector dropped by its caller).
        before_io("open")
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115
        self._fd = self._file.fileno()
        self._buf = b""
        self._dv: memoryview[float] | None = None
        self._pos = HEADER_SIZE
        self._fixed = b""  # the bytes of the header that never change
        self._first = b""  # the first record's head: a zero-filled body shows there
        self.kind = self.pid = self.start = self.generation = self.merged = 0
        self.series: Index = {}
        self.exemplars: dict[str, dict[tuple[str, ...], dict[int, int]]] = {}
        self.descs: dict[str, MetricDesc] = {}
        self.sources: list[str] = []
        self._columns: dict[tuple[str, int], Columns] = {}
        try:
            head = self._pread(HEADER_SIZE, 0)
            if len(head) < HEADER_SIZE:
                raise CorruptFile(f"{path}: {len(head)} bytes, shorter than a header")
            magic, version, kind, pid, start, _, gen, merged, _ = HEADER.unpack_from(head, 0)
        except BaseException:
            self.close()
            raise
        if magic != MAGIC or version != VERSION or kind not in (KIND_PROCESS, KIND_ARCHIVE):
            self.close()
            raise CorruptFile(f"{path}: not a meterhub store file (magic/version/kind)")
        self._fixed = head[:USED_AT] + head[USED_AT + 8 :]
        self.kind, self.pid, self.start, self.generation, self.merged = (
            kind,
            pid,
            start,
            gen,
            merged,
        )

    def _pread(self, n: int, at: int) -> bytes:
        before_io("pread")
        return os.pread(self._fd, n, at)

    @property
    def buf(self) -> bytes:
        """The file as of the last :meth:`refresh` (its first ``used`` bytes)."""
        return self._buf

    def reread(self, at: int, width: int) -> list[float] | None:
        """*width* doubles at byte *at* read from the file now (not from the copy), or
        ``None`` if the file no longer has them: for a reader that must see a cell settle
        (a native histogram's window rewrite, see :mod:`.nativecell`)."""
        raw = self._pread(8 * width, at)
        if len(raw) < 8 * width:
            return None
        return list(struct.unpack(f"<{width}d", raw))

    def doubles(self) -> memoryview[float]:
        """The copy as doubles: a series at byte ``at`` starts at ``at // 8``."""
        if self._dv is None:
            self._dv = memoryview(self._buf).cast("d")
        return self._dv

    def close(self) -> None:
        if self._dv is not None:
            self._dv.release()
            self._dv = None
        self._buf = b""
        self._file.close()

    def refresh(self) -> None:
        """Read the file again and index the records appended since the last call."""
        head = self._pread(HEADER_SIZE, 0)
        if len(head) < HEADER_SIZE or head[:USED_AT] + head[USED_AT + 8 :] != self._fixed:
            raise CorruptFile(f"{self.path}: header changed (truncated, zero-filled, overwritten)")
        (used,) = struct.unpack_from("<Q", head, USED_AT)
        if used < self._pos or used % 8:
            raise CorruptFile(f"{self.path}: end of records moved from {self._pos} to {used}")
        buf = self._pread(used, 0)
        if len(buf) < used:
            raise CorruptFile(f"{self.path}: truncated ({len(buf)} < {used} bytes)")
        if self._first and buf[HEADER_SIZE : HEADER_SIZE + RECORD.size] != self._first:
            raise CorruptFile(f"{self.path}: its first record changed (zero-filled?)")
        if self._dv is not None:
            self._dv.release()
            self._dv = None
        self._buf = buf
        try:
            self._parse(used)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError, struct.error) as exc:
            raise CorruptFile(f"{self.path}: bad record at byte {self._pos}: {exc}") from None
        if not self._first and used > HEADER_SIZE:
            self._first = buf[HEADER_SIZE : HEADER_SIZE + RECORD.size]

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
            start = pos + RECORD.size
            key = _key(buf[start : start + key_len])
            if rtype == R_SERIES and not self._columns:  # most records: _apply's first case
                name = str(key[0])
                labels = tuple(map(str, key[3:]))
                series = self.series.get(name)
                if series is None:
                    series = self.series[name] = {}
                series[labels] = (values_at, n_values)
                if self.exemplars:
                    self.exemplars.get(name, {}).pop(labels, None)
            else:
                self._apply(rtype, key, values_at, n_values)
            pos += length
            self._pos = pos

    def _apply(self, rtype: int, key: Any, at: int, n_values: int) -> None:
        if self._columns and rtype != R_META and rtype != R_SOURCES:
            name = str(key[0])
            self._columns = {k: v for k, v in self._columns.items() if k[0] != name}
        if rtype == R_SERIES:
            labels = tuple(map(str, key[3:]))
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
            desc = desc_from_json(key)
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
            (seq,) = EXEMPLAR_SEQ.unpack_from(self._buf, at)
            if seq == 0:
                continue
            # Odd: copied while being written; read that slot again, on its own.
            ex = self._exemplar_again(at) if seq & 1 else read_exemplar(self._buf, at)
            if ex is not None:
                out[slot] = ex
        return out

    def _exemplar_again(self, at: int) -> Exemplar | None:
        for _ in range(100):
            try:
                slot = self._pread(EXEMPLAR_DOUBLES * 8, at)
                ex = read_exemplar(slot, 0)
                if ex is not None and self._pread(8, at) == slot[:8]:
                    return ex
            except (OSError, struct.error):
                return None
        return None
