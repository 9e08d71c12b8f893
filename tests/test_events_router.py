"""EventRouter: the seed's mappings, switches, rate limits, unknown types, handler errors."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

import meterhub
from meterhub import Counter, DefinitionError, Hub, RecordingError, Registry, generate_latest
from meterhub.events import EventRouter, SQLiteEventStore

SEED_YAML = """
events:
  user_logged_in:
    - counter: user_logins_total
      help: User logins by method and account type.
      labels: {auth_method: unknown, account_type: normal}
  game_completed:
    - counter: games_completed_total
      help: Games completed.
      labels: {game_mode: unknown, result: unknown}
    - histogram: game_duration_seconds
      help: Game duration.
      value: duration
      default: 0.0
      buckets: [60, 600]
      labels: {game_mode: unknown}
"""

SEED_EXPECTED = """\
# HELP user_logins_total User logins by method and account type.
# TYPE user_logins_total counter
user_logins_total{auth_method="email",account_type="normal"} 2
user_logins_total{auth_method="google",account_type="premium"} 1
user_logins_total{auth_method="unknown",account_type="normal"} 1
# HELP games_completed_total Games completed.
# TYPE games_completed_total counter
games_completed_total{game_mode="ranked",result="win"} 1
games_completed_total{game_mode="casual",result="loss"} 1
games_completed_total{game_mode="unknown",result="unknown"} 1
# HELP game_duration_seconds Game duration.
# TYPE game_duration_seconds histogram
game_duration_seconds_bucket{game_mode="ranked",le="60.0"} 1
game_duration_seconds_bucket{game_mode="ranked",le="600.0"} 1
game_duration_seconds_bucket{game_mode="ranked",le="+Inf"} 1
game_duration_seconds_count{game_mode="ranked"} 1
game_duration_seconds_sum{game_mode="ranked"} 42.5
game_duration_seconds_bucket{game_mode="casual",le="60.0"} 0
game_duration_seconds_bucket{game_mode="casual",le="600.0"} 0
game_duration_seconds_bucket{game_mode="casual",le="+Inf"} 1
game_duration_seconds_count{game_mode="casual"} 1
game_duration_seconds_sum{game_mode="casual"} 900
game_duration_seconds_bucket{game_mode="unknown",le="60.0"} 1
game_duration_seconds_bucket{game_mode="unknown",le="600.0"} 1
game_duration_seconds_bucket{game_mode="unknown",le="+Inf"} 1
game_duration_seconds_count{game_mode="unknown"} 1
game_duration_seconds_sum{game_mode="unknown"} 0
"""

SEED_METRICS = ("user_logins_total", "games_completed_total", "game_duration_seconds_count")


@pytest.fixture
def hub(registry: Registry) -> Hub:
    return Hub(registry=registry)


def seed_router_python(hub: Hub, **kw: Any) -> EventRouter:
    router = EventRouter(hub=hub, **kw)
    router.counter(
        "user_logged_in",
        "user_logins_total",
        labels={"auth_method": "unknown", "account_type": "normal"},
        help="User logins by method and account type.",
    )
    router.counter(
        "game_completed",
        "games_completed_total",
        labels={"game_mode": "unknown", "result": "unknown"},
        help="Games completed.",
    )
    router.histogram(
        "game_completed",
        "game_duration_seconds",
        value="duration",
        default=0.0,
        buckets=(60, 600),
        labels={"game_mode": "unknown"},
        help="Game duration.",
    )
    return router


def emit_seed_events(router: EventRouter) -> None:
    router.emit("user_logged_in", {"auth_method": "email", "account_type": "normal"})
    router.emit("user_logged_in", {"auth_method": "email"})
    router.emit("user_logged_in", {"auth_method": "google", "account_type": "premium"})
    router.emit("user_logged_in", {})
    router.emit("game_completed", {"game_mode": "ranked", "result": "win", "duration": 42.5})
    router.emit("game_completed", {"game_mode": "casual", "result": "loss", "duration": 900})
    router.emit("game_completed", {"game_mode": None})


def render(registry: Registry) -> str:
    return generate_latest(registry.restricted_registry(SEED_METRICS)).decode()


@pytest.mark.parametrize(
    "source", ["python", pytest.param("yaml", marks=pytest.mark.extra("yaml"))]
)
def test_seed_mappings_exact_series(
    source: str, hub: Hub, registry: Registry, tmp_path: Path
) -> None:
    if source == "python":
        router = seed_router_python(hub)
    else:
        path = tmp_path / "events.yaml"
        path.write_text(SEED_YAML)
        router = EventRouter.from_file(path, hub=hub)
    emit_seed_events(router)
    assert render(registry) == SEED_EXPECTED
    assert router.event_types == ("game_completed", "user_logged_in")


@pytest.mark.extra("yaml")
def test_issue_yaml_example_loads(hub: Hub, registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "events.yaml"
    path.write_text(
        "events:\n"
        "  user_logged_in:\n"
        "    - counter: user_logins_total\n"
        "      help: User logins by method and account type.\n"
        "      labels: {auth_method: unknown, account_type: normal}\n"
        "  game_completed:\n"
        "    - counter: games_completed_total\n"
        "      labels: {game_mode: unknown, result: unknown}\n"
        "    - histogram: game_duration_seconds\n"
        "      value: duration            # the payload field observed\n"
        "      labels: {game_mode: unknown}\n"
    )
    router = EventRouter.from_file(path, hub=hub)
    router.emit("game_completed", {"game_mode": "ranked", "result": "win", "duration": 3})
    assert registry.get_sample_value("game_duration_seconds_sum", {"game_mode": "ranked"}) == 3
    assert (
        registry.get_sample_value("games_completed_total", {"game_mode": "ranked", "result": "win"})
        == 1
    )


def test_gauge_and_counter_by_value(hub: Hub, registry: Registry) -> None:
    router = EventRouter(hub=hub)
    router.gauge("queue_sampled", "queue_depth", value="depth", labels={"queue": "default"})
    router.counter("order_paid", "revenue_cents_total", value="cents")
    router.emit("queue_sampled", {"queue": "mail", "depth": 7})
    router.emit("queue_sampled", {"queue": "mail", "depth": "3"})
    router.emit("order_paid", {"cents": 250})
    router.emit("order_paid", {"cents": 50.5})
    assert registry.get_sample_value("queue_depth", {"queue": "mail"}) == 3
    assert registry.get_sample_value("revenue_cents_total") == 300.5


def test_label_values_normalised(hub: Hub, registry: Registry) -> None:
    router = EventRouter(hub=hub)
    router.counter("e", "e_total", labels={"a": "unknown"})
    for value in (7, True, ["x"], {"k": 1}, None, "", 'q"\\\n\u2603'):
        router.emit("e", {"a": value})
    for value in (0, 0.0, False):  # equal as dict keys, distinct as label values
        router.emit("e", {"a": value, "b": None})
        router.emit("e", {"a": value, "b": None})
    got = {s.labels["a"]: s.value for s in _samples(registry, "e_total")}
    assert got == {
        "7": 1,
        "True": 1,
        "['x']": 1,
        "{'k': 1}": 1,
        "unknown": 1,
        "": 1,
        'q"\\\n\u2603': 1,
        "0": 2,
        "0.0": 2,
        "False": 2,
    }


def test_removed_series_come_back(hub: Hub, registry: Registry) -> None:
    router = EventRouter(hub=hub)
    router.counter("e", "e_total", labels={"a": "unknown", "b": "x"})
    metric = registry.get("e_total")
    for _ in range(2):
        router.emit("e", {})  # defaults: the slow path's raw-tuple cache
        router.emit("e", {"a": "k", "b": "x"})  # the metric's own child dict
    metric.remove("unknown", "x")
    metric.remove("k", "x")
    router.emit("e", {})
    router.emit("e", {"a": "k", "b": "x"})
    assert registry.get_sample_value("e_total", {"a": "unknown", "b": "x"}) == 1
    assert registry.get_sample_value("e_total", {"a": "k", "b": "x"}) == 1
    metric.clear()
    router.emit("e", {"b": None})
    assert registry.get_sample_value("e_total", {"a": "unknown", "b": "x"}) == 1


def _samples(registry: Registry, name: str) -> list[Any]:
    return [s for f in registry.collect() for s in f.samples if s.name == name]


# -- switches -------------------------------------------------------------------------------


def test_enabled_flag_and_named_switches(hub: Hub, registry: Registry) -> None:
    router = EventRouter(hub=hub)
    router.counter("x", "plain_total")
    router.counter("x", "gated_total", switch="games")
    router.emit("x", {}, enabled=False)  # the seed's metrics_enabled=MODULE.METRICS_SWITCH
    assert registry.get_sample_value("plain_total") == 0
    meterhub.disable("games")
    router.emit("x", {})
    assert registry.get_sample_value("plain_total") == 1
    assert registry.get_sample_value("gated_total") == 0
    meterhub.enable("games")
    router.emit("x", {})
    assert registry.get_sample_value("gated_total") == 1
    meterhub.disable()  # global switch
    router.emit("x", {})
    meterhub.enable()
    assert registry.get_sample_value("plain_total") == 2


def test_global_switch_stops_routing_not_storing(
    hub: Hub, registry: Registry, tmp_path: Path
) -> None:
    store = SQLiteEventStore(tmp_path / "e.db")
    router = EventRouter(hub=hub, store=store)
    router.counter("x", "x_total")
    meterhub.disable()
    assert router.track_event("u", "x", {})
    meterhub.enable()
    router.close()
    assert registry.get_sample_value("x_total") == 0
    assert store.row_count() == 1


def test_router_switch(hub: Hub, registry: Registry) -> None:
    router = EventRouter(hub=hub, switch="analytics")
    router.counter("x", "x_total")
    meterhub.disable("analytics")
    router.emit("x", {})
    meterhub.enable("analytics")
    router.emit("x", {})
    assert registry.get_sample_value("x_total") == 1


def test_switch_from_environment(hub: Hub, registry: Registry) -> None:
    meterhub.configure(env={"METERHUB_DISABLED_SWITCHES": "games"}, strict=True)
    router = EventRouter(hub=hub)
    router.counter("x", "x_total", switch="games")
    router.emit("x", {})
    assert registry.get_sample_value("x_total") == 0


# -- rate limits ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_router_wide_rate_limit(hub: Hub, registry: Registry) -> None:
    clock = FakeClock()
    router = EventRouter(hub=hub, max_per_minute=100, clock=clock)
    router.counter("a", "a_total")
    router.counter("b", "b_total")
    for _ in range(150):
        router.emit("a", {})
    router.emit("b", {})  # another type has its own bucket
    assert registry.get_sample_value("a_total") == 100
    assert registry.get_sample_value("b_total") == 1
    dropped = {"event_type": "a", "reason": "rate_limited"}
    assert registry.get_sample_value("meterhub_events_dropped_total", dropped) == 50
    clock.now += 30  # half a minute refills half the bucket
    for _ in range(60):
        router.emit("a", {})
    assert registry.get_sample_value("a_total") == 150
    assert registry.get_sample_value("meterhub_events_dropped_total", dropped) == 60


@pytest.mark.extra("yaml")
def test_rule_rate_limit_limits_the_event_type(
    hub: Hub, registry: Registry, tmp_path: Path
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "max_per_minute: 1000\n"
        "events:\n"
        "  spam:\n"
        "    - counter: spam_total\n"
        "      max_per_minute: 5\n"
        "    - counter: spam2_total\n"
    )
    router = EventRouter.from_file(path, hub=hub, clock=FakeClock())
    for _ in range(9):
        router.emit("spam", {})
    assert registry.get_sample_value("spam_total") == 5
    assert registry.get_sample_value("spam2_total") == 5
    assert (
        registry.get_sample_value(
            "meterhub_events_dropped_total", {"event_type": "spam", "reason": "rate_limited"}
        )
        == 4
    )


def test_rate_limited_events_are_not_stored(hub: Hub, registry: Registry, tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "e.db")
    router = EventRouter(hub=hub, store=store, clock=FakeClock())
    router.counter("a", "a_total")
    router.rate_limit("a", 3)
    results = [router.track_event("u", "a", {}) for _ in range(5)]
    router.close()
    assert results == [True, True, True, False, False]
    assert store.row_count() == 3
    assert registry.get_sample_value("a_total") == 3


# -- unknown types, handlers, errors --------------------------------------------------------


def test_unknown_types_counted_with_bounded_label(hub: Hub, registry: Registry) -> None:
    router = EventRouter(hub=hub, max_unmapped_types=2)
    for t in ("t1", "t2", "t3", "t4", "t1"):
        router.emit(t, {})
    router.emit(None, {})  # type: ignore[arg-type]
    router.emit(["unhashable"], {})  # type: ignore[arg-type]
    got = {
        s.labels["event_type"]: s.value
        for s in _samples(registry, "meterhub_events_unmapped_total")
    }
    assert got == {"t1": 2, "t2": 1, "__other__": 2, "__invalid__": 2}


def test_handler_decorator(hub: Hub, registry: Registry) -> None:
    router = EventRouter(hub=hub)
    seen: list[Mapping[str, Any]] = []

    @router.handler("level_up")
    def on_level_up(data: Mapping[str, Any]) -> None:
        seen.append(data)
        if "level" in data:
            hub.set_gauge("max_level", None, data["level"])

    router.emit("level_up", {"level": 7})
    router.emit("level_up", None)  # a None payload is an empty one
    assert seen == [{"level": 7}, {}]
    assert registry.get_sample_value("max_level") == 7
    assert on_level_up.__name__ == "on_level_up"


def test_handler_errors_never_reach_caller(hub: Hub, registry: Registry, lenient: None) -> None:
    router = EventRouter(hub=hub)
    router.counter("x", "x_total")

    @router.handler("x")
    def broken(data: Mapping[str, Any]) -> None:
        raise RuntimeError("boom")

    router.emit("x", {})
    router.emit("x", {})
    assert registry.get_sample_value("x_total") == 2
    errors = {"event_type": "x", "reason": "handler_error"}
    assert registry.get_sample_value("meterhub_events_errors_total", errors) == 2


def test_handler_errors_logged_once_per_type_and_reason(
    hub: Hub, lenient: None, caplog: pytest.LogCaptureFixture
) -> None:
    router = EventRouter(hub=hub)

    @router.handler("x")
    def broken(data: Mapping[str, Any]) -> None:
        raise RuntimeError("boom")

    with caplog.at_level("WARNING", logger="meterhub.events"):
        for _ in range(3):
            router.emit("x", {})
    logged = [r.getMessage() for r in caplog.records if "boom" in r.getMessage()]
    assert logged == [
        "meterhub: event 'x': RuntimeError: boom (counted in meterhub_events_errors_total)"
    ]


def test_handler_errors_raise_in_strict_mode(hub: Hub) -> None:
    router = EventRouter(hub=hub)

    @router.handler("x")
    def broken(data: Mapping[str, Any]) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        router.emit("x", {})


def test_bad_values_and_payloads(hub: Hub, registry: Registry, lenient: None) -> None:
    router = EventRouter(hub=hub)
    router.histogram("g", "dur_seconds", value="duration")
    router.counter("g", "g_total", value="n")
    for payload in (
        {"duration": "abc", "n": -1},
        {"duration": math.nan, "n": math.inf},
        {"duration": [1], "n": True},
        {},
    ):
        router.emit("g", payload)
    router.emit("g", ["not", "a", "mapping"])  # type: ignore[arg-type]
    router.emit("g", "text")  # type: ignore[arg-type]
    router.emit("g", {"duration": 1.5, "n": 2})
    assert registry.get_sample_value("dur_seconds_count") == 1
    assert registry.get_sample_value("g_total") == 2

    def errors(reason: str) -> float | None:
        return registry.get_sample_value(
            "meterhub_events_errors_total", {"event_type": "g", "reason": reason}
        )

    assert errors("invalid_value") == 6
    assert errors("missing_value") == 2
    assert errors("invalid_payload") == 2


def test_bad_values_raise_in_strict_mode(hub: Hub) -> None:
    router = EventRouter(hub=hub)
    router.histogram("g", "dur_seconds", value="duration")
    with pytest.raises(RecordingError, match=r"^event 'g': .*duration"):
        router.emit("g", {"duration": "abc"})
    with pytest.raises(RecordingError, match="mapping"):
        router.emit("g", 42)  # type: ignore[arg-type]
    router.emit("g", {})  # a missing field is data, not a bug: counted even in strict mode
    assert (
        router.registry.get_sample_value(
            "meterhub_events_errors_total", {"event_type": "g", "reason": "missing_value"}
        )
        == 1
    )


# -- definition mistakes --------------------------------------------------------------------


def test_definition_errors(hub: Hub, registry: Registry) -> None:
    router = EventRouter(hub=hub)
    with pytest.raises(DefinitionError, match="PII"):
        router.counter("login", "logins_total", labels={"user_id": "unknown"})
    with pytest.raises(DefinitionError, match="invalid metric name"):
        router.counter("login", "bad-name")
    with pytest.raises(DefinitionError, match="needs the payload field"):
        router.add_rule(meterhub.events.Rule("e", meterhub.events.RuleKind.HISTOGRAM, "h_seconds"))
    with pytest.raises(DefinitionError, match="non-empty"):
        router.counter("", "x_total")
    with pytest.raises(DefinitionError, match="invalid label name"):
        router.counter("e", "x_total", labels={"1bad": "x"})
    Counter("taken", "Taken.", ["other"], registry=registry)
    with pytest.raises(DefinitionError, match=r"rule for event 'e'.*taken"):
        router.counter("e", "taken_total", labels={"mine": "x"})
    with pytest.raises(DefinitionError, match="positive int"):
        router.rate_limit("e", 0)
    with pytest.raises(DefinitionError):
        router.handler("")
    with pytest.raises(DefinitionError, match="callable"):
        router.handler("e")(42)  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="positive int"):
        EventRouter(hub=hub, max_per_minute=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Hub"):
        EventRouter(hub=registry)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="EventStore"):
        EventRouter(hub=hub, store=object())  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="needs a router with a store"):
        router.track_event("u", "e", {})


def test_user_id_is_stored_never_a_label(hub: Hub, registry: Registry, tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "e.db")
    router = seed_router_python(hub, store=store)
    router.track_event("alice@example.com", "user_logged_in", {"auth_method": "email"})
    router.close()
    text = generate_latest(registry).decode()
    assert "alice" not in text
    [event] = store.latest(1)
    assert event.user_id == "alice@example.com"
    assert event.data == {"auth_method": "email"}
    assert event.timestamp.utcoffset() is not None and event.timestamp.utcoffset().seconds == 0


# -- hypothesis: hostile payloads -----------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.text(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)
payloads = st.dictionaries(
    st.sampled_from(["game_mode", "result", "duration", "other"]) | st.text(max_size=5),
    scalars,
    max_size=5,
)


@pytest.fixture
def lenient_router() -> Iterator[tuple[EventRouter, Registry]]:
    meterhub.configure(strict=False)
    reg = Registry(self_metrics=False)
    yield seed_router_python(Hub(registry=reg)), reg


@settings(
    max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=st.lists(payloads, max_size=20))
def test_hostile_payloads_never_raise_and_render(
    lenient_router: tuple[EventRouter, Registry], events: list[dict[str, Any]]
) -> None:
    router, reg = lenient_router
    before = _total(reg, "games_completed_total")
    for data in events:
        router.emit("game_completed", data)
    # every event is counted exactly once, whatever its payload
    assert _total(reg, "games_completed_total") == before + len(events)
    text = generate_latest(reg).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    rendered = {
        (s.labels["game_mode"], s.labels["result"])
        for s in families["games_completed"].samples
        if s.name == "games_completed_total"
    }
    for data in events:
        mode, result = data.get("game_mode"), data.get("result")
        key = (
            "unknown" if mode is None else str(mode),
            "unknown" if result is None else str(result),
        )
        assert key in rendered


def _total(reg: Registry, name: str) -> float:
    return sum(s.value for s in _samples(reg, name))


# -- concurrency ----------------------------------------------------------------------------


def test_threads_exact_totals(hub: Hub, registry: Registry) -> None:
    """8 threads x 100k emits -> exact totals (no update lost between threads)."""
    router = seed_router_python(hub)
    n, threads = 100_000, 8
    barrier = threading.Barrier(threads)

    def work(i: int) -> None:
        data = {"game_mode": f"m{i % 2}", "result": "win", "duration": 1.0}
        barrier.wait()
        for _ in range(n):
            router.emit("game_completed", data)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for mode in ("m0", "m1"):
        assert (
            registry.get_sample_value("games_completed_total", {"game_mode": mode, "result": "win"})
            == n * threads / 2
        )
        assert (
            registry.get_sample_value("game_duration_seconds_count", {"game_mode": mode})
            == n * threads / 2
        )
