"""The protobuf exposition, decoded by the official ``protobuf`` package."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import meterhub
from meterhub import (
    Counter,
    CounterMetricFamily,
    Enum,
    Gauge,
    GaugeMetricFamily,
    Histogram,
    HistogramMetricFamily,
    Info,
    InfoMetricFamily,
    Registry,
    StateSetMetricFamily,
    Summary,
    SummaryMetricFamily,
    UnknownMetricFamily,
)
from meterhub.export.endpoint import Endpoint
from meterhub.exposition.negotiate import choose_encoder, choose_format, negotiate
from meterhub.exposition.protobuf import (
    CONTENT_TYPE_PROTOBUF,
    generate_latest_protobuf,
    render_protobuf,
    varint,
)
from meterhub.samples import Exemplar, MetricFamily, MetricType, Series
from support.client_model import parse_delimited

PROM_NATIVE = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
    "encoding=delimited;q=0.8,application/openmetrics-text;version=1.0.0;q=0.5,"
    "text/plain;version=0.0.4;q=0.4,*/*;q=0.1"
)


def _decode(registry: Registry) -> dict[str, Any]:
    return {f.name: f for f in parse_delimited(generate_latest_protobuf(registry))}


def _labels(metric: Any) -> dict[str, str]:
    return {lp.name: lp.value for lp in metric.label}


def test_counter_with_exemplar_and_created(registry: Registry) -> None:
    meterhub.configure(created=True)
    c = meterhub.Counter("jobs", "Jobs run.", ["queue"], registry=registry)
    c.labels("mail").inc(2, exemplar={"trace_id": "abc"})
    fam = _decode(registry)["jobs_total"]
    assert (fam.help, fam.type) == ("Jobs run.", 0)  # COUNTER
    (m,) = fam.metric
    assert _labels(m) == {"queue": "mail"}
    assert m.counter.value == 2.0
    ex = m.counter.exemplar
    assert {lp.name: lp.value for lp in ex.label} == {"trace_id": "abc"}
    assert ex.value == 2.0 and ex.HasField("timestamp")
    created = m.counter.created_timestamp
    assert created.seconds > 1_600_000_000 and 0 <= created.nanos < 10**9


def test_created_off_by_default(registry: Registry) -> None:
    meterhub.Counter("jobs", "Jobs run.", registry=registry).inc()
    (m,) = _decode(registry)["jobs_total"].metric
    assert not m.counter.HasField("created_timestamp")
    assert not m.counter.HasField("exemplar")


def test_gauge_summary_info_enum(registry: Registry) -> None:
    meterhub.configure(created=True)
    Gauge("temp", "Temperature.", unit="celsius", registry=registry).set(-3.5)
    s = Summary("size", "Sizes.", registry=registry)
    s.observe(3)
    s.observe(4)
    Info("build", "Build.", registry=registry).info({"version": "1.2"})
    e = Enum("state", "State.", states=["a", "b"], registry=registry)
    e.state("b")
    fams = _decode(registry)
    temp = fams["temp_celsius"]
    assert (temp.type, temp.unit, temp.metric[0].gauge.value) == (1, "celsius", -3.5)
    summ = fams["size"].metric[0].summary
    assert (summ.sample_count, summ.sample_sum) == (2, 7.0)
    assert summ.created_timestamp.seconds > 0
    info = fams["build_info"]
    assert info.type == 1 and _labels(info.metric[0]) == {"version": "1.2"}
    assert info.metric[0].gauge.value == 1.0
    state = fams["state"]
    assert state.type == 1
    assert [(_labels(m)["state"], m.gauge.value) for m in state.metric] == [("a", 0), ("b", 1)]


def test_classic_histogram(registry: Registry) -> None:
    h = Histogram("lat", "Latency.", ["op"], buckets=(0.1, 1.0), registry=registry)
    h.labels("get").observe(0.05)
    h.labels("get").observe(0.5, exemplar={"trace_id": "t1"})
    h.labels("get").observe(7)
    fam = _decode(registry)["lat"]
    assert fam.type == 4
    hist = fam.metric[0].histogram
    assert (hist.sample_count, hist.sample_sum) == (3, 7.55)
    # cumulative, without the implied +Inf bucket (client_golang's shape)
    assert [(b.upper_bound, b.cumulative_count) for b in hist.bucket] == [(0.1, 1), (1.0, 2)]
    assert hist.bucket[1].exemplar.value == 0.5
    assert not hist.bucket[0].HasField("exemplar")
    assert not hist.HasField("schema") and not hist.positive_span  # not native


def test_custom_collector_families(registry: Registry) -> None:
    class Custom:
        def collect(self) -> Any:
            c = CounterMetricFamily("c", "C.", labels=["k"], created=None)
            c.add_metric(["x"], 5, created=1700000000.25)
            yield c
            yield GaugeMetricFamily("g", "G.", value=1.5)
            yield SummaryMetricFamily("s", "S.", count_value=2, sum_value=3.0)
            yield HistogramMetricFamily("h", "H.", buckets=[("1", 2), ("+Inf", 3)], sum_value=4)
            yield InfoMetricFamily("i", "I.", value={"a": "b"})
            yield StateSetMetricFamily("ss", "SS.", value={"on": True, "off": False})
            u = UnknownMetricFamily("u", "U.", labels=["k"])
            u.add_metric(["y"], 9, timestamp=1700000000.5)
            yield u

    registry.register(Custom())
    fams = _decode(registry)
    cm = fams["c_total"].metric[0]
    assert cm.counter.value == 5
    assert (cm.counter.created_timestamp.seconds, cm.counter.created_timestamp.nanos) == (
        1700000000,
        250_000_000,
    )
    assert fams["g"].metric[0].gauge.value == 1.5
    assert fams["s"].metric[0].summary.sample_count == 2
    h = fams["h"].metric[0].histogram
    assert (h.sample_count, h.sample_sum, [b.upper_bound for b in h.bucket]) == (3, 4, [1.0])
    assert _labels(fams["i_info"].metric[0]) == {"a": "b"}
    assert {_labels(m)["ss"]: m.gauge.value for m in fams["ss"].metric} == {"on": 1, "off": 0}
    u = fams["u"]
    assert u.type == 3 and u.metric[0].untyped.value == 9
    assert u.metric[0].timestamp_ms == 1700000000500


def test_special_values_and_unicode() -> None:
    series = (
        Series((("k", 'ü\n"x'),), (math.inf,)),
        Series((("k", "b"),), (-math.inf,)),
        Series((("k", "c"),), (math.nan,)),
    )
    fam = MetricFamily("g", "Hélp\nline", MetricType.GAUGE, series=series)
    (out,) = parse_delimited(render_protobuf([fam]))
    assert out.help == "Hélp\nline"
    assert _labels(out.metric[0]) == {"k": 'ü\n"x'}
    values = [m.gauge.value for m in out.metric]
    assert values[0] == math.inf and values[1] == -math.inf and math.isnan(values[2])


def test_summary_quantiles_from_a_snapshot() -> None:
    s = Series((), (10.0, 2.5), quantiles=((0.5, 0.1), (0.99, 0.7)))
    (out,) = parse_delimited(
        render_protobuf([MetricFamily("q", "Q.", MetricType.SUMMARY, "", (s,))])
    )
    summ = out.metric[0].summary
    assert [(q.quantile, q.value) for q in summ.quantile] == [(0.5, 0.1), (0.99, 0.7)]


def test_empty_family_and_registry(registry: Registry) -> None:
    assert generate_latest_protobuf(registry) == b""
    fam = MetricFamily("x", "", MetricType.COUNTER)
    (out,) = parse_delimited(render_protobuf([fam]))
    assert (out.name, out.help, len(out.metric)) == ("x_total", "", 0)


@given(st.integers(-(2**63), 2**64 - 1))
def test_varint_matches_protobuf(n: int) -> None:
    from google.protobuf.internal.encoder import _VarintBytes

    assert varint(n) == _VarintBytes(n if n >= 0 else n + 2**64)


@given(
    st.lists(
        st.tuples(
            st.text(st.characters(codec="utf-8"), max_size=20),
            st.floats(allow_nan=False),
        ),
        max_size=20,
    )
)
def test_random_gauges_round_trip(rows: list[tuple[str, float]]) -> None:
    series = tuple(Series((("k", k),), (v,)) for k, v in rows)
    (out,) = parse_delimited(render_protobuf([MetricFamily("g", "", MetricType.GAUGE, "", series)]))
    assert [(_labels(m)["k"], m.gauge.value) for m in out.metric] == rows


def test_exemplar_on_a_series_timestamp() -> None:
    ex = Exemplar({"t": "1"}, 0.5, 1700000000.0)
    s = Series((), (1.0,), (ex,), None, 1700000001.0)
    (out,) = parse_delimited(render_protobuf([MetricFamily("c", "", MetricType.COUNTER, "", (s,))]))
    m = out.metric[0]
    assert m.timestamp_ms == 1700000001000
    assert m.counter.exemplar.timestamp.seconds == 1700000000


# -- negotiation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "protobuf"),
    [
        (PROM_NATIVE, True),
        ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily", True),
        (
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
            "encoding=delimited;q=0.4,text/plain;q=0.5",
            False,
        ),
        (
            "text/plain,application/vnd.google.protobuf;"
            "proto=io.prometheus.client.MetricFamily;encoding=delimited",
            False,  # tie: the first listed
        ),
        ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;q=0", False),
        ("application/vnd.google.protobuf;proto=other.Thing;encoding=delimited", False),
        ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
         "encoding=text", False),
        ("application/vnd.google.protobuf", False),
        ("*/*;q=0.5,application/vnd.google.protobuf;"
         "proto=io.prometheus.client.MetricFamily;q=0.4", False),  # anything else first
        ("*/*;q=0.1,application/vnd.google.protobuf;"
         "proto=io.prometheus.client.MetricFamily;q=0.4", True),
        ("application/openmetrics-text;version=1.0.0,text/plain;q=0.5", False),
        (None, False),
    ],
)  # fmt: skip
def test_choose_format(accept: str | None, protobuf: bool) -> None:
    encode, content_type, render = choose_format(accept)
    assert (content_type == CONTENT_TYPE_PROTOBUF) is protobuf
    assert (render is None) is protobuf
    if protobuf:
        assert encode is render_protobuf


def test_negotiated_encode_and_choose_encoder(registry: Registry) -> None:
    Gauge("up", "Up.", registry=registry).set(1)
    n = negotiate(PROM_NATIVE, "gzip")
    assert n.content_type == CONTENT_TYPE_PROTOBUF and n.gzip
    assert parse_delimited(n.encode(registry.collect()))[0].name == "up"
    generate, ctype = choose_encoder(PROM_NATIVE)
    assert ctype == CONTENT_TYPE_PROTOBUF
    assert generate(registry) == generate_latest_protobuf(registry)
    assert negotiate("text/plain").encode(registry.collect()).startswith(b"# HELP up")


def test_endpoint_answers_protobuf(registry: Registry) -> None:
    Gauge("up", "Up.", registry=registry).set(1)
    headers = {"accept": PROM_NATIVE}
    resp = Endpoint(registry).handle("GET", "/metrics", "", headers.get)
    assert resp.status == 200
    assert dict(resp.headers)["Content-Type"] == CONTENT_TYPE_PROTOBUF
    assert parse_delimited(resp.body)[0].metric[0].gauge.value == 1.0
    text = Endpoint(registry).handle("GET", "/metrics", "", {}.get)
    assert text.body.startswith(b"# HELP up Up.")


def test_a_prometheus_client_collectors_native_histogram(registry: Registry) -> None:
    import prometheus_client.core as pcc
    from prometheus_client.samples import BucketSpan as PBucketSpan
    from prometheus_client.samples import NativeHistogram as PNative

    class Custom:
        def collect(self) -> Any:
            h = pcc.HistogramMetricFamily("rpc", "RPCs.", labels=["m"])
            nh = PNative(6, 12.5, 2, 0.001, 1, pos_spans=[PBucketSpan(-1, 2), PBucketSpan(3, 1)],
                         pos_deltas=[2, 0, -1])  # fmt: skip
            h.add_sample("rpc", {"m": "get"}, 0, None, None, nh)
            yield h

    registry.register(Custom())
    (fam,) = parse_delimited(generate_latest_protobuf(registry))
    hist = fam.metric[0].histogram
    assert (hist.sample_count, hist.sample_sum, hist.schema, hist.zero_count) == (6, 12.5, 2, 1)
    assert [(s.offset, s.length) for s in hist.positive_span] == [(-1, 2), (3, 1)]
    assert list(hist.positive_delta) == [2, 0, -1]
    text = meterhub.generate_latest(registry).decode()
    assert 'rpc_bucket{m="get",le="+Inf"} 6\n' in text and 'rpc_sum{m="get"} 12.5' in text


@given(
    st.lists(
        st.lists(st.floats(-1e3, 1e3) | st.sampled_from([0.0, 1e-40]), max_size=40),
        min_size=1,
        max_size=5,
    ),
    st.integers(0, 2),
)
def test_the_written_out_paths_encode_as_the_general_ones(
    series_values: list[list[float]], big: int
) -> None:
    # encode_family writes the common counter and native-only histogram series out; the
    # per-field helpers are the reference
    from meterhub.exposition import protobuf as pb

    reg = Registry(self_metrics=False)
    h = Histogram("h", "H.", ["k"], registry=reg, native_histogram_bucket_factor=1.1)
    c = Counter("c", "C.", ["k", "l"], registry=reg)
    for i, values in enumerate(series_values):
        for v in values:
            h.labels(str(i)).observe(v)
        c.labels(str(i), "x" * 100 * big).inc(10**big)
    for _ in range(130 * big):  # counts (and lengths) past one varint byte
        h.labels("0").observe(2.0)
    for fam in reg.collect():
        cache: dict[str, bytes] = {}
        if fam.type is MetricType.HISTOGRAM:
            bodies = [pb._histogram(fam, s, cache) for s in fam.series]
        else:
            bodies = [pb._len(b"\x1a", b"\x09" + pb._double(s.values[0])) for s in fam.series]
        expected = b"".join(
            pb._metric(pb._series_labels(s.labels), body, s) for s, body in zip(fam.series, bodies)
        )
        assert expected in pb.encode_family(fam)
