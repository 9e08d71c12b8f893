"""Histograms with native buckets: recording, resolution reduction, reset, rendering."""

from __future__ import annotations

import math
import random
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import meterhub
from meterhub import Histogram, Registry
from meterhub._native import DEFAULT_ZERO_THRESHOLD, bucket_key, decode_buckets
from meterhub.exposition.openmetrics import render_openmetrics
from meterhub.exposition.parser import parse_text
from meterhub.exposition.protobuf import generate_latest_protobuf
from meterhub.exposition.text import render_text
from meterhub.samples import NativeHistogram
from support.client_model import parse_delimited


def _native(registry: Registry, name: str = "h") -> NativeHistogram:
    for fam in registry.collect():
        if fam.name == name:
            nh = fam.series[0].native
            assert nh is not None
            return nh
    raise AssertionError(name)


def _buckets(nh: NativeHistogram) -> tuple[dict[int, float], dict[int, float]]:
    return (
        decode_buckets(nh.pos_spans or (), nh.pos_deltas or ()),
        decode_buckets(nh.neg_spans or (), nh.neg_deltas or ()),
    )


def _expected(values: list[float], schema: int, zt: float) -> tuple[dict[int, float], ...]:
    pos: dict[int, float] = {}
    neg: dict[int, float] = {}
    zero = 0.0
    for v in values:
        if abs(v) <= zt:
            zero += 1
            continue
        side = pos if v > 0 else neg
        k = bucket_key(v, schema)
        side[k] = side.get(k, 0.0) + 1
    return pos, neg, {0: zero}


def _span(buckets: dict[int, float]) -> int:
    return max(buckets) - min(buckets) + 1 if buckets else 0


def test_native_only_basics(registry: Registry) -> None:
    h = Histogram("h", "H.", registry=registry, native_histogram_bucket_factor=1.1)
    for v in (0.001, 0.5, 1, 2, 0, -3, 100, 1e-40):
        h.observe(v)
    nh = _native(registry)
    assert (nh.schema, nh.zero_threshold, nh.zero_count) == (3, DEFAULT_ZERO_THRESHOLD, 2)
    assert (nh.count_value, nh.sum_value) == (8, 100.501 + 1e-40)
    pos, neg = _buckets(nh)
    assert pos == _expected([0.001, 0.5, 1, 2, 100], 3, 0)[0]
    assert pos[-79] == 1 and pos[0] == 1 and pos[8] == 1  # upper-inclusive: 1 in 0, 2 in 8
    assert neg == {bucket_key(3, 3): 1}
    assert registry.get_sample_value("h_count") == 8
    assert registry.get_sample_value("h_bucket", {"le": "+Inf"}) == 8


def test_text_and_openmetrics_of_a_native_only_histogram(registry: Registry) -> None:
    h = Histogram("h", "H.", ["op"], registry=registry, native_histogram_bucket_factor=1.1)
    h.labels("a").observe(2)
    text = render_text(registry.collect())
    assert text == (
        "# HELP h H.\n# TYPE h histogram\n"
        'h_bucket{op="a",le="+Inf"} 1\nh_count{op="a"} 1\nh_sum{op="a"} 2\n'
    )
    om = render_openmetrics(registry.collect())
    assert 'h_bucket{op="a",le="+Inf"} 1\n' in om and om.endswith("# EOF\n")
    (fam,) = parse_text(text)
    assert fam.buckets == (math.inf,) and fam.series[0].values == (2.0, 1.0)


