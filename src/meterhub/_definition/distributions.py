"""Distributions: :class:`Histogram` (bucketed) and :class:`Summary` (count and sum)."""

from __future__ import annotations

import itertools
import math
import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import DefinitionError
from ..registry import REGISTRY, Registry
from ..samples import MetricType
from .base import Child, MetricBase
from .scope import Scope
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

    def __init__(self, metric: MetricBase[Any], key: tuple[str, ...], cell: Any) -> None:
        super().__init__(metric, key, cell)
        self._bounds = metric._desc.buckets

    def observe(self, amount: float, exemplar: Mapping[str, str] | None = None) -> None:
        """Record one observation of *amount*, optionally with an exemplar for its bucket."""
        # meterhub.events.compile writes this fast path out inline: change both together
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

    def time(self) -> Scope[float]:
        """Observe the duration in seconds of a block or (sync or async) function."""
        return Scope(time.perf_counter, lambda t0, exc: self.observe(time.perf_counter() - t0))


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


class Histogram(MetricBase[HistogramChild]):
    """Observations counted in buckets (request durations, payload sizes).

    Example::

        >>> from meterhub import Histogram, Registry
        >>> reg = Registry(self_metrics=False)
        >>> latency = Histogram("latency_seconds", "Latency.", buckets=(0.1, 1), registry=reg)
        >>> latency.observe(0.05)
        >>> reg.get_sample_value("latency_seconds_bucket", {"le": "0.1"})
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
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        *,
        switch: str | None = None,
        max_series: int | None = None,
    ) -> Histogram:
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
        )

    def observe(self, amount: float, exemplar: Mapping[str, str] | None = None) -> None:
        self._labeled_parent("observe")

    def time(self) -> Scope[float]:
        self._labeled_parent("time")
        return self._null_child().time()


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

    def time(self) -> Scope[float]:
        """Observe the duration in seconds of a block or (sync or async) function."""
        return Scope(time.perf_counter, lambda t0, exc: self.observe(time.perf_counter() - t0))


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

    def time(self) -> Scope[float]:
        self._labeled_parent("time")
        return self._null_child().time()
