"""Grafana dashboards: structure, Grafana's own dashboard model (``grafana-foundation-sdk``),
and every panel query proven valid by ``promtool``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from meterhub import Counter, Enum, Gauge, Histogram, Hub, Registry, Summary
from meterhub.ops._yaml import dump_yaml
from meterhub.ops.dashboards import (
    SCHEMA_VERSION,
    application_name,
    dashboard,
    panel_queries,
    render_dashboard,
)
from support.grafana import check_with_grafanas_model

SLOS = {
    "slos": [
        {
            "name": "api.availability",
            "objective": 99.9,
            "window": "30d",
            "sli": {"good": 'http_server_requests_total{status!~"5.."}', "total": "x_total"},
        },
        {
            "name": "checkout",
            "objective": 99,
            "window": "7d",
            "sli": {"good": "orders_total", "total": "orders_total"},
        },
    ]
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def _full_registry() -> Registry:
    reg = Registry()
    Hub(registry=reg, namespace="shop").inc_counter(
        "component_calls_total", {"component": "jira", "operation": "x", "status": "success"}
    )
    Counter("http_server_requests", "R.", ["method", "route", "status"], registry=reg)
    Histogram(
        "http_server_request_duration_seconds", "D.", ["method", "route", "status"], registry=reg
    )
    Counter("celery_tasks", "T.", ["task", "state"], registry=reg)
    Counter("meterhub_oplog_dropped", "D.", registry=reg)
    Counter("orders", "Orders.", ["country"], registry=reg)
    Counter("payments", "Payments.", ["provider", "outcome"], registry=reg)
    Gauge("basket_items", "Items.", registry=reg)
    Histogram("checkout_seconds", "Checkout.", registry=reg)
    Summary("payload_bytes", "Payload.", registry=reg)
    Enum("phase", "Phase.", states=["a", "b"], registry=reg)
    return reg


def _check_queries(tmp_path: Path, board: dict[str, Any]) -> None:
    queries = panel_queries(board)
    assert queries
    # Grafana substitutes its variables before querying; do the same, then let promtool parse.
    rules = [
        {
            "record": f"dashboard:panel_query:{i}",
            "expr": q.replace("$__rate_interval", "5m").replace("$job", "app|worker"),
        }
        for i, q in enumerate(queries)
    ]
    path = tmp_path / "panels.rules.yml"
    path.write_text(dump_yaml({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


@pytest.mark.extra("yaml")
def test_default_dashboard_queries_are_valid(tmp_path: Path) -> None:
    board = dashboard()
    _check_queries(tmp_path, board)
    check_with_grafanas_model(board)


@pytest.mark.extra("yaml")
def test_registry_dashboard_queries_are_valid(tmp_path: Path) -> None:
    board = dashboard(_full_registry(), slos=SLOS)
    _check_queries(tmp_path, board)
    check_with_grafanas_model(board)
    titles = [p["title"] for p in board["panels"]]
    for row in (
        "HTTP (RED per route)",
        "Components",
        "Celery",
        "Operation log",
        "SLO",
        "Application metrics",
    ):
        assert row in titles
    for panel in ("orders_total / s", "basket_items", "checkout_seconds p95", "payload_bytes mean"):
        assert panel in titles
    assert any("shop_component_calls_total" in q for q in panel_queries(board))


def test_sections_follow_the_registry(registry: Registry) -> None:
    assert dashboard(registry)["panels"] == []
    Counter("celery_tasks", "T.", ["task", "state"], registry=registry)
    titles = [p["title"] for p in dashboard(registry)["panels"] if p["type"] == "row"]
    assert titles == ["Celery"]


def _exprs(board: dict[str, Any], title: str) -> list[str]:
    (panel,) = [p for p in board["panels"] if p["title"] == title]
    return [t["expr"] for t in panel["targets"]]


def test_a_counter_keeps_its_outcome_split() -> None:
    board = dashboard(_full_registry())
    (payments,) = _exprs(board, "payments_total / s")
    assert payments.startswith("sum by (outcome) (rate(payments_total{")
    (orders,) = _exprs(board, "orders_total / s")  # country is no outcome: one line
    assert orders.startswith("sum(rate(orders_total{")
    reg = Registry(self_metrics=False)
    Counter("jobs", "J.", ["queue", "status"], registry=reg)
    Counter("calls", "C.", ["code"], registry=reg)
    board = dashboard(reg)
    assert _exprs(board, "jobs_total / s")[0].startswith("sum by (status) (rate(jobs_total{")
    assert _exprs(board, "calls_total / s")[0].startswith("sum by (code) (rate(calls_total{")
    legends = [t["legendFormat"] for p in board["panels"] for t in p.get("targets", ())]
    assert legends == ["{{code}}", "{{status}}"]


def test_slo_panels_only_with_slos(tmp_path: Path) -> None:
    rows = lambda b: [p["title"] for p in b["panels"] if p["type"] == "row"]  # noqa: E731
    assert "SLO" not in rows(dashboard())
    assert "SLO" not in rows(dashboard(_full_registry()))
    board = dashboard(_full_registry(), slos=SLOS)
    assert rows(board)[-2:] == ["SLO", "Application metrics"]
    (remaining,) = _exprs(board, "Error budget remaining")
    assert remaining == 'slo:error_budget_remaining:ratio{slo=~"api\\\\.availability|checkout"}'
    from meterhub.ops.slo import parse_slos

    assert dashboard(slos=parse_slos(SLOS)) == dashboard(slos=SLOS)
    with pytest.raises(ValueError, match="objective"):
        dashboard(slos={"name": "x", "objective": 120, "window": "30d", "sli": {}})


@pytest.mark.extra("yaml")
def test_the_slo_selector_matches_exactly_the_slos(tmp_path: Path) -> None:
    """The escaped SLO names select their own series and no look-alike (promtool test)."""
    expr = _exprs(dashboard(slos=SLOS), "Error budget remaining")[0]
    rules = tmp_path / "r.yml"
    group = {"name": "g", "rules": [{"record": "r", "expr": expr}]}
    rules.write_text(dump_yaml({"groups": [group]}))
    series = [
        {"series": f'slo:error_budget_remaining:ratio{{slo="{n}"}}', "values": "1"}
        for n in ("api.availability", "apixavailability", "checkout")
    ]
    expected = [{"labels": f'r{{slo="{n}"}}', "value": 1} for n in ("api.availability", "checkout")]
    test = {
        "rule_files": [str(rules)],
        "tests": [
            {
                "input_series": series,
                "promql_expr_test": [{"expr": "r", "eval_time": "0m", "exp_samples": expected}],
            }
        ],
    }
    path = tmp_path / "t.yml"
    path.write_text(dump_yaml(test))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_http_latency_by_status_when_the_histogram_has_it(registry: Registry) -> None:
    board = dashboard(_full_registry())
    assert all('status=~"5.."' in q for q in _exprs(board, "Latency of 5xx"))
    Counter("http_server_requests", "R.", ["method", "route", "status"], registry=registry)
    Histogram("http_server_request_duration_seconds", "D.", ["method", "route"], registry=registry)
    titles = [p["title"] for p in dashboard(registry)["panels"]]
    assert "Latency" in titles and "Latency of 5xx" not in titles


def test_uid_and_title_name_the_application() -> None:
    shop = dashboard(_full_registry())  # the component metrics' namespace
    assert (shop["uid"], shop["title"]) == ("meterhub-shop", "shop")
    reg = Registry(self_metrics=False)
    Counter("billing_invoices", "I.", registry=reg)
    Gauge("billing_open_items", "O.", registry=reg)
    assert application_name(reg) == "billing"
    billing = json.loads(render_dashboard(reg))
    assert (billing["uid"], billing["title"]) == ("meterhub-billing", "billing")
    hub = Hub(registry=Registry(self_metrics=False), namespace="alertdesk")
    hub.set_gauge("queue_depth", {}, 1)
    assert json.loads(render_dashboard(hub))["uid"] == "meterhub-alertdesk"
    Counter("other_thing", "T.", registry=reg)  # no shared segment, no namespace
    assert application_name(reg) is None
    assert (dashboard(reg)["uid"], dashboard(reg)["title"]) == ("meterhub-overview", "meterhub")
    named = dashboard(reg, "Billing (prod)", uid="billing-prod")
    assert (named["uid"], named["title"]) == ("billing-prod", "Billing (prod)")
    long = dashboard(application="a very long application name, with punctuation!" * 2)
    assert len(long["uid"]) <= 40 and long["uid"].startswith("meterhub-a-very-long-")
    check_with_grafanas_model(long)


@pytest.mark.parametrize("uid", ["", "x" * 41, "has space", "slash/uid", "ünï", 7])
def test_a_bad_uid_is_refused_with_grafanas_rule(uid: Any) -> None:
    with pytest.raises(ValueError, match=r"1 to 40 of the characters \[a-zA-Z0-9_-\]"):
        dashboard(uid=uid)


def test_structure() -> None:
    board = json.loads(render_dashboard())
    assert board["schemaVersion"] == SCHEMA_VERSION and board["uid"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["type"] == "query" and variables["job"]["multi"]
    assert variables["job"]["datasource"]["uid"] == "${datasource}"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        cell = (g["x"], g["y"])
        assert cell not in cells
        cells.add(cell)
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}"
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"
            if not t["expr"].startswith("slo:"):
                assert 'job=~"$job"' in t["expr"]


def test_bad_inputs() -> None:
    with pytest.raises(TypeError):
        render_dashboard(registry=3.5)
    with pytest.raises(TypeError, match="title must be a str"):
        dashboard(title=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="application must be a str"):
        dashboard(application=["shop"])  # type: ignore[arg-type]
    board = json.loads(render_dashboard(title='quote " back \\ new\nline ünï'))
    assert board["title"] == 'quote " back \\ new\nline ünï'
