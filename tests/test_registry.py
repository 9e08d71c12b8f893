"""Registry, custom collectors and the default collectors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import prometheus_client
import pytest

from meterhub import (
    REGISTRY,
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    MetricFamily,
    Registry,
    StateSetMetricFamily,
    SummaryMetricFamily,
    UnknownMetricFamily,
    generate_latest,
)


class Custom:
    def collect(self) -> Iterator[Any]:
        c = CounterMetricFamily("tasks_total", "Tasks.", labels=["queue"])
        c.add_metric(["mail"], 3, created=100.0)
        yield c
        yield GaugeMetricFamily("temperature_celsius", "T.", value=21.5)
        h = HistogramMetricFamily("size_bytes", "S.", labels=["k"])
        h.add_metric(["a"], [("1.0", 1), ("+Inf", 3)], sum_value=10)
        yield h
        yield SummaryMetricFamily("rt_seconds", "R.", count_value=2, sum_value=0.5)
        yield InfoMetricFamily("app", "A.", value={"version": "2"})
        yield StateSetMetricFamily("mode", "M.", value={"on": True, "off": False})
        yield UnknownMetricFamily("mystery", "?", value=7)


def test_custom_collector_families() -> None:
    reg = Registry(self_metrics=False)
    reg.register(Custom())
    g = reg.get_sample_value
    assert g("tasks_total", {"queue": "mail"}) == 3
    assert g("temperature_celsius") == 21.5
    assert g("size_bytes_bucket", {"k": "a", "le": "1.0"}) == 1
    assert g("size_bytes_count", {"k": "a"}) == 3
    assert g("rt_seconds_sum") == 0.5
    assert g("app_info", {"version": "2"}) == 1
    assert g("mode", {"mode": "off"}) == 0
    assert g("mystery") == 7
    text = generate_latest(reg).decode()
    assert 'tasks_total{queue="mail"} 3\n' in text
    assert "# TYPE mystery untyped" in text


def test_prometheus_client_collectors_are_accepted() -> None:
    """A collector written for prometheus_client works unchanged."""

    class Old:
        def collect(self) -> Iterator[Any]:
            from prometheus_client.core import CounterMetricFamily as PCF

            yield PCF("legacy", "Legacy.", value=4)

    reg = Registry(self_metrics=False)
    reg.register(Old())
    assert reg.get_sample_value("legacy_total") == 4


def test_register_conflicts_and_unregister() -> None:
    reg = CollectorRegistry(self_metrics=False)

    class Described:
        def describe(self) -> Iterator[Any]:
            yield GaugeMetricFamily("busy", "B.")

        def collect(self) -> Iterator[Any]:
            yield GaugeMetricFamily("busy", "B.", value=1)

    d = Described()
    reg.register(d)
    with pytest.raises(ValueError, match="already registered"):
        reg.register(d)
    with pytest.raises(ValueError, match="duplicated timeseries"):
        reg.register(Described())
    reg.unregister(d)
    reg.register(Described())
    with pytest.raises(TypeError, match="collect"):
        reg.register(object())


def test_collect_returns_immutable_snapshots() -> None:
    reg = Registry(self_metrics=False)
    reg.register(Custom())
    families = list(reg.collect())
    assert all(isinstance(f, MetricFamily) for f in families)
    with pytest.raises(AttributeError):
        families[0].name = "x"  # type: ignore[misc]
    assert [f.name for f in reg.collect(names=["temperature_celsius"])] == ["temperature_celsius"]
    # as prometheus_client: collectors without names are collected only when asked to
    assert list(reg.restricted_registry(["tasks_total"]).collect()) == []
    reg = Registry(support_collectors_without_names=True)
    reg.register(Custom())
    [tasks] = reg.restricted_registry(["tasks_total"]).collect()
    assert tasks.name == "tasks" and [s.name for s in tasks.samples] == ["tasks_total"]


def test_default_collectors_match_prometheus_client_names() -> None:
    ours = {s.name for f in REGISTRY.collect() for s in f.samples}
    theirs = {s.name for f in prometheus_client.REGISTRY.collect() for s in f.samples}
    theirs = {n for n in theirs if n.startswith(("process_", "python_"))}
    assert theirs <= ours
    assert REGISTRY.get_sample_value("process_resident_memory_bytes")  # non-zero
    assert REGISTRY.get_sample_value("python_gc_collections_total", {"generation": "0"}) >= 0


def test_target_info() -> None:
    reg = Registry(self_metrics=False, target_info={"service": "api"})
    assert reg.get_sample_value("target_info", {"service": "api"}) == 1
