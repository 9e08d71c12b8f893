"""The generated per-event-type functions record exactly what the core's own methods record.

``meterhub.events.compile`` writes the children's lock-free fast paths out inline; these tests
hold it to the core: same series and values as ``labels(...).inc()/.observe()/.set()``, the
metric's own switch, memory-mapped cells across processes, threads switching every 1 µs.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import meterhub
from meterhub import Counter, Gauge, Histogram, Hub, Registry
from meterhub.events import EventRouter, Rule, RuleKind
from meterhub.events.compile import CompiledRule, compile_route
from meterhub.exposition.text import render_text
from meterhub.store.mmap import MultiProcessStore

BUCKETS = (0.5, 1.0, 60.0)


def _router(reg: Registry) -> EventRouter:
    router = EventRouter(hub=Hub(registry=reg))
    router.counter("e", "plays_total", labels={"mode": "unknown", "result": "none"})
    router.counter("e", "points_total", value="points", labels={"mode": "unknown"})
    router.histogram("e", "play_seconds", value="duration", buckets=BUCKETS, default=0.0,
                     labels={"mode": "unknown"})  # fmt: skip
    router.gauge("e", "level", value="level", labels={"result": "none"})
    return router


def _label(data: dict[str, Any], name: str, default: str) -> str:
    v = data.get(name)
    return default if v is None else (v if type(v) is str else str(v))


def _number(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        return None


def _by_hand(reg: Registry) -> Any:
    """The documented semantics of :func:`_router`'s rules, on the core's methods."""
    plays = Counter("plays", "plays_total (from event e).", ["mode", "result"], registry=reg)
    points = Counter("points", "points_total (from event e).", ["mode"], registry=reg)
    seconds = Histogram("play_seconds", "play_seconds (from event e).", ["mode"],
                        buckets=BUCKETS, registry=reg)  # fmt: skip
    level = Gauge("level", "level (from event e).", ["result"], registry=reg)

    def record(data: dict[str, Any]) -> None:
        mode, result = _label(data, "mode", "unknown"), _label(data, "result", "none")
        plays.labels(mode, result).inc()
        n = _number(data.get("points"))
        if n is not None and 0.0 <= n < math.inf:
            points.labels(mode).inc(n)
        d = 0.0 if data.get("duration") is None else _number(data.get("duration"))
        if d is not None and d == d:
            seconds.labels(mode).observe(d)
        g = _number(data.get("level"))
        if g is not None:
            level.labels(result).set(g)

    return record


numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 10**6),
    st.sampled_from(["3", "2.5", "abc", "nan", "-1", True]),
)
labels = st.one_of(st.none(), st.sampled_from(["ranked", "casual", "", "é"]), st.integers(0, 2))
payloads = st.fixed_dictionaries(
    {},
    optional={
        "mode": labels,
        "result": labels,
        "points": numbers,
        "duration": numbers,
        "level": numbers,
    },
)


@pytest.fixture
def lenient_pair() -> Iterator[tuple[EventRouter, Registry, Registry]]:
    meterhub.configure(strict=False)
    ours, theirs = Registry(self_metrics=False), Registry(self_metrics=False)
    yield _router(ours), ours, theirs


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=st.lists(payloads, max_size=15))
def test_generated_code_records_what_the_core_methods_record(
    lenient_pair: tuple[EventRouter, Registry, Registry], events: list[dict[str, Any]]
) -> None:
    router, ours, theirs = lenient_pair
    by_hand = _by_hand(theirs)
    for data in events:
        router.emit("e", data)
        by_hand(data)
    names = {"plays", "points", "play_seconds", "level"}
    rendered = [render_text(f for f in r.collect() if f.name in names) for r in (ours, theirs)]
    assert rendered[0] == rendered[1]


def test_the_metrics_own_switch_reaches_inline_updates(registry: Registry) -> None:
    Counter("feed_items", "Items.", ["feed"], registry=registry, switch="feeds")
    router = EventRouter(hub=Hub(registry=registry))
    router.counter("item", "feed_items_total", labels={"feed": "unknown"}, help="Items.")
    router.emit("item", {"feed": "rss"})
    meterhub.disable("feeds")
    router.emit("item", {"feed": "rss"})
    meterhub.enable("feeds")
    router.emit("item", {"feed": "rss"})
    assert registry.get_sample_value("feed_items_total", {"feed": "rss"}) == 2


def test_other_child_classes_are_called_through_their_methods(registry: Registry) -> None:
    gauge = Gauge("last_seen", "L.", registry=registry, multiprocess_mode="mostrecent")
    rule = Rule("seen", RuleKind.GAUGE, "last_seen", value="at")
    compiled = CompiledRule(rule, gauge, lambda reason, message: None)
    assert "c.set(v)" in compiled.source("r0_")
    fns = compile_route("seen", [compiled], [], None, print, print, lambda data: None)
    fns.emit({"at": 5.0})
    [cell] = [child._cell for child in gauge._children.values()]
    assert cell[0] == 5.0 and cell[1] > 0  # the mostrecent child stamped the time


def test_rule_data_never_becomes_source_text(registry: Registry) -> None:
    event_type = 'x\')\nimport os  # """'
    router = EventRouter(hub=Hub(registry=registry))
    router.counter(event_type, "odd_total", labels={"a_b": "'); raise SystemExit"})
    router.emit(event_type, {})
    assert registry.get_sample_value("odd_total", {"a_b": "'); raise SystemExit"}) == 1


