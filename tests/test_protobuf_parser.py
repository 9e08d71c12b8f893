"""Reading the protobuf exposition back: meterhub's own output and the official encoder's."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import meterhub
from meterhub import Counter, Enum, Gauge, Histogram, Info, Registry, Summary
from meterhub.errors import ParseError
from meterhub.exposition.protobuf import render_protobuf
from meterhub.exposition.protobuf_parser import parse_protobuf
from meterhub.samples import MetricFamily, MetricType, Series
from support.client_model import CLASSES, encode_delimited


def _comparable(fam: MetricFamily) -> MetricFamily:
    """What protobuf keeps of a family: info and stateset travel as gauges."""
    if fam.type is MetricType.INFO:
        return fam._replace(name=fam.name + "_info", type=MetricType.GAUGE)
    if fam.type is MetricType.STATESET:
        series = tuple(
            Series((*s.labels, (fam.name, st)), (v,), (), None, s.timestamp)
            for s in fam.series
            for st, v in zip(fam.states, s.values)
        )
        return fam._replace(type=MetricType.GAUGE, series=series, states=())
    return fam


def _strip_ts(fam: MetricFamily) -> MetricFamily:
    """Exemplar timestamps survive to the nanosecond, not to the last float bit."""

    def ex(e: Any) -> Any:
        return e if e is None else e._replace(timestamp=round(e.timestamp or 0, 3))

    out = []
    for s in fam.series:
        native = s.native
        if native is not None and native.nh_exemplars:
            native = native._replace(nh_exemplars=tuple(ex(e) for e in native.nh_exemplars))
        created = None if s.created is None else round(s.created, 3)
        out.append(s._replace(exemplars=tuple(ex(e) for e in s.exemplars), native=native,
                              created=created))  # fmt: skip
    return fam._replace(series=tuple(out))


def test_round_trip_of_every_type(registry: Registry) -> None:
    meterhub.configure(created=True)
    c = Counter("jobs", "Jobs.", ["q"], registry=registry)
    c.labels("a").inc(3, exemplar={"trace_id": "x"})
    c.labels("b").inc()
    Gauge("temp", "T.", unit="celsius", registry=registry).set(-1.5)
    Summary("size", "S.", registry=registry).observe(4)
    h = Histogram("lat", "L.", buckets=(0.1, 1), registry=registry)
    h.observe(0.05)
    h.observe(0.5, exemplar={"trace_id": "y"})
    n = Histogram("nat", "N.", registry=registry, native_histogram_bucket_factor=1.1)
    for v in (0, -2, 0.001, 0.3, 0.3, 50):
        n.observe(v)
    n.observe(3, exemplar={"trace_id": "z"})
    d = Histogram("dual", "D.", buckets=(1,), registry=registry, native_histogram_bucket_factor=2)
    d.observe(0.5)
    d.observe(7)
    Info("build", "B.", registry=registry).info({"v": "1"})
    Enum("state", "St.", states=["on", "off"], registry=registry).state("off")
    families = list(registry.collect())
    back = parse_protobuf(render_protobuf(families))
    assert [_strip_ts(f) for f in back] == [_strip_ts(_comparable(f)) for f in families]


def test_official_encoder_output_is_read() -> None:
    mf = CLASSES["MetricFamily"](name="req", help="Requests.", type=4)
    m = mf.metric.add()
    m.label.add(name="code", value="200")
    m.timestamp_ms = 1700000000123
    hist = m.histogram
    hist.sample_count, hist.sample_sum = 6, 12.5
    hist.schema, hist.zero_threshold, hist.zero_count = -1, 0.001, 1
    hist.positive_span.add(offset=-1, length=2)
    hist.positive_span.add(offset=3, length=1)
    hist.positive_delta.extend([1, 1, -1])  # counts 1, 2, 1 at keys -1, 0, 4
    hist.negative_span.add(offset=2, length=1)
    hist.negative_delta.extend([1])
    b = hist.bucket.add(cumulative_count=4, upper_bound=2.0)
    b.exemplar.value = 1.5
    b.exemplar.label.add(name="t", value="1")
    mf2 = CLASSES["MetricFamily"](name="up", type=3)
    mf2.metric.add().untyped.value = 1
    (req, up) = parse_protobuf(encode_delimited([mf, mf2]))
    s = req.series[0]
    assert (req.type, req.buckets, s.values) == (
        MetricType.HISTOGRAM,
        (2.0, math.inf),
        (12.5, 4, 6),
    )
    assert s.labels == (("code", "200"),) and s.timestamp == 1700000000.123
    assert s.exemplars[0] is not None and s.exemplars[0].value == 1.5
    nh = s.native
    assert nh is not None and (nh.schema, nh.zero_threshold, nh.zero_count) == (-1, 0.001, 1)
    from meterhub._native import decode_buckets

    assert decode_buckets(nh.pos_spans or (), nh.pos_deltas or ()) == {-1: 1, 0: 2, 4: 1}
    assert decode_buckets(nh.neg_spans or (), nh.neg_deltas or ()) == {2: 1}
    assert (up.type, up.series[0].values) == (MetricType.UNKNOWN, (1.0,))


def test_packed_deltas_and_float_counts() -> None:
    # hand-made: Histogram{schema=0, positive_span{0,2}, packed positive_delta [2, -1]}
    hist = (
        b"\x08\x03\x11"
        + b"\x00" * 8
        + b"\x28\x00"
        + b"\x62\x04\x08\x00\x10\x02"
        + b"\x6a\x02\x04\x01"
    )
    metric = b"\x3a" + bytes([len(hist)]) + hist
    fam = b"\x0a\x01h\x18\x04\x22" + bytes([len(metric)]) + metric
    (out,) = parse_protobuf(bytes([len(fam)]) + fam)
    from meterhub._native import decode_buckets

    nh = out.series[0].native
    assert nh is not None and decode_buckets(nh.pos_spans or (), nh.pos_deltas or ()) == {
        0: 2,
        1: 1,
    }


@pytest.mark.parametrize("data", [b"\x05\x0a\x01", b"\xff", b"\x02\x0f\x00", b"\x03\x18\x09\x00"])
def test_malformed_input(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_protobuf(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_raises_only_parse_errors(data: bytes) -> None:
    try:
        parse_protobuf(data)
    except ParseError:
        pass


def test_top_reads_native_histograms_from_a_live_endpoint(registry: Registry) -> None:
    from meterhub.export.http import start_http_server
    from meterhub.tools.top import compare, read_source

    h = Histogram("rpc", "R.", registry=registry, native_histogram_bucket_factor=1.01)
    for v in range(1, 101):
        h.observe(v / 100)
    with start_http_server(0, registry=registry) as server:
        url = f"http://127.0.0.1:{server.port}/metrics"
        first = read_source(url)
        rpc = next(f for f in first if f.name == "rpc")
        assert rpc.series[0].native is not None  # it asked for protobuf
        for v in range(1, 101):
            h.observe(v)  # a hundred times larger
        second = read_source(url)
    view = compare(first, second, 1.0)
    (row,) = [r for r in view.rows if r.name == "rpc"]
    assert row.rate == 100
    p50, p95, p99 = row.quantiles
    # the new observations only (1 .. 100), within the bucket width of the schema the
    # 160-bucket budget left (two decades each side of 1: schema 3)
    nh = next(f for f in second if f.name == "rpc").series[0].native
    assert nh is not None and nh.schema == 3
    base = 2 ** (2**-nh.schema)
    assert 50 / base <= p50 <= 50 * base and 95 / base <= p95 <= 95 * base
    assert 99 / base <= p99 <= 99 * base