def test_dual_histogram_keeps_classic_buckets(registry: Registry) -> None:
    h = Histogram("h", "H.", buckets=(1, 10), registry=registry, native_histogram_bucket_factor=2)
    for v in (0.5, 3, 30):
        h.observe(v)
    assert registry.get_sample_value("h_bucket", {"le": "1.0"}) == 1
    assert registry.get_sample_value("h_bucket", {"le": "10.0"}) == 2
    assert registry.get_sample_value("h_count") == 3
    nh = _native(registry)
    assert nh.schema == 0 and _buckets(nh)[0] == {-1: 1, 2: 1, 5: 1}
    (fam,) = parse_delimited(generate_latest_protobuf(registry))
    hist = fam.metric[0].histogram
    assert [b.upper_bound for b in hist.bucket] == [1.0, 10.0]
    assert hist.schema == 0 and hist.sample_count == 3
    spans = [(s.offset, s.length) for s in hist.positive_span]
    assert decode_buckets(spans, list(hist.positive_delta)) == {-1: 1, 2: 1, 5: 1}


def test_protobuf_of_native_buckets(registry: Registry) -> None:
    h = Histogram("h", "H.", registry=registry, native_histogram_bucket_factor=1.1)
    values = [0.0, -0.5, -0.6, 1e-3, 0.2, 0.2, 5.0, 6.0, 7.5]
    for v in values:
        h.observe(v)
    h.observe(0.3, exemplar={"trace_id": "abc"})
    values.append(0.3)
    (fam,) = parse_delimited(generate_latest_protobuf(registry))
    assert (fam.name, fam.type) == ("h", 4)
    hist = fam.metric[0].histogram
    assert hist.sample_count == len(values) and hist.sample_sum == pytest.approx(sum(values))
    assert (hist.schema, hist.zero_threshold, hist.zero_count) == (3, DEFAULT_ZERO_THRESHOLD, 1)
    # native only: no classic buckets on the wire but a +Inf one carrying the exemplar
    (inf,) = hist.bucket
    assert inf.upper_bound == math.inf and inf.cumulative_count == len(values)
    assert inf.exemplar.value == 0.3
    pos, neg, _ = _expected(values, 3, DEFAULT_ZERO_THRESHOLD)

    def dec(spans: Any, deltas: Any) -> dict[int, float]:
        return decode_buckets([(s.offset, s.length) for s in spans], list(deltas))

    assert dec(hist.positive_span, hist.positive_delta) == pos
    assert dec(hist.negative_span, hist.negative_delta) == neg
    (ex,) = hist.exemplars
    assert ex.value == 0.3 and ex.HasField("timestamp")
    assert {lp.name: lp.value for lp in ex.label} == {"trace_id": "abc"}


def test_empty_native_histogram_on_the_wire(registry: Registry) -> None:
    Histogram(
        "h", "H.", registry=registry, native_histogram_bucket_factor=1.1,
        native_histogram_zero_threshold=0,
    )  # fmt: skip
    (fam,) = parse_delimited(generate_latest_protobuf(registry))
    hist = fam.metric[0].histogram
    assert hist.sample_count == 0 and hist.zero_threshold == 0
    # a no-op span marks it native although it has no buckets and no zero threshold
    assert [(s.offset, s.length) for s in hist.positive_span] == [(0, 0)]


def test_zero_threshold(registry: Registry) -> None:
    h = Histogram(
        "h", "H.", registry=registry, native_histogram_bucket_factor=1.1,
        native_histogram_zero_threshold=0.01,
    )  # fmt: skip
    for v in (0.01, -0.01, 0.0, 0.0100001, -0.02):
        h.observe(v)
    nh = _native(registry)
    assert nh.zero_count == 3 and nh.zero_threshold == 0.01
    pos, neg = _buckets(nh)
    assert sum(pos.values()) == 1 and sum(neg.values()) == 1


