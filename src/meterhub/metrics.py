"""The metric types: Counter, Gauge, Histogram, Summary, Info, Enum.

Constructors and methods follow prometheus_client, so switching the import keeps code
working. Beyond it: ``switch=`` (a named on/off switch), ``max_series=`` (the per-metric
series cap), identical re-declaration returning the existing metric, and ``time()`` /
``count_exceptions()`` / ``track_inprogress()`` that decorate async functions too.

Recording never raises into business code unless strict mode is on (see
:mod:`meterhub.guard`); definition mistakes always raise ``ValueError``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._config import get_config
from ._definition.base import Child, MetricBase, SeriesMaker
from ._definition.distributions import (
    DEFAULT_BUCKETS,
    INF,
    Histogram,
    HistogramChild,
    Summary,
    SummaryChild,
)
from ._definition.scope import ExceptionCounter, GaugeTimer, InProgress, SeriesTimer, Timer
from ._definition.states import Enum, EnumChild, Info, InfoChild
from ._definition.values import checked_exemplar, checked_number
from .errors import DefinitionError
from .registry import REGISTRY, Registry
from .samples import LabelPairs, MetricType, Series
from .store import MetricDesc, SeriesData
from .store.layout import GAUGE

__all__ = [
    "DEFAULT_BUCKETS",
    "INF",
    "Counter",
    "CounterChild",
    "Enum",
    "EnumChild",
    "Gauge",
    "GaugeChild",
    "Histogram",
    "HistogramChild",
    "Info",
    "InfoChild",
    "Summary",
    "SummaryChild",
]

MULTIPROCESS_MODES = frozenset(
    {"all", "liveall", "sum", "livesum", "max", "livemax", "min", "livemin",
     "mostrecent", "livemostrecent"}
)  # fmt: skip


# ---------------------------------------------------------------------------------- Counter


_ONE = 1.0
"""``inc()``'s default, recognised by identity: the default call skips the type checks."""


class CounterChild(Child):
    """One series of a :class:`Counter`."""

    __slots__ = ()

    def reset(self) -> None:
        """Set back to zero (and restamp ``_created``), as prometheus_client's ``reset()``."""
        self._v[0] = 0.0
        if get_config().created:
            self._cell[-1] = time.time()

    def inc(self, amount: float = _ONE, exemplar: Mapping[str, str] | None = None) -> None:
        """Add *amount* (non-negative; default 1), optionally with an exemplar."""
        if amount is _ONE and exemplar is None:  # inc(), the common call: nothing to check
            self._v[0] += 1.0
            return
        # Only exact float and int: the += then runs no Python code, so no thread can
        # interleave (a Fraction's __radd__ would); everything else takes the checked path.
        # float first and compared with 0.0: the interpreter's float-only fast paths apply.
        if type(amount) is float:
            if amount >= 0.0 and exemplar is None:  # NaN fails here and is refused below
                self._v[0] += amount
                return
        elif type(amount) is int and amount >= 0 and exemplar is None:
            try:
                self._v[0] += amount
                return
            except OverflowError:  # too large for a float: refused below
                pass
        self._inc_checked(amount, exemplar)

    def _inc_checked(self, amount: Any, exemplar: Mapping[str, str] | None) -> None:
        metric = self._metric
        value = checked_number(metric, amount, "counter increment")
        if value is None:
            return
        if math.isnan(value):
            metric._error("nan", "inc(nan) refused")
            return
        if value < 0:
            metric._error(
                "negative_increment", f"counters only go up; inc({amount!r}) refused (use a Gauge)"
            )
            return
        self._v[0] += value
        if exemplar is not None:
            ex = checked_exemplar(metric, exemplar, value)
            if ex is not None and self._v is self._cell:
                metric._store.set_exemplar(metric._desc, self._key, 0, ex)

    def count_exceptions(
        self, exception: type[BaseException] | tuple[type[BaseException], ...] = Exception
    ) -> ExceptionCounter:
        """Count exceptions of *exception* raised in a block or a (sync or async) function."""
        # made without a Python __init__ (see meterhub._definition.scope): a C-level call
        counter = ExceptionCounter()
        counter._series, counter._exception = self, exception
        return counter


class Counter(MetricBase[CounterChild]):
    """A value that only goes up (requests served, errors seen).

    Example::

        >>> from meterhub import Counter, Registry
        >>> reg = Registry(self_metrics=False)
        >>> requests = Counter("requests", "Requests served.", ["method"], registry=reg)
        >>> requests.labels("GET").inc()
        >>> reg.get_sample_value("requests_total", {"method": "GET"})
        1.0
    """

    _type = MetricType.COUNTER
    _child_cls = CounterChild
    _child_methods = ("inc", "count_exceptions", "reset")
    _suffixes = ("_total", "_created")

    def inc(self, amount: float = 1.0, exemplar: Mapping[str, str] | None = None) -> None:
        """Add *amount* (unlabeled counters; labeled ones use ``labels(...).inc()``)."""
        self._labeled_parent("inc")

    def reset(self) -> None:
        """Set back to zero (unlabeled counters)."""
        self._labeled_parent("reset")

    def count_exceptions(
        self, exception: type[BaseException] | tuple[type[BaseException], ...] = Exception
    ) -> ExceptionCounter:
        """Count exceptions raised in a block or function (unlabeled counters)."""
        self._labeled_parent("count_exceptions")
        return self._null_child().count_exceptions(exception)


