"""Renderers: pure functions from :class:`~meterhub.samples.MetricFamily` snapshots to bytes."""

from .text import CONTENT_TYPE_LATEST, format_value, generate_latest, render_text

__all__ = ["CONTENT_TYPE_LATEST", "format_value", "generate_latest", "render_text"]