def test_infinities(registry: Registry) -> None:
    h = Histogram("h", "H.", registry=registry, native_histogram_bucket_factor=1.1)
    h.observe(math.inf)
    h.observe(-math.inf)
    pos, neg = _buckets(_native(registry))
    top = bucket_key(math.inf, 3)
    assert pos == {top: 1} and neg == {top: 1}


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.floats(-1e6, 1e6, allow_nan=False),
            st.sampled_from([0.0, 1.0, -1.0, 2.0**-130]),
            st.floats(1e-300, 1e300),
        ),
        max_size=80,
    ),
    factor=st.sampled_from([1.0001, 1.01, 1.1, 1.5, 2.0, 4.0, 300.0]),
    cap=st.integers(1, 40),
)
def test_reduction_is_exact(values: list[float], factor: float, cap: int) -> None:
    meterhub.configure(strict=False)  # a rare over-budget observation at schema -4 is counted
    reg = Registry(self_metrics=False)
    h = Histogram(
        "h", "H.", registry=reg, native_histogram_bucket_factor=factor,
        native_histogram_max_buckets=cap,
    )  # fmt: skip
    for v in values:
        h.observe(v)
    nh = _native(reg)
    pos, neg, zero = _expected(values, nh.schema, DEFAULT_ZERO_THRESHOLD)
    assert nh.count_value == len(values)
    if _span(pos) + _span(neg) <= cap:  # otherwise clamped at schema -4 (counted as an error)
        assert nh.zero_count == zero[0]
        assert _buckets(nh) == (pos, neg)
        # the finest schema with room: one step finer would not have fit
        start = h._desc.native.schema  # type: ignore[union-attr]
        if nh.schema < start:
            fp, fn, _ = _expected(values, nh.schema + 1, DEFAULT_ZERO_THRESHOLD)
            assert _span(fp) + _span(fn) > cap
    else:
        got_pos, got_neg = _buckets(nh)
        assert sum(got_pos.values()) + sum(got_neg.values()) + nh.zero_count == len(values)


def test_reset_after_min_reset_duration(registry: Registry) -> None:
    h = Histogram(
        "h", "H.", registry=registry, native_histogram_bucket_factor=1.1,
        native_histogram_max_buckets=4, native_histogram_min_reset_duration=60,
    )  # fmt: skip
    child: Any = h.observe.__self__  # type: ignore[attr-defined]
    for v in (1.0, 1.1, 1.2):
        h.observe(v)
    h.observe(1000.0)  # over budget, but the last reset is recent: the schema is lowered
    nh = _native(registry)
    assert nh.schema < 3 and nh.count_value == 4
    child._reset_at -= 61  # a minute later
    h.observe(1e9)  # over budget again: everything is reset, then it is counted
    nh = _native(registry)
    assert (nh.schema, nh.count_value, nh.sum_value) == (3, 1, 1e9)
    assert _buckets(nh)[0] == {bucket_key(1e9, 3): 1}
    assert registry.get_sample_value("h_bucket", {"le": "+Inf"}) == 1


def test_labels_remove_and_switch(registry: Registry) -> None:
    h = Histogram(
        "h", "H.", ["k"], registry=registry, native_histogram_bucket_factor=1.1, switch="s"
    )
    h.labels("a").observe(1)
    meterhub.disable("s")
    h.labels("a").observe(1000)  # recorded nowhere
    meterhub.enable("s")
    h.labels("a").observe(2)
    assert _native(registry).count_value == 2
    assert _buckets(_native(registry))[0] == {0: 1, 8: 1}
    h.remove("a")
    assert not next(iter(registry.collect())).series


def test_time_observes_durations(registry: Registry) -> None:
    h = Histogram("h", "H.", registry=registry, native_histogram_bucket_factor=1.1)
    with h.time():
        pass
    assert _native(registry).count_value == 1


def test_redeclaration(registry: Registry) -> None:
    a = Histogram("h", "H.", registry=registry, native_histogram_bucket_factor=1.1)
    assert Histogram("h", "H.", registry=registry, native_histogram_bucket_factor=1.1) is a
    with pytest.raises(ValueError, match="conflicts"):
        Histogram("h", "H.", registry=registry, native_histogram_bucket_factor=2)
    with pytest.raises(ValueError, match="conflicts"):
        Histogram("h", "H.", registry=registry)


