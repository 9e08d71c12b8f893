"""One contract for the SQL event stores, SQLite and PostgreSQL, on real databases.

Every ``backend`` test runs against a real SQLite file and a real PostgreSQL 15 (started by
tests/support/postgres.py; the ``postgres`` case is a ``realserver`` test and skips
without psycopg). What only one of them has - SQLite's WAL file, lock contention, process
exit and fork; PostgreSQL's unreachable server and restart - follows at the end.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterhub import Hub, Registry
from meterhub.events import EventCount, EventRouter, EventStore, SQLiteEventStore

UTC = dt.timezone.utc


class Backend:
    """A real database and how to reach it besides the store (raw SQL for the checks)."""

    name: str

    def store(self, **kw: Any) -> EventStore:
        raise NotImplementedError

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        """Run *statement* in its own committed transaction; its rows, if any."""
        raise NotImplementedError

    def columns(self) -> list[str]:
        raise NotImplementedError

    def refuse_event_type(self, event_type: str) -> None:
        """Make the database reject rows of *event_type* (a constraint the store cannot see)."""
        raise NotImplementedError


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def store(self, **kw: Any) -> EventStore:
        return SQLiteEventStore(self.path, **kw)

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path)
        try:
            rows = conn.execute(statement).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()

    def columns(self) -> list[str]:
        return [r[1] for r in self.sql("PRAGMA table_info(meterhub_events)")]

    def refuse_event_type(self, event_type: str) -> None:
        self.sql(
            "CREATE TRIGGER refused BEFORE INSERT ON meterhub_events "
            f"WHEN NEW.event_type = '{event_type}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.psycopg: Any = pytest.importorskip("psycopg")

    def store(self, **kw: Any) -> EventStore:
        from meterhub.events import PostgresEventStore

        return PostgresEventStore(self.dsn, **kw)

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        with self.psycopg.connect(self.dsn) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    def columns(self) -> list[str]:
        return [r[0] for r in self.sql(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'meterhub_events' ORDER BY ordinal_position"
        )]  # fmt: skip

    def refuse_event_type(self, event_type: str) -> None:
        self.sql(
            "ALTER TABLE meterhub_events "
            f"ADD CONSTRAINT refused CHECK (event_type <> '{event_type}')"
        )


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=[pytest.mark.realserver, pytest.mark.extra("psycopg")]),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield SQLiteBackend(tmp_path / "events.db")
    else:
        yield PostgresBackend(request.getfixturevalue("postgres_db"))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


# -- the contract ---------------------------------------------------------------------------


def test_roundtrip_latest_and_counts(backend: Backend) -> None:
    store = backend.store()
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
    assert store.row_count() == 5
    assert backend.columns() == ["id", "ts", "user_id", "event_type", "data"]


def test_queries_on_an_empty_database_create_the_schema(backend: Backend) -> None:
    store = backend.store(table="fresh_events")
    assert store.latest() == []
    assert store.counts() == []
    assert store.row_count() == 0
    store.close()


def test_query_after_table_dropped_recreates_it(backend: Backend) -> None:
    store = backend.store()
    assert store.latest() == []  # creates the schema
    backend.sql("DROP TABLE meterhub_events")
    assert store.latest() == []
    store.add(1.0, None, "a", {})
    assert store.flush(10)
    assert store.row_count() == 1
    store.close()


HOSTILE = [
    "line\nbreak",
    'quote"and\\backslash',
    "nul\x00byte",
    "lone\ud800surrogate",
    "emoji \U0001f600 \u2603",
    "",
    "x" * 10_000,
    "\t,|",
]


def test_hostile_values_survive(backend: Backend) -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque"

    store = backend.store()
    payload: dict[str, Any] = {
        "nan": math.nan,
        "inf": -math.inf,
        "obj": Opaque(),
        "nested": {"list": [1, None, "a"]},
        "k\x00": 1,
    }
    for text in HOSTILE:
        payload[text[:10]] = text
        store.add(1.0, text, text, {**payload, "v": text})
    circular: dict[str, Any] = {}
    circular["self"] = circular
    store.add(2.0, None, "circular", circular)
    store.add(3.0, None, "not_a_dict", ["a", 1])
    store.close()
    assert store.dropped == {}
    got = store.latest(len(HOSTILE) + 2)
    assert got[0].data == ["a", 1]
    assert isinstance(got[1].data, str)  # the circular payload, kept as its repr
    for event, text in zip(reversed(got[2:]), HOSTILE):
        assert event.data["v"] == text  # JSON-escaped: every str survives exactly
        if "\x00" in text or "\ud800" in text:
            assert event.event_type not in ("", text)  # replaced, not lost
        else:
            assert event.event_type == text
            assert event.user_id == text
    first = got[-1].data
    assert math.isnan(first["nan"]) and first["inf"] == -math.inf
    assert first["obj"] == "opaque"
    assert first["nested"] == {"list": [1, None, "a"]}
    assert first["k\x00"] == 1


def test_invalid_events_refused_at_add(backend: Backend) -> None:
    store = backend.store()
    for ts in (math.nan, math.inf, -math.inf, 1e20, "1.0", None):
        assert store.add(ts, "u", "e", {}) is False  # type: ignore[arg-type]
    assert store.add(1.0, "u", None, {}) is False  # type: ignore[arg-type]
    assert store.add(1.0, "u", "ok", {}) is True
    store.close()
    assert store.dropped == {"invalid": 7}
    assert store.row_count() == 1


def test_rows_the_database_refuses_do_not_block_the_others(backend: Backend) -> None:
    store = backend.store()
    assert store.latest() == []  # creates the schema
    backend.refuse_event_type("poison")
    for kind in ("a", "poison", "b", "poison", "c"):
        store.add(1.0, None, kind, {})
    assert store.flush(30)
    store.close()
    assert store.dropped == {"rejected": 2}
    assert sorted(e.event_type for e in store.latest()) == ["a", "b", "c"]


def test_close_flushes_and_refuses_afterwards(backend: Backend) -> None:
    store = backend.store()
    for i in range(1000):
        store.add(float(i), "u", "e", {})
    store.close()
    assert store.row_count() == 1000
    assert store.add(1.0, "u", "e", {}) is False
    assert store.dropped["closed"] == 1
    store.close()  # idempotent


# -- the contract, through the router -------------------------------------------------------


def seed_router(store: EventStore, reg: Registry) -> EventRouter:
    router = EventRouter(hub=Hub(registry=reg), store=store)
    router.counter("game_completed", "games_completed_total", labels={"result": "unknown"})
    router.histogram("game_completed", "game_duration_seconds", value="duration", default=0.0)
    return router


def test_store_failure_never_blocks_metrics(backend: Backend, lenient: None) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("cannot encode")

    reg = Registry(self_metrics=False)
    router = seed_router(backend.store(), reg)
    assert router.track_event("u", "game_completed", {"result": "win", "x": Unprintable()}) is False
    assert reg.get_sample_value("games_completed_total", {"result": "win"}) == 1
    errors = {"event_type": "game_completed", "reason": "store_error"}
    assert reg.get_sample_value("meterhub_events_errors_total", errors) == 1
    router.close()


def test_metric_failure_never_blocks_store(backend: Backend, lenient: None) -> None:
    reg = Registry(self_metrics=False)
    router = seed_router(backend.store(), reg)

    @router.handler("game_completed")
    def broken(data: Mapping[str, Any]) -> None:
        raise RuntimeError("boom")

    assert router.track_event("u", "game_completed", {"duration": "not a number"})
    router.close()
    assert router.store is not None
    assert [e.data for e in router.store.latest()] == [{"duration": "not a number"}]


def test_track_event_disabled_stores_without_metrics(backend: Backend) -> None:
    reg = Registry(self_metrics=False)
    router = seed_router(backend.store(), reg)
    router.track_event("u", "game_completed", {"result": "win"}, enabled=False)
    router.track_event("u", "unmapped_type", {})
    router.close()
    assert reg.get_sample_value("games_completed_total", {"result": "win"}) is None
    assert (
        reg.get_sample_value("meterhub_events_unmapped_total", {"event_type": "unmapped_type"}) == 1
    )
    assert router.store is not None
    assert sorted(e.event_type for e in router.store.latest()) == [
        "game_completed",
        "unmapped_type",
    ]
    written = reg.get_sample_value("meterhub_event_store_written_total", {"store": backend.name})
    assert written == 2


def test_threads_exact_metric_totals_and_row_counts(backend: Backend) -> None:
    """8 threads x 100k track_event calls: exact rows per user and exact metric totals."""
    threads, n = 8, 100_000
    reg = Registry(self_metrics=False)
    router = seed_router(backend.store(max_buffer=threads * n), reg)
    barrier = threading.Barrier(threads)

    def work(i: int) -> None:
        data = {"result": "win" if i % 2 else "loss", "duration": 0.5}
        barrier.wait()
        for _ in range(n):
            router.track_event(i, "game_completed", data)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    router.close(timeout=120)
    store = router.store
    assert store is not None
    assert store.dropped == {}
    assert store.row_count() == threads * n
    for result in ("win", "loss"):
        assert reg.get_sample_value("games_completed_total", {"result": result}) == threads * n / 2
    assert reg.get_sample_value("game_duration_seconds_count") == threads * n
    assert sum(c.count for c in store.counts(bucket_seconds=60)) == threads * n
    per_user = backend.sql(
        "SELECT user_id, count(*) FROM meterhub_events GROUP BY user_id ORDER BY user_id"
    )
    assert [tuple(r) for r in per_user] == [(str(i), n) for i in range(threads)]


def test_open_store(tmp_path: Path) -> None:
    from meterhub.events import open_store

    assert isinstance(open_store(str(tmp_path / "a.db")), SQLiteEventStore)
    s = open_store(f"sqlite:///{tmp_path / 'b.db'}")  # four slashes: absolute
    assert isinstance(s, SQLiteEventStore) and s.path == str(tmp_path / "b.db")
    with pytest.raises(ValueError, match="database URL"):
        open_store("")


@pytest.mark.extra("psycopg")
def test_open_store_postgres_url() -> None:
    from meterhub.events import PostgresEventStore, open_store

    assert isinstance(open_store("postgresql://u@127.0.0.1:1/db"), PostgresEventStore)


# -- SQLite only ----------------------------------------------------------------------------


def test_sqlite_wal_and_schema_on_first_use(db: Path) -> None:
    SQLiteEventStore(db).close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cols = [r[1] for r in conn.execute("PRAGMA table_info(meterhub_events)")]
    assert cols == ["id", "ts", "user_id", "event_type", "data"]
    conn.close()
    # reopening an existing file keeps its rows
    s1 = SQLiteEventStore(db)
    s1.add(1.0, "u", "a", {})
    s1.close()
    s2 = SQLiteEventStore(db, table="other_events")
    s2.add(2.0, "u", "b", {})
    s2.close()
    assert SQLiteEventStore(db).row_count() == 1
    assert s2.row_count() == 1


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=st.dictionaries(
        st.text(max_size=6),
        st.none() | st.text() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False),
        max_size=6,
    )
)
def test_sqlite_payloads_roundtrip(tmp_path: Path, payload: dict[str, Any]) -> None:
    store = SQLiteEventStore(tmp_path / "fuzz.db")
    store.add(1.0, "u", "t", payload)
    store.close()
    [event] = store.latest(1)
    clean = {
        k.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        if isinstance(k, str)
        else k: v
        for k, v in payload.items()
    }
    # JSON (ASCII-escaped) carries every str, lone surrogates included, exactly
    assert event.data == payload or event.data == clean
    (tmp_path / "fuzz.db").unlink()


def test_sqlite_bounded_buffer_drops_counted_and_never_blocks(db: Path) -> None:
    store = SQLiteEventStore(db, max_buffer=10, batch_size=5)
    blocker = sqlite3.connect(db, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # the writer thread now waits on the lock
    results = [store.add(float(i), None, "e", {"i": i}) for i in range(100)]
    accepted = sum(results)
    assert 10 <= accepted <= 15  # the buffer bound (+ one batch already taken by the writer)
    assert store.dropped["buffer_full"] == 100 - accepted
    assert store.stats()["dropped_buffer_full"] == 100 - accepted
    blocker.rollback()
    blocker.close()
    assert store.flush(30)
    assert store.row_count() == accepted
    store.close()


def test_sqlite_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="path"):
        SQLiteEventStore(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_buffer"):
        SQLiteEventStore(tmp_path / "a.db", max_buffer=0)
    with pytest.raises(ValueError, match="table"):
        SQLiteEventStore(tmp_path / "a.db", table="x; DROP TABLE y")
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteEventStore(tmp_path / "a.db", synchronous="sometimes")
    with pytest.raises(sqlite3.OperationalError):
        SQLiteEventStore(tmp_path / "missing-dir" / "a.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        SQLiteEventStore(garbage)
    store = SQLiteEventStore(tmp_path / "a.db")
    with pytest.raises(ValueError, match="bucket_seconds"):
        store.counts(bucket_seconds=0)
    with pytest.raises(ValueError, match="n must"):
        store.latest(n=-1)
    store.close()


_CHILD = """
import os, signal, sys
from meterhub.events import SQLiteEventStore
store = SQLiteEventStore(sys.argv[1])
for i in range(3000):
    store.add(float(i), "u", "e", {"i": i})
