"""Event routing and event storage: meterhub.events vs the hand-written seed glue.

* ``emit()`` routing one ``game_completed`` event to two metrics (a labeled counter and a
  labeled histogram) vs the same mapping hand-written on prometheus_client (a dict of
  handler functions calling ``labels(...).inc()`` / ``.observe()``). Target: <= 2 us.
* ``track_event()`` into SQLite and PostgreSQL, timed until every row is durable (``flush()``
  returned: committed in WAL for SQLite with ``synchronous=NORMAL``; committed with
  ``fsync=on`` for PostgreSQL). Anchor: the seed's synchronous insert-then-update per event
  (one INSERT + commit per event, then the prometheus_client update). Targets: >= 50,000
  events/s (SQLite) and >= 20,000 events/s (PostgreSQL).

Ratios are meterhub / anchor in time per event (lower is better). The PostgreSQL rows need
the Debian ``postgresql`` binaries (the server is started inside the bench, then stopped).
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import prometheus_client as pc
from _timing import HEADER, row

import meterhub as mh
from meterhub.events import EventRouter, PostgresEventStore, SQLiteEventStore

PAYLOAD = {"game_mode": "ranked", "result": "win", "duration": 12.5}


def _router(reg: mh.Registry, store: Any = None) -> EventRouter:
    router = EventRouter(hub=mh.Hub(registry=reg), store=store)
    router.counter(
        "game_completed",
        "games_completed_total",
        labels={"game_mode": "unknown", "result": "unknown"},
    )
    router.histogram(
        "game_completed",
        "game_duration_seconds",
        value="duration",
        default=0.0,
        labels={"game_mode": "unknown"},
    )
    return router


def _anchor() -> Callable[[str, dict[str, Any]], None]:
    """The seed's glue, hand-written on prometheus_client."""
    reg = pc.CollectorRegistry()
    games = pc.Counter("games_completed", "G.", ["game_mode", "result"], registry=reg)
    duration = pc.Histogram("game_duration_seconds", "D.", ["game_mode"], registry=reg)

    def game_completed(payload: dict[str, Any]) -> None:
        games.labels(game_mode=payload["game_mode"], result=payload["result"]).inc()
        duration.labels(game_mode=payload["game_mode"]).observe(payload["duration"])

    handlers = {"game_completed": game_completed}

    def collect_metric(event_type: str, event_data: dict[str, Any]) -> None:
        payload = {
            "game_mode": event_data.get("game_mode", "unknown"),
            "result": event_data.get("result", "unknown"),
            "duration": event_data.get("duration", 0.0),
        }
        handler = handlers.get(event_type)
        if handler is not None:
            handler(payload)

    return collect_metric