@pytest.mark.parametrize(
    "kw",
    [
        {"native_histogram_bucket_factor": 1.0},
        {"native_histogram_bucket_factor": "1.1"},
        {"native_histogram_bucket_factor": math.nan},
        {"native_histogram_bucket_factor": 1.1, "native_histogram_zero_threshold": -1},
        {"native_histogram_bucket_factor": 1.1, "native_histogram_max_buckets": 0},
        {"native_histogram_bucket_factor": 1.1, "native_histogram_max_buckets": 2.5},
        {"native_histogram_bucket_factor": 1.1, "native_histogram_min_reset_duration": -1},
        {"native_histogram_max_buckets": 10},  # without a factor
    ],
)
def test_definition_errors(registry: Registry, kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="native_histogram"):
        Histogram("h", "H.", registry=registry, **kw)


def test_bad_observations_are_counted(registry: Registry, lenient: None) -> None:
    reg = Registry(self_metrics=True)
    h = Histogram("h", "H.", registry=reg, native_histogram_bucket_factor=1.1)
    h.observe(math.nan)
    h.observe("x")  # type: ignore[arg-type]
    assert reg.get_sample_value("h_count") == 0
    assert reg.get_sample_value("meterhub_errors_total", {"metric": "h", "reason": "nan"}) == 1


# -- threads -----------------------------------------------------------------------------


@pytest.mark.usefixtures("switch_often")
def test_threads_exact_through_window_moves_and_reductions(registry: Registry) -> None:
    h = Histogram(
        "h", "H.", registry=registry, native_histogram_bucket_factor=1.001,
        native_histogram_max_buckets=24,
    )  # fmt: skip
    per_thread, threads = 20_000, 8
    rngs = [random.Random(i) for i in range(threads)]
    streams = [[r.lognormvariate(0, 3) * r.choice((1, 1, 1, -1)) for _ in range(per_thread)]
               for r in rngs]  # fmt: skip
    barrier = threading.Barrier(threads)

    def work(values: list[float]) -> None:
        observe = h.observe
        barrier.wait()
        for v in values:
            observe(v)

    ts = [threading.Thread(target=work, args=(s,)) for s in streams]
    for t in ts:
        t.start()
    snapshots = []
    while any(t.is_alive() for t in ts):  # read while they write: never torn
        nh = _native(registry)
        pos, neg = _buckets(nh)
        snapshots.append(nh)
        assert sum(pos.values()) + sum(neg.values()) + nh.zero_count == nh.count_value
    for t in ts:
        t.join()
    everything = [v for s in streams for v in s]
    nh = _native(registry)
    assert nh.count_value == len(everything)
    assert nh.sum_value == pytest.approx(math.fsum(everything), rel=1e-9, abs=1e-6)
    pos, neg, _ = _expected(everything, nh.schema, DEFAULT_ZERO_THRESHOLD)
    assert _buckets(nh) == (pos, neg)
    assert nh.schema < 8 and snapshots


@pytest.mark.parametrize("schema_factor", [1.0001, 1.1, 2.0, 65536.0])
def test_window_lookup_agrees_with_the_key_everywhere(schema_factor: float) -> None:
    """The fast path finds buckets by bisecting the window's bounds; near every bound,
    subnormals and the top of the doubles included, it picks bucket_key's bucket."""
    reg = Registry(self_metrics=False)
    h = Histogram(
        "h", "H.", registry=reg, native_histogram_bucket_factor=schema_factor,
        native_histogram_zero_threshold=0, native_histogram_max_buckets=100_000,
    )  # fmt: skip
    from meterhub._native import upper_bound

    schema = h._desc.native.schema  # type: ignore[union-attr]
    probes = [5e-324, 1e-320, 2.2250738585072014e-308, 1.7976931348623157e308]
    for k in range(-40, 41):
        b = upper_bound(k, schema)
        probes += [b, math.nextafter(b, 0), math.nextafter(b, math.inf)]
    probes = [p for p in probes if 0 < p < math.inf]
    for p in probes * 2:  # the second round runs on the fast path: every window exists
        h.observe(p)
        h.observe(-p)
    nh = _native(reg)
    pos, neg = _buckets(nh)
    expected = _expected(probes * 2, nh.schema, 0)[0]  # (schema 8 is lowered: 537k buckets)
    assert pos == expected and neg == expected


