"""The exposition parser: round trips through meterhub's renderer, agreement with
prometheus_client's parser, OpenMetrics tolerance and hostile input."""

from __future__ import annotations

import math
from collections import Counter as Multiset
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from meterhub import Counter, Gauge, Histogram, Info, Registry, Summary, generate_latest
from meterhub.errors import ParseError
from meterhub.exposition.parser import parse_text, parse_text_located
from meterhub.exposition.text import render_text
from meterhub.samples import MetricFamily, MetricType, Series

# -- strategies -------------------------------------------------------------------------

_RESERVED = ("_total", "_count", "_sum", "_bucket", "_created", "_info", "_gcount", "_gsum")
tails = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda t: not t.endswith(_RESERVED) and not t.endswith("_")
)
label_names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda n: n not in ("le", "quantile")
)
# Any unicode, including quotes, backslashes and newlines (escaped by the renderer).
label_values = st.text(alphabet=st.characters(blacklist_characters="\r"), max_size=12)
help_texts = st.text(alphabet=st.characters(blacklist_characters="\r"), max_size=30)
values = st.floats(allow_nan=True, allow_infinity=True, width=64)
counts = st.integers(min_value=0, max_value=10**6).map(float)


@st.composite
def label_sets(draw: Any, n: int) -> list[tuple[tuple[str, str], ...]]:
    names = draw(st.lists(label_names, min_size=0, max_size=3, unique=True))
    sets = draw(
        st.lists(st.tuples(*[label_values for _ in names]), min_size=0, max_size=n, unique=True)
    )
    return [tuple(zip(names, vs)) for vs in sets]


@st.composite
def families(draw: Any, index: int) -> MetricFamily:
    name = f"m{index}_{draw(tails)}"
    kind = draw(
        st.sampled_from(
            [
                MetricType.COUNTER,
                MetricType.GAUGE,
                MetricType.HISTOGRAM,
                MetricType.SUMMARY,
                MetricType.UNKNOWN,
            ]
        )
    )
    doc = draw(help_texts)
    series: list[Series] = []
    created = draw(st.booleans()) and kind in (MetricType.COUNTER, MetricType.HISTOGRAM)
    labels_list = draw(label_sets(3))
    if kind is MetricType.HISTOGRAM:
        bounds = sorted(
            set(draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=0, max_size=4)))
        )
        buckets = (*bounds, math.inf)
        for labels in labels_list:
            increments = draw(st.lists(counts, min_size=len(buckets), max_size=len(buckets)))
            cumulative = tuple(sum(increments[: i + 1]) for i in range(len(buckets)))
            stamp = float(draw(counts)) if created else None
            series.append(Series(labels, (draw(values), *cumulative), created=stamp))
        return MetricFamily(name, doc, kind, series=tuple(series), buckets=buckets)
    for labels in labels_list:
        if kind is MetricType.SUMMARY:
            qs = tuple((q, draw(values)) for q in draw(st.sampled_from([(), (0.5,), (0.5, 0.99)])))
            series.append(Series(labels, (draw(counts), draw(values)), quantiles=qs))
        else:
            stamp = float(draw(counts)) if created else None
            ts = draw(st.none() | st.integers(0, 2 * 10**12).map(lambda ms: ms / 1000))
            series.append(Series(labels, (draw(values),), created=stamp, timestamp=ts))
    return MetricFamily(name, doc, kind, series=tuple(series))


@st.composite
def expositions(draw: Any) -> list[MetricFamily]:
    n = draw(st.integers(min_value=1, max_value=4))
    return [draw(families(i)) for i in range(n)]


def _key(name: str, labels: Any, value: float) -> tuple[Any, ...]:
    return (name, tuple(sorted(dict(labels).items())), "nan" if value != value else value)


# -- properties -------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expositions())
def test_render_parse_render_is_identity(fams: list[MetricFamily]) -> None:
    text = render_text(fams)
    assert render_text(parse_text(text)) == text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expositions())
def test_samples_agree_with_prometheus_client_parser(fams: list[MetricFamily]) -> None:
    text = render_text(fams)
    ours = Multiset(_key(s.name, s.labels, s.value) for f in parse_text(text) for s in f.samples)
    theirs = Multiset(
        _key(s.name, s.labels, s.value)
        for f in text_string_to_metric_families(text)
        for s in f.samples
    )
    assert ours == theirs


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_parses_or_raises_parse_error(text: str) -> None:
    try:
        parse_text(text)
    except ParseError as exc:
        assert str(exc)


