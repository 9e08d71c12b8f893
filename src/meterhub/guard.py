"""The run-time error policy and meterhub's own health metrics.

Policy, written once (see also :mod:`meterhub.errors`):

* definition-time mistakes raise :class:`~meterhub.errors.DefinitionError` - always;
* run-time recording mistakes (negative counter increment, wrong label count, NaN, an
  ``inc()`` on a labeled parent) go through :func:`recording_error`: in strict mode
  (``METERHUB_STRICT=true``) they raise :class:`~meterhub.errors.RecordingError`; otherwise
  they are logged once per metric and reason and counted in
  ``meterhub_errors_total{metric,reason}``;
* a series beyond the per-metric cap is folded into the overflow series and counted in
  ``meterhub_series_dropped_total{metric}``.

:func:`shielded` applies the same policy to any block of instrumentation code (used by
integrations so that a metrics bug never breaks a request), :func:`absorb_exception` to an
exception already caught. Where an error is counted is the caller's choice: any
:class:`ErrorSink` (``registry.self_metrics``, or a subsystem's own counters such as the
event router's ``meterhub_events_errors_total``) logs once and counts; whether it raises
is decided here only.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Iterator
from typing import Protocol

from ._config import get_config
from ._forksafe import after_fork_hook, renew_locks_after_fork
from .errors import RecordingError
from .samples import MetricFamily, MetricType, Series

__all__ = [
    "OVERFLOW_VALUE",
    "ErrorSink",
    "SelfMetrics",
    "absorb_exception",
    "recording_error",
    "shielded",
]

log = logging.getLogger("meterhub")

OVERFLOW_VALUE = "__overflow__"
"""The label value of every label of a metric's overflow series."""


class ErrorSink(Protocol):
    """Where absorbed errors go: logged once per (subject, reason) and counted."""

    def count_error(self, metric: str, reason: str, message: str) -> None: ...


class SelfMetrics:
    """A collector for ``meterhub_errors_total`` and ``meterhub_series_dropped_total``.

    Plain counters behind a lock: these move only on errors, never on the hot path.
    Every :class:`~meterhub.Registry` has one as ``registry.self_metrics``. One with a
    *parent* (a private registry's) also counts everything in the parent (the default
    registry's), so errors of a private registry still reach the ``/metrics`` users serve.
    """

    def __init__(self, parent: SelfMetrics | None = None) -> None:
        self._parent = parent
        self._lock = threading.Lock()
        self._errors: dict[tuple[str, str], float] = {}
        self._dropped: dict[str, float] = {}
        renew_locks_after_fork(self)
        _ALL.add(self)

    def _renew_locks(self) -> None:
        self._lock = threading.Lock()

    def count_error(self, metric: str, reason: str, message: str, *, quiet: bool = False) -> None:
        with self._lock:
            key = (metric, reason)
            first = key not in self._errors
            self._errors[key] = self._errors.get(key, 0.0) + 1.0
        if self._parent is not None:
            self._parent._add_error(key)
        if first and not quiet:
            log.warning(
                "meterhub: %s (metric %s; logged once, counted in meterhub_errors_total)",
                message,
                metric,
            )

    def count_dropped(self, metric: str) -> None:
        with self._lock:
            first = metric not in self._dropped
            self._dropped[metric] = self._dropped.get(metric, 0.0) + 1.0
        if self._parent is not None:
            self._parent._add_dropped(metric)
        if first:
            log.warning(
                "meterhub: metric %s reached its series cap; new label sets go to the %s series",
                metric,
                OVERFLOW_VALUE,
            )

    def _add_error(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._errors[key] = self._errors.get(key, 0.0) + 1.0

    def _add_dropped(self, metric: str) -> None:
        with self._lock:
            self._dropped[metric] = self._dropped.get(metric, 0.0) + 1.0

    def errors(self, metric: str, reason: str) -> float:
        """How many errors of *reason* were counted for *metric*."""
        with self._lock:
            return self._errors.get((metric, reason), 0.0)

    def collect(self) -> Iterator[MetricFamily]:
        with self._lock:
            errors = sorted(self._errors.items())
            dropped = sorted(self._dropped.items())
        if not errors and not dropped and get_config().compat is not None:
            return  # compat mode: nothing of meterhub's in the output until something happens
        yield MetricFamily(
            "meterhub_errors",
            "Recording errors meterhub absorbed instead of raising, by metric and reason.",
            MetricType.COUNTER,
            series=tuple(Series((("metric", m), ("reason", r)), (v,)) for (m, r), v in errors),
        )
        yield MetricFamily(
            "meterhub_series_dropped",
            "Label sets folded into the overflow series because the metric hit its cap.",
            MetricType.COUNTER,
            series=tuple(Series((("metric", m),), (v,)) for m, v in dropped),
        )


_ALL: weakref.WeakSet[SelfMetrics] = weakref.WeakSet()


def _count_late_fork(late: bool) -> None:
    if not late:
        return
    for i, self_metrics in enumerate(list(_ALL)):
        self_metrics.count_error(
            "",
            "fork_undetected",
            "this process was forked without Python's at-fork hooks (a C-level fork); "
            "meterhub repaired it late - see the README's multi-process section",
            quiet=i > 0,
        )


after_fork_hook(_count_late_fork)


def recording_error(
    self_metrics: ErrorSink | None,
    metric: str,
    reason: str,
    message: str,
    *,
    subject: str = "metric",
    error: type[RecordingError] = RecordingError,
) -> None:
    """Apply the run-time error policy: raise in strict mode, else log once and count.

    *self_metrics* is the sink that counts (``None``: only logged); *subject* names what
    *metric* is in the strict-mode message (``"metric 'x': ..."``, ``"event 'x': ..."``).

    Example::

        >>> from meterhub import Registry, configure, get_config
        >>> reg, strict = Registry(), get_config().strict
        >>> _ = configure(strict=False)
        >>> recording_error(reg.self_metrics, "jobs", "negative", "inc() by -1")
        >>> reg.self_metrics.errors("jobs", "negative")
        1.0
        >>> _ = configure(strict=strict)
    """
    if get_config().strict:
        raise error(f"{subject} {metric!r}: {message}")
    if self_metrics is not None:
        self_metrics.count_error(metric, reason, message)
    else:
        log.warning("meterhub: %s %s: %s", subject, metric, message)


def absorb_exception(
    self_metrics: ErrorSink | None,
    what: str,
    exc: Exception,
    reason: str = "internal",
    message: str | None = None,
) -> None:
    """The policy for an exception caught in instrumentation code (call it from the
    ``except`` block): re-raised in strict mode, else logged once and counted against
    *what* (the message defaults to ``"<what>: <type>: <exc>"``)."""
    if get_config().strict:
        raise exc
    if self_metrics is not None:
        text = message if message is not None else f"{what}: {type(exc).__name__}: {exc}"
        self_metrics.count_error(what, reason, text)
    else:
        log.exception("meterhub: %s failed", what)


@contextlib.contextmanager
def shielded(self_metrics: ErrorSink | None, what: str, reason: str = "internal") -> Iterator[None]:
    """Run instrumentation code under the error policy: its exceptions never escape
    (strict mode aside); they are logged once and counted against *what*.

    Example::

        >>> from meterhub import REGISTRY, shielded
        >>> with shielded(REGISTRY.self_metrics, "my_integration"):
        ...     pass                # an exception here is logged once and counted
    """
    try:
        yield
    except Exception as exc:
        absorb_exception(self_metrics, what, exc, reason)
