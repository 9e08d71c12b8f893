"""Every metric type and method, as prometheus_client users call them."""

from __future__ import annotations

import asyncio
import time

import pytest

from meterhub import Counter, Enum, Gauge, Histogram, Info, Registry, Summary


def value(reg: Registry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


def test_counter_unlabeled_and_labeled(registry: Registry) -> None:
    c = Counter("jobs", "Jobs.", registry=registry)
    c.inc()
    c.inc(2.5)
    assert value(registry, "jobs_total") == 3.5
    lc = Counter("hits_total", "Hits.", ["path", "code"], registry=registry)
    lc.labels("/a", "200").inc()
    lc.labels(path="/a", code="200").inc()
    lc.labels("/b", 404).inc()  # non-str values are converted like prometheus_client
    assert value(registry, "hits_total", path="/a", code="200") == 2
    assert value(registry, "hits_total", path="/b", code="404") == 1
    assert lc.name == "hits"


def test_namespace_subsystem_unit(registry: Registry) -> None:
    h = Histogram(
        "latency", "L.", namespace="shop", subsystem="api", unit="seconds", registry=registry
    )
    h.observe(1)
    assert value(registry, "shop_api_latency_seconds_count") == 1
    g = Gauge("size_bytes", "S.", unit="bytes", registry=registry)
    assert g.name == "size_bytes"  # unit not appended twice


def test_counter_count_exceptions_sync_async(registry: Registry) -> None:
    c = Counter("failures", "F.", registry=registry)
    with pytest.raises(KeyError), c.count_exceptions(KeyError):
        raise KeyError("x")
    with pytest.raises(ValueError), c.count_exceptions(KeyError):
        raise ValueError("not counted")

    @c.count_exceptions()
    def boom() -> None:
        raise RuntimeError

    @c.count_exceptions()
    async def aboom() -> None:
        raise RuntimeError

    with pytest.raises(RuntimeError):
        boom()
    with pytest.raises(RuntimeError):
        asyncio.run(aboom())
    assert value(registry, "failures_total") == 3


def test_gauge_methods(registry: Registry) -> None:
    g = Gauge("temp", "T.", registry=registry)
    g.set(10)
    g.inc()
    g.dec(3)
    assert value(registry, "temp") == 8
    before = time.time()
    g.set_to_current_time()
    assert value(registry, "temp") >= before  # type: ignore[operator]
    g.set_function(lambda: 42)
    assert value(registry, "temp") == 42
    g.set(float("inf"))  # gauges may hold any float
    g.set_function(lambda: float("nan"))


def test_gauge_track_inprogress_and_time(registry: Registry) -> None:
    g = Gauge("inflight", "I.", registry=registry)
    seen: list[float | None] = []

    @g.track_inprogress()
    def work() -> None:
        seen.append(value(registry, "inflight"))

    @g.track_inprogress()
    async def awork() -> None:
        seen.append(value(registry, "inflight"))

    work()
    asyncio.run(awork())
    with g.track_inprogress():
        seen.append(value(registry, "inflight"))
    assert seen == [1, 1, 1]
    assert value(registry, "inflight") == 0
    d = Gauge("last_duration_seconds", "D.", registry=registry)
    with d.time():
        time.sleep(0.01)
    assert value(registry, "last_duration_seconds") >= 0.01  # type: ignore[operator]


def test_histogram_buckets_and_time(registry: Registry) -> None:
    h = Histogram("req_seconds", "R.", ["route"], buckets=[0.1, 0.5, 1], registry=registry)
    child = h.labels("/x")
    for v in (0.05, 0.1, 0.3, 2, -1):
        child.observe(v)
    assert value(registry, "req_seconds_bucket", route="/x", le="0.1") == 3
    assert value(registry, "req_seconds_bucket", route="/x", le="0.5") == 4
    assert value(registry, "req_seconds_bucket", route="/x", le="1.0") == 4
    assert value(registry, "req_seconds_bucket", route="/x", le="+Inf") == 5
    assert value(registry, "req_seconds_count", route="/x") == 5
    assert value(registry, "req_seconds_sum", route="/x") == pytest.approx(1.45)

    @h.labels("/y").time()
    async def handler() -> str:
        await asyncio.sleep(0.01)
        return "ok"

    assert asyncio.run(handler()) == "ok"
    assert value(registry, "req_seconds_count", route="/y") == 1
    with h.labels("/z").time():
        pass
    assert value(registry, "req_seconds_count", route="/z") == 1


def test_summary(registry: Registry) -> None:
    s = Summary("payload_bytes", "P.", registry=registry)
    s.observe(10)
    s.observe(5.5)
    assert value(registry, "payload_bytes_count") == 2
    assert value(registry, "payload_bytes_sum") == 15.5

    @s.time()
    def f() -> int:
        return 1

    assert f() == 1
    assert value(registry, "payload_bytes_count") == 3


def test_info_and_enum(registry: Registry) -> None:
    i = Info("build", "Build.", ["service"], registry=registry)
    i.labels("api").info({"version": "1.0", "commit": "abc"})
    i.labels("api").info({"version": "1.1", "commit": "def"})  # replaces
    assert value(registry, "build_info", service="api", version="1.1", commit="def") == 1
    assert value(registry, "build_info", service="api", version="1.0", commit="abc") is None
    e = Enum("door", "Door.", states=["open", "closed"], registry=registry)
    assert value(registry, "door", door="open") == 1  # the first state is the default
    e.state("closed")
    assert value(registry, "door", door="open") == 0
    assert value(registry, "door", door="closed") == 1


def test_remove_and_clear(registry: Registry) -> None:
    c = Counter("c", "C.", ["a"], registry=registry)
    c.labels("x").inc()
    c.labels("y").inc()
    c.remove("x")
    assert value(registry, "c_total", a="x") is None
    assert value(registry, "c_total", a="y") == 1
    c.labels("x").inc()  # a removed series starts again from zero
    assert value(registry, "c_total", a="x") == 1
    c.clear()
    assert [f.series for f in c.collect()] == [()]
    i = Info("i", "I.", ["a"], registry=registry)
    i.labels("x").info({"v": "1"})
    i.remove("x")
    assert value(registry, "i_info", a="x", v="1") is None


def test_identical_redeclaration_returns_existing(registry: Registry) -> None:
    a = Histogram("h", "H.", ["x"], buckets=[1, 2], registry=registry)
    b = Histogram("h", "H.", ["x"], buckets=[1, 2], registry=registry)
    assert a is b
    assert Counter("n_total", "N.", registry=registry) is Counter("n", "N.", registry=registry)


def test_unregistered_metric(registry: Registry) -> None:
    c = Counter("free", "F.", registry=None)
    c.inc()
    assert [f.series[0].values for f in c.collect()] == [(1.0,)]


def test_created_samples_opt_in(registry: Registry) -> None:
    import meterhub

    before = Counter("before", "B.", registry=registry)
    before.inc()
    assert value(registry, "before_created") is None
    meterhub.configure(created=True, strict=True)
    made = Counter("made", "M.", ["k"], registry=registry)
    made.labels("a").inc()
    created = value(registry, "made_created", k="a")
    assert created is not None and abs(created - time.time()) < 60
    # A series created while _created samples were off has no timestamp to show.
    assert value(registry, "before_created") is None


def test_label_values_of_any_type_become_strings(registry: Registry) -> None:
    c = Counter("odd", "O.", ["v"], registry=registry)
    c.labels(["a", 1]).inc()
    c.labels(v=None).inc()
    c.labels(3.5).inc()
    assert value(registry, "odd_total", v="['a', 1]") == 1
    assert value(registry, "odd_total", v="None") == 1
    assert value(registry, "odd_total", v="3.5") == 1
