"""Text exposition 0.0.4: golden output, round trips through prometheus_client's parser,
and the real ``promtool check metrics``."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from meterhub import (
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Registry,
    Summary,
    generate_latest,
)
from meterhub.exposition.text import format_value

GOLDEN = Path(__file__).parent / "golden"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package 'prometheus'; `make test` installs it as root)",
)


def every_type_registry() -> Registry:
    """One metric of every type, labeled and not, with hostile label values."""
    reg = Registry(self_metrics=False)
    c = Counter(
        "http_requests",
        "HTTP requests.\nSecond line with \\ backslash.",
        ["method", "path"],
        registry=reg,
    )
    c.labels("GET", "/").inc(3)
    c.labels("POST", 'quote " back \\ newline \n end').inc()
    c.labels("GET", "unicode: héllo ✓ 日本").inc(0.5)
    Counter("plain_events", "Plain.", registry=reg).inc(12)
    g = Gauge("temperature_celsius", "Temperature.", ["room"], registry=reg)
    g.labels("lab").set(21.25)
    g.labels("cold").set(-math.inf)
    g.labels("broken").set(math.nan)
    g.labels("big").set(1e20)
    Gauge("queue_length", "Queue.", registry=reg).set(7)
    h = Histogram(
        "request_duration_seconds", "Latency.", ["route"], buckets=[0.1, 0.5, 1], registry=reg
    )
    for v in (0.05, 0.2, 0.7, 3):
        h.labels("/users/{id}").observe(v)
    Histogram("empty_seconds", "No observations.", buckets=[1], registry=reg)
    s = Summary("payload_bytes", "Payload.", registry=reg)
    s.observe(100)
    s.observe(412)
    Info("build", "Build.", registry=reg).info({"version": "1.2.3", "commit": "abc"})
    e = Enum("job_state", "State.", ["job"], states=["idle", "running"], registry=reg)
    e.labels("nightly").state("running")
    return reg


def test_golden_every_type() -> None:
    text = generate_latest(every_type_registry()).decode()
    golden = GOLDEN / "text_every_type.txt"
    if os.environ.get("METERHUB_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_parses_with_prometheus_client() -> None:
    text = generate_latest(every_type_registry()).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert (
        samples[
            (
                "http_requests_total",
                (("method", "POST"), ("path", 'quote " back \\ newline \n end')),
            )
        ]
        == 1
    )
    assert (
        samples[("request_duration_seconds_bucket", (("le", "0.5"), ("route", "/users/{id}")))] == 2
    )
    assert families["http_requests"].documentation == (
        "HTTP requests.\nSecond line with \\ backslash."
    )


def test_same_samples_as_prometheus_client() -> None:
    """Drop-in check: the same instrumentation gives the same parsed samples."""
    import prometheus_client as pc

    ours, theirs = Registry(self_metrics=False), pc.CollectorRegistry()
    pc.disable_created_metrics()
    try:
        for mod, reg in ((__import__("meterhub"), ours), (pc, theirs)):
            c = mod.Counter("c", "C.", ["a"], registry=reg)
            c.labels("x").inc(2)
            h = mod.Histogram("h", "H.", buckets=[1, 2], registry=reg)
            h.observe(1.5)
            mod.Gauge("g", "G.", registry=reg).set(-3.5)
            mod.Info("i", "I.", registry=reg).info({"k": "v"})
            mod.Enum("e", "E.", states=["a", "b"], registry=reg).state("b")
            mod.Summary("s", "S.", registry=reg).observe(4)

        def parsed(text: bytes) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
            return {
                (s.name, tuple(sorted(s.labels.items())), s.value)
                for f in text_string_to_metric_families(text.decode())
                for s in f.samples
            }

        assert parsed(generate_latest(ours)) == parsed(pc.generate_latest(theirs))
    finally:
        pc.enable_created_metrics()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3.0, "3"),
        (0.0, "0"),
        (-2.0, "-2"),
        (0.25, "0.25"),
        (1e20, "1e+20"),
        (1e-7, "1e-07"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        (123456789012345.0, "123456789012345"),
    ],
)
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


label_values = st.text(max_size=40)  # any unicode, including newlines, quotes, backslashes


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
# Parsers split the HELP line on whitespace, so only HELP text without leading or trailing
# whitespace can come back identical; label values are quoted and round-trip exactly.
@given(
    value=label_values,
    doc=st.text(max_size=60).map(str.strip),
    number=st.floats(allow_nan=False) | st.integers(-(10**12), 10**12),
)
def test_round_trip_any_label_value_and_help(value: str, doc: str, number: float) -> None:
    reg = Registry(self_metrics=False)
    Gauge("g", doc, ["v"], registry=reg).labels(value).set(number)
    [family] = text_string_to_metric_families(generate_latest(reg).decode())
    assert family.documentation == doc
    [sample] = family.samples
    assert sample.labels == {"v": value}
    assert sample.value == float(number)


@needs_promtool
def test_promtool_accepts_every_type() -> None:
    text = generate_latest(every_type_registry())
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@settings(max_examples=25, deadline=None)
@given(st.lists(label_values, min_size=1, max_size=5, unique=True))
def test_promtool_accepts_hostile_label_values(values: list[str]) -> None:
    reg = Registry(self_metrics=False)
    c = Counter("hostile_events", "Events with hostile labels.", ["v"], registry=reg)
    for v in values:
        c.labels(v).inc()
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=generate_latest(reg), capture_output=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
