"""Renderers (text 0.0.4, OpenMetrics, protobuf): pure functions from
:class:`~meterhub.samples.MetricFamily` snapshots to bytes; negotiation; the text parser."""

from .escaping import ALLOWUTF8, DOTS, UNDERSCORES, VALUES, escape_label_name, escape_metric_name
from .negotiate import choose_encoder
from .openmetrics import CONTENT_TYPE_OPENMETRICS, generate_latest_openmetrics, render_openmetrics
from .parser import parse_text
from .protobuf import CONTENT_TYPE_PROTOBUF, generate_latest_protobuf, render_protobuf
from .protobuf_parser import parse_protobuf
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
    "CONTENT_TYPE_PROTOBUF",
    "choose_encoder",
    "escape_label_name",
    "escape_metric_name",
    "format_value",
    "generate_latest",
    "generate_latest_openmetrics",
    "generate_latest_protobuf",
    "parse_protobuf",
    "parse_text",
    "render_openmetrics",
    "render_protobuf",
    "render_text",
]
