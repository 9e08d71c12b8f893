"""The metric catalog: Markdown and JSON from a registry or an imported app object."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterhub import Counter, Gauge, Histogram, Hub, Registry
from meterhub.ops import load_app_registry, registry_of
from meterhub.ops.catalog import catalog_entries, render_catalog


@pytest.fixture
def app_registry() -> Registry:
    reg = Registry(self_metrics=True)
    h = Hub(registry=reg, namespace="shop")
    h.inc_counter("component_calls_total", {"component": "jira", "operation": "x", "status": "ok"})
    Counter("orders", "Orders placed.", ["country"], registry=reg)
    Gauge("basket_items", "Items in baskets.", registry=reg)
    Histogram("checkout_seconds", "Checkout duration.", ["step"], unit="", registry=reg)
    return reg


def test_markdown_groups_components_and_prefixes(app_registry: Registry) -> None:
    md = render_catalog(app_registry)
    assert md.startswith("# Metric catalog\n")
    assert "## component" in md and "## orders" in md and "## meterhub" in md
    row = next(line for line in md.splitlines() if "`orders_total`" in line)
    assert row == "| `orders_total` | counter | - | `country` | Orders placed. |"
    calls = next(line for line in md.splitlines() if "shop_component_calls_total" in line)
    assert "`component`, `operation`, `status`" in calls
    assert "Components seen: `jira`." in md


def test_json_lists_every_metric(app_registry: Registry) -> None:
    data = json.loads(render_catalog(app_registry, fmt="json"))
    by_name = {m["name"]: m for m in data["metrics"]}
    assert by_name["checkout_seconds"]["type"] == "histogram"
    assert by_name["checkout_seconds"]["labels"] == ["step"]
    assert by_name["basket_items"]["labels"] == []
    assert by_name["shop_component_calls_total"]["group"] == "component"
    assert by_name["shop_component_calls_total"]["components"] == ["jira"]
    assert "meterhub_errors_total" in by_name


def test_accepts_hub_and_metric(app_registry: Registry) -> None:
    h = Hub(registry=app_registry)
    assert render_catalog(h) == render_catalog(app_registry)
    reg = Registry(self_metrics=False)
    c = Counter("lonely", "One metric.", registry=reg)
    Counter("other", "Another.", registry=reg)
    assert [e.name for e in catalog_entries(registry_of(c))] == ["lonely_total"]


def test_bad_inputs(registry: Registry) -> None:
    with pytest.raises(ValueError, match="format"):
        render_catalog(registry, fmt="xml")
    with pytest.raises(TypeError):
        render_catalog(42)
    with pytest.raises(TypeError):
        catalog_entries("registry")  # type: ignore[arg-type]


def test_empty_registry(registry: Registry) -> None:
    assert render_catalog(registry) == "# Metric catalog\n"
    assert json.loads(render_catalog(registry, fmt="json")) == {"metrics": []}


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_hostile_help_stays_in_one_cell(help_text: str) -> None:
    reg = Registry(self_metrics=False)
    Gauge("g", help_text, registry=reg)
    rows = [line for line in render_catalog(reg).splitlines() if line.startswith("| `g`")]
    assert len(rows) == 1
    unescaped = rows[0].replace("\\\\", "").replace("\\|", "")
    assert unescaped.count("|") == 6
    assert json.loads(render_catalog(reg, fmt="json"))["metrics"][0]["help"] == help_text


def _write_module(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(body)
    sys.modules.pop(name, None)


def test_load_app_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    _write_module(
        tmp_path,
        "ops_catalog_app",
        "from meterhub import Counter, Hub, Registry\n"
        "reg = Registry(self_metrics=False)\n"
        "hub = Hub(registry=reg)\n"
        "orders = Counter('orders', 'Orders.', registry=reg)\n"
        "class Holder:\n    inner = reg\n"
        "not_a_registry = 3\n",
    )
    reg = load_app_registry("ops_catalog_app:reg")
    assert load_app_registry("ops_catalog_app:hub") is reg
    assert load_app_registry("ops_catalog_app:Holder.inner") is reg
    assert [e.name for e in catalog_entries(load_app_registry("ops_catalog_app:orders"))] == [
        "orders_total"
    ]
    for bad in ("no_colon", "a:b:c", ":reg", "ops_catalog_app:", "ops_catalog_app:1x"):
        with pytest.raises(ValueError):
            load_app_registry(bad)
    with pytest.raises(ValueError):
        load_app_registry(42)  # type: ignore[arg-type]
    with pytest.raises(ImportError):
        load_app_registry("ops_catalog_missing_module:reg")
    with pytest.raises(AttributeError):
        load_app_registry("ops_catalog_app:missing")
    with pytest.raises(TypeError, match="not a meterhub Registry"):
        load_app_registry("ops_catalog_app:not_a_registry")


def test_units_declared_or_from_name(registry: Registry) -> None:
    Histogram("latency_seconds", "L.", registry=registry)
    Gauge("size", "S.", unit="bytes", registry=registry)
    Gauge("temperature", "T.", registry=registry)
    units = {e.name: e.unit for e in catalog_entries(registry)}
    assert units == {"latency_seconds": "seconds", "size_bytes": "bytes", "temperature": ""}
