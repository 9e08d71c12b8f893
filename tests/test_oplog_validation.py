"""Validation of operation records: every rule, PII variants, hostile strings, round trips."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterhub import Registry
from meterhub.errors import RecordingError
from meterhub.naming import DEFAULT_PII_LABELS, is_pii_name, set_pii_labels
from meterhub.oplog import OperationLog, read_batches
from meterhub.oplog.validate import (
    MAX_ERROR_MESSAGE_CHARS,
    MAX_METADATA_DEPTH,
    MAX_METADATA_ITEMS,
    check_metadata,
    make_record,
)


@pytest.fixture
def log(tmp_path: Path) -> Any:
    log = OperationLog(tmp_path / "ops", registry=Registry(self_metrics=False), fsync=False)
    log.start_sync()
    yield log
    log.stop_sync()


def record(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "operation_type": "api_request",
        "operation_name": "GET /api/users",
        "duration_ms": 42.5,
        "success": True,
        "error_message": None,
        "metadata": None,
    }
    args.update(overrides)
    return make_record(**args)


def test_valid_record_layout() -> None:
    rec = record(metadata={"status_code": 200, "region": "us-east"})
    # The design's fields; the variable ones last (the one-pass path encodes only those).
    assert list(rec) == [
        "operation_type",
        "operation_name",
        "timestamp",
        "success",
        "error_message",
        "duration_ms",
        "metadata",
    ]
    assert rec["timestamp"].endswith("+00:00") and len(rec["timestamp"]) == 32
    assert rec["metadata"] == {"status_code": 200, "region": "us-east"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("operation_type", "", "operation_type must not be empty"),
        ("operation_type", "   ", "operation_type must not be empty"),
        ("operation_type", None, "operation_type must be a str"),
        ("operation_type", 42, "operation_type must be a str"),
        ("operation_type", "x" * 201, "the limit is 200"),
        ("operation_name", "", "operation_name must not be empty"),
        ("operation_name", "\n\t", "operation_name must not be empty"),
        ("operation_name", b"GET", "operation_name must be a str"),
        ("operation_name", "x" * 2001, "the limit is 2000"),
        ("duration_ms", -0.001, "duration_ms must be >= 0"),
        ("duration_ms", -1, "duration_ms must be >= 0"),
        ("duration_ms", math.nan, "duration_ms must be finite"),
        ("duration_ms", math.inf, "duration_ms must be finite"),
        ("duration_ms", -math.inf, "duration_ms must be finite"),
        ("duration_ms", "42", "duration_ms must be a number"),
        ("duration_ms", None, "duration_ms must be a number"),
        ("duration_ms", True, "duration_ms must be a number"),
        ("duration_ms", 10**400, "does not fit in a float"),
        ("success", 1, "success must be a bool"),
        ("success", "yes", "success must be a bool"),
        ("success", None, "success must be a bool"),
        ("error_message", 42, "error_message must be a str or None"),
        ("error_message", ValueError("x"), "error_message must be a str or None"),
        ("metadata", [("a", 1)], "metadata must be a dict or None"),
        ("metadata", "status=200", "metadata must be a dict or None"),
        ("metadata", 0, "metadata must be a dict or None"),
    ],
)
def test_invalid_fields(field: str, value: Any, message: str) -> None:
    with pytest.raises(RecordingError, match=r"operation record: .*") as info:
        record(**{field: value})
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_int_duration_and_zero_are_accepted() -> None:
    assert record(duration_ms=0)["duration_ms"] == 0.0
    assert record(duration_ms=7)["duration_ms"] == 7.0
    assert isinstance(record(duration_ms=7)["duration_ms"], float)


def test_leading_space_name_is_kept() -> None:
    assert record(operation_name=" GET /x")["operation_name"] == " GET /x"


def test_error_message_truncated_to_1000_characters() -> None:
    rec = record(success=False, error_message="é" * 5000)
    assert rec["error_message"] == "é" * MAX_ERROR_MESSAGE_CHARS
    assert record(error_message="short")["error_message"] == "short"


@pytest.mark.parametrize(
    "metadata",
    [
        {"custom": object()},
        {"when": __import__("datetime").datetime(2025, 1, 1)},
        {"raw": b"bytes"},
        {"set": {1, 2}},
        {"nan": math.nan},
        {"inf": -math.inf},
        {"nested": {"deep": [1, {"x": math.inf}]}},
        {"big": 2**64},
        {"small": -(2**63) - 1},
        {1: "int key"},
        {("a", "b"): "tuple key"},
        {"nested": {None: 1}},
    ],
)
def test_metadata_not_json_serialisable(metadata: dict[Any, Any]) -> None:
    with pytest.raises(RecordingError, match="metadata"):
        check_metadata(metadata)


@pytest.mark.parametrize(
    "key",
    [
        "email",
        "Email",
        "EMAIL",
        "e-mail",
        "e_mail",
        "username",
        "user_name",
        "User-Name",
        "password",
        "PassWord",
        "token",
        "secret",
        "api_key",
        "API-KEY",
        "apiKey",
        "user_id",
        "userId",
        "USER-ID",
        "client_id",
        "ClientID",
        "session_id",
        "session-Id",
        "__email__",
    ],
)
def test_pii_keys_rejected_at_every_level(key: str) -> None:
    for metadata in (
        {key: "x"},
        {"request": {key: "x"}},
        {"request": {"headers": {key: "x"}}},
        {"items": [{"ok": 1}, {key: "x"}]},
        {"items": [[{key: "x"}]]},
    ):
        with pytest.raises(RecordingError, match="PII deny-list"):
            check_metadata(metadata)


def test_pii_error_names_the_path() -> None:
    with pytest.raises(RecordingError, match=r"'Api-Key' \(in request.headers\)"):
        check_metadata({"request": {"headers": {"Api-Key": "x"}}})


def test_non_pii_lookalikes_are_allowed() -> None:
    md = {"user_hash": "abc123", "region": "us-east", "hostname": "a", "keys_count": 3}
    assert check_metadata(md) == md


def test_safe_key_cache_follows_deny_list_changes() -> None:
    assert check_metadata({"region": "eu"}) == {"region": "eu"}
    set_pii_labels([*DEFAULT_PII_LABELS, "region"])
    try:
        with pytest.raises(RecordingError, match="PII"):
            check_metadata({"region": "eu"})
    finally:
        set_pii_labels(DEFAULT_PII_LABELS)
    assert check_metadata({"region": "eu"}) == {"region": "eu"}


def test_metadata_limits() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(MAX_METADATA_DEPTH + 1):
        node["d"] = {}
        node = node["d"]
    with pytest.raises(RecordingError, match="nests deeper"):
        check_metadata(deep)
    with pytest.raises(RecordingError, match="more than"):
        check_metadata({f"k{i}": i for i in range(MAX_METADATA_ITEMS + 1)})
    with pytest.raises(RecordingError, match="more than"):
        check_metadata({"list": list(range(MAX_METADATA_ITEMS + 1))})
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(RecordingError, match="nests deeper"):
        check_metadata(cyclic)


def test_metadata_is_copied() -> None:
    inner = {"a": [1, 2]}
    md = {"inner": inner, "flat": 1}
    out = check_metadata(md)
    inner["a"].append(3)
    md["flat"] = 2
    assert out == {"inner": {"a": [1, 2]}, "flat": 1}


def test_json_subclasses_are_converted() -> None:
    import enum
    from collections import OrderedDict

    class Color(enum.IntEnum):
        RED = 1

    out = check_metadata({"c": Color.RED, "o": OrderedDict(a=1), "t": (1, 2)})
    assert out == {"c": 1, "o": {"a": 1}, "t": [1, 2]}
    assert json.dumps(out) == '{"c": 1, "o": {"a": 1}, "t": [1, 2]}'


async def test_log_rejects_invalid_records_and_counts_nothing(log: OperationLog) -> None:
    with pytest.raises(RecordingError):
        await log.record_operation("", "x", 1.0)
    with pytest.raises(RecordingError):
        log.record_operation_nowait("t", "x", -1.0)
    with pytest.raises(RecordingError, match="PII"):
        await log.record_operation("t", "x", 1.0, metadata={"Session-ID": "s"})
    assert log.stats().total_recorded == 0


HOSTILE = [
    'quote " and \\ backslash',
    "new\nline\r\n\t tab",
    "nul \x00 and \x7f del",
    "unicode ünïcødé 日本語 🚀",
    "lone surrogate \ud800 here",
    "</script><!--",
    "\u2028\u2029 separators",
]


@pytest.mark.parametrize("fast", [True, False])
def test_hostile_strings_round_trip(tmp_path: Path, fast: bool) -> None:
    log = OperationLog(tmp_path, registry=Registry(self_metrics=False), fsync=False)
    log.start_sync()
    log._fast = fast  # the one-pass path of common records, or the full path for all
    for text in HOSTILE:
        log.record_operation_nowait(
            "hostile", text, 1.0, False, text, metadata={"value": text, "nested": [text]}
        )
    log.stop_sync()
    records = [r for b in read_batches(tmp_path) for r in b.records]
    assert [r["operation_name"] for r in records] == HOSTILE
    assert [r["error_message"] for r in records] == HOSTILE
    assert [r["metadata"] for r in records] == [{"value": t, "nested": [t]} for t in HOSTILE]


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
safe_keys = st.text(min_size=1).filter(lambda k: not is_pii_name(k))
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(safe_keys, children, max_size=4)
    ),
    max_leaves=20,
)
metadata_strategy = st.dictionaries(safe_keys, json_values, max_size=6)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(metadata=metadata_strategy, name=st.text(min_size=1).filter(lambda s: not s[0].isspace()))
def test_metadata_round_trips_through_batch_files(
    tmp_path_factory: pytest.TempPathFactory, metadata: dict[str, Any], name: str
) -> None:
    path = tmp_path_factory.mktemp("rt")
    log = OperationLog(path, registry=Registry(self_metrics=False), fsync=False)
    log.start_sync()
    log.record_operation_nowait("rt", name, 1.25, True, None, metadata)
    log.stop_sync()
    (batch,) = list(read_batches(path))
    (rec,) = batch.records
    assert rec["operation_name"] == name
    assert rec["metadata"] == json.loads(json.dumps(metadata))
    assert rec["duration_ms"] == 1.25