if sys.argv[2] == "kill":
    assert store.flush(60)
    for i in range(100):
        store.add(float(i), "u", "late", {})
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_sqlite_process_exit_flushes_and_kill_keeps_flushed_rows(db: Path, how: str) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(db), how], capture_output=True, text=True, timeout=120
    )
    if how == "exit":
        assert proc.returncode == 0, proc.stderr
        assert SQLiteEventStore(db).row_count() == 3000  # written at exit (atexit flush)
    else:
        assert proc.returncode == -9
        rows = SQLiteEventStore(db).row_count()
        assert 3000 <= rows <= 3100  # flushed rows survive SIGKILL; only the buffer may be lost
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()


_FORK = """
import os, sys
from meterhub.events import SQLiteEventStore
store = SQLiteEventStore(sys.argv[1])
for i in range(1000):
    store.add(float(i), "parent", "e", {})
assert store.flush(60)
for i in range(10):
    store.add(float(i), "parent", "late", {})
pid = os.fork()
if pid == 0:  # the child writes its own events with its own writer, never the parent's
    for i in range(100):
        store.add(float(i), "child", "e", {})
    store.close(60)
    os._exit(0 if store.dropped == {} else 1)
_, status = os.waitpid(pid, 0)
store.close(60)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_sqlite_fork_child_gets_its_own_writer(db: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _FORK, str(db)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    conn = sqlite3.connect(db)
    per_user = dict(conn.execute("SELECT user_id, count(*) FROM meterhub_events GROUP BY user_id"))
    conn.close()
    assert per_user == {"parent": 1010, "child": 100}


# -- PostgreSQL only ------------------------------------------------------------------------


def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.01)


@pytest.mark.extra("psycopg")
def test_postgres_bad_arguments_and_unreachable_server() -> None:
    psycopg = pytest.importorskip("psycopg")
    from meterhub.events import PostgresEventStore

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


@pytest.mark.extra("psycopg")
def test_postgres_restart_while_tracking_100k_events(postgres_server: Any) -> None:
    """The server is stopped after 30k of 100k events and started again only once the
    application has tracked all 100k: tracking never waited for the database, nothing is lost
    beyond the buffer bound, and every drop is counted."""
    from meterhub.events import PostgresEventStore

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