def test_moving_the_cell_keeps_every_bucket(registry: Registry) -> None:
    """The multi-process store moves a series out of a process-local cell (full disk) or a
    damaged file while threads record: a native cell carries its window along."""
    h = Histogram("h", "H.", ["k"], registry=registry, native_histogram_bucket_factor=1.1)
    child = h.labels("a")
    first = [0.001, 0.5, 2.0, -3.0, 0.0]
    for v in first:
        child.observe(v)
    old = child._cell
    assert h.move_series_cell(("a",), old, lambda: [0.0] * len(old))
    assert child._cell is not old
    second = [0.5, 1000.0, -3.0]
    for v in second:
        child.observe(v)
    nh = _native(registry)
    assert nh.schema == 2  # 0.001 .. 1000 and -3: 161 buckets at schema 3, over the 160
    pos, neg, zero = _expected(first + second, nh.schema, DEFAULT_ZERO_THRESHOLD)
    assert _buckets(nh) == (pos, neg) and nh.zero_count == zero[0]
    assert registry.get_sample_value("h_count", {"k": "a"}) == len(first + second)


def test_a_fork_while_the_window_lock_is_held_in_process(registry: Registry) -> None:
    import multiprocessing
    import os

    h = Histogram("h", "H.", registry=registry, native_histogram_bucket_factor=1.1)
    child: Any = h.observe.__self__  # type: ignore[attr-defined]
    child._lock.acquire()  # as if another thread were moving the window at fork time
    try:

        def work() -> None:
            h.observe(1000.0)  # a new bucket: the slow path, under the lock
            os._exit(0 if _native(registry).count_value == 1 else 1)

        p = multiprocessing.get_context("fork").Process(target=work)
        p.start()
        p.join(30)
        assert p.exitcode == 0
    finally:
        child._lock.release()


def test_other_number_types_take_the_checked_path(registry: Registry) -> None:
    from decimal import Decimal
    from fractions import Fraction

    h = Histogram("h", "H.", registry=registry, native_histogram_bucket_factor=1.1)
    for v in (Fraction(1, 2), Decimal("0.5"), 0.5, 1, True):
        h.observe(v)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not fit in a float"):  # strict mode raises
        h.observe(10**400)
    nh = _native(registry)
    assert nh.count_value == 5 and nh.sum_value == 3.5
    assert _buckets(nh)[0] == {bucket_key(0.5, 3): 3, 0: 2}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.floats(1e-3, 1e6) | st.floats(-1e6, -1e-3) | st.sampled_from([0.0, 1.0, -1.0]),
        max_size=80,
    ),
    st.sampled_from([16, 160]),  # room for every value even at schema -4: none clamped
)
def test_a_cell_reads_back_as_its_window_mappings_say(values: list[float], cap: int) -> None:
    # native_from_cell encodes the windows in place; read_native's mappings say the same
    from meterhub._native import native_histogram
    from meterhub.store.layout import N_ZERO
    from meterhub.store.nativecell import native_from_cell, native_start, read_native

    h = Histogram(
        "h", "H.", registry=Registry(self_metrics=False),
        native_histogram_bucket_factor=1.1, native_histogram_max_buckets=cap,
    )  # fmt: skip
    for v in values:
        h.observe(v)
    desc, cell = h.desc, list(h.children[()].active_cell)
    assert desc.native is not None
    st_ = native_start(desc)
    reduced, pos, neg = read_native(cell, st_, cap)
    zero = cell[st_ + N_ZERO]
    expected = native_histogram(
        zero + sum(pos.values()) + sum(neg.values()), cell[0], desc.native.schema - reduced,
        desc.native.zero_threshold, zero, pos, neg,
    )  # fmt: skip
    assert native_from_cell(desc, cell) == expected
    assert native_from_cell(desc, tuple(cell)) == expected
