"""Grafana dashboards generated from the metric catalog.

One dashboard (schema 39, Grafana 10/11) with a templated ``datasource`` (any Prometheus)
and ``job`` (multi-value, from ``up``) variable, and one row per concern: HTTP RED per route,
components, Celery, operation log, meterhub itself, SLO burn (only when SLOs are given),
then a panel per remaining application metric of the registry (a counter with a
``status``-like label keeps that split). Every query selects ``job=~"$job"`` and uses
``$__rate_interval``; :func:`panel_queries` lists them so tests can prove each is valid PromQL.

The dashboard's ``uid`` and ``title`` name the application, so two applications'
dashboards can be imported side by side: they come from *application* when given, else
from the registry (a Hub's namespace, the component metrics' prefix, or the first name
segment every application metric shares), else ``meterhub``. Grafana keys a dashboard
by its uid (at most 40 of ``[a-zA-Z0-9_-]``) and refuses two equal titles in a folder.

Example::

    >>> import json
    >>> from meterhub import Counter, Registry
    >>> from meterhub.ops.dashboards import render_dashboard
    >>> reg = Registry(self_metrics=False)
    >>> _ = Counter("shop_orders", "Orders.", ["status"], registry=reg)
    >>> board = json.loads(render_dashboard(reg))
    >>> board["uid"], board["title"]
    ('meterhub-shop', 'shop')
    >>> board["panels"][1]["targets"][0]["expr"]
    'sum by (status) (rate(shop_orders_total{job=~"$job"}[$__rate_interval]))'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from ..registry import Registry
from .catalog import CatalogEntry, catalog_entries

__all__ = [
    "SCHEMA_VERSION",
    "application_name",
    "dashboard",
    "panel_queries",
    "render_dashboard",
]

SCHEMA_VERSION = 39
_DS = {"type": "prometheus", "uid": "${datasource}"}
_JOB = 'job=~"$job"'
_RI = "$__rate_interval"

Panel = tuple[str, list[tuple[str, str]], str]  # title, [(expr, legend)], unit


def _sel(name: str, matchers: str = "") -> str:
    return f"{name}{{{matchers + ',' if matchers else ''}{_JOB}}}"


def _rate(name: str, matchers: str = "") -> str:
    return f"rate({_sel(name, matchers)}[{_RI}])"


def _quantiles(bucket: str, by: str, matchers: str = "") -> list[tuple[str, str]]:
    return [
        (
            f"histogram_quantile({q}, sum by ({by}, le) ({_rate(bucket, matchers)}))",
            f"p{q[2:]} {{{{{by}}}}}",
        )
        for q in ("0.95", "0.99")
    ]


def _slo_section(names: list[str]) -> tuple[str, list[Panel]]:
    # Only the SLOs of this application (others may share the Prometheus); the names allow
    # `.` as the only regex character (see slo._SLO_NAME), escaped for PromQL's string.
    which = f'{{slo=~"{"|".join(n.replace(".", chr(92) * 2 + ".") for n in names)}"}}'
    return (
        "SLO",
        [
            (
                "Burn rate (1h)",
                [
                    (
                        f"slo:sli_error:ratio_rate1h{which}"
                        f" / on (slo) (1 - slo:objective:ratio{which})",
                        "{{slo}}",
                    )
                ],
                "short",
            ),
            (
                "Error budget remaining",
                [(f"slo:error_budget_remaining:ratio{which}", "{{slo}}")],
                "percentunit",
            ),
        ],
    )


def _http_latency(by_status: bool) -> list[Panel]:
    bucket = "http_server_request_duration_seconds_bucket"
    panels: list[Panel] = [("Latency", _quantiles(bucket, "route"), "s")]
    if by_status:  # the histogram carries the status: error latency apart from success
        panels.append(("Latency of 5xx", _quantiles(bucket, "route", 'status=~"5.."'), "s"))
    return panels


def _sections(prefix: str, http_by_status: bool) -> list[tuple[str, str, list[Panel]]]:
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
                *_http_latency(http_by_status),
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
    ]


_KNOWN_PREFIXES = ("process_", "python_", "meterhub_", "http_server_", "celery_", "slo:")


_GRAFANA_UNITS = {"seconds": "s", "bytes": "bytes", "ratio": "percentunit"}


# Labels that say how something ended: a counter keeps its split by the first one it has,
# so success and failure stay two lines instead of one sum.
_OUTCOME_LABELS = ("status", "status_code", "code", "outcome", "result", "state")


def _entry_panel(e: CatalogEntry) -> Panel | None:
    name, unit = e.family, _GRAFANA_UNITS.get(e.unit, "short")
    if e.type == "counter":
        by = next((label for label in _OUTCOME_LABELS if label in e.labels), None)
        if by is not None:
            return (f"{e.name} / s", [(f"sum by ({by}) ({_rate(e.name)})", f"{{{{{by}}}}}")], "ops")
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


_UID = re.compile(r"[A-Za-z0-9_-]{1,40}\Z")


def application_name(registry: Registry | None) -> str | None:
    """The application's name as the registry shows it, or ``None``: the prefix of its
    component metrics (``shop_component_calls_total``), else the first name segment every
    application metric shares (``shop_orders_total``, ``shop_basket_items``).

    Example::

        >>> from meterhub import Counter, Gauge, Registry
        >>> reg = Registry(self_metrics=False)
        >>> _ = Counter("billing_invoices", "Invoices.", registry=reg)
        >>> _ = Gauge("billing_open_items", "Open items.", registry=reg)
        >>> application_name(reg)
        'billing'
    """
    if registry is None:
        return None
    from .rules import _detect_prefix

    entries = catalog_entries(registry)
    prefix = _detect_prefix(e.name for e in entries).rstrip("_")
    if prefix:
        return prefix
    heads = {e.name.split("_", 1)[0] for e in entries if not e.name.startswith(_KNOWN_PREFIXES)}
    return heads.pop() if len(heads) == 1 else None


def _uid_for(application: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", application).strip("-") or "app"
    return f"meterhub-{slug}"[:40]


def _check_uid(uid: str) -> str:
    if not isinstance(uid, str) or not _UID.match(uid):
        raise ValueError(
            f"dashboard uid {uid!r}: Grafana needs 1 to 40 of the characters [a-zA-Z0-9_-]"
        )
    return uid


def _slo_names(slos: Any) -> list[str]:
    if slos is None:
        return []
    from .slo import SLO, parse_slos

    if isinstance(slos, (list, tuple)) and slos and all(isinstance(s, SLO) for s in slos):
        return [s.name for s in slos]
    return [s.name for s in parse_slos(slos)]


def dashboard(
    registry: Registry | None = None,
    title: str | None = None,
    *,
    uid: str | None = None,
    application: str | None = None,
    slos: Any = None,
) -> dict[str, Any]:
    """The dashboard as a dict: every section without *registry*; with one, the sections
    whose metrics it registers plus one panel per other application metric.

    *application* names the dashboard (default: :func:`application_name`, else
    ``meterhub``): the title is the name, the uid ``meterhub-<name>``; *title* and *uid*
    override them (a bad uid raises ``ValueError``). *slos* (a spec as
    :func:`meterhub.ops.slo.parse_slos` takes it, or its ``SLO`` list) adds the SLO row.
    """
    for what, value in (("title", title), ("application", application)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"dashboard {what} must be a str, got {type(value).__name__}")
    entries = catalog_entries(registry) if registry is not None else []
    names = None if registry is None else {e.name for e in entries}
    from .rules import _detect_prefix

    prefix = _detect_prefix(names or ())
    http_by_status = any(
        e.family == "http_server_request_duration_seconds" and "status" in e.labels for e in entries
    )
    rows: list[tuple[str, list[Panel]]] = [
        (title_, panels)
        for title_, needs, panels in _sections(prefix, http_by_status)
        if names is None or needs in names
    ]
    slo_names = _slo_names(slos)
    if slo_names:
        rows.append(_slo_section(slo_names))
    app = [
        p
        for e in entries
        if not e.name.startswith(_KNOWN_PREFIXES)
        and e.group != "component"
        and (p := _entry_panel(e)) is not None
    ]
    if app:
        rows.append(("Application metrics", app))
    app_name = application or application_name(registry)
    return {
        "uid": _check_uid(uid) if uid is not None else _uid_for(app_name or "overview"),
        "title": title if title is not None else (app_name or "meterhub"),
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


def render_dashboard(
    registry: Any = None,
    title: str | None = None,
    *,
    uid: str | None = None,
    application: str | None = None,
    slos: Any = None,
) -> str:
    """The dashboard JSON; *registry* may be a Registry, Hub, metric or ``None`` (all rows).
    A Hub's namespace names the application; the rest as for :func:`dashboard`."""
    from . import registry_of

    reg = None if registry is None else registry_of(registry)
    namespace = getattr(registry, "namespace", None)  # a Hub's
    if application is None and isinstance(namespace, str) and namespace:
        application = namespace
    board = dashboard(reg, title, uid=uid, application=application, slos=slos)
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"
