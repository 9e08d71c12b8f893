"""Renderers: pure functions from :class:`~meterhub.samples.MetricFamily` snapshots to bytes."""

from .escaping import ALLOWUTF8, DOTS, UNDERSCORES, VALUES, escape_label_name, escape_metric_name
from .negotiate import choose_encoder
from .openmetrics import CONTENT_TYPE_OPENMETRICS, generate_latest_openmetrics, render_openmetrics
from .parser import parse_text
from .text import (
    CONTENT_TYPE_LATEST,
    CONTENT_TYPE_PLAIN_0_0_4,
    CONTENT_TYPE_PLAIN_1_0_0,
    format_value,
    generate_latest,
    render_text,
)

__all__ = [
    "ALLOWUTF8",
    "CONTENT_TYPE_LATEST",
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_PLAIN_0_0_4",
    "CONTENT_TYPE_PLAIN_1_0_0",
    "DOTS",
    "UNDERSCORES",
    "VALUES",
    "choose_encoder",
    "escape_label_name",
    "escape_metric_name",
    "format_value",
    "generate_latest",
    "generate_latest_openmetrics",
    "parse_text",
    "render_openmetrics",
    "render_text",
]
