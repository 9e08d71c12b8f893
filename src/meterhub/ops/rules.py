"""Prometheus alert rule packs, as Python data rendered to rule-file YAML.

A :class:`RulePack` is one rule group (one ``deploy/rules/<name>.rules.yml`` file):

=============  ==============================================================================
pack           alerts
=============  ==============================================================================
components     failure ratio, no recent success, initialization errors - for *every*
               component, through the ``component`` label (``<ns>_component_*`` metrics)
http           5xx error ratio, p95 and p99 latency per route
targets        scrape target down, stale node_exporter textfile
celery         task failure ratio, p95 queue wait per task
oplog          operation-log records dropped
meterhub       meterhub's own recording errors and series overflow
=============  ==============================================================================

Every alert carries ``for``, a ``severity`` label and ``summary``/``description``/
``runbook_url`` annotations. Each pack has ``promtool test rules`` unit tests
(:mod:`meterhub.ops.rule_tests`).

Example::

    >>> from meterhub.ops.rules import render_rules
    >>> "alert: ComponentFailureRatioHigh" in render_rules(namespace="shop")
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import DefinitionError
from ..naming import is_legacy_metric_name, validate_metric_name
from ..registry import Registry
from ._yaml import dump_yaml

__all__ = [
    "DEFAULT_RUNBOOK_BASE",
    "AlertRule",
    "RulePack",
    "render_pack",
    "render_rules",
    "rule_packs",
    "with_for",
]

DEFAULT_RUNBOOK_BASE = "https://runbooks.example.com/meterhub"
"""Placeholder base of ``runbook_url`` annotations: point it at your runbooks."""

_RATIO = "{{ $value | humanizePercentage }}"
_VALUE = '{{ printf "%.2f" $value }}'


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule (``for_`` is a Prometheus duration such as ``"5m"``)."""

    alert: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str

    def to_dict(self, runbook_base: str = DEFAULT_RUNBOOK_BASE) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": f"{runbook_base.rstrip('/')}/{self.alert}",
            },
        }


@dataclass(frozen=True)
class RulePack:
    """One rule group; ``requires`` lists sample names whose presence makes it relevant."""

    name: str
    group: str
    rules: tuple[AlertRule, ...]
    requires: tuple[str, ...] = field(default=())

    def to_dict(self, runbook_base: str = DEFAULT_RUNBOOK_BASE) -> dict[str, Any]:
        return {"name": self.group, "rules": [r.to_dict(runbook_base) for r in self.rules]}


def _components(prefix: str) -> RulePack:
    calls = f"{prefix}component_calls_total"
    by = "sum by (job, component, operation)"
    return RulePack(
        "components",
        "meterhub.components",
        (
            AlertRule(
                "ComponentFailureRatioHigh",
                f'{by} (rate({calls}{{status="failure"}}[5m]))\n'
                f"  / {by} (rate({calls}[5m]))\n  > 0.05",
                "2m",
                "critical",
                "{{ $labels.component }} {{ $labels.operation }} calls are failing",
                f"{_RATIO} of {{{{ $labels.component }}}} {{{{ $labels.operation }}}} calls "
                "failed over the last 5 minutes (threshold 5%). Check the application logs "
                "and the remote service.",
            ),
            AlertRule(
                "ComponentNoRecentSuccess",
                f"time() - {prefix}component_last_success_timestamp_seconds > 3600",
                "5m",
                "warning",
                "{{ $labels.component }} has not succeeded for over an hour",
                f"The last successful {{{{ $labels.component }}}} call was {_VALUE} seconds "
                "ago (threshold 3600 s).",
            ),
            AlertRule(
                "ComponentInitializationFailed",
                f"increase({prefix}component_initialization_errors_total[15m]) > 0",
                "0m",
                "warning",
                "{{ $labels.component }} failed to initialize",
                f"{{{{ $labels.component }}}} reported {_VALUE} initialization errors in "
                "the last 15 minutes; its client may be misconfigured.",
            ),
        ),
        (calls,),
    )


def _http() -> RulePack:
    by = "sum by (job, route)"
    latency = "http_server_request_duration_seconds_bucket"

    def quantile(q: str, name: str, limit: str, severity: str) -> AlertRule:
        return AlertRule(
            name,
            f"histogram_quantile({q},\n  sum by (job, route, le) (rate({latency}[5m]))\n)"
            f" > {limit}",
            "10m",
            severity,
            f"Slow responses on {{{{ $labels.route }}}} (p{q[2:]})",
            f"p{q[2:]} latency of {{{{ $labels.route }}}} is {_VALUE} s (threshold {limit} s).",
        )

    return RulePack(
        "http",
        "meterhub.http",
        (
            AlertRule(
                "HttpErrorRatioHigh",
                f'{by} (rate(http_server_requests_total{{status=~"5.."}}[5m]))\n'
                f"  / {by} (rate(http_server_requests_total[5m]))\n  > 0.05",
                "5m",
                "critical",
                "{{ $labels.route }} answers with server errors",
                f"{_RATIO} of requests to {{{{ $labels.route }}}} failed with a 5xx status "
                "over the last 5 minutes (threshold 5%).",
            ),
            quantile("0.95", "HttpLatencyP95High", "1", "warning"),
            quantile("0.99", "HttpLatencyP99High", "2.5", "warning"),
        ),
        ("http_server_requests_total",),
    )


