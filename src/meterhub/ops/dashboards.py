"""Grafana dashboards generated from the metric catalog.

One dashboard (schema 39, Grafana 10/11) with a templated ``datasource`` (any Prometheus)
and ``job`` (multi-value, from ``up``) variable, and one row per concern: HTTP RED per route,
components, Celery, operation log, meterhub itself, SLO burn, then a panel per remaining
application metric of the registry. Every query selects ``job=~"$job"`` and uses
``$__rate_interval``; :func:`panel_queries` lists them so tests can prove each is valid PromQL.

Example::

    >>> import json
    >>> from meterhub.ops.dashboards import render_dashboard
    >>> json.loads(render_dashboard())["templating"]["list"][0]["name"]
    'datasource'
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..registry import Registry
from .catalog import CatalogEntry, catalog_entries

__all__ = ["SCHEMA_VERSION", "dashboard", "panel_queries", "render_dashboard"]

SCHEMA_VERSION = 39
_DS = {"type": "prometheus", "uid": "${datasource}"}
_JOB = 'job=~"$job"'
_RI = "$__rate_interval"

Panel = tuple[str, list[tuple[str, str]], str]  # title, [(expr, legend)], unit


def _sel(name: str, matchers: str = "") -> str:
    return f"{name}{{{matchers + ',' if matchers else ''}{_JOB}}}"


def _rate(name: str, matchers: str = "") -> str:
    return f"rate({_sel(name, matchers)}[{_RI}])"


def _quantiles(bucket: str, by: str) -> list[tuple[str, str]]:
    return [
        (f"histogram_quantile({q}, sum by ({by}, le) ({_rate(bucket)}))", f"p{q[2:]} {{{{{by}}}}}")
        for q in ("0.95", "0.99")
    ]


def _sections(prefix: str) -> list[tuple[str, str | None, list[Panel]]]:
    calls = f"{prefix}component_calls_total"
    req = "http_server_requests_total"
    s5xx, failure, finished = 'status=~"5.."', 'status="failure"', 'state=~"succeeded|failed"'
    cfail = 'state="failed"'
    return [
        (
            "HTTP (RED per route)",
            req,
            [
                ("Requests / s", [(f"sum by (route) ({_rate(req)})", "{{route}}")], "reqps"),
                (
                    "Error ratio (5xx)",
                    [
                        (
                            f"sum by (route) ({_rate(req, s5xx)}) / sum by (route) ({_rate(req)})",
                            "{{route}}",
                        )
                    ],
                    "percentunit",
                ),
                (
                    "Latency",
                    _quantiles("http_server_request_duration_seconds_bucket", "route"),
                    "s",
                ),
            ],
        ),
        (
            "Components",
            calls,
            [
                (
                    "Calls / s",
                    [(f"sum by (component, status) ({_rate(calls)})", "{{component}} {{status}}")],
                    "ops",
                ),
                (
                    "Failure ratio",
                    [
                        (
                            f"sum by (component) ({_rate(calls, failure)})"
                            f" / sum by (component) ({_rate(calls)})",
                            "{{component}}",
                        )
                    ],
                    "percentunit",
                ),
                (
                    "Call latency",
                    _quantiles(f"{prefix}component_call_duration_seconds_bucket", "component"),
                    "s",
                ),
                (
                    "Since last success",
                    [
                        (
                            f"time() - max by (component) "
                            f"({_sel(prefix + 'component_last_success_timestamp_seconds')})",
                            "{{component}}",
                        )
                    ],
                    "s",
                ),
                (
                    "Initialization errors",
                    [
                        (
                            f"sum by (component) (increase("
                            f"{_sel(prefix + 'component_initialization_errors_total')}[{_RI}]))",
                            "{{component}}",
                        )
                    ],
                    "short",
                ),
            ],
        ),
        (
            "Celery",
            "celery_tasks_total",
            [
                (
                    "Tasks / s",
                    [
                        (
                            f"sum by (task, state) ({_rate('celery_tasks_total')})",
                            "{{task}} {{state}}",
                        )
                    ],
                    "ops",
                ),
                (
                    "Failure ratio",
                    [
                        (
                            f"sum by (task) ({_rate('celery_tasks_total', cfail)})"
                            f" / sum by (task) ({_rate('celery_tasks_total', finished)})",
                            "{{task}}",
                        )
                    ],
                    "percentunit",
                ),
                ("Queue wait", _quantiles("celery_task_queue_wait_seconds_bucket", "task"), "s"),
            ],
        ),
        (
            "Operation log",
            "meterhub_oplog_dropped_total",
            [
                ("Queue size", [(f"sum({_sel('meterhub_oplog_queue_size')})", "queued")], "short"),
                (
                    "Records / s",
                    [
                        (f"sum({_rate('meterhub_oplog_persisted_total')})", "persisted"),
                        (f"sum({_rate('meterhub_oplog_dropped_total')})", "dropped"),
                    ],
                    "ops",
                ),
            ],
        ),
        (
            "meterhub",
            "meterhub_errors_total",
            [
                (
                    "Recording errors / s",
                    [
                        (
                            f"sum by (metric, reason) ({_rate('meterhub_errors_total')})",
                            "{{metric}} {{reason}}",
                        )
                    ],
                    "ops",
                ),
                (
                    "Series folded into overflow / s",
                    [(f"sum by (metric) ({_rate('meterhub_series_dropped_total')})", "{{metric}}")],
                    "ops",
                ),
            ],
        ),
        (
            "SLO",
            None,
            [
                (
                    "Burn rate (1h)",
                    [
                        (
                            "slo:sli_error:ratio_rate1h / on (slo) (1 - slo:objective:ratio)",
                            "{{slo}}",
                        )
                    ],
                    "short",
                ),
                (
                    "Error budget remaining",
                    [("slo:error_budget_remaining:ratio", "{{slo}}")],
                    "percentunit",
                ),
            ],
        ),
    ]


_KNOWN_PREFIXES = ("process_", "python_", "meterhub_", "http_server_", "celery_", "slo:")


_GRAFANA_UNITS = {"seconds": "s", "bytes": "bytes", "ratio": "percentunit"}


def _entry_panel(e: CatalogEntry) -> Panel | None:
    name, unit = e.family, _GRAFANA_UNITS.get(e.unit, "short")
    if e.type == "counter":
        return (f"{e.name} / s", [(f"sum({_rate(e.name)})", "")], "ops")
    if e.type in ("gauge", "unknown"):
        return (e.name, [(_sel(e.name), "")], unit)
    if e.type == "histogram":
        quantile = f"histogram_quantile(0.95, sum by (le) ({_rate(name + '_bucket')}))"
        return (f"{name} p95", [(quantile, "p95")], unit)
    if e.type == "summary":
        mean = f"sum({_rate(name + '_sum')}) / sum({_rate(name + '_count')})"
        return (f"{name} mean", [(mean, "mean")], unit)
    return None


def dashboard(registry: Registry | None = None, title: str = "meterhub") -> dict[str, Any]:
    """The dashboard as a dict: every section without *registry*; with one, the sections
    whose metrics it registers plus one panel per other application metric."""
    from .rules import _detect_prefix

    entries = catalog_entries(registry) if registry is not None else []
    names = None if registry is None else {e.name for e in entries}
    prefix = _detect_prefix(names or ())
    rows: list[tuple[str, list[Panel]]] = [
        (title_, panels)
        for title_, needs, panels in _sections(prefix)
        if names is None or needs is None or needs in names
    ]
    app = [
        p
        for e in entries
        if not e.name.startswith(_KNOWN_PREFIXES)
        and e.group != "component"
        and (p := _entry_panel(e)) is not None
    ]
    if app:
        rows.append(("Application metrics", app))
    return {
        "uid": "meterhub-overview",
        "title": title,
        "tags": ["meterhub"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "annotations": {"list": []},
        "templating": {"list": _variables()},
        "panels": list(_layout(rows)),
    }


def _variables() -> list[dict[str, Any]]:
    query = "label_values(up, job)"
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "regex": "",
            "includeAll": False,
            "multi": False,
            "options": [],
        },
        {
            "name": "job",
            "label": "Job",
            "type": "query",
            "datasource": _DS,
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "definition": query,
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {},
            "sort": 1,
            "hide": 0,
            "options": [],
            "regex": "",
        },
    ]


def _layout(rows: list[tuple[str, list[Panel]]]) -> Iterator[dict[str, Any]]:
    pid, y = 1, 0
    for title, panels in rows:
        yield {
            "id": pid,
            "type": "row",
            "title": title,
            "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            "panels": [],
        }
        pid, y = pid + 1, y + 1
        for i, (ptitle, queries, unit) in enumerate(panels):
            yield {
                "id": pid,
                "type": "timeseries",
                "title": ptitle,
                "datasource": _DS,
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": y + 8 * (i // 2)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {
                    "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"},
                },
                "targets": [
                    {
                        "refId": chr(ord("A") + j),
                        "datasource": _DS,
                        "expr": expr,
                        "legendFormat": legend or "__auto",
                        "range": True,
                    }
                    for j, (expr, legend) in enumerate(queries)
                ],
            }
            pid += 1
        y += 8 * ((len(panels) + 1) // 2)


def panel_queries(board: dict[str, Any]) -> list[str]:
    """Every PromQL expression of *board*'s panels (Grafana variables left in place)."""
    return [t["expr"] for p in board["panels"] for t in p.get("targets", ())]


def render_dashboard(registry: Any = None, title: str = "meterhub") -> str:
    """The dashboard JSON; *registry* may be a Registry, Hub, metric or ``None`` (all rows)."""
    from . import registry_of

    reg = None if registry is None else registry_of(registry)
    return json.dumps(dashboard(reg, title), indent=2, ensure_ascii=False) + "\n"
