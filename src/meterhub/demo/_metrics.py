"""The demo service's metrics, defined once and imported by the intake and every worker.

Imported only after multi-process mode is configured (the first metric picks the store),
so the intake process and the worker processes write to the same directory and any
collection merges them.
"""

from __future__ import annotations

from meterhub import Counter, Gauge, Histogram, Hub
from meterhub.integrations.http_metrics import HttpServerMetrics

NAMESPACE = "alertdesk"

hub = Hub(namespace=NAMESPACE)
"""The demo's hub: components (``jira``) and event-routed metrics live under ``alertdesk_``."""

http = HttpServerMetrics()
"""The intake app's RED metrics (``http_server_*``), the vocabulary every integration uses."""

alerts_received = Counter(
    "alerts_received", "Alerts accepted by the intake API.", ["severity"], namespace=NAMESPACE
)
alerts_processed = Counter(
    "alerts_processed",
    "Alerts handled by the workers, by outcome.",
    ["severity", "outcome"],
    namespace=NAMESPACE,
)
processing_seconds = Histogram(
    "alert_processing_seconds",
    "Time a worker spent on one alert, Jira call included.",
    ["severity"],
    namespace=NAMESPACE,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
queue_depth = Gauge(
    "alert_queue_depth",
    "Alerts accepted but not yet picked up by a worker.",
    namespace=NAMESPACE,
    multiprocess_mode="livesum",
)
workers_busy = Gauge(
    "workers_busy",
    "Workers processing an alert right now.",
    namespace=NAMESPACE,
    multiprocess_mode="livesum",
)
SEVERITIES = ("critical", "major", "minor", "info")
