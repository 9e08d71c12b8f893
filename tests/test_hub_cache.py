"""The hub's child cache (issue 19): a repeated ``hub.inc_counter(name, labels)`` skips
``labels()``, and nothing it records may differ from what ``labels(**labels)`` records.

Each test drives real metrics through the hub and reads back what a scrape sees: switches,
strict and lenient errors, the series cap, the PII guard, ``remove()``/``clear()``,
configuration changes, threads, fork in multi-process mode, the cache's bound.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import meterhub
from meterhub import Counter, Gauge, Histogram, Hub, RecordingError, Registry, generate_latest
from meterhub.store.mmap import MultiProcessStore

ctx = multiprocessing.get_context("fork")


def cached(h: Hub, name: str) -> dict[Any, Any]:
    return h._entries[name].series


# -- the differential test: the hub against labels(**kw), call by call -------------------

LABEL_VALUES = st.sampled_from(["x", "y", "z", "", "é", 1, 1.0, True, 200, "200"])
LABELS = st.one_of(
    st.tuples(LABEL_VALUES, LABEL_VALUES).map(lambda v: {"a": v[0], "b": v[1]}),
    st.tuples(LABEL_VALUES, LABEL_VALUES).map(lambda v: {"b": v[1], "a": v[0]}),
    LABEL_VALUES.map(lambda v: {"a": v}),  # a missing name
    LABEL_VALUES.map(lambda v: {"a": v, "b": v, "c": v}),  # an extra name
    st.just({"b": "x", "c": "y"}),  # a wrong name
)
VALUES = st.sampled_from([1.0, 2, 0.5, -1.0, float("nan"), 1e300])
OPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["inc", "set", "observe"]), LABELS, VALUES),
        st.tuples(st.just("remove"), st.sampled_from(["inc", "set", "observe"]), LABELS),
        st.tuples(st.just("clear"), st.sampled_from(["inc", "set", "observe"])),
        st.tuples(st.sampled_from(["disable", "enable"])),
    ),
    max_size=60,
)
KINDS = {"inc": Counter, "set": Gauge, "observe": Histogram}
NAMES = {"inc": "calls_total", "set": "depth", "observe": "latency_seconds"}


def _reference(reg: Registry) -> dict[str, Any]:
    # what the hub creates on first use ("a", "b" sorted), made directly
    return {
        op: KINDS[op](NAMES[op], f"{NAMES[op]} (recorded through the meterhub hub)", ["a", "b"],
                      registry=reg)
        for op in KINDS
    }  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(ops=OPS)
def test_the_hub_records_what_labels_kw_records(ops: list[tuple[Any, ...]]) -> None:
    meterhub.reset_defaults()
    meterhub.configure(strict=False, max_series=4)
    ours, theirs = Registry(self_metrics=True), Registry(self_metrics=True)
    h = Hub(registry=ours)
    for op in KINDS:  # first use fixes the label names, as for the reference
        getattr(h, {"inc": "inc_counter", "set": "set_gauge", "observe": "observe"}[op])(
            NAMES[op], {"a": "x", "b": "x"}, 1
        )
    ref = _reference(theirs)
    for op in KINDS:
        getattr(ref[op].labels(a="x", b="x"), op)(1)
    try:
        for step in ops:
            if step[0] in KINDS:
                op, labels, value = step
                method = {"inc": h.inc_counter, "set": h.set_gauge, "observe": h.observe}[op]
                method(NAMES[op], labels, value)
                getattr(ref[op].labels(**labels), op)(value)
            elif step[0] == "remove":
                _, op, labels = step
                values = [labels.get("a", "x"), labels.get("b", "x")]
                h._entries[NAMES[op]].metric.remove(*values)
                ref[op].remove(*values)
            elif step[0] == "clear":
                h._entries[NAMES[step[1]]].metric.clear()
                ref[step[1]].clear()
            else:
                getattr(meterhub, step[0])()
        assert generate_latest(ours) == generate_latest(theirs)
        for op in KINDS:  # every cached entry is the live series of its values
            entry = h._entries[NAMES[op]]
            for key, child in entry.series.items():
                values = tuple(dict(key)[n] for n in ("a", "b"))
                assert entry.metric.children.get(values) is child
    finally:
        meterhub.reset_defaults()


# -- each rule, one at a time ---------------------------------------------------------------


@pytest.fixture
def h(registry: Registry) -> Hub:
    return Hub(registry=registry)


def test_a_repeated_call_is_served_by_the_cache(h: Hub, registry: Registry) -> None:
    for _ in range(3):
        h.inc_counter("jobs_total", {"queue": "default", "state": "ok"})
        h.set_gauge("depth", {"queue": "default"}, 7.0)
        h.observe("wait_seconds", {"queue": "default"}, 0.2)
        h.inc_counter("ticks_total")
    assert list(cached(h, "jobs_total")) == [(("queue", "default"), ("state", "ok"))]
    assert list(cached(h, "ticks_total")) == [()]
    assert registry.get_sample_value("jobs_total", {"queue": "default", "state": "ok"}) == 3
    assert registry.get_sample_value("depth", {"queue": "default"}) == 7.0
    assert registry.get_sample_value("wait_seconds_count", {"queue": "default"}) == 3
    assert registry.get_sample_value("ticks_total") == 3
    h.inc_counter("ticks_total", {})  # {} is no labels, like None
    assert registry.get_sample_value("ticks_total") == 4


def test_values_that_are_not_str_are_converted_every_time(h: Hub, registry: Registry) -> None:
    # 1 == 1.0 == True: one cache entry would record all three into one series
    for v in (1, 1.0, True, 1, "1"):
        h.inc_counter("flags_total", {"v": v})
    assert registry.get_sample_value("flags_total", {"v": "1"}) == 3
    assert registry.get_sample_value("flags_total", {"v": "1.0"}) == 1
    assert registry.get_sample_value("flags_total", {"v": "True"}) == 1
    assert list(cached(h, "flags_total")) == [(("v", "1"),)]


def test_strict_mode_raises_on_every_wrong_call(h: Hub) -> None:
    h.inc_counter("x_total", {"a": "1"})
    for _ in range(2):
        with pytest.raises(RecordingError, match="expected"):
            h.inc_counter("x_total", {"b": "1"})
        with pytest.raises(RecordingError):
            h.inc_counter("x_total")
        with pytest.raises(RecordingError, match="refused"):
            h.inc_counter("x_total", {"a": "1"}, -1)  # the cached child still checks
        with pytest.raises(meterhub.DefinitionError, match="first used as a Counter"):
            h.set_gauge("x_total", {"a": "1"}, 1)
    h.set_gauge("plain", None, 1)
    with pytest.raises(RecordingError, match="first used without labels"):
        h.set_gauge("plain", {"a": "1"}, 1)


def test_lenient_errors_are_counted_on_every_call(lenient: None) -> None:
    reg = Registry(self_metrics=True)
    h = Hub(registry=reg)
    h.inc_counter("calls_total", {"a": "1"})
    for _ in range(3):
        h.inc_counter("calls_total", {"b": "1"})
        h.inc_counter("calls_total", {"a": "1"}, float("nan"))
    assert reg.get_sample_value("calls_total", {"a": "1"}) == 1
    errors = {"metric": "calls", "reason": "label_names"}
    assert reg.get_sample_value("meterhub_errors_total", errors) == 3
    nan = {"metric": "calls", "reason": "nan"}
    assert reg.get_sample_value("meterhub_errors_total", nan) == 3


def test_switches_and_configuration_changes(h: Hub, registry: Registry) -> None:
    labels = {"k": "v"}
    h.inc_counter("c_total", labels)
    h.observe("o_seconds", labels, 0.1)
    meterhub.disable()
    h.inc_counter("c_total", labels, 100)  # cached: the child records into scratch now
    h.observe("o_seconds", labels, 100)
    meterhub.enable()
    h.inc_counter("c_total", labels)
    meterhub.configure(enabled=False, strict=True)
    h.inc_counter("c_total", labels, 100)
    meterhub.reset_defaults()  # enabled again
    meterhub.configure(strict=True)
    h.inc_counter("c_total", labels)
    assert registry.get_sample_value("c_total", labels) == 3
    assert registry.get_sample_value("o_seconds_count", labels) == 1
    meterhub.configure(max_series=1, strict=True)  # a metric's cap is fixed when it is made
    h.inc_counter("c_total", {"k": "w"})
    assert registry.get_sample_value("c_total", {"k": "w"}) == 1


def test_the_series_cap_and_its_dropped_count_apply_on_every_call(lenient: None) -> None:
    meterhub.configure(strict=False, max_series=2)
    reg = Registry(self_metrics=True)
    h = Hub(registry=reg)
    for i in range(5):
        for _ in range(2):
            h.inc_counter("ids_total", {"id": str(i)})
    assert reg.get_sample_value("ids_total", {"id": "0"}) == 2
    assert reg.get_sample_value("ids_total", {"id": "__overflow__"}) == 6
    assert reg.get_sample_value("meterhub_series_dropped_total", {"metric": "ids"}) == 6
    assert sorted(cached(h, "ids_total")) == [(("id", "0"),), (("id", "1"),)]


def test_pii_label_names_are_refused_at_first_use(h: Hub) -> None:
    with pytest.raises(ValueError, match="PII"):
        h.inc_counter("logins_total", {"user_id": "42"})
    with pytest.raises(ValueError, match="PII"):
        h.inc_counter("logins_total", {"user_id": "42"})
    assert "logins_total" not in h._entries


def test_remove_and_clear_reach_through_the_cache(h: Hub, registry: Registry) -> None:
    labels = {"route": "/a"}
    h.inc_counter("hits_total", labels, 5)
    metric = h._entries["hits_total"].metric
    old = metric.children[("/a",)]
    metric.remove("/a")
    h.inc_counter("hits_total", labels)
    assert registry.get_sample_value("hits_total", labels) == 1
    assert old.active_cell[0] == 5  # the removed child got nothing more
    h.inc_counter("hits_total", {"route": "/b"})
    metric.clear()
    h.inc_counter("hits_total", labels)
    assert registry.get_sample_value("hits_total", labels) == 1
    assert registry.get_sample_value("hits_total", {"route": "/b"}) is None
    metric.remove_by_labels({"route": "/a"})
    assert cached(h, "hits_total") == {}


def test_a_series_removed_while_it_is_being_cached_is_not_kept(h: Hub) -> None:
    # The race remove() can win between labels() and the cache write: replayed in order.
    h.inc_counter("hits_total", {"route": "/a"})
    entry = h._entries["hits_total"]
    stale = entry.metric.children[("/a",)]
    entry.metric.remove("/a")
    h._remember(entry, (("route", "/a"),), ("/a",), stale)
    assert cached(h, "hits_total") == {}


def test_threads_recording_while_series_are_removed(h: Hub, registry: Registry) -> None:
    stop = threading.Event()
    labels = [{"k": str(i)} for i in range(4)]

    def record() -> None:
        while not stop.is_set():
            for lab in labels:
                h.inc_counter("busy_total", lab)

    threads = [threading.Thread(target=record) for _ in range(4)]
    for t in threads:
        t.start()
    h.inc_counter("busy_total", labels[0])
    metric = h._entries["busy_total"].metric
    for i in range(300):
        metric.remove(str(i % 4))
        if i % 50 == 0:
            metric.clear()
    stop.set()
    for t in threads:
        t.join()
    for key, child in cached(h, "busy_total").items():
        assert metric.children.get((dict(key)["k"],)) is child
    before = registry.get_sample_value("busy_total", labels[1]) or 0.0
    h.inc_counter("busy_total", labels[1])
    assert registry.get_sample_value("busy_total", labels[1]) == before + 1


def test_exact_totals_from_threads(h: Hub, registry: Registry) -> None:
    def record() -> None:
        for _ in range(20_000):
            h.inc_counter("n_total", {"a": "1", "b": "2"})
            h.inc_counter("n_total", {"b": "2", "a": "1"})

    threads = [threading.Thread(target=record) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert registry.get_sample_value("n_total", {"a": "1", "b": "2"}) == 160_000


def test_the_cache_is_bounded_by_the_series_and_the_orders_of_names(lenient: None) -> None:
    meterhub.configure(strict=False, max_series=50)
    h = Hub(registry=Registry())
    for i in range(5_000):  # hostile values: beyond the cap they all fold into the overflow
        h.inc_counter("hostile_total", {"a": f"v{i}", "b": "x"})
        h.inc_counter("hostile_total", {"b": "x", "a": f"v{i}"})
    metric = h._entries["hostile_total"].metric
    assert len(metric.children) == 51
    assert len(cached(h, "hostile_total")) <= 2 * len(metric.children) + 16


def _in_forked_children(n: int, work: Any) -> None:
    procs = [ctx.Process(target=work) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0


def test_a_forked_child_records_into_its_own_cells(tmp_path: Path) -> None:
    store = MultiProcessStore(tmp_path)
    reg = Registry(store=store, self_metrics=False)
    h = Hub(registry=reg)
    labels = {"job": "sync"}
    h.inc_counter("runs_total", labels, 2)  # cached in the parent before the fork
    h.observe("run_seconds", labels, 0.5)
    child = h._entries["runs_total"].metric.children[("sync",)]

    def work() -> None:
        for _ in range(100):
            h.inc_counter("runs_total", labels)
            h.observe("run_seconds", labels, 0.5)
        os._exit(0)

    _in_forked_children(3, work)
    assert reg.get_sample_value("runs_total", labels) == 302
    assert reg.get_sample_value("run_seconds_count", labels) == 301
    assert child.active_cell[0] == 2  # the parent's own cell: the children wrote theirs
    h.inc_counter("runs_total", labels)
    assert reg.get_sample_value("runs_total", labels) == 303
    store.close()