def _interleaved(fns: dict[str, Callable[[], object]], number: int = 50_000) -> dict[str, float]:
    """Best ns/call of each function over rounds that alternate between them: on a shared
    machine, load bursts then hit every contender alike."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(15):
        for name, fn in fns.items():
            t0 = time.perf_counter_ns()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (time.perf_counter_ns() - t0) / number)
    return best


def _emit_rows() -> list[str]:
    emit = _router(mh.Registry(self_metrics=False)).emit
    anchor = _anchor()
    reg = mh.Registry(self_metrics=False)
    games = mh.Counter("games_completed", "G.", ["game_mode", "result"], registry=reg)
    duration = mh.Histogram("game_duration_seconds", "D.", ["game_mode"], registry=reg)

    def by_hand(data: dict[str, Any]) -> None:
        mode = data.get("game_mode", "unknown")
        games.labels(mode, data.get("result", "unknown")).inc()
        duration.labels(mode).observe(data.get("duration", 0.0))

    no_result = {k: v for k, v in PAYLOAD.items() if k != "result"}
    best = _interleaved(
        {
            "ours": lambda: emit("game_completed", PAYLOAD),
            "anchor": lambda: anchor("game_completed", PAYLOAD),
            "floor": lambda: by_hand(PAYLOAD),
            "default": lambda: emit("game_completed", no_result),
        }
    )
    ours, theirs, floor = best["ours"], best["anchor"], best["floor"]
    verdict = "ok" if ours <= 2000 else "MISSED"
    return [
        row("emit() -> counter + histogram", ours, theirs, "ns", 1.0),
        f"  absolute: {ours:.0f} ns/event (target <= 2000 ns: {verdict}); the same two updates "
        f"hand-written on meterhub metrics: {floor:.0f} ns",
        f"  a label from its default (payload without 'result'): {best['default']:.0f} ns/event",
    ]


def _track(router: EventRouter, n: int) -> float:
    """Seconds to track *n* events and have them all durable."""
    t0 = time.perf_counter()
    track = router.track_event
    for i in range(n):
        track(i, "game_completed", PAYLOAD)
    assert router.flush(timeout=600)
    elapsed = time.perf_counter() - t0
    assert router.store is not None
    dropped = sum(v for k, v in router.store.stats().items() if k.startswith("dropped_"))
    assert dropped == 0, f"{dropped} events dropped: raise max_buffer"
    return elapsed


def _sync_anchor(insert: Callable[[tuple[Any, ...]], None], n: int) -> float:
    metrics = _anchor()
    t0 = time.perf_counter()
    for i in range(n):
        insert((time.time(), str(i), "game_completed", json.dumps(PAYLOAD)))
        metrics("game_completed", PAYLOAD)
    return time.perf_counter() - t0


def _sqlite_rows(tmp: Path) -> list[str]:
    n, n_anchor = 200_000, 20_000
    store = SQLiteEventStore(tmp / "events.db", max_buffer=n)
    router = _router(mh.Registry(self_metrics=False), store)
    ours = _track(router, n) / n
    router.close()

    conn = sqlite3.connect(tmp / "anchor.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE e (ts REAL, user_id TEXT, event_type TEXT, data TEXT)")

    def insert(r: tuple[Any, ...]) -> None:
        conn.execute("INSERT INTO e VALUES (?, ?, ?, ?)", r)
        conn.commit()

    theirs = _sync_anchor(insert, n_anchor) / n_anchor
    conn.close()
    rate = 1 / ours
    verdict = "ok" if rate >= 50_000 else "MISSED"
    return [
        row("track_event -> SQLite (durable)", ours * 1e6, theirs * 1e6, "us", 1.0),
        f"  throughput: {rate:,.0f} events/s durable (target >= 50,000: {verdict})",
    ]


def _postgres_rows() -> list[str]:
    support = Path(__file__).resolve().parent.parent / "tests" / "support" / "postgres.py"
    spec = importlib.util.spec_from_file_location("_bench_pg_support", support)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if module.find_pg_bindir() is None:
        return ["track_event -> PostgreSQL: skipped (postgresql binaries not installed)"]
    import psycopg

    n, n_anchor = 200_000, 5_000
    with module.PostgresServer.launch(fsync=True) as pg:
        store = PostgresEventStore(pg.dsn, max_buffer=n)
        router = _router(mh.Registry(self_metrics=False), store)
        ours = _track(router, n) / n
        router.close()
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE anchor (ts float8, user_id text, event_type text, data text)"
            )

            def insert(r: tuple[Any, ...]) -> None:
                conn.execute("INSERT INTO anchor VALUES (%s, %s, %s, %s)", r)

            theirs = _sync_anchor(insert, n_anchor) / n_anchor
    rate = 1 / ours
    verdict = "ok" if rate >= 20_000 else "MISSED"
    return [
        row("track_event -> PostgreSQL (durable)", ours * 1e6, theirs * 1e6, "us", 1.0),
        f"  throughput: {rate:,.0f} events/s durable (target >= 20,000: {verdict})",
    ]


def main(only_emit: bool = False) -> None:
    """All rows; ``only_emit`` (``python bench/bench_events.py emit``) skips the stores."""
    print(HEADER.replace("prom_client", "anchor"))
    for line in _emit_rows():
        print(line, flush=True)
    if only_emit:
        return
    with tempfile.TemporaryDirectory() as tmp:
        for line in _sqlite_rows(Path(tmp)):
            print(line, flush=True)
    for line in _postgres_rows():
        print(line, flush=True)


if __name__ == "__main__":
    main(only_emit=sys.argv[1:] == ["emit"])
