"""meterhub: application metrics for Python services.

Drop-in for prometheus_client's common calls, plus a central hub, exact multi-process
aggregation, textfile/HTTP/Pushgateway delivery, an operation log and event routing.

Example::

    >>> from meterhub import Counter, Registry, generate_latest
    >>> reg = Registry(self_metrics=False)
    >>> logins = Counter("logins", "User logins.", ["method"], registry=reg)
    >>> logins.labels("sso").inc()
    >>> b'logins_total{method="sso"} 1' in generate_latest(reg)
    True

Delivery, the operation log, events and ops helpers are imported on first use, so
``import meterhub`` stays cheap and needs no optional dependency.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._config import (
    Config,
    configure,
    disable,
    disable_created_metrics,
    enable,
    enable_created_metrics,
    get_config,
    is_enabled,
    reset_defaults,
)
from ._hub import Hub, hub
from .collectors import GCCollector, PlatformCollector, ProcessCollector, register_defaults
from .errors import (
    DefinitionError,
    DuplicateTimeseries,
    ExportError,
    LabelValueError,
    MeterhubError,
    ParseError,
    PushgatewayError,
    QueueFullError,
    RecordingError,
)
from .exposition import (
    CONTENT_TYPE_LATEST,
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_PLAIN_0_0_4,
    CONTENT_TYPE_PLAIN_1_0_0,
    CONTENT_TYPE_PROTOBUF,
    choose_encoder,
    generate_latest,
    generate_latest_openmetrics,
    generate_latest_protobuf,
)
from .families import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
    SummaryMetricFamily,
    UnknownMetricFamily,
    UntypedMetricFamily,
)
from .guard import shielded
from .metrics import DEFAULT_BUCKETS, INF, Counter, Enum, Gauge, Histogram, Info, Summary
from .registry import REGISTRY, CollectorRegistry, Registry
from .samples import (
    BucketSpan,
    CollectOptions,
    Exemplar,
    MetricFamily,
    MetricType,
    NativeHistogram,
    Sample,
    Series,
    Timestamp,
)

# Public names that live in modules with heavier imports: loaded on first access.
_LAZY = {
    "Component": "meterhub.component",
    "EventRouter": "meterhub.events",
    "PostgresEventStore": "meterhub.events",
    "SQLiteEventStore": "meterhub.events",
    "HealthChecks": "meterhub.health",
    "MetricsHandler": "meterhub.export.http",
    "MultiProcessCollector": "meterhub.multiprocess",
    "mark_process_dead": "meterhub.multiprocess",
    "MetricsServer": "meterhub.export.http",
    "OperationLog": "meterhub.oplog",
    "TextfileExporter": "meterhub.export.textfile",
    "delete_from_gateway": "meterhub.export.pushgateway",
    "instance_ip_grouping_key": "meterhub.export.pushgateway",
    "make_asgi_app": "meterhub.export.http",
    "make_wsgi_app": "meterhub.export.http",
    "push_to_gateway": "meterhub.export.pushgateway",
    "pushadd_to_gateway": "meterhub.export.pushgateway",
    "start_http_server": "meterhub.export.http",
    "start_wsgi_server": "meterhub.export.http",
    "track_operation": "meterhub.oplog",
    "write_to_textfile": "meterhub.export.textfile",
}

__all__ = [
    "BucketSpan",
    "CONTENT_TYPE_LATEST",
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_PLAIN_0_0_4",
    "CONTENT_TYPE_PLAIN_1_0_0",
    "CONTENT_TYPE_PROTOBUF",
    "CollectOptions",
    "CollectorRegistry",
    "Component",
    "Config",
    "Counter",
    "CounterMetricFamily",
    "DEFAULT_BUCKETS",
    "DefinitionError",
    "DuplicateTimeseries",
    "Enum",
    "EventRouter",
    "Exemplar",
    "ExportError",
    "GCCollector",
    "Gauge",
    "GaugeHistogramMetricFamily",
    "GaugeMetricFamily",
    "HealthChecks",
    "Histogram",
    "HistogramMetricFamily",
    "Hub",
    "INF",
    "Info",
    "InfoMetricFamily",
    "LabelValueError",
    "MeterhubError",
    "Metric",
    "MetricFamily",
    "MetricType",
    "MetricsHandler",
    "MetricsServer",
    "MultiProcessCollector",
    "NativeHistogram",
    "OperationLog",
    "ParseError",
    "PlatformCollector",
    "PostgresEventStore",
    "ProcessCollector",
    "PushgatewayError",
    "QueueFullError",
    "REGISTRY",
    "RecordingError",
    "Registry",
    "SQLiteEventStore",
    "Sample",
    "Series",
    "StateSetMetricFamily",
    "Summary",
    "SummaryMetricFamily",
    "TextfileExporter",
    "Timestamp",
    "UnknownMetricFamily",
    "UntypedMetricFamily",
    "choose_encoder",
    "configure",
    "delete_from_gateway",
    "disable",
    "disable_created_metrics",
    "enable",
    "enable_created_metrics",
    "generate_latest",
    "generate_latest_openmetrics",
    "generate_latest_protobuf",
    "get_config",
    "hub",
    "instance_ip_grouping_key",
    "is_enabled",
    "make_asgi_app",
    "make_wsgi_app",
    "mark_process_dead",
    "push_to_gateway",
    "pushadd_to_gateway",
    "reset_defaults",
    "shielded",
    "start_http_server",
    "start_wsgi_server",
    "track_operation",
    "write_to_textfile",
]

__version__ = "0.1.0"

register_defaults(REGISTRY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'meterhub' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