def _targets() -> RulePack:
    return RulePack(
        "targets",
        "meterhub.targets",
        (
            AlertRule(
                "TargetDown",
                "up == 0",
                "2m",
                "critical",
                "{{ $labels.job }} target {{ $labels.instance }} is down",
                "Prometheus could not scrape {{ $labels.instance }} (job {{ $labels.job }}) "
                "for 2 minutes (up = {{ $value }}).",
            ),
            AlertRule(
                "TextfileStale",
                "time() - node_textfile_mtime_seconds > 300",
                "5m",
                "warning",
                "Metrics textfile {{ $labels.file }} is stale",
                f"{{{{ $labels.file }}}} was last written {_VALUE} seconds ago (threshold "
                "300 s): the application's textfile flusher is not running.",
            ),
        ),
    )


def _celery() -> RulePack:
    by = "sum by (job, task)"
    return RulePack(
        "celery",
        "meterhub.celery",
        (
            AlertRule(
                "CeleryTaskFailureRatioHigh",
                f'{by} (rate(celery_tasks_total{{state="failed"}}[5m]))\n'
                f'  / {by} (rate(celery_tasks_total{{state=~"succeeded|failed"}}[5m]))\n'
                "  > 0.1",
                "5m",
                "warning",
                "Celery task {{ $labels.task }} is failing",
                f"{_RATIO} of {{{{ $labels.task }}}} runs failed over the last 5 minutes "
                "(threshold 10%).",
            ),
            AlertRule(
                "CeleryQueueWaitHigh",
                "histogram_quantile(0.95,\n"
                "  sum by (job, task, le) (rate(celery_task_queue_wait_seconds_bucket[5m]))\n"
                ") > 60",
                "10m",
                "warning",
                "Celery task {{ $labels.task }} waits long in the queue",
                f"p95 queue wait of {{{{ $labels.task }}}} is {_VALUE} s (threshold 60 s): "
                "add workers or check the broker.",
            ),
        ),
        ("celery_tasks_total",),
    )


def _oplog() -> RulePack:
    return RulePack(
        "oplog",
        "meterhub.oplog",
        (
            AlertRule(
                "OperationLogDroppingRecords",
                "increase(meterhub_oplog_dropped_total[10m]) > 0",
                "0m",
                "warning",
                "The operation log is dropping records",
                f"{_VALUE} operation records were dropped in the last 10 minutes "
                "(queue full or batch directory unwritable).",
            ),
        ),
        ("meterhub_oplog_dropped_total",),
    )


def _meterhub() -> RulePack:
    return RulePack(
        "meterhub",
        "meterhub.self",
        (
            AlertRule(
                "MeterhubRecordingErrors",
                "sum by (job, metric, reason) (increase(meterhub_errors_total[10m])) > 0",
                "0m",
                "warning",
                "meterhub failed to record {{ $labels.metric }}",
                f"{_VALUE} recording errors ({{{{ $labels.reason }}}}) on "
                "{{ $labels.metric }} in the last 10 minutes; see the application log.",
            ),
            AlertRule(
                "MeterhubSeriesOverflow",
                "sum by (job, metric) (increase(meterhub_series_dropped_total[10m])) > 0",
                "0m",
                "warning",
                "{{ $labels.metric }} reached its series cap",
                f"{_VALUE} label sets of {{{{ $labels.metric }}}} were folded into the "
                "__overflow__ series in the last 10 minutes: a label has unbounded values.",
            ),
        ),
        ("meterhub_errors_total",),
    )


def _sample_names(registry: Registry) -> set[str]:
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        names.update(s.name for s in family.samples)
        # A labelled metric without children has no samples yet: count its exposed name.
        kind = family.type.value
        names.add(family.name + ("_total" if kind == "counter" else ""))
    return names


def _detect_prefix(names: Iterable[str]) -> str:
    for name in sorted(names):
        if name.endswith("component_calls_total"):
            return name[: -len("component_calls_total")]
    return ""


def rule_packs(registry: Registry | None = None, namespace: str = "") -> list[RulePack]:
    """The rule packs, all of them without *registry*; with one, the packs whose metrics
    it registers (``targets`` always). *namespace* prefixes the component metrics; when
    empty it is detected from the registry's ``*component_calls`` metric."""
    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be a str, got {type(namespace).__name__}")
    if namespace:
        validate_metric_name(namespace, "namespace")
        if not is_legacy_metric_name(namespace):  # it is written into PromQL unquoted
            raise DefinitionError(
                f"namespace {namespace!r}: must match [a-zA-Z_:][a-zA-Z0-9_:]* in rules"
            )
    names = None if registry is None else _sample_names(registry)
    prefix = f"{namespace}_" if namespace else _detect_prefix(names or ())
    packs = [_components(prefix), _http(), _targets(), _celery(), _oplog(), _meterhub()]
    if names is None:
        return packs
    return [p for p in packs if all(r in names for r in p.requires)]


def render_pack(pack: RulePack, runbook_base: str = DEFAULT_RUNBOOK_BASE) -> str:
    """One pack as a Prometheus rule file."""
    return dump_yaml({"groups": [pack.to_dict(runbook_base)]})


def render_rules(
    registry: Any = None,
    namespace: str = "",
    *,
    runbook_base: str = DEFAULT_RUNBOOK_BASE,
    packs: Sequence[RulePack] | None = None,
) -> str:
    """All relevant packs as one Prometheus rule file (one group per pack).

    *registry* may be a Registry, Hub or metric; ``None`` renders every pack.
    """
    from . import registry_of

    if packs is None:
        reg = None if registry is None else registry_of(registry)
        packs = rule_packs(reg, namespace)
    return dump_yaml({"groups": [p.to_dict(runbook_base) for p in packs]})


def with_for(pack: RulePack, duration: str) -> RulePack:
    """*pack* with every alert's ``for`` set to *duration* (e.g. short ones for tests)."""
    return replace(pack, rules=tuple(replace(r, for_=duration) for r in pack.rules))
