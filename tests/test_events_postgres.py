"""PostgresEventStore against a real PostgreSQL 15 (tests/support/postgres.py starts it)."""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from typing import Any

import pytest

from meterhub import Hub, Registry
from meterhub.events import EventCount, EventRouter, EventStore, PostgresEventStore

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 not installed (meterhub[postgres])")

UTC = dt.timezone.utc


def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.01)


def test_roundtrip_latest_and_counts(postgres_db: str) -> None:
    store = PostgresEventStore(postgres_db)
    assert isinstance(store, EventStore)
    base = dt.datetime(2026, 1, 1, 10, 0, tzinfo=UTC).timestamp()
    for ts, uid, kind in [
        (base + 10, "u1", "login"),
        (base + 20, "u2", "login"),
        (base + 3700, "u1", "login"),
        (base + 3710, 7, "game"),
        (base + 7300, None, "game"),
    ]:
        assert store.add(ts, uid, kind, {"n": ts})
    store.close()
    assert store.counts(bucket_seconds=3600) == [
        EventCount(dt.datetime(2026, 1, 1, 10, tzinfo=UTC), "login", 2),
        EventCount(dt.datetime(2026, 1, 1, 11, tzinfo=UTC), "game", 1),
        EventCount(dt.datetime(2026, 1, 1, 11, tzinfo=UTC), "login", 1),
        EventCount(dt.datetime(2026, 1, 1, 12, tzinfo=UTC), "game", 1),
    ]
    since = dt.datetime(2026, 1, 1, 11, tzinfo=UTC)
    assert [c.count for c in store.counts(86400, since=since)] == [2, 1]
    latest = store.latest(2)
    assert [(e.user_id, e.event_type) for e in latest] == [(None, "game"), ("7", "game")]
    assert latest[0].timestamp == dt.datetime.fromtimestamp(base + 7300, UTC)
    assert latest[1].data == {"n": base + 3710}
    with psycopg.connect(postgres_db) as conn:
        cols = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'meterhub_events' ORDER BY ordinal_position"
        )]  # fmt: skip
    assert cols == ["id", "ts", "user_id", "event_type", "data"]


def test_queries_on_an_empty_database_create_the_schema(postgres_db: str) -> None:
    store = PostgresEventStore(postgres_db, table="fresh_events")
    assert store.latest() == []
    assert store.counts() == []
    assert store.row_count() == 0


def test_hostile_values_survive(postgres_db: str) -> None:
    store = PostgresEventStore(postgres_db)
    hostile = ["line\nbreak", 'q"\\b', "nul\x00byte", "lone\ud800", "\U0001f600", "", "\t,|"]
    for i, text in enumerate(hostile):
        store.add(float(i), text, text or "empty", {"v": text, "nan": math.nan, "k\x00": 1})
    store.close()
    assert store.dropped == {}
    got = list(reversed(store.latest(len(hostile))))
    for event, text in zip(got, hostile):
        assert event.data["v"] == text  # JSON-escaped: every str survives exactly
        assert math.isnan(event.data["nan"])
        if "\x00" not in text and "\ud800" not in text:
            assert event.user_id == text


def test_bad_arguments_and_unreachable_server() -> None:
    with pytest.raises(ValueError, match="dsn"):
        PostgresEventStore("")
    with pytest.raises(ValueError, match="table"):
        PostgresEventStore("postgresql://x@127.0.0.1:1/db", table="a b")
    store = PostgresEventStore(
        "postgresql://nobody@127.0.0.1:1/nowhere", connect_timeout=1, interval=0.01
    )
    assert store.add(1.0, "u", "e", {}) is True  # buffered: add() never touches the network
    wait_for(lambda: store.stats()["write_errors"] >= 1)
    assert isinstance(store.last_error, psycopg.OperationalError)
    assert store.flush(timeout=0.2) is False
    store.close(timeout=0.2)
    assert store.dropped["closed"] == 1
    with pytest.raises(psycopg.OperationalError):
        store.latest()


