"""Validation of one operation record, and the record's wire form.

Plain code rather than a validation library: a record is checked and built in about a
microsecond, which is what lets ``record_operation`` stay far below its 20 µs budget. A
record is a ``dict`` already in its batch-file layout (docs/oplog.md, "Batch files"), so
the writer thread only serialises it; the metadata is copied while it is checked, so a
caller mutating its dict afterwards cannot race the writer.

Every rule raises :class:`~meterhub.errors.RecordingError` (a ``ValueError``) whose message
names the field and the rule.
"""

from __future__ import annotations

import math
import time
from time import time_ns
from typing import Any

from .. import naming
from ..errors import RecordingError

__all__ = [
    "MAX_ERROR_MESSAGE_CHARS",
    "MAX_METADATA_DEPTH",
    "MAX_METADATA_ITEMS",
    "MAX_NAME_CHARS",
    "MAX_TYPE_CHARS",
    "check_metadata",
    "iso_utc",
    "MICROS_UTC",
    "make_record",
    "millisecond_stamp",
    "positive_setting",
    "record_too_large",
    "second_prefix",
    "text_size",
]

MAX_ERROR_MESSAGE_CHARS = 1000
"""``error_message`` is truncated to this many characters."""
MAX_TYPE_CHARS = 200
MAX_NAME_CHARS = 2000
MAX_METADATA_DEPTH = 16
MAX_METADATA_ITEMS = 1000
"""Keys and list items in one record's metadata, all levels together (keeps memory bounded)."""

_INF = math.inf
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1  # JSON numbers both backends write exactly

# (second, "YYYY-MM-DDTHH:MM:SS") of the latest second stamped; see second_prefix().
_second: tuple[int, str] = (-1, "")


