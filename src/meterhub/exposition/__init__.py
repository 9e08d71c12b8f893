"""Renderers: pure functions from :class:`~meterhub.samples.MetricFamily` snapshots to bytes."""

from .negotiate import choose_encoder
from .openmetrics import CONTENT_TYPE_OPENMETRICS, generate_latest_openmetrics, render_openmetrics
from .parser import parse_text
from .text import CONTENT_TYPE_LATEST, format_value, generate_latest, render_text

__all__ = [
    "CONTENT_TYPE_LATEST",
    "CONTENT_TYPE_OPENMETRICS",
    "choose_encoder",
    "format_value",
    "generate_latest",
    "generate_latest_openmetrics",
    "parse_text",
    "render_openmetrics",
    "render_text",
]
