"""OpenMetrics 1.0: golden output, exemplars, units, ``_created``, ``# EOF``, and round trips
through prometheus_client's OpenMetrics parser (a strict one: it rejects what Prometheus
would reject)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families

import meterhub
from meterhub import Counter, Enum, Gauge, Histogram, Info, Registry, Summary
from meterhub.errors import RecordingError
from meterhub.exposition.openmetrics import (
    CONTENT_TYPE_OPENMETRICS,
    generate_latest_openmetrics,
    render_openmetrics,
)
from meterhub.samples import Exemplar, MetricFamily, MetricType, Series

GOLDEN = Path(__file__).parent / "golden"
HOSTILE = 'quote " back \\ newline \n end ✓ 日本'


def every_type_families() -> list[MetricFamily]:
    """Fixed snapshots (fixed exemplar and created timestamps) of every type."""
    ex = Exemplar({"trace_id": "4bf92f3577b34da6", "span_id": "00f067aa"}, 0.42, 1700000000.5)
    return [
        MetricFamily(
            "http_requests",
            'Requests "quoted".\nSecond \\ line.',
            MetricType.COUNTER,
            series=(
                Series((("method", "GET"), ("path", "/")), (3.0,), (ex,), 1700000000.0),
                Series((("method", "POST"), ("path", HOSTILE)), (1.5,), (None,), 1700000001.25),
            ),
        ),
        MetricFamily(
            "payload_bytes",
            "Payload sizes.",
            MetricType.HISTOGRAM,
            unit="bytes",
            buckets=(1.0, 2.5, 100.0, 1e20, math.inf),
            series=(
                Series(
                    (("route", "/users/{id}"),),
                    (512.5, 1.0, 1.0, 3.0, 3.0, 4.0),
                    (None, None, Exemplar({"trace_id": "abc"}, 42.0, None), None, None),
                    1700000002.0,
                ),
            ),
        ),
        MetricFamily(
            "temperature_celsius",
            "Temperature.",
            MetricType.GAUGE,
            unit="celsius",
            series=(
                Series((("room", "lab"),), (21.25,)),
                Series((("room", "cold"),), (-math.inf,)),
                Series((("room", "broken"),), (math.nan,)),
                Series((("room", "stamped"),), (1.0,), timestamp=1700000003.5),
            ),
        ),
        MetricFamily(
            "rpc_duration_seconds",
            "RPC durations.",
            MetricType.SUMMARY,
            series=(Series((), (7.0, 3.5), quantiles=((0.5, 0.25), (0.99, 1.0))),),
        ),
        MetricFamily(
            "build", "Build.", MetricType.INFO, series=(Series((("version", "1.2.3"),), (1.0,)),)
        ),
        MetricFamily(
            "job_state",
            "State.",
            MetricType.STATESET,
            states=("idle", "running"),
            series=(Series((("job", "nightly"),), (0.0, 1.0)),),
        ),
        MetricFamily("mystery", "Untyped.", MetricType.UNKNOWN, series=(Series((), (5.0,)),)),
        MetricFamily("nothing_yet", "No series.", MetricType.COUNTER),
    ]


def test_golden_every_type() -> None:
    text = render_openmetrics(every_type_families())
    golden = GOLDEN / "openmetrics_every_type.txt"
    if os.environ.get("METERHUB_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def every_type_registry() -> Registry:
    """Every metric type recorded through the public API (no exemplars: they carry a time)."""
    reg = Registry(self_metrics=False)
    c = Counter("http_requests", "HTTP requests.", ["method", "path"], registry=reg)
    c.labels("GET", "/").inc(3)
    c.labels("POST", HOSTILE).inc(0.5)
    Gauge("queue_length", "Queue.", registry=reg).set(7)
    Gauge("temperature", "T.", unit="celsius", registry=reg).set(-3.25)
    h = Histogram("request_duration_seconds", "Latency.", ["route"], buckets=[0.1, 0.5, 1],
                  registry=reg)  # fmt: skip
    for v in (0.05, 0.2, 0.7, 3):
        h.labels("/users/{id}").observe(v)
    s = Summary("payload_bytes", "Payload.", registry=reg)
    s.observe(100)
    Info("build", "Build.", registry=reg).info({"version": "1.2.3"})
    Enum("job_state", "State.", ["job"], states=["idle", "running"], registry=reg).labels(
        "nightly"
    ).state("running")
    return reg


def test_golden_from_registry() -> None:
    text = generate_latest_openmetrics(every_type_registry()).decode()
    golden = GOLDEN / "openmetrics_registry.txt"
    if os.environ.get("METERHUB_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
    text_string_to_metric_families(text)


def samples_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_every_type_parses_with_the_strict_parser() -> None:
    text = render_openmetrics(every_type_families())
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["payload_bytes"].unit == "bytes"
    assert fams["job_state"].type == "stateset"
    assert fams["mystery"].type == "unknown"
    s = samples_of(text)
    hostile = s[("http_requests_total", (("method", "POST"), ("path", HOSTILE)))]
    assert hostile.value == 1.5
    first = s[("http_requests_total", (("method", "GET"), ("path", "/")))]
    assert first.exemplar.labels == {"trace_id": "4bf92f3577b34da6", "span_id": "00f067aa"}
    assert first.exemplar.value == 0.42
    bucket = s[("payload_bytes_bucket", (("le", "100.0"), ("route", "/users/{id}")))]
    assert bucket.value == 3.0 and bucket.exemplar.labels == {"trace_id": "abc"}
    assert s[("http_requests_created", (("method", "GET"), ("path", "/")))].value == 1700000000.0
    assert math.isnan(s[("temperature_celsius", (("room", "broken"),))].value)
    assert float(s[("temperature_celsius", (("room", "stamped"),))].timestamp) == 1700000003.5


def test_le_is_a_canonical_float(registry: Registry) -> None:
    h = Histogram("d_seconds", "D.", buckets=(1, 2.5, 10), registry=registry)
    h.observe(3)
    text = generate_latest_openmetrics(registry).decode()
    les = [line.split('le="')[1].split('"')[0] for line in text.splitlines() if "le=" in line]
    assert les == ["1.0", "2.5", "10.0", "+Inf"]


def test_ends_with_a_single_eof(registry: Registry) -> None:
    assert render_openmetrics([]) == "# EOF\n"
    Gauge("g", "G.", registry=registry).set(1)
    text = generate_latest_openmetrics(registry).decode()
    assert text.endswith("g 1\n# EOF\n") and text.count("# EOF") == 1


def test_unit_line_and_suffix(registry: Registry) -> None:
    Counter("sent", "Bytes sent.", unit="bytes", registry=registry).inc(10)
    text = generate_latest_openmetrics(registry).decode()
    assert "# TYPE sent_bytes counter\n# UNIT sent_bytes bytes\nsent_bytes_total 10\n" in text
    assert next(iter(text_string_to_metric_families(text))).unit == "bytes"


def test_unit_that_is_not_the_suffix_is_left_out() -> None:
    fam = MetricFamily("size", "S.", MetricType.GAUGE, unit="bytes", series=(Series((), (1.0,)),))
    assert "# UNIT" not in render_openmetrics([fam])


def test_created_only_when_enabled() -> None:
    reg = Registry(self_metrics=False)
    Counter("a", "A.", registry=reg).inc()
    assert "_created" not in generate_latest_openmetrics(reg).decode()
    meterhub.configure(created=True)
    reg = Registry(self_metrics=False)
    Counter("a", "A.", registry=reg).inc()
    Histogram("h", "H.", registry=reg).observe(1)
    Summary("s", "S.", registry=reg).observe(1)
    text = generate_latest_openmetrics(reg).decode()
    for name in ("a_created", "h_created", "s_created"):
        assert f"\n{name} " in text
    assert "# TYPE a_created" not in text  # part of the family, unlike text 0.0.4
    text_string_to_metric_families(text)


def test_exemplars_recorded_through_the_api(registry: Registry) -> None:
    c = Counter("jobs", "Jobs.", ["queue"], registry=registry)
    # prometheus_client's parser cannot read an escaped quote inside exemplar labels (the
    # real Prometheus can: tests/e2e); hostile text goes in the series labels here.
    c.labels(HOSTILE).inc(2, exemplar={"trace_id": "unicode ✓ back \\ slash"})
    h = Histogram("lat_seconds", "Lat.", buckets=(0.1, 1), registry=registry)
    h.observe(0.5, exemplar={"trace_id": "t1"})
    h.observe(0.7, exemplar={"trace_id": "t2"})  # same bucket: the latest wins
    s = samples_of(generate_latest_openmetrics(registry).decode())
    ex = s[("jobs_total", (("queue", HOSTILE),))].exemplar
    assert ex.labels == {"trace_id": "unicode ✓ back \\ slash"} and ex.value == 2
    b = s[("lat_seconds_bucket", (("le", "1.0"),))]
    assert b.exemplar.labels == {"trace_id": "t2"} and b.exemplar.value == 0.7
    assert s[("lat_seconds_bucket", (("le", "0.1"),))].exemplar is None


def test_exemplar_limit_128_characters_strict(registry: Registry) -> None:
    c = Counter("jobs", "Jobs.", registry=registry)
    c.inc(exemplar={"trace_id": "x" * (128 - len("trace_id"))})  # exactly at the limit
    with pytest.raises(RecordingError, match="128"):
        c.inc(exemplar={"trace_id": "x" * (129 - len("trace_id"))})
    h = Histogram("h", "H.", registry=registry)
    with pytest.raises(RecordingError, match="128"):
        h.observe(1, exemplar={"a": "é" * 128})


def test_exemplar_over_limit_lenient_is_counted_not_raised(lenient: None) -> None:
    reg = Registry()
    c = Counter("jobs", "Jobs.", registry=reg)
    c.inc(exemplar={"trace_id": "x" * 200})
    c.inc(exemplar={"": "x"})
    c.inc(exemplar="not a dict")  # type: ignore[arg-type]
    assert reg.get_sample_value("jobs_total") == 3
    assert reg.self_metrics.errors("jobs", "exemplar") == 3
    text = generate_latest_openmetrics(reg).decode()
    assert "jobs_total 3\n" in text and "# {" not in text


def test_renderer_drops_overlong_exemplars_from_custom_collectors() -> None:
    long_ex = Exemplar({"trace_id": "y" * 200}, 1.0, None)
    fam = MetricFamily("c", "C.", MetricType.COUNTER, series=(Series((), (1.0,), (long_ex,)),))
    text = render_openmetrics([fam])
    assert "c_total 1\n" in text and "# {" not in text
    text_string_to_metric_families(text)


def test_all_metric_kinds_from_a_registry_parse(registry: Registry) -> None:
    Counter("c", "C.", ["l"], registry=registry).labels("v").inc()
    Gauge("g", "G.", registry=registry).set(-0.5)
    Histogram("h", "H.", registry=registry).observe(0.3)
    Summary("s", "S.", registry=registry).observe(2)
    Info("i", "I.", registry=registry).info({"k": HOSTILE})
    Enum("e", "E.", states=["a", "b"], registry=registry).state("a")
    s = samples_of(generate_latest_openmetrics(registry).decode())
    assert s[("i_info", (("k", HOSTILE),))].value == 1
    assert s[("e", (("e", "a"),))].value == 1
    assert s[("h_count", ())].value == 1


def test_lone_surrogates_do_not_break_the_output(registry: Registry) -> None:
    """The core refuses lone surrogates; a custom collector can still yield them, and the
    output must survive that (replaced by '?')."""
    from meterhub import CounterMetricFamily

    class Hostile:
        def collect(self):  # type: ignore[no-untyped-def]
            c = CounterMetricFamily("c", "C.", labels=["l"])
            c.add_metric(["bad \ud800 value"], 1)
            yield c

    registry.register(Hostile())
    text = generate_latest_openmetrics(registry).decode()
    assert 'c_total{l="bad ? value"} 1' in text
    text_string_to_metric_families(text)


def test_content_type() -> None:
    assert CONTENT_TYPE_OPENMETRICS.startswith("application/openmetrics-text; version=1.0.0")


def test_generate_latest_openmetrics_defaults_to_global_registry() -> None:
    text = generate_latest_openmetrics().decode()
    assert text.endswith("# EOF\n")
    text_string_to_metric_families(text)


label_values = st.text(min_size=0, max_size=20)
exemplar_values = st.text(
    st.characters(blacklist_characters='"', blacklist_categories=("Cs",)), max_size=20
)
values = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(label_values, values, min_size=1, max_size=5),
    st.lists(st.floats(min_value=0, max_value=1e6), min_size=0, max_size=20),
    st.text(max_size=30),
    exemplar_values,
)
def test_roundtrip_hypothesis(
    gauges: dict[str, float], observations: list[float], doc: str, exv: str
) -> None:
    reg = Registry(self_metrics=False)
    g = Gauge("g", doc, ["v"], registry=reg)
    for k, v in gauges.items():
        g.labels(k).set(v)
    h = Histogram("h", "H.", ["v"], buckets=(0.5, 10, 1000), registry=reg)
    c = Counter("c", "C.", ["v"], registry=reg)
    key = next(iter(gauges))
    for o in observations:
        h.labels(key).observe(o, exemplar={"trace_id": exv})
        c.labels(key).inc(o, exemplar={"span": exv})
    text = generate_latest_openmetrics(reg).decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["g"].documentation == doc.lstrip(" ")  # the parser drops leading spaces
    got = {s.labels["v"]: s.value for s in fams["g"].samples}
    assert set(got) == set(gauges)
    for k, v in gauges.items():
        assert (math.isnan(v) and math.isnan(got[k])) or got[k] == v
    counts = {s.name: s for s in fams["h"].samples if s.name == "h_count"}
    if observations:
        assert counts["h_count"].value == len(observations)
        total = next(s for s in fams["c"].samples if s.name == "c_total")
        assert total.value == pytest.approx(sum(observations))
        assert total.exemplar is not None and total.exemplar.labels == {"span": exv}


def test_utf8_exemplar_label_names_are_escaped(registry: Registry) -> None:
    Counter("jobs", "Jobs.", registry=registry).inc(exemplar={"trace.id": "abc"})
    assert b'jobs_total 1 # {trace_id="abc"} 1' in generate_latest_openmetrics(registry)
