"""``meterhub.tools.top``: histogram_quantile as PromQL computes it, rates between snapshots."""

from __future__ import annotations

import math
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterhub import Counter, Gauge, Histogram, Registry
from meterhub.samples import MetricType
from meterhub.tools.top import compare, histogram_quantile

INF = math.inf


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        # rank 50 of 100 falls in (0.1, 0.5]: 0.1 + 0.4 * (50 - 40) / 40
        (0.5, [(0.1, 40.0), (0.5, 80.0), (1.0, 100.0), (INF, 100.0)], 0.2),
        (0.99, [(0.1, 40.0), (0.5, 80.0), (1.0, 100.0), (INF, 100.0)], 0.975),
        (0.0, [(1.0, 10.0), (INF, 10.0)], 0.0),
        (1.0, [(1.0, 10.0), (INF, 10.0)], 1.0),
        # rank in the +Inf bucket: the highest finite bound, as PromQL does
        (0.9, [(1.0, 5.0), (INF, 10.0)], 1.0),
        # the first bucket interpolates from 0 when its bound is positive
        (0.5, [(2.0, 10.0), (INF, 10.0)], 1.0),
        # a first bucket with a bound <= 0 returns the bound
        (0.1, [(-1.0, 5.0), (1.0, 10.0), (INF, 10.0)], -1.0),
    ],
)
def test_histogram_quantile_matches_promql(
    q: float, buckets: list[tuple[float, float]], expected: float
) -> None:
    assert histogram_quantile(q, buckets) == pytest.approx(expected)


def test_histogram_quantile_edge_cases() -> None:
    assert math.isnan(histogram_quantile(0.5, []))
    assert math.isnan(histogram_quantile(0.5, [(1.0, 0.0), (INF, 0.0)]))
    assert math.isnan(histogram_quantile(float("nan"), [(1.0, 1.0), (INF, 1.0)]))
    assert histogram_quantile(-0.1, [(1.0, 1.0), (INF, 1.0)]) == -INF
    assert histogram_quantile(1.5, [(1.0, 1.0), (INF, 1.0)]) == INF


@st.composite
def cumulative(draw: st.DrawFn) -> list[tuple[float, float]]:
    bounds = sorted(set(draw(st.lists(st.floats(0.001, 1000), min_size=1, max_size=8))))
    incs = draw(st.lists(st.integers(0, 100), min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    total, out = 0.0, []
    for bound, inc in zip([*bounds, INF], incs):
        total += inc
        out.append((bound, total))
    return out


@given(cumulative(), st.floats(0.001, 1), st.floats(0.001, 1))  # q=0: NaN-prone, as in PromQL
def test_quantiles_are_monotone_and_inside_the_bounds(
    buckets: list[tuple[float, float]], q1: float, q2: float
) -> None:
    a, b = histogram_quantile(min(q1, q2), buckets), histogram_quantile(max(q1, q2), buckets)
    if buckets[-1][1] == 0:
        assert math.isnan(a) and math.isnan(b)
        return
    assert a <= b
    assert 0 <= a <= buckets[-2][0] if len(buckets) > 1 else math.isnan(a)


def test_compare_rates_gauges_and_quantiles(registry: Registry) -> None:
    c = Counter("jobs", "Jobs.", ["queue"], registry=registry)
    g = Gauge("busy", "Busy.", registry=registry)
    h = Histogram("lat_seconds", "Latency.", registry=registry, buckets=(0.1, 1.0))
    c.labels("a").inc(10)
    h.observe(0.05)
    before = list(registry.collect())
    c.labels("a").inc(20)
    c.labels("b").inc(4)
    g.set(3)
    for _ in range(4):
        h.observe(0.5)
    view = compare(before, list(registry.collect()), 2.0)
    rows = {r.name: r for r in view.rows}
    assert rows["jobs"].rate == pytest.approx(12.0)  # (20 + 4) / 2 s
    assert rows["busy"].value == 3 and rows["busy"].rate is None
    lat = rows["lat_seconds"]
    assert lat.type is MetricType.HISTOGRAM and lat.rate == pytest.approx(2.0)
    assert lat.quantiles[0] == pytest.approx(0.55)  # only the new observations count
    assert view.rows[0].name == "jobs"  # busiest first
    assert [s.labels for s in view.busiest][:2] == [(("queue", "a"),), (("queue", "b"),)]


def test_compare_counts_a_reset_from_zero(registry: Registry) -> None:
    c = Counter("jobs", "Jobs.", registry=registry)
    c.inc(50)
    before = list(registry.collect())
    fresh = Registry(self_metrics=False)
    Counter("jobs", "Jobs.", registry=fresh).inc(6)
    (row,) = compare(before, list(fresh.collect()), 3.0).rows
    assert row.rate == pytest.approx(2.0)


def _promtool_case(index: int, q: float, buckets: list[tuple[float, float]], ours: float) -> str:
    series = "".join(
        f"      - series: 'h{index}_bucket{{le=\"{'+Inf' if b == INF else repr(b)}\"}}'\n"
        f"        values: '{c:g}'\n"
        for b, c in buckets
    )
    expected = "NaN" if math.isnan(ours) else repr(ours)
    return (
        f"  - interval: 1m\n    input_series:\n{series}"
        f"    promql_expr_test:\n      - expr: histogram_quantile({q!r}, h{index}_bucket)\n"
        f"        eval_time: 0m\n        exp_samples:\n"
        f"          - labels: '{{}}'\n            value: {expected}\n"
    )


def test_histogram_quantile_agrees_with_real_prometheus(tmp_path: Path) -> None:
    """The same buckets through promtool's PromQL engine give the same numbers."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    rnd = random.Random(20240607)
    cases: list[str] = []
    for i in range(40):
        bounds = sorted({round(rnd.uniform(0.001, 50), 3) for _ in range(rnd.randint(1, 6))})
        total, buckets = 0.0, []
        for b in [*bounds, INF]:
            total += rnd.randint(0, 30)
            buckets.append((b, total))
        if total == 0:
            continue
        q = rnd.choice([0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0])
        cases.append(_promtool_case(i, q, buckets, histogram_quantile(q, buckets)))
    spec = tmp_path / "quantiles.yml"
    spec.write_text("rule_files: []\nevaluation_interval: 1m\ntests:\n" + "".join(cases))
    proc = subprocess.run([promtool, "test", "rules", str(spec)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