def test_routes_regenerate_when_rules_handlers_and_limits_are_added(registry: Registry) -> None:
    router = EventRouter(hub=Hub(registry=registry))
    router.counter("e", "a_total")
    router.emit("e", {})
    seen: list[Any] = []
    router.handler("e")(seen.append)
    router.counter("e", "b_total")
    router.emit("e", {"k": 1})
    router.rate_limit("e", 1)
    router.emit("e", {})
    router.emit("e", {})  # over the limit: not routed
    assert registry.get_sample_value("a_total") == 3
    assert registry.get_sample_value("b_total") == 2
    assert seen == [{"k": 1}, {}]
    dropped = {"event_type": "e", "reason": "rate_limited"}
    assert registry.get_sample_value("meterhub_events_dropped_total", dropped) == 1


def test_memory_mapped_cells_across_processes(tmp_path: Path) -> None:
    reg = Registry(store=MultiProcessStore(tmp_path), self_metrics=False)
    router = EventRouter(hub=Hub(registry=reg))
    router.counter("g", "games_total", labels={"mode": "unknown"})
    router.histogram("g", "game_seconds", value="d", buckets=(1.0,), labels={"mode": "unknown"})
    router.emit("g", {"mode": "ranked", "d": 0.5})  # children exist before the fork

    def work() -> None:
        for _ in range(1000):
            router.emit("g", {"mode": "ranked", "d": 2.0})
        os._exit(0)

    procs = [multiprocessing.get_context("fork").Process(target=work) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    ranked = {"mode": "ranked"}
    assert reg.get_sample_value("games_total", ranked) == 3001
    assert reg.get_sample_value("game_seconds_count", ranked) == 3001
    assert reg.get_sample_value("game_seconds_bucket", {**ranked, "le": "1.0"}) == 1
    assert reg.get_sample_value("game_seconds_sum", ranked) == 6000.5


@pytest.mark.usefixtures("switch_often")
def test_threads_switching_every_microsecond_lose_nothing(registry: Registry) -> None:
    router = EventRouter(hub=Hub(registry=registry))
    router.counter("g", "games_total", labels={"mode": "unknown"})
    router.histogram("g", "game_seconds", value="d", buckets=(1.0,), labels={"mode": "unknown"})
    threads, n = 8, 20_000
    barrier = threading.Barrier(threads)

    def work(i: int) -> None:
        data = {"mode": f"m{i % 2}", "d": 0.5 if i < 4 else 2.0}
        barrier.wait()
        for _ in range(n):
            router.emit("g", data)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for mode in ("m0", "m1"):
        m = {"mode": mode}
        assert registry.get_sample_value("games_total", m) == threads * n / 2
        assert registry.get_sample_value("game_seconds_count", m) == threads * n / 2
        assert registry.get_sample_value("game_seconds_bucket", {**m, "le": "1.0"}) == 2 * n
        assert registry.get_sample_value("game_seconds_sum", m) == 2 * n * 0.5 + 2 * n * 2.0
