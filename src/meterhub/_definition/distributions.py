"""Distributions: :class:`Histogram` (bucketed) and :class:`Summary` (count and sum)."""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from ..errors import DefinitionError
from ..registry import REGISTRY, Registry
from ..samples import MetricType
from ..store.base import MetricDesc, NativeSpec
from .base import Child, MetricBase
from .scope import HistogramTimer, SeriesTimer, Timer
from .values import checked_exemplar, checked_number

__all__ = ["DEFAULT_BUCKETS", "INF", "Histogram", "HistogramChild", "Summary", "SummaryChild"]

INF = math.inf
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, INF,
)  # fmt: skip


# -------------------------------------------------------------------------------- Histogram


class HistogramChild(Child):
    """One series of a :class:`Histogram`."""

    __slots__ = ("_bounds",)
    _timer_cls: ClassVar[type[SeriesTimer]] = HistogramTimer
    """``time()``'s class: one with this class's ``observe`` written out (a native series
    observes its own way: the plain :class:`SeriesTimer`)."""

    def __init__(self, metric: MetricBase[Any], key: tuple[str, ...], cell: Any) -> None:
        super().__init__(metric, key, cell)
        self._bounds = metric._desc.buckets

    def observe(self, amount: float, exemplar: Mapping[str, str] | None = None) -> None:
        """Record one observation of *amount*, optionally with an exemplar for its bucket."""
        # Histogram.observe, HistogramTimer and meterhub.events.compile write this fast path
        # out inline: change all four together
        # Only exact float and int (see CounterChild.inc); NaN and the rest are checked.
        try:
            if (type(amount) is float or type(amount) is int) and exemplar is None:
                i = bisect_left(self._bounds, amount)
                if amount == amount:
                    # No call between these two updates: a reader sees both or neither.
                    v = self._v
                    v[0] += amount
                    v[i + 1] += 1.0
                    return
        except Exception:  # an int too large for a float
            pass
        self._observe_checked(amount, exemplar)

    def _observe_checked(self, amount: Any, exemplar: Mapping[str, str] | None) -> None:
        metric = self._metric
        value = checked_number(metric, amount, "observation")
        if value is None:
            return
        if math.isnan(value):
            metric._error("nan", "observe(nan) refused")
            return
        i = bisect_left(self._bounds, value)
        v = self._v
        v[0] += value
        v[i + 1] += 1.0
        if exemplar is not None:
            ex = checked_exemplar(metric, exemplar, value)
            if ex is not None and self._v is self._cell:
                metric._store.set_exemplar(metric._desc, self._key, i, ex)

    def time(self) -> SeriesTimer:
        """Observe the duration in seconds of a block or (sync or async) function."""
        timer = self._timer_cls()
        timer._series = self
        return timer


def _check_buckets(name: str, buckets: Sequence[float]) -> tuple[float, ...]:
    try:
        bounds = [float(b) for b in buckets]
    except (TypeError, ValueError):
        raise DefinitionError(
            f"metric {name!r}: buckets must be numbers, got {buckets!r}"
        ) from None
    if not bounds:
        raise DefinitionError(f"metric {name!r}: at least one bucket is required")
    if any(math.isnan(b) for b in bounds):
        raise DefinitionError(f"metric {name!r}: a bucket bound is NaN")
    if any(a >= b for a, b in itertools.pairwise(bounds)):
        raise DefinitionError(
            f"metric {name!r}: buckets must be strictly increasing and unique, got {bounds}"
        )
    if bounds[-1] != INF:
        bounds.append(INF)
    return tuple(bounds)


def _check_native(
    name: str,
    factor: float | None,
    zero_threshold: float | None,
    max_buckets: int,
    min_reset_duration: float,
) -> NativeSpec | None:
    from .._native import DEFAULT_ZERO_THRESHOLD, schema_for_factor

    if factor is None:
        if zero_threshold is not None or max_buckets != 160 or min_reset_duration:
            raise DefinitionError(
                f"metric {name!r}: native_histogram_* settings need "
                "native_histogram_bucket_factor (e.g. 1.1) to turn native buckets on"
            )
        return None

    def number(what: str, value: Any, ok: Any) -> float:
        try:
            f = float(value)
        except (TypeError, ValueError):
            f = math.nan
        if isinstance(value, (bool, str, bytes)) or not ok(f):
            raise DefinitionError(f"metric {name!r}: native_histogram_{what} {value!r} refused")
        return f

    f = number("bucket_factor", factor, lambda x: x > 1.0)
    zt = DEFAULT_ZERO_THRESHOLD if zero_threshold is None else zero_threshold
    zt = number("zero_threshold", zt, lambda x: 0.0 <= x < math.inf)
    if isinstance(max_buckets, bool) or not isinstance(max_buckets, int) or max_buckets < 1:
        raise DefinitionError(
            f"metric {name!r}: native_histogram_max_buckets must be an int >= 1, "
            f"got {max_buckets!r}"
        )
    reset = number("min_reset_duration", min_reset_duration, lambda x: 0.0 <= x < math.inf)
    return NativeSpec(schema_for_factor(f), zt, max_buckets, reset)


