"""What the router counts instead of raising: drops, unmapped types, errors.

``meterhub_events_dropped_total{event_type,reason}``, ``meterhub_events_unmapped_total
{event_type}`` (bounded: the first ``max_unmapped_types`` distinct types keep their name, the
rest are ``__other__``, non-str types ``__invalid__``) and ``meterhub_events_errors_total
{event_type,reason}``. Errors follow the core's policy, applied by :mod:`meterhub.guard`
(this class is only the sink that counts): raised in strict mode (when the caller asks for
it), otherwise logged once per (event type, reason) and counted.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..guard import absorb_exception, recording_error
from ..metrics import Counter
from ..registry import Registry

__all__ = ["INVALID", "OTHER", "EventCounters"]

log = logging.getLogger("meterhub.events")

OTHER = "__other__"
INVALID = "__invalid__"


class EventCounters:
    """The router's self-metrics (shared by every router on the same registry)."""

    def __init__(self, registry: Registry, max_unmapped_types: int = 100) -> None:
        if isinstance(max_unmapped_types, bool) or not isinstance(max_unmapped_types, int):
            raise TypeError(f"max_unmapped_types must be an int, got {max_unmapped_types!r}")
        self.max_unmapped_types = max_unmapped_types
        self._lock = threading.Lock()
        self._unmapped_seen: set[str] = set()
        self._logged: set[tuple[str, str]] = set()
        self._rate_limited: dict[str, Any] = {}
        self._dropped = Counter(
            "meterhub_events_dropped",
            "Events neither routed nor stored, by event type and reason.",
            ["event_type", "reason"],
            registry=registry,
        )
        self._unmapped = Counter(
            "meterhub_events_unmapped",
            "Events of a type without rules or handlers (bounded label; __other__ beyond it).",
            ["event_type"],
            registry=registry,
        )
        self._errors = Counter(
            "meterhub_events_errors",
            "Event routing/storing failures absorbed instead of raised, by type and reason.",
            ["event_type", "reason"],
            registry=registry,
        )

    def failed(self, event_type: str, exc: Exception) -> None:
        """A rule or handler raised: re-raise in strict mode, else count (guard's policy)."""
        absorb_exception(self, event_type, exc, "handler_error", f"{type(exc).__name__}: {exc}")

    def error(self, event_type: str, reason: str, message: str, raises: bool) -> None:
        """Bad event data. ``raises=True``: a recording mistake, under the core's policy
        (:func:`~meterhub.guard.recording_error`: raised in strict mode, else counted);
        ``False``: only ever counted (a missing field, a store failure - data and I/O,
        not bugs)."""
        if raises:
            recording_error(self, event_type, reason, message, subject="event")
        else:
            self.count_error(event_type, reason, message)

    def count_error(self, metric: str, reason: str, message: str) -> None:
        """The :class:`~meterhub.guard.ErrorSink` of events: log once per (event type,
        reason), count in ``meterhub_events_errors_total``."""
        key = (metric, reason)
        if key not in self._logged:
            self._logged.add(key)
            log.warning(
                "meterhub: event %r: %s (counted in meterhub_events_errors_total)",
                metric,
                message,
            )
        self._errors.labels(*key).inc()

    def rate_limited(self, event_type: str) -> None:
        child = self._rate_limited.get(event_type)
        if child is None:
            child = self._rate_limited[event_type] = self._dropped.labels(
                event_type, "rate_limited"
            )
        child.inc()

    def unmapped(self, event_type: Any) -> None:
        if type(event_type) is not str or not event_type:
            label = INVALID
        else:
            label = event_type[:100]
            seen = self._unmapped_seen
            if label not in seen:
                with self._lock:
                    if len(seen) < self.max_unmapped_types:
                        seen.add(label)
                    else:
                        label = OTHER
        self._unmapped.labels(label).inc()
