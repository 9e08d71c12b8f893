"""OperationLogEventStore with a real OperationLog writing real batch files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from meterhub import Hub, Registry
from meterhub.events import EventRouter, EventStore, OperationLogEventStore
from meterhub.oplog import OperationLog, read_batches


def test_events_become_operation_records(tmp_path: Path) -> None:
    log = OperationLog(tmp_path / "oplog", registry=None, fsync=False)
    log.start_sync()
    store = OperationLogEventStore(log, close_log=True)
    assert isinstance(store, EventStore)
    reg = Registry(self_metrics=False)
    router = EventRouter(hub=Hub(registry=reg), store=store)
    router.counter("user_logged_in", "user_logins_total", labels={"auth_method": "unknown"})
    assert router.track_event("alice", "user_logged_in", {"auth_method": "email"})
    assert router.track_event("bob", "user_logged_in", {"auth_method": "sso", "n": 2})
    # a payload with a PII key is refused by the log's guard: counted, metrics still updated
    assert not router.track_event("carol", "user_logged_in", {"email": "c@example.com"})
    router.close()
    records = [r for b in read_batches(tmp_path / "oplog") for r in b.records]
    assert [(r["operation_type"], r["operation_name"]) for r in records] == [
        ("event", "user_logged_in"),
        ("event", "user_logged_in"),
    ]
    assert records[1]["metadata"]["event_data"] == {"auth_method": "sso", "n": 2}
    assert all("user_id" not in r["metadata"] for r in records)
    batch_text = "".join(p.read_text() for p in (tmp_path / "oplog").glob("*.json"))
    assert "alice" not in batch_text and "bob" not in batch_text
    assert store.dropped["log_refused"] == 1
    assert reg.get_sample_value("user_logins_total", {"auth_method": "unknown"}) == 1
    latest = store.latest(5)
    assert [e.data for e in latest] == [{"auth_method": "sso", "n": 2}, {"auth_method": "email"}]
    assert all(e.user_id is None for e in latest)
    [count] = store.counts(bucket_seconds=86400)
    assert count.count == 2 and count.event_type == "user_logged_in"
    assert count.bucket_start <= dt.datetime.now(dt.timezone.utc)


def test_log_not_running_counts_drops(tmp_path: Path) -> None:
    log = OperationLog(tmp_path / "oplog", registry=None, fsync=False)
    store = OperationLogEventStore(log)
    assert store.add(1.0, "u", "e", {}) is False
    assert store.stats()["dropped_log_refused"] == 1


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="OperationLog"):
        OperationLogEventStore(object())
    with pytest.raises(ValueError, match="keep"):
        OperationLogEventStore(OperationLog(tmp_path, registry=None), keep=0)
