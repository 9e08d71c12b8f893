"""Trace correlation: exemplars and log fields from the active OpenTelemetry span.

Works with ``opentelemetry-api`` alone (no SDK needed to *read* a span context); without
the package every function here is a cheap no-op, so integrations can call them
unconditionally.

* :func:`current_exemplar` gives ``{"trace_id": ..., "span_id": ...}`` (lower-case hex,
  32 and 16 characters: 63 characters of exemplar labels, well inside the 128-character
  limit) while a valid span is active, else ``None``. Pass it straight to
  ``Histogram.observe(v, exemplar=...)`` or ``Counter.inc(exemplar=...)``.
* :class:`TraceContextFilter` is a :class:`logging.Filter` that sets ``trace_id`` and
  ``span_id`` on every record, for JSON log pipelines that join logs to traces.

Example::

    >>> from meterhub import Histogram, Registry
    >>> from meterhub.integrations.tracing import current_exemplar
    >>> h = Histogram("work_seconds", "Work.", registry=Registry(self_metrics=False))
    >>> h.observe(0.1, exemplar=current_exemplar())  # exemplar=None outside a span
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["TraceContextFilter", "current_exemplar", "current_trace_ids"]


def _load_span_getter() -> Callable[[], Any] | None:
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace.get_current_span


# Resolved once: the import is the costly part and the answer cannot change in a process.
_get_current_span = _load_span_getter()


def current_trace_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` in lower-case hex of the active span, or ``None``.

    ``None`` when opentelemetry-api is not installed, no span is active, or the active
    span's context is invalid (all-zero ids).
    """
    if _get_current_span is None:
        return None
    try:
        ctx = _get_current_span().get_span_context()
        if not ctx.is_valid:
            return None
        return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
    except Exception:
        # A broken tracer must never break the instrumented call; no exemplar instead.
        return None


def current_exemplar() -> dict[str, str] | None:
    """The exemplar labels of the active span, or ``None`` (see the module docstring).

    Example::

        >>> from meterhub.integrations.tracing import current_exemplar
        >>> current_exemplar() is None  # no active span here
        True
    """
    ids = current_trace_ids()
    if ids is None:
        return None
    return {"trace_id": ids[0], "span_id": ids[1]}


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` attributes to every log record.

    Outside a span both are set to *missing* (default ``""``), so a format string such as
    ``"%(trace_id)s"`` never fails. The filter never drops a record.

    Example::

        >>> import logging
        >>> from meterhub.integrations.tracing import TraceContextFilter
        >>> handler = logging.StreamHandler()
        >>> handler.addFilter(TraceContextFilter())
        >>> handler.setFormatter(logging.Formatter("%(message)s trace=%(trace_id)s"))
    """

    def __init__(self, name: str = "", missing: str = "") -> None:
        super().__init__(name)
        self.missing = missing

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_trace_ids()
        if ids is None:
            record.trace_id = self.missing
            record.span_id = self.missing
        else:
            record.trace_id, record.span_id = ids
        return True
