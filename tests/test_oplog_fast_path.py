"""The one-pass path of ``OperationLog.record_operation_nowait`` against the full validation path.

A record whose type and name were seen before, with flat metadata of known-clean keys,
skips ``make_record``. It must write exactly what the full path writes and refuse exactly
what it refuses; everything the one pass cannot vouch for falls back to the full path.
"""

from __future__ import annotations

import enum
import json
import math
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterhub import Registry
from meterhub.errors import RecordingError
from meterhub.naming import DEFAULT_PII_LABELS, is_pii_name, set_pii_labels
from meterhub.oplog import OperationLog, have_orjson, read_batches

pytestmark = pytest.mark.skipif(not have_orjson(), reason="the one-pass path needs orjson")


def start(path: Path, fast: bool) -> OperationLog:
    log = OperationLog(path, registry=Registry(self_metrics=False), fsync=False)
    log._fast = fast
    log.start_sync()
    return log


def written(path: Path) -> list[dict[str, Any]]:
    return [r for b in read_batches(path) for r in b.records]


def without_time(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "timestamp"} for r in records]


_TIMESTAMP = re.compile(r'"timestamp":"[0-9T:.+-]{32}"')


def records_text(path: Path) -> str:
    """The records of every batch file, as written, with their timestamps masked."""
    bodies = []
    for file in sorted(path.glob("metrics_*.json")):
        text = file.read_text("utf-8")
        bodies.append(text[len('{"records":[') : text.rindex('],"batch_timestamp"')])
    return _TIMESTAMP.sub('"timestamp":"-"', ",".join(bodies))


class Color(enum.IntEnum):
    RED = 1


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**65), max_value=2**65)
    | st.floats()  # NaN and infinities included: both paths must refuse them
    | st.text()
)
keys = st.text(min_size=1).filter(lambda k: not is_pii_name(k))
operations = st.tuples(
    st.sampled_from(["api_request", "db_query", 'cache "get"\n']),
    st.sampled_from(["GET /api/users", "SELECT 1", "lone \ud800 surrogate", "ünï 🚀"]),
    st.floats(min_value=0, allow_infinity=False) | st.integers(0, 10**6),
    st.booleans(),
    st.none() | st.text(max_size=20),
    st.none() | st.dictionaries(keys | st.sampled_from(["region", "code"]), scalars, max_size=4),
)


def outcome(log: OperationLog, op: tuple[Any, ...]) -> str:
    try:
        log.record_operation_nowait(*op)
    except RecordingError as exc:
        return f"refused: {exc}"
    return "recorded"


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(operations, min_size=1, max_size=12))
def test_both_paths_write_and_refuse_the_same(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]]
) -> None:
    fast_dir, full_dir = tmp_path_factory.mktemp("fast"), tmp_path_factory.mktemp("full")
    fast, full = start(fast_dir, True), start(full_dir, False)
    # Twice each: the first sighting teaches the fast log the type and the name.
    fast_outcomes = [outcome(fast, op) for op in ops + ops]
    full_outcomes = [outcome(full, op) for op in ops + ops]
    fast.stop_sync()
    full.stop_sync()
    assert fast_outcomes == full_outcomes
    assert without_time(written(fast_dir)) == without_time(written(full_dir))
    assert records_text(fast_dir) == records_text(full_dir)  # the very same text
    assert fast.stats().total_recorded == full.stats().total_recorded


@pytest.mark.parametrize(
    "metadata",
    [
        {"region": math.nan},
        {"region": -math.inf},
        {"region": 2**64},
        {"region": uuid.uuid4()},
        {"region": Color.RED},  # converted to 1 by the full path, never written as is
        {"region": {"password": "x"}},
        {"region": ["a", {"token": "t"}]},
        {"region": b"bytes"},
    ],
)
def test_learned_keys_do_not_let_bad_values_through(tmp_path: Path, metadata: Any) -> None:
    log = start(tmp_path, True)
    log.record_operation_nowait("api_request", "GET /", 1.0, metadata={"region": "eu"})
    expected = "recorded" if metadata["region"] is Color.RED else "refused"
    assert outcome(log, ("api_request", "GET /", 1.0, True, None, metadata)).startswith(expected)
    log.stop_sync()
    if expected == "recorded":
        assert written(tmp_path)[-1]["metadata"] == {"region": 1}


