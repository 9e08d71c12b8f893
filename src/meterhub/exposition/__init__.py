"""Renderers (text 0.0.4, OpenMetrics, protobuf): pure functions from
:class:`~meterhub.samples.MetricFamily` snapshots to bytes; negotiation; the text parser."""

from .negotiate import choose_encoder
from .openmetrics import CONTENT_TYPE_OPENMETRICS, generate_latest_openmetrics, render_openmetrics
from .parser import parse_text
from .protobuf import CONTENT_TYPE_PROTOBUF, generate_latest_protobuf, render_protobuf
from .protobuf_parser import parse_protobuf
from .text import CONTENT_TYPE_LATEST, format_value, generate_latest, render_text

__all__ = [
    "CONTENT_TYPE_LATEST",
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_PROTOBUF",
    "choose_encoder",
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