# -- examples ---------------------------------------------------------------------------


def test_registry_output_round_trips(registry: Registry) -> None:
    c = Counter("jobs", "Jobs run.", ["queue"], registry=registry)
    c.labels('we"ird\\\nq').inc(3)
    Histogram("lat_seconds", "Latency.", ["route"], registry=registry).labels("/a").observe(0.3)
    Summary("size_bytes", "Sizes.", registry=registry).observe(12)
    Info("build", "Build.", registry=registry).info({"version": "1.2"})
    Gauge("temp", "Temp.", registry=registry).set(float("-inf"))
    text = generate_latest(registry).decode()
    parsed = {f.name: f for f in parse_text(text)}
    assert parsed["jobs"].type is MetricType.COUNTER
    assert parsed["jobs"].series[0].labels == (("queue", 'we"ird\\\nq'),)
    hist = parsed["lat_seconds"]
    assert hist.buckets[-1] == math.inf
    assert hist.series[0].values[0] == pytest.approx(0.3)
    assert hist.series[0].values[-1] == 1.0
    assert parsed["size_bytes"].series[0].values == (1.0, 12.0)
    assert parsed["temp"].series[0].values == (-math.inf,)
    assert render_text(parse_text(text)) == text


def test_untyped_samples_and_line_numbers() -> None:
    text = '# a comment\nfoo 1\n\nbar{a="x"} 2\nbar{a="y"} 3\n'
    parsed = parse_text_located(text)
    assert [f.name for f in parsed.families] == ["foo", "bar"]
    assert all(f.type is MetricType.UNKNOWN for f in parsed.families)
    assert parsed.family_lines == {"foo": 2, "bar": 4}
    assert parsed.series_lines[("bar", (("a", "y"),))] == 5


def test_openmetrics_counter_with_exemplar_created_and_seconds_timestamps() -> None:
    text = (
        "# TYPE req counter\n# UNIT req requests\n# HELP req Requests.\n"
        'req_total{code="200"} 7 1700000000.5 # {trace_id="abc"} 1.0 1700000000.0\n'
        'req_created{code="200"} 1600000000\n'
        "# EOF\n"
    )
    (fam,) = parse_text(text)
    assert (fam.name, fam.type, fam.documentation) == ("req", MetricType.COUNTER, "Requests.")
    s = fam.series[0]
    assert s.values == (7.0,) and s.created == 1600000000.0 and s.timestamp == 1700000000.5
    assert s.exemplars[0] is not None and dict(s.exemplars[0].labels) == {"trace_id": "abc"}


def test_text_timestamps_are_milliseconds() -> None:
    (fam,) = parse_text("# TYPE g gauge\ng 1 1700000000123\n")
    assert fam.series[0].timestamp == pytest.approx(1700000000.123)


def test_histogram_without_inf_bucket_uses_count() -> None:
    text = '# TYPE h histogram\nh_bucket{le="1"} 2\nh_count 5\nh_sum 9\n'
    (fam,) = parse_text(text)
    assert fam.buckets == (1.0, math.inf)
    assert fam.series[0].values == (9.0, 2.0, 5.0)


def test_crlf_line_endings() -> None:
    (fam,) = parse_text('# TYPE g gauge\r\ng{a="b"} 2\r\n')
    assert fam.series[0].values == (2.0,)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('foo{a="x} 1\n', "line 1"),
        ("foo abc\n", "invalid number"),
        ('foo{a="1",a="2"} 1\n', "duplicate label"),
        ("foo 1\n# TYPE foo gauge\n", "after its samples"),
        ("# TYPE foo histogrammm\n", "unknown metric type"),
        ("9foo 1\n", "invalid metric name"),
        ('foo{9a="1"} 1\n', "malformed label"),
        ("foo 1 2 3\n", "expected a value"),
        ("foo\n", "expected a value"),
        ("foo 1\nfoo 2\n", "duplicate sample"),
        ("foo 1 NaN\n", "invalid timestamp"),
        ("# TYPE h histogram\nh_bucket 1\n", "without an le"),
        ('foo{a="x\\', "dangling backslash"),
        ("f\u00e9o 1\n", "invalid metric name"),
    ],
)
def test_malformed_input_names_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(ParseError, match=fragment):
        parse_text(text)


def test_non_str_input_is_rejected() -> None:
    with pytest.raises(ParseError, match="must be str"):
        parse_text(b"foo 1\n")  # type: ignore[arg-type]
