"""``promtool test rules`` unit tests for the alert rule packs of :mod:`meterhub.ops.rules`.

Each pack gets synthetic input series for which its alerts must fire (with the exact
labels and rendered annotations) and series for which they must stay silent. The inputs
are chosen so alert values are exact (equal failure and success rates give 50 %; a
histogram whose observations all land in ``+Inf`` gives the highest finite bound).

Example::

    >>> from meterhub.ops.rules import rule_packs
    >>> from meterhub.ops.rule_tests import pack_tests
    >>> pack_tests(rule_packs()[0])["rule_files"]
    ['../components.rules.yml']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ._yaml import dump_yaml
from .rules import DEFAULT_RUNBOOK_BASE, AlertRule, RulePack

__all__ = ["pack_tests", "render_pack_tests", "render_annotations"]

_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def _humanize(v: float) -> str:
    return f"{v:.4g}"


def render_annotations(
    rule: AlertRule, labels: Mapping[str, str], value: float, runbook_base: str
) -> dict[str, str]:
    """The annotations Prometheus renders for *rule* at *value*.

    Only the template subset the packs use is supported: ``$labels.X``, ``$value``,
    ``$value | humanizePercentage`` and ``printf "%.2f" $value``.
    """

    def sub(match: re.Match[str]) -> str:
        expr = match.group(1)
        if expr.startswith("$labels."):
            return labels.get(expr[len("$labels.") :], "")
        if expr == "$value":
            return str(int(value)) if float(value).is_integer() else repr(float(value))
        if expr == "$value | humanizePercentage":
            return _humanize(value * 100) + "%"
        if expr == 'printf "%.2f" $value':
            return f"{value:.2f}"
        raise ValueError(f"template {expr!r} is not supported by the test renderer")

    annotations = rule.to_dict(runbook_base)["annotations"]
    return {k: _TEMPLATE.sub(sub, v) for k, v in annotations.items()}


Series = list[tuple[str, str]]
Check = tuple[str, str, list[tuple[dict[str, str], float]]]  # eval_time, alert, (labels, value)


def _case(series: Series, checks: list[Check]) -> dict[str, Any]:
    return {"series": series, "checks": checks}


def _buckets(name: str, labels: str, bounds: list[str], counts: list[str]) -> Series:
    return [(f'{name}{{{labels},le="{b}"}}', c) for b, c in zip(bounds, counts)]


def _components(prefix: str) -> list[dict[str, Any]]:
    calls = f"{prefix}component_calls_total"
    last = f"{prefix}component_last_success_timestamp_seconds"
    init = f"{prefix}component_initialization_errors_total"
    jira = {"job": "app", "component": "jira", "operation": "create_issue"}
    return [
        _case(
            [
                (
                    f'{calls}{{job="app",component="jira",operation="create_issue",'
                    'status="failure"}',
                    "0+6x20",
                ),
                (
                    f'{calls}{{job="app",component="jira",operation="create_issue",'
                    'status="success"}',
                    "0+6x20",
                ),
                (
                    f'{calls}{{job="app",component="smtp",operation="send",status="failure"}}',
                    "0x20",
                ),
                (
                    f'{calls}{{job="app",component="smtp",operation="send",status="success"}}',
                    "0+6x20",
                ),
            ],
            [
                ("1m", "ComponentFailureRatioHigh", []),
                ("10m", "ComponentFailureRatioHigh", [(jira, 0.5)]),
            ],
        ),
        _case(
            [
                (f'{last}{{job="app",component="jira"}}', "0x80"),
                (f'{last}{{job="app",component="smtp"}}', "0+60x80"),
            ],
            [
                ("30m", "ComponentNoRecentSuccess", []),
                ("70m", "ComponentNoRecentSuccess", [({"job": "app", "component": "jira"}, 4200)]),
            ],
        ),
        _case(
            [
                (f'{init}{{job="app",component="smtp"}}', "0x3 1x30"),
                (f'{init}{{job="app",component="jira"}}', "0x33"),
            ],
            [("10m", "ComponentInitializationFailed", [({"job": "app", "component": "smtp"}, 1)])],
        ),
    ]


def _http(_: str) -> list[dict[str, Any]]:
    req = "http_server_requests_total"
    dur = "http_server_request_duration_seconds_bucket"
    bounds = ["0.5", "1", "2.5", "5", "+Inf"]
    slow = {"job": "app", "route": "/slow"}
    return [
        _case(
            [
                (f'{req}{{job="app",method="GET",route="/api",status="500"}}', "0+6x30"),
                (f'{req}{{job="app",method="GET",route="/api",status="200"}}', "0+6x30"),
                (f'{req}{{job="app",method="GET",route="/ok",status="200"}}', "0+6x30"),
            ],
            [
                ("10m", "HttpErrorRatioHigh", [({"job": "app", "route": "/api"}, 0.5)]),
            ],
        ),
        _case(
            _buckets(
                dur,
                'job="app",method="GET",route="/slow",status="200"',
                bounds,
                ["0x30"] * 4 + ["0+10x30"],
            )
            # latency is split by status: the quantile adds the outcomes up per route
            + _buckets(
                dur, 'job="app",method="GET",route="/fast",status="200"', bounds, ["0+10x30"] * 5
            )
            + _buckets(
                dur, 'job="app",method="GET",route="/fast",status="500"', bounds, ["0+10x30"] * 5
            ),
            [
                ("5m", "HttpLatencyP95High", []),
                ("15m", "HttpLatencyP95High", [(slow, 5)]),
                ("15m", "HttpLatencyP99High", [(slow, 5)]),
            ],
        ),
    ]


def _targets(_: str) -> list[dict[str, Any]]:
    mtime = "node_textfile_mtime_seconds"
    stale = {"job": "node", "instance": "node:9100", "file": "/textfile/app.prom"}
    return [
        _case(
            [
                ('up{job="app",instance="a:8000"}', "0x10"),
                ('up{job="app",instance="b:8000"}', "1x10"),
            ],
            [
                ("1m", "TargetDown", []),
                ("5m", "TargetDown", [({"job": "app", "instance": "a:8000"}, 0)]),
            ],
        ),
        _case(
            [
                (f'{mtime}{{job="node",instance="node:9100",file="/textfile/app.prom"}}', "0x30"),
                (f'{mtime}{{job="node",instance="node:9100",file="/textfile/ok.prom"}}', "0+60x30"),
            ],
            [("15m", "TextfileStale", [(stale, 900)])],
        ),
    ]


def _celery(_: str) -> list[dict[str, Any]]:
    tasks = "celery_tasks_total"
    wait = "celery_task_queue_wait_seconds_bucket"
    return [
        _case(
            [
                (f'{tasks}{{job="worker",task="send_mail",state="failed"}}', "0+6x30"),
                (f'{tasks}{{job="worker",task="send_mail",state="succeeded"}}', "0+6x30"),
                (f'{tasks}{{job="worker",task="report",state="succeeded"}}', "0+6x30"),
            ],
            [
                (
                    "10m",
                    "CeleryTaskFailureRatioHigh",
                    [({"job": "worker", "task": "send_mail"}, 0.5)],
                )
            ],
        ),
        _case(
            _buckets(
                wait,
                'job="worker",task="report"',
                ["1", "10", "60", "120", "+Inf"],
                ["0x30"] * 4 + ["0+10x30"],
            ),
            [("15m", "CeleryQueueWaitHigh", [({"job": "worker", "task": "report"}, 120)])],
        ),
    ]


def _oplog(_: str) -> list[dict[str, Any]]:
    return [
        _case(
            [('meterhub_oplog_dropped_total{job="app"}', "0x5 1+1x20")],
            [
                ("4m", "OperationLogDroppingRecords", []),
                ("20m", "OperationLogDroppingRecords", [({"job": "app"}, 10)]),
            ],
        )
    ]


def _meterhub(_: str) -> list[dict[str, Any]]:
    err = {"job": "app", "metric": "orders", "reason": "label_values"}
    return [
        _case(
            [
                (
                    'meterhub_errors_total{job="app",metric="orders",reason="label_values"}',
                    "0x5 1+1x20",
                ),
                ('meterhub_series_dropped_total{job="app",metric="orders"}', "0x5 1+1x20"),
            ],
            [
                ("4m", "MeterhubRecordingErrors", []),
                ("20m", "MeterhubRecordingErrors", [(err, 10)]),
                ("20m", "MeterhubSeriesOverflow", [({"job": "app", "metric": "orders"}, 10)]),
            ],
        )
    ]


_CASES: dict[str, Callable[[str], list[dict[str, Any]]]] = {
    "components": _components,
    "http": _http,
    "targets": _targets,
    "celery": _celery,
    "oplog": _oplog,
    "meterhub": _meterhub,
}


def _prefix(pack: RulePack) -> str:
    for rule in pack.rules:
        m = re.search(r"(\w*)component_calls_total", rule.expr)
        if m:
            return m.group(1)
    return ""


def pack_tests(
    pack: RulePack, runbook_base: str = DEFAULT_RUNBOOK_BASE, rule_file: str | None = None
) -> dict[str, Any]:
    """The ``promtool test rules`` document for *pack*; *rule_file* defaults to the
    committed layout (``../<pack>.rules.yml`` next to ``tests/``)."""
    make = _CASES.get(pack.name)
    if make is None:
        raise ValueError(f"no unit tests are defined for rule pack {pack.name!r}")
    rules = {r.alert: r for r in pack.rules}
    tests = []
    for case in make(_prefix(pack)):
        checks = []
        for eval_time, alert, firing in case["checks"]:
            rule = rules[alert]
            expected = [
                {
                    "exp_labels": {**labels, "severity": rule.severity},
                    "exp_annotations": render_annotations(rule, labels, value, runbook_base),
                }
                for labels, value in firing
            ]
            checks.append({"eval_time": eval_time, "alertname": alert, "exp_alerts": expected})
        tests.append(
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in case["series"]],
                "alert_rule_test": checks,
            }
        )
    return {
        "rule_files": [rule_file or f"../{pack.name}.rules.yml"],
        "evaluation_interval": "1m",
        "tests": tests,
    }


def render_pack_tests(
    pack: RulePack, runbook_base: str = DEFAULT_RUNBOOK_BASE, rule_file: str | None = None
) -> str:
    """:func:`pack_tests` as YAML."""
    return dump_yaml(pack_tests(pack, runbook_base, rule_file))
