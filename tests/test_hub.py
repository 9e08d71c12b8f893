"""The hub facade, switches, PII guard and the series cap."""

from __future__ import annotations

import pytest

import meterhub
from meterhub import Counter, DefinitionError, Histogram, Hub, RecordingError, Registry


@pytest.fixture
def h(registry: Registry) -> Hub:
    return Hub(registry=registry)


def test_metrics_created_on_first_use(h: Hub, registry: Registry) -> None:
    h.inc_counter("jira_calls_total", {"operation": "create_issue", "status": "ok"})
    h.inc_counter("jira_calls_total", {"status": "ok", "operation": "create_issue"}, 2)
    h.set_gauge("queue_depth", None, 5)
    h.observe("sync_duration_seconds", {"source": "jira"}, 0.3)
    assert (
        registry.get_sample_value("jira_calls_total", {"operation": "create_issue", "status": "ok"})
        == 3
    )
    assert registry.get_sample_value("queue_depth") == 5
    assert registry.get_sample_value("sync_duration_seconds_count", {"source": "jira"}) == 1


def test_type_and_labels_fixed_by_first_use(h: Hub, registry: Registry) -> None:
    h.inc_counter("x_total", {"a": "1"})
    with pytest.raises(DefinitionError, match="first used as a Counter"):
        h.set_gauge("x_total", {"a": "1"}, 1)
    with pytest.raises(RecordingError):
        h.inc_counter("x_total", {"b": "1"})
    with pytest.raises(RecordingError):
        h.inc_counter("x_total")


def test_hub_lenient_errors_counted(h: Hub, registry: Registry, lenient: None) -> None:
    reg = Registry()
    hub2 = Hub(registry=reg, namespace="app")
    hub2.inc_counter("calls_total", {"a": "1"})
    hub2.inc_counter("calls_total", {"b": "1"})
    hub2.inc_counter("calls_total", {"a": "1"}, -5)
    assert reg.get_sample_value("app_calls_total", {"a": "1"}) == 1
    assert (
        reg.get_sample_value(
            "meterhub_errors_total", {"metric": "app_calls", "reason": "label_names"}
        )
        == 1
    )


def test_hub_pii_label_refused(h: Hub) -> None:
    with pytest.raises(ValueError, match="PII"):
        h.inc_counter("logins_total", {"user_id": "42"})


def test_global_switch(registry: Registry) -> None:
    c = Counter("c", "C.", registry=registry)
    c.inc()
    meterhub.disable()
    assert not meterhub.is_enabled()
    c.inc(100)
    Counter("late", "L.", registry=registry).inc()  # created while off: records nothing
    meterhub.enable()
    c.inc()
    assert registry.get_sample_value("c_total") == 2
    assert registry.get_sample_value("late_total") == 0


def test_named_switch(registry: Registry) -> None:
    feeds = Counter("feeds", "F.", ["src"], registry=registry, switch="feeds")
    other = Counter("other", "O.", registry=registry)
    child = feeds.labels("rss")
    meterhub.disable("feeds")
    child.inc()
    feeds.labels("atom").inc()
    other.inc()
    meterhub.enable("feeds")
    child.inc()
    assert registry.get_sample_value("feeds_total", {"src": "rss"}) == 1
    assert registry.get_sample_value("feeds_total", {"src": "atom"}) == 0
    assert registry.get_sample_value("other_total") == 1


def test_disabled_switches_from_environment(registry: Registry) -> None:
    meterhub.configure(env={"METERHUB_DISABLED_SWITCHES": "feeds, billing"}, strict=True)
    c = Counter("b", "B.", registry=registry, switch="billing")
    c.inc()
    assert registry.get_sample_value("b_total") == 0
    assert not meterhub.is_enabled("feeds") and meterhub.is_enabled("other")


def test_enabled_false_from_environment(registry: Registry) -> None:
    meterhub.configure(env={"METERHUB_ENABLED": "false"})
    c = Histogram("h", "H.", registry=registry)
    c.observe(1)
    assert registry.get_sample_value("h_count") == 0


def test_series_cap_folds_into_overflow(lenient: None) -> None:
    reg = Registry()
    c = Counter("ids", "I.", ["id"], registry=reg, max_series=1000)
    for i in range(100_000):
        c.labels(str(i)).inc()
    series = next(iter(c.collect())).series
    assert len(series) == 1001
    assert reg.get_sample_value("ids_total", {"id": "__overflow__"}) == 99_000
    assert reg.get_sample_value("meterhub_series_dropped_total", {"metric": "ids"}) == 99_000


def test_series_cap_from_configuration() -> None:
    meterhub.configure(max_series=3)
    reg = Registry()
    c = Counter("x", "X.", ["k"], registry=reg)
    for k in "abcde":
        c.labels(k).inc()
    assert reg.get_sample_value("x_total", {"k": "__overflow__"}) == 2


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="METERHUB_STRICT"):
        meterhub.configure(env={"METERHUB_STRICT": "maybe"})
    with pytest.raises(ValueError, match="METERHUB_TEXTFILE_INTERVAL"):
        meterhub.configure(env={"METERHUB_TEXTFILE_INTERVAL": "-1"})
    with pytest.raises(ValueError, match="METERHUB_MAX_SERIES"):
        meterhub.configure(env={"METERHUB_MAX_SERIES": "many"})
    with pytest.raises(TypeError, match="unknown meterhub setting"):
        meterhub.configure(bogus=1)
    with pytest.raises(ValueError, match="switch name"):
        meterhub.disable("")
    cfg = meterhub.configure(
        env={
            "METERHUB_TEXTFILE_PATH": "/tmp/x.prom",
            "METERHUB_TEXTFILE_INTERVAL": "2.5",
            "METERHUB_CREATED": "yes",
        }
    )
    assert (cfg.textfile_path, cfg.textfile_interval, cfg.created) == ("/tmp/x.prom", 2.5, True)


def test_meterhub_hub_is_one_thing_the_default_instance() -> None:
    import importlib
    import sys

    from meterhub import hub

    assert isinstance(meterhub.hub, Hub) and hub is meterhub.hub
    assert hub.registry is meterhub.REGISTRY
    # No module of that name hides behind the instance (the code lives in meterhub._hub).
    assert "meterhub.hub" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("meterhub.hub")
