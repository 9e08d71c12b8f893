"""Grafana dashboards: structure, and every panel query proven valid by ``promtool``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from meterhub import Counter, Enum, Gauge, Histogram, Hub, Registry, Summary
from meterhub.ops._yaml import dump_yaml
from meterhub.ops.dashboards import SCHEMA_VERSION, dashboard, panel_queries, render_dashboard


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
    Counter("celery_tasks", "T.", ["task", "state"], registry=reg)
    Counter("meterhub_oplog_dropped", "D.", registry=reg)
    Counter("orders", "Orders.", ["country"], registry=reg)
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
    _check_queries(tmp_path, dashboard())


@pytest.mark.extra("yaml")
def test_registry_dashboard_queries_are_valid(tmp_path: Path) -> None:
    board = dashboard(_full_registry())
    _check_queries(tmp_path, board)
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
    titles = [p["title"] for p in dashboard(registry)["panels"] if p["type"] == "row"]
    assert titles == ["SLO"]


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
    board = json.loads(render_dashboard(title='quote " back \\ new\nline ünï'))
    assert board["title"] == 'quote " back \\ new\nline ünï'