def second_prefix(sec: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` (UTC) of Unix second *sec*, cached for the current second.

    Records of one second share the prefix, so ``strftime`` runs once a second. The cache
    tuple is replaced whole: concurrent readers never see a torn value.
    """
    global _second
    cached = _second
    if cached[0] != sec:
        cached = _second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return cached[1]


MICROS_UTC = tuple(f"{i:03d}+00:00".encode() for i in range(1000))
"""The end of a timestamp after its millisecond: microseconds and the UTC offset (UTF-8,
as the records in the buffer are)."""


def millisecond_stamp(ns: int) -> tuple[int, bytes]:
    """The millisecond around Unix time *ns*: its start in nanoseconds, and its text
    ``YYYY-MM-DDTHH:MM:SS.mmm`` (UTC, UTF-8); append ``MICROS_UTC[us]`` for a timestamp.

    A recorder keeps the last one and only asks again when a timestamp falls outside it:
    the division by a million is the expensive part of a timestamp.

    Example::

        >>> start, text = millisecond_stamp(1_765_872_000_123_456_789)
        >>> start, text + MICROS_UTC[456]
        (1765872000123000000, b'2025-12-16T08:00:00.123456+00:00')
    """
    ms = ns // 1_000_000
    sec = ms // 1000
    return ms * 1_000_000, f"{second_prefix(sec)}.{ms - sec * 1000:03d}".encode()


def iso_utc(ns: int) -> str:
    """*ns* (Unix time in nanoseconds) as ISO-8601 UTC with microseconds.

    Example::

        >>> iso_utc(1_765_872_000_123_456_789)
        '2025-12-16T08:00:00.123456+00:00'
    """
    us = ns // 1000
    sec = us // 1_000_000
    return f"{second_prefix(sec)}.{us - sec * 1_000_000:06d}+00:00"


def _fail(message: str) -> RecordingError:
    return RecordingError(f"operation record: {message}")


def _text(value: Any, field: str, limit: int) -> str:
    if value.__class__ is not str and not isinstance(value, str):
        raise _fail(f"{field} must be a str, got {type(value).__name__}: {value!r:.80}")
    if not value or value.isspace():
        raise _fail(f"{field} must not be empty")
    if len(value) > limit:
        raise _fail(f"{field} is {len(value)} characters long; the limit is {limit}")
    return str(value)


def _duration(value: Any) -> float:
    if value.__class__ is float:
        number: float = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            raise _fail(f"duration_ms {value!r:.80} does not fit in a float") from None
    else:
        raise _fail(f"duration_ms must be a number, got {type(value).__name__}: {value!r:.80}")
    if not math.isfinite(number):
        raise _fail(f"duration_ms must be finite, got {number!r}")
    if number < 0:
        raise _fail(f"duration_ms must be >= 0, got {number!r}")
    return number


def _key(key: Any, path: str) -> str:
    if key.__class__ is not str:
        raise _fail(f"metadata key {key!r:.80}{path} must be a str (JSON keys are strings)")
    if not naming.remember_clean_name(key):
        raise _fail(
            f"metadata key {key!r}{path} is on the PII deny-list (it matches "
            f"{naming.pii_match(key)!r}; personal data and secrets must not be logged: hash or "
            f"drop the value, or rename the key; the list is set by {naming.PII_SETTINGS})"
        )
    return key


class _Budget:
    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_METADATA_ITEMS


def _value(value: Any, path: str, depth: int, budget: _Budget) -> Any:
    cls = value.__class__
    if cls is str or cls is bool or value is None:
        return value
    if cls is int:
        if _INT_MIN <= value <= _INT_MAX:
            return value
        raise _fail(f"metadata value at {path} is an integer outside 64 bits: {value!r:.80}")
    if cls is float:
        if value - value == 0.0:
            return value
        raise _fail(f"metadata value at {path} is not finite ({value!r}); JSON has no NaN/Inf")
    if depth >= MAX_METADATA_DEPTH:
        raise _fail(f"metadata at {path} nests deeper than {MAX_METADATA_DEPTH} levels")
    if cls is dict:
        return _mapping(value, path, depth + 1, budget)
    if cls is list or cls is tuple:
        budget.left -= len(value)
        if budget.left < 0:
            raise _fail(f"metadata holds more than {MAX_METADATA_ITEMS} keys and items")
        return [_value(v, f"{path}[{i}]", depth + 1, budget) for i, v in enumerate(value)]
    # Subclasses of the JSON types (IntEnum, str enums, OrderedDict) keep their JSON meaning.
    base: Any
    for base in (bool, int, float, str, dict, list, tuple):
        if isinstance(value, base):
            return _value(base(value), path, depth, budget)
    raise _fail(
        f"metadata value at {path} is not JSON-serialisable: {type(value).__name__} {value!r:.80}"
    )


def _mapping(meta: dict[Any, Any], path: str, depth: int, budget: _Budget) -> dict[str, Any]:
    budget.left -= len(meta)
    if budget.left < 0:
        raise _fail(f"metadata holds more than {MAX_METADATA_ITEMS} keys and items")
    out: dict[str, Any] = {}
    prefix = f"{path}." if path else ""
    where = f" (in {path})" if path else ""
    for k, v in meta.items():
        key = _key(k, where)
        cls = v.__class__
        # Fast path for the common flat case: scalars need no recursion.
        if cls is str or cls is bool or v is None:
            out[key] = v
        else:
            out[key] = _value(v, prefix + key, depth, budget)
    return out


def check_metadata(metadata: Any) -> dict[str, Any]:
    """A validated deep copy of *metadata* (``None`` gives ``{}``).

    Example::

        >>> check_metadata({"status_code": 200, "tags": ["a", "b"]})
        {'status_code': 200, 'tags': ['a', 'b']}
        >>> check_metadata({"request": {"headers": {"Api-Key": "x"}}})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        meterhub.errors.RecordingError: ... metadata key 'Api-Key' (in request.headers) ...
    """
    if metadata is None:
        return {}
    if metadata.__class__ is not dict:
        if not isinstance(metadata, dict):
            raise _fail(f"metadata must be a dict or None, got {type(metadata).__name__}")
        metadata = dict(metadata)
    return _mapping(metadata, "", 0, _Budget())


def make_record(
    operation_type: Any,
    operation_name: Any,
    duration_ms: Any,
    success: Any,
    error_message: Any,
    metadata: Any,
) -> dict[str, Any]:
    """Validate one operation and return it in its batch-file layout (docs/oplog.md, "Batch files").

    Example::

        >>> record = make_record("api_request", "GET /api/users", 42.5, True, None, None)
        >>> record["operation_name"], record["duration_ms"], record["metadata"]
        ('GET /api/users', 42.5, {})
    """
    # The common case is checked inline (calls are the expensive part of Python code);
    # anything unusual goes to the helpers, which also word the errors.
    if not (
        operation_type.__class__ is str
        and 0 < len(operation_type) <= MAX_TYPE_CHARS
        and not operation_type[0].isspace()
    ):
        operation_type = _text(operation_type, "operation_type", MAX_TYPE_CHARS)
    if not (
        operation_name.__class__ is str
        and 0 < len(operation_name) <= MAX_NAME_CHARS
        and not operation_name[0].isspace()
    ):
        operation_name = _text(operation_name, "operation_name", MAX_NAME_CHARS)
    if not (duration_ms.__class__ is float and 0.0 <= duration_ms < _INF):
        duration_ms = _duration(duration_ms)
    if success is not True and success is not False:
        raise _fail(f"success must be a bool, got {type(success).__name__}: {success!r:.80}")
    if error_message is not None:
        if not isinstance(error_message, str):
            raise _fail(f"error_message must be a str or None, got {type(error_message).__name__}")
        if len(error_message) > MAX_ERROR_MESSAGE_CHARS:
            error_message = error_message[:MAX_ERROR_MESSAGE_CHARS]
    stamp = iso_utc(time_ns())
    return {
        "operation_type": operation_type,
        "operation_name": operation_name,
        "timestamp": stamp,
        "success": success,
        "error_message": error_message,
        "duration_ms": duration_ms,
        "metadata": {} if metadata is None else check_metadata(metadata),
    }


def text_size(record: dict[str, Any]) -> int:
    """A lower bound of the JSON size of a checked *record*: the length of its text."""
    size = len(record["operation_type"]) + len(record["operation_name"])
    size += len(record["error_message"] or "")
    for k, v in (record["metadata"] or {}).items():
        size += len(k) + (len(v) if isinstance(v, str) else 0)
    return size


def record_too_large(
    size: int, limit: int, operation_type: Any, operation_name: Any
) -> RecordingError:
    """The error for a record of at least *size* bytes over ``max_record_bytes`` *limit*."""
    return RecordingError(
        f"OperationLog: the record of {operation_type!r} / {operation_name!r} is "
        f"at least {size} bytes of JSON, over max_record_bytes={limit} "
        "(METERHUB_OPLOG_MAX_RECORD_BYTES); keep large payloads out of metadata"
    )


def positive_setting(name: str, value: object, kind: type) -> Any:
    """*value* of the ``OperationLog`` setting *name*: a positive finite number of *kind*."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"OperationLog: {name} must be a number, got {value!r}")
    if kind is int and not isinstance(value, int):
        raise TypeError(f"OperationLog: {name} must be an int, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"OperationLog: {name} must be a positive finite number, got {value!r}")
    return value
