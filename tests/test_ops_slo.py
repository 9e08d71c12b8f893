"""SLO burn-rate rules, proven with synthetic series in ``promtool test rules``."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterhub.ops._yaml import dump_yaml, load_yaml
from meterhub.ops.slo import parse_slos, render_slo, slo_groups

SPEC: dict[str, Any] = {
    "slos": [
        {
            "name": "api",
            "objective": 99.9,
            "window": "30d",
            "sli": {"good": 'req_total{code!~"5.."}', "total": "req_total"},
        },
        {
            "name": "latency",
            "objective": 99,
            "window": "7d",
            "sli": {"latency": {"metric": "lat_seconds", "threshold": 0.5, "selector": 'r="/a"'}},
        },
    ]
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=180, check=False)


def _expected(slo: str, long_w: str, pct: str) -> dict[str, Any]:
    """The firing alert for one window pair, annotations rendered as Prometheus would."""
    for group in slo_groups(parse_slos(SPEC)):
        for rule in group["rules"]:
            labels = rule.get("labels", {})
            if rule.get("alert") and labels["slo"] == slo and labels["long_window"] == long_w:
                ann = dict(rule["annotations"])
                ann["description"] = ann["description"].replace(
                    "{{ $value | humanizePercentage }}", pct
                )
                return {"exp_labels": labels, "exp_annotations": ann}
    raise AssertionError(long_w)


def _run(
    tmp_path: Path,
    series: list[tuple[str, str]],
    tests: list[dict[str, Any]],
    promql: Sequence[dict[str, Any]] = (),
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "slo.rules.yml").write_text(render_slo(SPEC))
    doc = {
        "rule_files": ["slo.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "alert_rule_test": tests,
                "promql_expr_test": list(promql),
            }
        ],
    }
    (tmp_path / "slo.test.yml").write_text(dump_yaml(doc))
    return promtool("test", "rules", str(tmp_path / "slo.test.yml"))


@pytest.mark.extra("yaml")
def test_rules_are_valid(tmp_path: Path) -> None:
    path = tmp_path / "slo.rules.yml"
    path.write_text(render_slo(SPEC))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    text = path.read_text()
    assert 'lat_seconds_bucket{r="/a",le="0.5"}' in text
    assert 'lat_seconds_count{r="/a"}' in text
    assert "slo:sli_error:ratio_rate7d" in text


@pytest.mark.extra("yaml")
def test_fast_burn_pages_and_slow_windows_follow(tmp_path: Path) -> None:
    # Every request fails: the error ratio is 1 in every window.
    series = [('req_total{code="500"}', "0+10x100")]
    burn = "SLOErrorBudgetBurn"
    result = _run(
        tmp_path,
        series,
        [
            {
                "eval_time": "30m",
                "alertname": burn,
                "exp_alerts": [_expected("api", "1h", "100%"), _expected("api", "6h", "100%")],
            },
            {
                "eval_time": "90m",
                "alertname": burn,
                "exp_alerts": [
                    _expected("api", "1h", "100%"),
                    _expected("api", "6h", "100%"),
                    _expected("api", "1d", "100%"),
                ],
            },
        ],
        [
            {
                "expr": 'slo:error_budget_remaining:ratio{slo="api"}',
                "eval_time": "10m",
                "exp_samples": [
                    {"labels": 'slo:error_budget_remaining:ratio{slo="api"}', "value": -999}
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.extra("yaml")
def test_slow_burn_only_tickets(tmp_path: Path) -> None:
    # 0.5 % errors = 5x the 0.1 % budget: above 3x and 1x, below 6x and 14.4x.
    series = [('req_total{code="500"}', "0+5x100"), ('req_total{code="200"}', "0+995x100")]
    result = _run(
        tmp_path,
        series,
        [
            {"eval_time": "30m", "alertname": "SLOErrorBudgetBurn", "exp_alerts": []},
            {
                "eval_time": "90m",
                "alertname": "SLOErrorBudgetBurn",
                "exp_alerts": [_expected("api", "1d", "0.5%")],
            },
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.extra("yaml")
def test_within_budget_never_fires(tmp_path: Path) -> None:
    series = [
        ('req_total{code="500"}', "0+1x100"),
        ('req_total{code="200"}', "0+9999x100"),
        ('lat_seconds_bucket{r="/a",le="0.5"}', "0+100x100"),
        ('lat_seconds_count{r="/a"}', "0+100x100"),
    ]
    result = _run(
        tmp_path,
        series,
        [
            {"eval_time": t, "alertname": "SLOErrorBudgetBurn", "exp_alerts": []}
            for t in ("10m", "60m", "100m")
        ],
        [
            {
                "expr": 'slo:error_budget_remaining:ratio{slo="latency"}',
                "eval_time": "10m",
                "exp_samples": [
                    {"labels": 'slo:error_budget_remaining:ratio{slo="latency"}', "value": 1}
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.extra("yaml")
def test_latency_burn_fires(tmp_path: Path) -> None:
    # Every request slower than the 0.5 s threshold.
    series = [
        ('lat_seconds_bucket{r="/a",le="0.5"}', "0x100"),
        ('lat_seconds_count{r="/a"}', "0+100x100"),
    ]
    result = _run(
        tmp_path,
        series,
        [
            {
                "eval_time": "30m",
                "alertname": "SLOErrorBudgetBurn",
                "exp_alerts": [
                    _expected("latency", "1h", "100%"),
                    _expected("latency", "6h", "100%"),
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.extra("yaml")
def test_spec_from_yaml_file_and_text(tmp_path: Path) -> None:
    path = tmp_path / "slo.yml"
    path.write_text(dump_yaml(SPEC))
    assert render_slo(path) == render_slo(SPEC) == render_slo(str(path))
    assert render_slo(dump_yaml(SPEC["slos"][0])) == render_slo(SPEC["slos"][0])
    groups = load_yaml(render_slo(SPEC))["groups"]
    assert [g["name"] for g in groups] == ["slo.api", "slo.latency"]


@pytest.mark.parametrize(
    "bad",
    [
        {},
        [],
        {"slos": []},
        {"name": "x", "objective": 100, "sli": {"good": "a", "total": "b"}},
        {"name": "x", "objective": 0, "sli": {"good": "a", "total": "b"}},
        {"name": "x", "objective": math.nan, "sli": {"good": "a", "total": "b"}},
        {"name": "x", "objective": "99.9", "sli": {"good": "a", "total": "b"}},
        {"name": "x", "objective": True, "sli": {"good": "a", "total": "b"}},
        {"name": "x\ny", "objective": 99, "sli": {"good": "a", "total": "b"}},
        {"name": 'x"}', "objective": 99, "sli": {"good": "a", "total": "b"}},
        {"name": "x", "objective": 99, "window": "30 days", "sli": {"good": "a", "total": "b"}},
        {"name": "x", "objective": 99, "sli": {"good": "a) or vector(1", "total": "b"}},
        {"name": "x", "objective": 99, "sli": {"good": "a"}},
        {"name": "x", "objective": 99, "sli": "a/b"},
        {"name": "x", "objective": 99, "sli": {"latency": {"metric": "h", "threshold": -1}}},
        {"name": "x", "objective": 99, "sli": {"latency": {"metric": "h", "threshold": math.inf}}},
        {"name": "x", "objective": 99, "sli": {"latency": {"metric": 'h{a="b"}', "threshold": 1}}},
        {
            "name": "x",
            "objective": 99,
            "sli": {"latency": {"metric": "h", "threshold": 1, "selector": 'a="b"} or x{'}},
        },
        [{"name": "x", "objective": 99, "sli": {"good": "a", "total": "b"}}] * 2,
        42,
    ],
)
def test_bad_specs(bad: Any) -> None:
    with pytest.raises(ValueError):
        render_slo(bad)


@settings(max_examples=40, deadline=None)
@given(
    st.floats(min_value=50, max_value=99.999),
    st.sampled_from(["7d", "28d", "30d", "4w"]),
    st.floats(min_value=0.001, max_value=100),
)
def test_generated_thresholds_are_consistent(objective: float, window: str, le: float) -> None:
    spec = {
        "name": "p",
        "objective": objective,
        "window": window,
        "sli": {"latency": {"metric": "h_seconds", "threshold": le}},
    }
    rules = slo_groups(parse_slos(spec))[0]["rules"]
    alerts = [r for r in rules if "alert" in r]
    assert len(alerts) == 4
    for a in alerts:
        limit = float(a["expr"].split(" > ")[1].split("\n")[0])
        assert limit == pytest.approx(float(a["labels"]["burn_rate"]) * (1 - objective / 100))
    assert any(r.get("record") == f"slo:sli_error:ratio_rate{window}" for r in rules)


@pytest.mark.extra("yaml")
def test_spec_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        render_slo(tmp_path / "missing.yml")
    with pytest.raises(FileNotFoundError):
        render_slo(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yml"
    bad.write_text("slos: [\n  - {name: x")
    with pytest.raises(ValueError, match="invalid YAML"):
        render_slo(bad)
    plain = tmp_path / "spec.txt"
    plain.write_text(dump_yaml(SPEC))
    assert render_slo(str(plain)) == render_slo(SPEC)
