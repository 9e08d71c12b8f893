"""Native histograms scraped by a real Prometheus 2.42 (``--enable-feature=native-histograms``,
which makes it ask for the protobuf exposition), checked through PromQL.

The application observes a known distribution twice, in two scrapes' time. Counters
incremented in step (from far above zero) are the exact reference for
``histogram_count(rate(...))`` and ``histogram_sum(rate(...))``: same scrapes, same
extrapolation. The distribution's exact quantiles bound ``histogram_quantile``: the
estimate lies in the bucket of the true quantile, so within a factor
``2**(2**-schema)`` of it.
"""

from __future__ import annotations

import math
import random
import shutil
import subprocess
import time
from typing import Any

import pytest

from meterhub import Counter, Histogram, Registry, generate_latest
from meterhub.export.http import start_http_server
from support.promstack import _api, query_exemplars, wait_for

pytestmark = [pytest.mark.realstack, pytest.mark.timeout(180)]

NATIVE = ["--enable-feature=native-histograms"]
N = 2000
SCHEMA = 3  # factor 1.1
BASE = 2 ** (2**-SCHEMA)
OFFSET = 1e9


def _distribution() -> list[float]:
    rng = random.Random(17)
    return [rng.lognormvariate(-3, 1.2) for _ in range(N)]


def _exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _value(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def _at(prom: Any, expr: str, t: float) -> float:
    """An instant query evaluated at time *t* (two queries at one time see the same samples)."""
    return _value(_api(prom.url, "/api/v1/query", {"query": expr, "time": t})["result"])


def _app() -> tuple[Registry, Any, Any, Any, Any]:
    reg = Registry(self_metrics=False)
    native = Histogram(
        "nh_latency_seconds", "Latency.", registry=reg, native_histogram_bucket_factor=1.1
    )
    dual = Histogram(
        "nh_dual_seconds", "Both.", buckets=(0.01, 0.05, 0.1, 0.5), registry=reg,
        native_histogram_bucket_factor=1.1,
    )  # fmt: skip
    count = Counter("nh_observations", "Reference count.", registry=reg)
    total = Counter("nh_observed_seconds", "Reference sum.", registry=reg)
    # Far from zero: PromQL's rate() shortens a counter's extrapolation towards the time it
    # would have been zero, which it does not do for native histograms (2.42).
    count.inc(OFFSET)
    total.inc(OFFSET)
    return reg, native, dual, count, total


def test_prometheus_ingests_native_histograms(promstack: Any) -> None:
    prom = promstack.prometheus(extra_args=NATIVE)
    reg, native, dual, count, total = _app()
    values = _distribution()

    def batch() -> None:
        for v in values:
            native.observe(v)
            dual.observe(v)
        count.inc(len(values))
        total.inc(math.fsum(values))

    batch()
    with start_http_server(0, registry=reg) as server:
        prom.add_target("nh", f"127.0.0.1:{server.port}")
        sel = '{job="nh"}'
        prom.wait_query(f"histogram_count(nh_latency_seconds{sel}) == {N}")
        batch()
        prom.wait_query(f"histogram_count(nh_latency_seconds{sel}) == {2 * N}")
        prom.wait_query(f"nh_observations_total{sel} == {OFFSET + 2 * N}")

        # instant values are exact
        s = _value(prom.query(f"histogram_sum(nh_latency_seconds{sel})"))
        assert s == pytest.approx(2 * math.fsum(values), rel=1e-12)

        # rates: exactly those of the reference counters (same scrapes, same time)
        t = time.time()
        window = "[1m]"
        rate_count = _at(prom, f"histogram_count(rate(nh_latency_seconds{sel}{window}))", t)
        ref_count = _at(prom, f"rate(nh_observations_total{sel}{window})", t)
        assert rate_count > 0 and rate_count == pytest.approx(ref_count, rel=1e-9)
        rate_sum = _at(prom, f"histogram_sum(rate(nh_latency_seconds{sel}{window}))", t)
        ref_sum = _at(prom, f"rate(nh_observed_seconds_total{sel}{window})", t)
        assert rate_sum == pytest.approx(ref_sum, rel=1e-9)

        for q in (0.5, 0.9, 0.99):
            for name in ("nh_latency_seconds", "nh_dual_seconds"):
                est = _at(prom, f"histogram_quantile({q}, rate({name}{sel}{window}))", t)
                exact = _exact_quantile(values, q)
                assert exact / BASE <= est <= exact * BASE, (name, q, est, exact)

        # the raw native histogram as the API returns it
        raw = prom.query(f"nh_latency_seconds{sel}")
        assert len(raw) == 1 and "histogram" in raw[0]
        assert float(raw[0]["histogram"][1]["count"]) == 2 * N

        # exemplars: 2.42 reads them from classic buckets (a native-only histogram's from
        # the +Inf bucket the protobuf carries for it)
        native.observe(0.25, exemplar={"trace_id": "native-1"})
        dual.observe(0.25, exemplar={"trace_id": "dual-1"})
        for name, trace in (("nh_latency_seconds", "native-1"), ("nh_dual_seconds", "dual-1")):

            def found(name: str = name) -> list[Any]:
                return [e for r in query_exemplars(prom.url, name + sel) for e in r["exemplars"]]

            ex = wait_for(found, 30, f"exemplar of {name}")
            assert ex[-1]["labels"] == {"trace_id": trace} and float(ex[-1]["value"]) == 0.25

        # What 2.42 keeps of a histogram with classic buckets too: with native histograms
        # on, it ingests the native one only (scrape_classic_histograms came in 2.45).
        classic = prom.query(f"nh_dual_seconds_bucket{sel}")
        assert classic == [], classic


def test_classic_series_of_a_dual_histogram_without_the_feature(promstack: Any) -> None:
    """Without the feature flag Prometheus asks for text: the dual histogram's classic
    series are all there (and the native-only one is a plain count/sum/+Inf histogram)."""
    prom = promstack.prometheus()
    reg, native, dual, _, _ = _app()
    for v in _distribution():
        native.observe(v)
        dual.observe(v)
    with start_http_server(0, registry=reg) as server:
        prom.add_target("nhtext", f"127.0.0.1:{server.port}")
        buckets = prom.wait_query(
            'nh_dual_seconds_bucket{job="nhtext"}', predicate=lambda r: len(r) == 5
        )
        by_le = {r["metric"]["le"]: float(r["value"][1]) for r in buckets}
        assert by_le["+Inf"] == N
        assert by_le["0.05"] == sum(1 for v in _distribution() if v <= 0.05)
        inf = prom.wait_query('nh_latency_seconds_bucket{job="nhtext"}')
        assert [r["metric"]["le"] for r in inf] == ["+Inf"]


def test_promtool_accepts_the_text_exposition() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    reg, native, dual, _, _ = _app()
    for v in _distribution()[:100]:
        native.observe(v)
        dual.observe(v)
    native.observe(-1.0)
    proc = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(reg),
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