def test_deny_list_change_reaches_the_fast_path(tmp_path: Path) -> None:
    log = start(tmp_path, True)
    log.record_operation_nowait("api_request", "GET /", 1.0, metadata={"region": "eu"})
    set_pii_labels([*DEFAULT_PII_LABELS, "region"])
    try:
        with pytest.raises(RecordingError, match="PII"):
            log.record_operation_nowait("api_request", "GET /", 1.0, metadata={"region": "eu"})
    finally:
        set_pii_labels(DEFAULT_PII_LABELS)
        log.stop_sync()


def test_fast_records_update_the_metrics(tmp_path: Path) -> None:
    registry = Registry(self_metrics=False)
    log = OperationLog(tmp_path, registry=registry, fsync=False)
    log.start_sync()
    for ok in (True, True, False):
        log.record_operation_nowait("api_request", "GET /", 250.0, ok, None, {"code": 200})
    log.stop_sync()
    value = registry.get_sample_value
    assert (
        value("meterhub_operations_total", {"operation_type": "api_request", "success": "true"})
        == 2
    )
    assert (
        value("meterhub_operations_total", {"operation_type": "api_request", "success": "false"})
        == 1
    )
    assert (
        value("meterhub_operation_duration_seconds_sum", {"operation_type": "api_request"}) == 0.75
    )
    assert json.loads(json.dumps(written(tmp_path)[0]))["metadata"] == {"code": 200}


def test_fast_records_follow_the_global_switch(tmp_path: Path) -> None:
    import meterhub

    registry = Registry(self_metrics=False)
    log = OperationLog(tmp_path, registry=registry, fsync=False)
    log.start_sync()
    log.record_operation_nowait("api_request", "GET /", 1.0)  # learned: the rest go fast
    meterhub.disable()
    try:
        log.record_operation_nowait("api_request", "GET /", 1.0)
    finally:
        meterhub.enable()
    log.record_operation_nowait("api_request", "GET /", 1.0)
    log.stop_sync()
    labels = {"operation_type": "api_request", "success": "true"}
    assert registry.get_sample_value("meterhub_operations_total", labels) == 2
    assert (
        registry.get_sample_value(
            "meterhub_operation_duration_seconds_count", {"operation_type": "api_request"}
        )
        == 2
    )
    assert len(written(tmp_path)) == 3  # the log itself is not a metric: every record is kept


@pytest.mark.parametrize("forget", ["remove", "clear"])
def test_removed_series_are_recorded_again(tmp_path: Path, forget: str) -> None:
    """The one-pass path caches metric children: remove()/clear() must not orphan them."""
    registry = Registry(self_metrics=False)
    log = OperationLog(tmp_path, registry=registry, fsync=False)
    log.start_sync()
    record = log.record_operation_nowait
    for _ in range(3):
        record("api_request", "GET /", 250.0, True, None, None)
    operations, duration = log._metrics.operations, log._metrics.duration
    if forget == "remove":
        operations.remove("api_request", "true")
        duration.remove("api_request")
    else:
        operations.clear()
        duration.clear()
    record("api_request", "GET /", 500.0, True, None, None)
    log.stop_sync()
    labels = {"operation_type": "api_request"}
    value = registry.get_sample_value
    assert value("meterhub_operations_total", {**labels, "success": "true"}) == 1
    assert value("meterhub_operation_duration_seconds_count", labels) == 1
    assert value("meterhub_operation_duration_seconds_sum", labels) == 0.5