class Histogram(MetricBase[HistogramChild]):
    """Observations counted in buckets (request durations, payload sizes).

    Classic buckets are the fixed ``buckets=`` bounds. With
    ``native_histogram_bucket_factor`` (e.g. ``1.1``: each bucket at most 10 % wider than
    the previous one) it also keeps *native* buckets, as client_golang does: exponential
    ones at the coarsest schema (-4 ... 8) whose growth factor is at most that factor, sparse
    (only populated buckets cost anything), a zero bucket for
    ``|v| <= native_histogram_zero_threshold`` (default ``2**-128``) and mirrored negative
    buckets. Past ``native_histogram_max_buckets`` (default 160) buckets the resolution is
    halved (bucket pairs merge), or, when ``native_histogram_min_reset_duration`` seconds
    have passed since the last reset, everything is reset. Prometheus scrapes them over the
    protobuf exposition (``--enable-feature=native-histograms``). Without ``buckets=`` such
    a histogram has no classic buckets but ``+Inf``; with ``buckets=`` it keeps both.

    Example::

        >>> from meterhub import Histogram, Registry
        >>> reg = Registry(self_metrics=False)
        >>> latency = Histogram("latency_seconds", "Latency.", buckets=(0.1, 1), registry=reg)
        >>> latency.observe(0.05)
        >>> reg.get_sample_value("latency_seconds_bucket", {"le": "0.1"})
        1.0
        >>> native = Histogram("rpc_seconds", "RPCs.", registry=reg,
        ...                    native_histogram_bucket_factor=1.1)
        >>> native.observe(0.25)
        >>> reg.get_sample_value("rpc_seconds_count")
        1.0
    """

    _type = MetricType.HISTOGRAM
    _child_cls = HistogramChild
    _child_methods = ("observe", "time")
    _reserved_labels = ("le",)
    _suffixes = ("_bucket", "_count", "_sum", "_created")

    def __new__(
        cls,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
        buckets: Sequence[float] | None = None,
        *,
        switch: str | None = None,
        max_series: int | None = None,
        native_histogram_bucket_factor: float | None = None,
        native_histogram_zero_threshold: float | None = None,
        native_histogram_max_buckets: int = 160,
        native_histogram_min_reset_duration: float = 0.0,
    ) -> Histogram:
        native = _check_native(
            name,
            native_histogram_bucket_factor,
            native_histogram_zero_threshold,
            native_histogram_max_buckets,
            native_histogram_min_reset_duration,
        )
        if buckets is None:
            buckets = DEFAULT_BUCKETS if native is None else (INF,)
        bounds = _check_buckets(name, buckets)
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
            buckets=bounds,
            native=native,
        )

    def _setup(
        self, desc: MetricDesc, registry: Registry, switch: str | None, max_series: int | None
    ) -> None:
        if desc.native is not None:
            from .nativehist import DualHistogramChild, NativeHistogramChild

            # before the unlabeled child is made
            child = NativeHistogramChild if len(desc.buckets) == 1 else DualHistogramChild
            setattr(self, "_child_cls", child)  # noqa: B010
        self._series: HistogramChild | None = None
        super()._setup(desc, registry, switch, max_series)
        if not desc.labelnames and self._series is None:
            # A native series' observe() goes onto the instance as a bound method, in a
            # dict of the instance's own: "observe" among the keys that a class's instances
            # share, even on one instance, stops CPython 3.11+ from specializing the method
            # lookup of every other Histogram's observe() below.
            self.__dict__ = {**self.__dict__, "observe": self._children[()].observe}

    def _bound_methods(self, child: HistogramChild) -> tuple[str, ...]:
        if type(child) is HistogramChild:
            # observe() below is the series' own, written out: a call of a class's method
            # is cheaper than one of a bound method in the instance's __dict__
            self._series = child
        return ("time",)  # observe: above

    def observe(self, amount: float, exemplar: Mapping[str, str] | None = None) -> None:
        # HistogramChild.observe on the one series of an unlabeled classic histogram
        # (HistogramTimer and meterhub.events.compile write it out too: change all four
        # together); on a labeled histogram self._series is None and the AttributeError
        # ends up below
        c: Any = self._series
        try:
            if (type(amount) is float or type(amount) is int) and exemplar is None:
                i = bisect_left(c._bounds, amount)
                if amount == amount:
                    # No call between these two updates: a reader sees both or neither.
                    v = c._v
                    v[0] += amount
                    v[i + 1] += 1.0
                    return
        except Exception:  # an int too large for a float, or no series
            pass
        if c is None:
            self._labeled_parent("observe")
        else:
            c._observe_checked(amount, exemplar)

    def time(self) -> SeriesTimer:
        return Timer(None, self)


# ---------------------------------------------------------------------------------- Summary


class SummaryChild(Child):
    """One series of a :class:`Summary`."""

    __slots__ = ()

    def observe(self, amount: float) -> None:
        """Record one observation of *amount*."""
        try:
            if (type(amount) is float or type(amount) is int) and amount == amount:
                v = self._v
                v[1] += amount  # first: an int too large for a float raises here
                v[0] += 1.0
                return
        except Exception:  # an int too large for a float
            pass
        value = checked_number(self._metric, amount, "observation")
        if value is None:
            return
        if math.isnan(value):
            self._metric._error("nan", "observe(nan) refused")
            return
        v = self._v
        v[0] += 1.0
        v[1] += value

    def time(self) -> SeriesTimer:
        """Observe the duration in seconds of a block or (sync or async) function."""
        timer = SeriesTimer()
        timer._series = self
        return timer


class Summary(MetricBase[SummaryChild]):
    """Count and sum of observations (as prometheus_client's Summary: no quantiles).

    Example::

        >>> from meterhub import Summary, Registry
        >>> reg = Registry(self_metrics=False)
        >>> size = Summary("payload_bytes", "Payload sizes.", registry=reg)
        >>> size.observe(512)
        >>> reg.get_sample_value("payload_bytes_sum")
        512.0
    """

    _type = MetricType.SUMMARY
    _child_cls = SummaryChild
    _child_methods = ("observe", "time")
    _reserved_labels = ("quantile",)
    _suffixes = ("_count", "_sum", "_created")

    def observe(self, amount: float) -> None:
        self._labeled_parent("observe")

    def time(self) -> SeriesTimer:
        return Timer(None, self)