def test_restart_while_tracking_100k_events(postgres_server: Any) -> None:
    """The server is stopped after 30k of 100k events and started again only once the
    application has tracked all 100k: tracking never waited for the database, nothing is lost
    beyond the buffer bound, and every drop is counted."""
    total, before_stop, bound = 100_000, 30_000, 20_000
    reg = Registry(self_metrics=False)
    store = PostgresEventStore(postgres_server.dsn, max_buffer=bound, batch_size=2_000)
    router = EventRouter(hub=Hub(registry=reg), store=store)
    router.counter("game_completed", "games_completed_total", labels={"result": "unknown"})
    stopped = threading.Event()
    reached = threading.Event()
    tracked = [0]

    def app() -> None:
        for i in range(total):
            if i == before_stop:
                reached.set()
                stopped.wait(60)
            router.track_event(i, "game_completed", {"result": "win", "i": i})
            tracked[0] += 1

    t = threading.Thread(target=app)
    t.start()
    assert reached.wait(60)
    wait_for(lambda: store.stats()["written"] > 0)
    postgres_server.stop(mode="fast")
    written_before_stop = store.stats()["written"]
    stopped.set()
    t.join(120)
    # all 100k track_event() calls returned while the server was down
    assert not t.is_alive() and tracked[0] == total
    assert not postgres_server.is_running()
    postgres_server.start()
    assert store.flush(timeout=120)
    rows = store.row_count()
    dropped = store.dropped["buffer_full"]
    assert set(store.dropped) == {"buffer_full"}
    assert dropped > 0
    assert rows + dropped == total
    # everything written before the stop plus a full buffer survived: only the overflow is lost
    assert rows >= written_before_stop + bound
    assert store.stats()["write_errors"] >= 1
    # metrics are independent of the store: every event was routed
    assert reg.get_sample_value("games_completed_total", {"result": "win"}) == total
    assert (
        reg.get_sample_value(
            "meterhub_event_store_dropped_total", {"store": "postgres", "reason": "buffer_full"}
        )
        == dropped
    )
    # the store keeps working after the restart
    router.track_event("late", "game_completed", {})
    router.close()
    assert store.row_count() == rows + 1


def test_threads_exact_row_counts(postgres_db: str) -> None:
    """8 threads x 100k events: exact rows per user and exact metric totals."""
    threads, n = 8, 100_000
    reg = Registry(self_metrics=False)
    store = PostgresEventStore(postgres_db, max_buffer=threads * n)
    router = EventRouter(hub=Hub(registry=reg), store=store)
    router.counter("e", "e_total", labels={"t": "unknown"})
    barrier = threading.Barrier(threads)

    def work(i: int) -> None:
        data = {"t": str(i)}
        barrier.wait()
        for _ in range(n):
            router.track_event(i, "e", data)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    router.close(timeout=120)
    assert store.dropped == {}
    assert store.row_count() == threads * n
    for i in range(threads):
        assert reg.get_sample_value("e_total", {"t": str(i)}) == n
    with psycopg.connect(postgres_db) as conn:
        per_user = conn.execute(
            "SELECT user_id, count(*) FROM meterhub_events GROUP BY user_id ORDER BY user_id"
        ).fetchall()
    assert per_user == [(str(i), n) for i in range(threads)]


def test_rows_the_database_refuses_do_not_block_the_others(postgres_db: str) -> None:
    store = PostgresEventStore(postgres_db)
    assert store.latest() == []  # creates the schema
    with psycopg.connect(postgres_db) as conn:
        conn.execute(
            "ALTER TABLE meterhub_events ADD CONSTRAINT no_poison CHECK (event_type <> 'poison')"
        )
    for kind in ("a", "poison", "b", "poison", "c"):
        store.add(1.0, None, kind, {})
    assert store.flush(30)
    store.close()
    assert store.dropped == {"rejected": 2}
    assert sorted(e.event_type for e in store.latest()) == ["a", "b", "c"]
