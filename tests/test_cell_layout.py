"""Every writer and reader of a cell agrees with the layout table (:mod:`meterhub.store.layout`).

The hot paths write slot numbers as constants (a table lookup per increment would cost as
much as the increment): the children's methods, the source ``meterhub.events.compile``
generates and the operation log's inline updates. These tests record through each of them
and check the cell slot by slot against the table, in both stores; and they check the
stores, the multi-process merge and collection against it. A layout change that one of
them misses fails here, naming it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meterhub import (
    CollectOptions,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Hub,
    Info,
    Registry,
    Summary,
)
from meterhub.errors import RecordingError
from meterhub.events import EventRouter
from meterhub.multiprocess import MultiProcessCollector
from meterhub.oplog import OperationLog, have_orjson
from meterhub.samples import MetricType
from meterhub.store import LocalStore, MetricDesc
from meterhub.store.layout import (
    LAYOUTS,
    CounterLayout,
    EnumLayout,
    GaugeLayout,
    HistogramLayout,
    InfoLayout,
    SummaryLayout,
    cell_width,
    layout_of,
)
from meterhub.store.mmap import MultiProcessStore
from meterhub.store.mmap.merge import SUMMED

BUCKETS = (0.5, 1.0, 60.0)
ON = CollectOptions(created=True)


@pytest.fixture(params=["local", "mmap"])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    if request.param == "local":
        yield Registry(store=LocalStore(), self_metrics=False, options=ON)
        return
    store = MultiProcessStore(tmp_path)
    yield Registry(store=store, self_metrics=False, options=ON)
    store.close()


def expected(width: int, **slots: float) -> list[float]:
    cell = [0.0] * width
    for slot, value in slots.items():
        cell[int(slot[1:])] = value
    return cell


def without_created(cell: Any, slot: int | None) -> list[float]:
    values = list(cell)
    if slot is not None:
        assert values[slot] > 0.0  # stamped: the registry renders _created
        values[slot] = 0.0
    return values


def check(child: Any, desc: MetricDesc, **slots: float) -> None:
    layout = layout_of(desc)
    cell = child.active_cell
    assert len(cell) == layout.width(desc) == cell_width(desc)
    assert without_created(cell, layout.created_slot(desc)) == expected(len(cell), **slots)


# -- the table itself --------------------------------------------------------------------


def test_the_table_covers_every_metric_type_with_a_cell() -> None:
    made = {MetricType.COUNTER, MetricType.GAUGE, MetricType.HISTOGRAM, MetricType.SUMMARY,
            MetricType.INFO, MetricType.STATESET}  # fmt: skip
    assert set(LAYOUTS) == made
    assert all(layout.type is kind for kind, layout in LAYOUTS.items())


def test_summed_layouts_keep_created_in_their_last_slot() -> None:
    # The multi-process merge adds every slot but the last and keeps the earliest last one.
    assert set(SUMMED) == {k for k, layout in LAYOUTS.items() if layout.summed}
    for kind in SUMMED:
        desc = MetricDesc("m", "M.", kind, buckets=BUCKETS if kind is MetricType.HISTOGRAM else ())
        layout = layout_of(desc)
        assert layout.created_slot(desc) == layout.width(desc) - 1


# -- the children's own methods ----------------------------------------------------------


def test_counter_child(reg: Registry) -> None:
    c = Counter("c", "C.", ["k"], registry=reg)
    c.labels("a").inc(2.5)
    check(c.labels("a"), c.desc, **{f"s{CounterLayout.TOTAL}": 2.5})


def test_gauge_children(reg: Registry) -> None:
    g = Gauge("g", "G.", ["k"], registry=reg)
    g.labels("a").set(4.0)
    g.labels("a").inc(1.0)
    check(g.labels("a"), g.desc, **{f"s{GaugeLayout.VALUE}": 5.0})
    recent = Gauge("r", "R.", ["k"], registry=reg, multiprocess_mode="mostrecent")
    recent.labels("a").set(7.0)
    cell = recent.labels("a").active_cell
    assert len(cell) == cell_width(recent.desc) == 2
    assert cell[GaugeLayout.VALUE] == 7.0 and cell[GaugeLayout.TIMESTAMP] > 0.0


def test_histogram_child(reg: Registry) -> None:
    h = Histogram("h", "H.", ["k"], buckets=BUCKETS, registry=reg)
    for v in (0.2, 0.7, 30.0, 99.0):
        h.labels("a").observe(v)
    first = HistogramLayout.FIRST_BUCKET
    buckets = {f"s{first + i}": 1.0 for i in range(4)}
    check(h.labels("a"), h.desc, **{f"s{HistogramLayout.SUM}": 129.9, **buckets})


def test_unlabeled_histogram_writes_its_series_cell(reg: Registry) -> None:
    # Histogram.observe writes HistogramChild.observe out for the one series: same slots
    h = Histogram("u", "U.", buckets=BUCKETS, registry=reg)
    for v in (0.2, 0.7, 30, 99.0):
        h.observe(v)
    for bad in (2**1100, float("nan"), "1"):  # the checked path refuses them (strict here)
        with pytest.raises(RecordingError):
            h.observe(bad)  # type: ignore[arg-type]
    with pytest.raises(RecordingError, match="missing label values"):
        Histogram("l", "L.", ["k"], registry=reg).observe(1.0)
    first = HistogramLayout.FIRST_BUCKET
    buckets = {f"s{first + i}": 1.0 for i in range(4)}
    check(h.children[()], h.desc, **{f"s{HistogramLayout.SUM}": 129.9, **buckets})


def test_histogram_timer_writes_the_series_slots(reg: Registry) -> None:
    # HistogramTimer writes HistogramChild.observe out for time(): same slots
    h = Histogram("t", "T.", ["k"], buckets=BUCKETS, registry=reg)
    with h.labels("a").time() as timer:
        pass
    assert timer.duration is not None
    first = HistogramLayout.FIRST_BUCKET
    check(h.labels("a"), h.desc, **{f"s{HistogramLayout.SUM}": timer.duration, f"s{first}": 1.0})


def test_native_histogram_children(reg: Registry) -> None:
    from meterhub._native import bucket_key
    from meterhub.store.layout import NativeHistogramLayout as N

    for buckets in (None, BUCKETS):
        h = Histogram(
            f"n{len(buckets or ())}", "N.", ["k"], buckets=buckets, registry=reg,
            native_histogram_bucket_factor=1.1, native_histogram_max_buckets=8,
        )  # fmt: skip
        for v in (0.7, 0.75, 0.0, -2.0):
            h.labels("a").observe(v)
        desc = h.desc
        start = N().start(desc)
        first = HistogramLayout.FIRST_BUCKET
        slots: dict[str, float] = {}
        for v in (0.7, 0.75, 0.0, -2.0):
            key = f"s{first + bisect_left(desc.buckets, v)}"
            slots[key] = slots.get(key, 0.0) + 1.0
        k07, k075 = bucket_key(0.7, 3), bucket_key(0.75, 3)
        slots.update({
            f"s{HistogramLayout.SUM}": -0.55,
            f"s{start + N.ZERO}": 1.0,
            # the gen counts two per window rewrite: 0.7, 0.75 and -2.0 each opened one
            f"s{start + N.GEN}": 6.0,
            f"s{start + N.PLO}": float(k07), f"s{start + N.PN}": float(k075 - k07 + 1),
            f"s{start + N.NLO}": float(bucket_key(-2.0, 3)), f"s{start + N.NN}": 1.0,
            f"s{start + N.BUCKETS}": 1.0, f"s{start + N.BUCKETS + k075 - k07}": 1.0,
            f"s{start + N.BUCKETS + 8 - 1}": 1.0,
        })  # fmt: skip
        check(h.labels("a"), desc, **slots)


def test_summary_child(reg: Registry) -> None:
    s = Summary("s", "S.", ["k"], registry=reg)
    s.labels("a").observe(3.0)
    s.labels("a").observe(4.0)
    slots = {f"s{SummaryLayout.COUNT}": 2.0, f"s{SummaryLayout.SUM}": 7.0}
    check(s.labels("a"), s.desc, **slots)


def test_info_and_enum_children(reg: Registry) -> None:
    i = Info("build", "B.", registry=reg)
    i.info({"version": "1"})
    cell = i.children[()]._info_cell  # an Info series' cell is made by info()
    assert list(cell) == expected(cell_width(i.desc), **{f"s{InfoLayout.PRESENT}": 1.0})
    e = Enum("state", "S.", ["k"], states=["idle", "busy"], registry=reg)
    e.labels("a").state("busy")
    check(e.labels("a"), e.desc, **{f"s{EnumLayout.STATE}": 1.0})


# -- the code that writes those fast paths out --------------------------------------------


def test_event_routes_write_the_slots_of_the_table(reg: Registry) -> None:
    router = EventRouter(hub=Hub(registry=reg))
    router.counter("e", "plays_total", labels={"mode": "none"})
    router.counter("e", "points_total", value="points", labels={"mode": "none"})
    router.histogram("e", "play_seconds", value="duration", buckets=BUCKETS,
                     labels={"mode": "none"})  # fmt: skip
    router.gauge("e", "level", value="level", labels={"mode": "none"})
    for duration in (0.2, 30.0):
        router.emit("e", {"mode": "x", "points": 3.0, "duration": duration, "level": 2.0})
    for name, slots in {
        "plays": {f"s{CounterLayout.TOTAL}": 2.0},
        "points": {f"s{CounterLayout.TOTAL}": 6.0},
        "play_seconds": {
            f"s{HistogramLayout.SUM}": 30.2,
            f"s{HistogramLayout.FIRST_BUCKET + bisect_left(BUCKETS, 0.2)}": 1.0,
            f"s{HistogramLayout.FIRST_BUCKET + bisect_left(BUCKETS, 30.0)}": 1.0,
        },
        "level": {f"s{GaugeLayout.VALUE}": 2.0},
    }.items():
        metric = reg.get(name)
        check(metric.labels("x"), metric.desc, **slots)


def test_event_routes_are_inlined_for_the_core_types(reg: Registry) -> None:
    from meterhub.events.compile import _INLINE

    # The generated text takes its slot numbers from the table (and the public cell seam).
    assert f"active_cell[{CounterLayout.TOTAL}] += v" in _INLINE["inc_by"]
    assert f"active_cell[{GaugeLayout.VALUE}] = v" in _INLINE["set"]
    assert f"cell[{HistogramLayout.SUM}] += v" in _INLINE["observe"]
    assert f"+ {HistogramLayout.FIRST_BUCKET}\n" in _INLINE["observe"]


@pytest.mark.skipif(not have_orjson(), reason="the oplog's one-pass path needs orjson")
def test_the_oplog_fast_path_writes_the_slots_of_the_table(tmp_path: Path) -> None:
    reg = Registry(self_metrics=False, options=ON)
    log = OperationLog(tmp_path / "log", registry=reg, fsync=False)
    log.start_sync()
    try:
        for ms in (200.0, 700.0, 30_000.0):  # the first takes the full path, then one pass
            assert log.record_operation_nowait("jira", "create", ms)
        assert log.record_operation_nowait("jira", "create", 100.0, success=False)
    finally:
        log.stop_sync()
    ops = reg.get("meterhub_operations")
    duration = reg.get("meterhub_operation_duration_seconds")
    check(ops.labels("jira", "true"), ops.desc, **{f"s{CounterLayout.TOTAL}": 3.0})
    check(ops.labels("jira", "false"), ops.desc, **{f"s{CounterLayout.TOTAL}": 1.0})
    bounds = duration.desc.buckets
    slots: dict[str, float] = {f"s{HistogramLayout.SUM}": 31.0}
    for seconds in (0.2, 0.7, 30.0, 0.1):
        key = f"s{HistogramLayout.FIRST_BUCKET + bisect_left(bounds, seconds)}"
        slots[key] = slots.get(key, 0.0) + 1.0
    check(duration.labels("jira"), duration.desc, **slots)


# -- reading back: one conversion for the metric and for the directory collector ----------


def _every_type(reg: Registry) -> None:
    Counter("c", "C.", ["k"], registry=reg).labels("a").inc(2)
    Gauge("g", "G.", ["k"], registry=reg, multiprocess_mode="max").labels("a").set(3)
    Histogram("h", "H.", ["k"], buckets=BUCKETS, registry=reg).labels("a").observe(0.7)
    Summary("s", "S.", ["k"], registry=reg).labels("a").observe(4)
    Info("i", "I.", registry=reg).info({"v": "1"})
    Enum("e", "E.", ["k"], states=["x", "y"], registry=reg).labels("a").state("y")
    for name, buckets in (("n", None), ("d", BUCKETS)):
        native = Histogram(name, "N.", ["k"], buckets=buckets, registry=reg,
                           native_histogram_bucket_factor=1.1)  # fmt: skip
        for v in (0.7, -2.0, 0.0, 300.0):
            native.labels("a").observe(v)


@pytest.mark.parametrize("created", [False, True])
def test_metric_and_directory_collection_agree(tmp_path: Path, created: bool) -> None:
    options = CollectOptions(created=created)
    store = MultiProcessStore(tmp_path)
    reg = Registry(store=store, self_metrics=False, options=options)
    _every_type(reg)
    sidecar = Registry(self_metrics=False, options=options)
    sidecar.register(MultiProcessCollector(tmp_path))
    ours = {f.name: f.series for f in reg.collect()}
    theirs = {f.name: f.series for f in sidecar.collect() if f.name in ours}
    assert ours == theirs
    stamps = [s.created for name in ("c", "h", "s") for s in ours[name]]
    assert all(stamps) if created else stamps == [None, None, None]
    store.close()


def test_the_registry_decides_created(tmp_path: Path) -> None:
    # Stamped (and merged) because this registry renders _created; its collectors ask it.
    reg = Registry(self_metrics=False, options=ON)
    Counter("c", "C.", registry=reg).inc()
    assert reg.get_sample_value("c_created") is not None
    assert [f.series[0].created for f in reg.collect(options=CollectOptions())] == [None]
    off = Registry(self_metrics=False)
    Counter("c", "C.", registry=off).inc()
    assert off.get_sample_value("c_created") is None
