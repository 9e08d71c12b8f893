"""Columnar snapshots (SeriesColumns): a counter collected from memory renders exactly as
the same series as a tuple of Series did, in every format and mode.

Each case renders the collected families twice: as collected (the columnar fast paths)
and with every family's series materialised into a tuple (the series-by-series paths
that were there before), and compares bytes.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterable, Iterator

import pytest

import meterhub
from meterhub import CollectOptions, Counter, Gauge, Histogram, Registry
from meterhub.exposition._columns import CHUNK
from meterhub.exposition.openmetrics import render_openmetrics
from meterhub.exposition.protobuf import render_protobuf
from meterhub.exposition.text import render_text
from meterhub.samples import Exemplar, MetricFamily, MetricType, Series, SeriesColumns

HOSTILE = ['a"b', "back\\slash", "new\nline", "", "ünï©ødé", '\\"\n', "__overflow__"]


def _materialised(families: Iterable[MetricFamily]) -> list[MetricFamily]:
    return [f._replace(series=tuple(f.series)) for f in families]


Renderer = Callable[[list[MetricFamily]], object]
RENDERERS: dict[str, Renderer] = {
    "text": render_text,
    "text-allow-utf-8": lambda fams: render_text(fams, "allow-utf-8"),
    "text-dots": lambda fams: render_text(fams, "dots"),
    "openmetrics": render_openmetrics,
    "openmetrics-values": lambda fams: render_openmetrics(fams, "values"),
    "protobuf": render_protobuf,
}


def _assert_same(reg: Registry, columnar: int | None = None) -> list[MetricFamily]:
    fams = list(reg.collect())
    if columnar is not None:
        assert sum(type(f.series) is SeriesColumns for f in fams) == columnar
    flat = _materialised(fams)
    for name, render in RENDERERS.items():
        assert render(fams) == render(flat), name
    assert fams == flat  # == with the tuple, both ways
    assert [f.samples for f in fams] == [f.samples for f in flat]
    return fams


@pytest.fixture(params=["default", "compat"])
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "compat":
        meterhub.configure(compat="prometheus_client")
    yield request.param


@pytest.mark.parametrize("labelnames", [(), ("a",), ("b", "a"), ("z", "a", "m"), tuple("abcde")])
def test_label_shapes_and_hostile_values(mode: str, labelnames: tuple[str, ...]) -> None:
    reg = Registry()
    c = Counter("jobs", "Jobs\nrun \\ here.", labelnames, registry=reg)
    if not labelnames:
        c.inc(3)
    for i, value in enumerate(HOSTILE):
        if labelnames:
            c.labels(*[f"{value}{j}" for j in range(len(labelnames))]).inc(i + 0.5)
    _assert_same(reg, columnar=1)


@pytest.mark.parametrize(
    "value", [0.0, -0.0, 1.0, 2.5, 1e15, 1e16, 1.5e-7, 123456789.0, float("inf"), 7, 10**20]
)
def test_values_as_every_formatter_writes_them(mode: str, value: float) -> None:
    reg = Registry()
    c = Counter("total", "Total.", ["k"], registry=reg)
    child = c.labels("x")
    child.active_cell[0] = value  # any value a cell can hold, ints included
    _assert_same(reg, columnar=1)


@pytest.mark.parametrize("created", [False, True])
def test_created_samples_on_and_off(
    mode: str, created: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1700000000.25)
    reg = Registry(options=CollectOptions(created=created))
    c = Counter("jobs", "Jobs.", ["q"], registry=reg)
    c.labels("a").inc()
    c.labels("b").inc(2)
    fams = _assert_same(reg, columnar=1)
    text = render_text(fams)
    assert ("jobs_created{" in text) is created
    # a series created while _created was off has no stamp: no sample, as before
    meterhub.configure(created=False)
    reg2 = Registry()  # collects by the configuration, read at each use
    c2 = Counter("late", "Late.", ["q"], registry=reg2)
    c2.labels("old").inc()
    meterhub.configure(created=True)
    c2.labels("new").inc()
    fams2 = _assert_same(reg2, columnar=1)
    assert 'late_created{q="new"}' in render_text(fams2)
    assert 'late_created{q="old"}' not in render_text(fams2)


def test_exemplars(mode: str) -> None:
    reg = Registry(options=CollectOptions(created=True))
    c = Counter("hits", "Hits.", ["page"], registry=reg)
    c.labels("home").inc(exemplar={"trace_id": "abc"})
    c.labels("about").inc(2)
    fams = _assert_same(reg, columnar=1)
    (series,) = [s for s in fams[0].series if s.labels == (("page", "home"),)]
    assert series.exemplars[0] is not None and series.exemplars[0].labels == {"trace_id": "abc"}
    if mode == "default":
        assert '# {trace_id="abc"} 1' in render_openmetrics(fams)


def test_many_series_across_runs(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """More series than one run of the renderers (CHUNK), exemplars and stamps among them."""
    monkeypatch.setattr(time, "time", lambda: 1700000000.5)
    reg = Registry(options=CollectOptions(created=True))
    c = Counter("many", "Many.", ["i", "j"], registry=reg, max_series=3 * CHUNK)
    for i in range(2 * CHUNK + 7):
        c.labels(str(i), "x" if i % 3 else 'q"').inc(i)
    c.labels(str(CHUNK), "x").inc(exemplar={"trace_id": "t"})  # just past a run's end
    c.labels("0", 'q"').inc(exemplar={"trace_id": "first"})
    c.remove(str(CHUNK - 1), 'q"' if (CHUNK - 1) % 3 == 0 else "x")
    fams = _assert_same(reg, columnar=1)
    assert render_text(fams).count("\nmany_created{") == 2 * CHUNK + 6


def test_remove_and_clear_show_at_once(mode: str) -> None:
    reg = Registry()
    c = Counter("jobs", "Jobs.", ["q"], registry=reg)
    for q in "abc":
        c.labels(q).inc()
    c.remove("b")
    fams = _assert_same(reg, columnar=1)
    assert [s.labels for s in fams[0].series] == [(("q", "a"),), (("q", "c"),)]
    c.labels("b").inc(5)  # a new series under the removed key starts from zero
    fams = _assert_same(reg)
    assert fams[0].series[-1].values == (5.0,)
    c.clear()
    fams = _assert_same(reg)  # no series: an empty tuple or empty columns, the same
    assert len(fams[0].series) == 0 and "jobs_total{" not in render_text(fams)


def test_switched_off_and_overflow_series(mode: str) -> None:
    reg = Registry()
    c = Counter("jobs", "Jobs.", ["q"], registry=reg, switch="jobs_sw", max_series=2)
    for q in "abcd":
        c.labels(q).inc()
    meterhub.configure(disabled_switches=("jobs_sw",))
    c.labels("a").inc(100)  # recorded nowhere
    fams = _assert_same(reg, columnar=1)
    assert {s.labels[0][1]: s.values[0] for s in fams[0].series} == {
        "a": 1.0,
        "b": 1.0,
        "__overflow__": 2.0,
    }


def test_other_types_and_stores_keep_their_paths(mode: str, tmp_path: object) -> None:
    reg = Registry()
    Gauge("g", "G.", ["a"], registry=reg).labels("x").set(1)
    Histogram("h", "H.", ["a"], registry=reg).labels("x").observe(0.2)
    Counter("c", "C.", ["a"], registry=reg).labels("x").inc()
    fams = _assert_same(reg, columnar=1)
    assert [f.name for f in fams if type(f.series) is SeriesColumns] == ["c"]


def test_sequence_behaviour() -> None:
    ex = Exemplar({"t": "1"}, 1.0)
    cols = SeriesColumns(("a", "b"), [("1", "2"), ("3", "4")], [5.0, 6.0], [None, 9.0], {
        ("3", "4"): ex
    })  # fmt: skip
    as_tuple = (
        Series((("a", "1"), ("b", "2")), (5.0,)),
        Series((("a", "3"), ("b", "4")), (6.0,), (ex,), 9.0),
    )
    assert tuple(cols) == as_tuple and cols == as_tuple and as_tuple == cols
    assert not cols.__ne__(as_tuple) and cols != as_tuple[:1] and cols != list(as_tuple)
    assert len(cols) == 2 and cols[-1] == as_tuple[1] and cols[:1] == as_tuple[:1]
    assert cols[::-1] == as_tuple[::-1] and list(reversed(cols)) == list(as_tuple[::-1])
    assert cols.__add__(()) == as_tuple and cols.__radd__(()) == as_tuple and as_tuple[0] in cols
    assert repr(cols) == repr(as_tuple)
    with pytest.raises(IndexError):
        cols[2]
    assert pickle.loads(pickle.dumps(cols)) == as_tuple
    fam = MetricFamily("x", "X.", MetricType.COUNTER, series=cols)
    assert fam == fam._replace(series=as_tuple)
    with pytest.raises(ValueError, match="equally long"):
        SeriesColumns(("a",), [("1",)], [])
    plain = SeriesColumns((), [(), ()], [1.0, 2.0])
    assert hash(plain) == hash(tuple(plain))


def test_a_custom_collector_may_yield_columns() -> None:
    class Custom:
        def collect(self) -> Iterator[MetricFamily]:
            cols = SeriesColumns(("k",), [("x",), ('"y"',)], [1.0, 2.5])
            yield MetricFamily("temp", "Temp.", MetricType.GAUGE, series=cols)
            yield MetricFamily("odd", "Odd.", MetricType.UNKNOWN, series=cols)

    reg = Registry()
    reg.register(Custom())
    _assert_same(reg, columnar=2)
    assert 'temp{k="\\"y\\""} 2.5' in render_text(list(reg.collect()))


@pytest.mark.parametrize("created", [False, True])
def test_directory_counters_collect_into_columns(
    mode: str, created: bool, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory collector's counters (merged across processes) are columns too."""
    from meterhub.multiprocess import MultiProcessCollector
    from meterhub.store.mmap import MultiProcessStore

    monkeypatch.setattr(time, "time", lambda: 1700000000.75)
    opts = CollectOptions(created=created)
    writer = Registry(store=MultiProcessStore(str(tmp_path)), options=opts)
    c = Counter("dir_jobs", "Jobs.", ["q", "k"], registry=writer)
    for i, value in enumerate(HOSTILE):
        c.labels(value, str(i)).inc(i + 1)
    c.labels("x", "y").inc(exemplar={"trace_id": "abc"})
    side = Registry(options=opts)
    side.register(MultiProcessCollector(str(tmp_path)))
    fams = [f for f in side.collect() if f.name == "dir_jobs"]
    assert len(fams) == 1 and type(fams[0].series) is SeriesColumns
    flat = _materialised(fams)
    for name, render in RENDERERS.items():
        assert render(fams) == render(flat), name
    assert fams == flat
    ours = next(f for f in writer.collect() if f.name == "dir_jobs")
    assert sorted(ours.series) == sorted(fams[0].series)