# ------------------------------------------------------------------------------------ Gauge


class GaugeChild(Child):
    """One series of a :class:`Gauge`."""

    __slots__ = ("_fn", "_inprogress")
    _inprogress: InProgress

    def inc(self, amount: float = 1.0) -> None:
        """Add *amount* (default 1)."""
        try:
            if type(amount) is float or type(amount) is int:  # see CounterChild.inc
                self._v[0] += amount
                return
        except Exception:  # an int too large for a float
            pass
        value = checked_number(self._metric, amount, "gauge increment")
        if value is not None:
            self._v[0] += value

    def dec(self, amount: float = 1.0) -> None:
        """Subtract *amount* (default 1)."""
        try:
            if type(amount) is float or type(amount) is int:
                self._v[0] -= amount
                return
        except Exception:
            pass
        value = checked_number(self._metric, amount, "gauge decrement")
        if value is not None:
            self._v[0] -= value

    def set(self, value: float) -> None:
        """Set to *value*."""
        # meterhub.events.compile writes this fast path out inline: change both together
        if type(value) is float:
            self._v[0] = value
        else:
            number = checked_number(self._metric, value, "gauge value")
            if number is not None:
                self._v[0] = number

    def set_to_current_time(self) -> None:
        """Set to the current Unix time in seconds."""
        self._v[0] = time.time()

    def track_inprogress(self) -> InProgress:
        """+1 while a block or (sync or async) function runs."""
        try:
            return self._inprogress  # stateless: one per series serves every caller at once
        except AttributeError:
            # a race makes two, one of which is kept: harmless, neither holds any state
            self._inprogress = InProgress(self)
            return self._inprogress

    def time(self) -> SeriesTimer:
        """Set to the duration in seconds of a block or (sync or async) function."""
        timer = GaugeTimer()
        timer._series = self
        return timer

    def set_function(self, f: Callable[[], float]) -> None:
        """Take the value from ``f()`` at every collection (this process only)."""
        if not callable(f):
            self._metric._error("not_callable", f"set_function needs a callable, got {f!r}")
            return
        self._fn = f


class MostRecentGaugeChild(GaugeChild):
    """A gauge child in the ``mostrecent`` modes: every write also stamps the time."""

    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        t = time.time()
        super().inc(amount)
        self._v[1] = t

    def dec(self, amount: float = 1.0) -> None:
        t = time.time()
        super().dec(amount)
        self._v[1] = t

    def set(self, value: float) -> None:
        number = checked_number(self._metric, value, "gauge value")
        if number is not None:
            t = time.time()
            v = self._v
            v[1] = t
            v[0] = number


class Gauge(MetricBase[GaugeChild]):
    """A value that goes up and down (queue length, temperature, in-flight requests).

    Example::

        >>> from meterhub import Gauge, Registry
        >>> reg = Registry(self_metrics=False)
        >>> queue = Gauge("queue_length", "Jobs waiting.", registry=reg)
        >>> queue.set(7); queue.dec(2)
        >>> reg.get_sample_value("queue_length")
        5.0
    """

    _type = MetricType.GAUGE
    _child_cls = GaugeChild
    _child_methods = ("inc", "dec", "set", "set_to_current_time", "track_inprogress", "time",
                      "set_function")  # fmt: skip

    def __new__(
        cls,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
        multiprocess_mode: str = "all",
        *,
        switch: str | None = None,
        max_series: int | None = None,
    ) -> Gauge:
        if multiprocess_mode not in MULTIPROCESS_MODES:
            raise DefinitionError(
                f"metric {name!r}: invalid multiprocess_mode {multiprocess_mode!r} "
                f"(one of {sorted(MULTIPROCESS_MODES)})"
            )
        if multiprocess_mode.endswith("mostrecent"):
            cls = MostRecentGauge
        return cls._define(
            name,
            documentation,
            labelnames,
            namespace,
            subsystem,
            unit,
            registry,
            switch,
            max_series,
            multiprocess_mode=multiprocess_mode,
        )

    def inc(self, amount: float = 1.0) -> None:
        self._labeled_parent("inc")

    def dec(self, amount: float = 1.0) -> None:
        self._labeled_parent("dec")

    def set(self, value: float) -> None:
        self._labeled_parent("set")

    def set_to_current_time(self) -> None:
        self._labeled_parent("set_to_current_time")

    def track_inprogress(self) -> InProgress:
        self._labeled_parent("track_inprogress")
        return self._null_child().track_inprogress()

    def time(self) -> SeriesTimer:
        return Timer(None, self, "set")

    def set_function(self, f: Callable[[], float]) -> None:
        self._labeled_parent("set_function")

    def _series_maker(self) -> SeriesMaker:
        return self._series

    def _series(
        self, desc: MetricDesc, labels: LabelPairs, data: SeriesData, created: bool
    ) -> Series:
        child = self._children.get(data.key)
        fn = getattr(child, "_fn", None) if child is not None else None
        if fn is not None:
            try:
                return Series(labels, (float(fn()),))
            except Exception as exc:
                self._error("set_function", f"set_function callback failed: {exc!r}")
        return GAUGE.to_series(desc, labels, data, created)


class MostRecentGauge(Gauge):
    """A :class:`Gauge` in a ``mostrecent`` multiprocess mode (made by ``Gauge(...)``)."""

    _child_cls = MostRecentGaugeChild
