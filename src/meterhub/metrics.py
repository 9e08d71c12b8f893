"""The metric types: Counter, Gauge, Histogram, Summary, Info, Enum.

Constructors and methods follow prometheus_client, so switching the import keeps code
working. Beyond it: ``switch=`` (a named on/off switch), ``max_series=`` (the per-metric
series cap), identical re-declaration returning the existing metric, and ``time()`` /
``count_exceptions()`` / ``track_inprogress()`` that decorate async functions too.

Recording never raises into business code unless strict mode is on (see
:mod:`meterhub.guard`); definition mistakes always raise ``ValueError``.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ._metric import Child, MetricBase, _encodable, created_sample
from ._scope import Scope
from .errors import DefinitionError
from .naming import LABEL_NAME_RE
from .registry import REGISTRY, Registry
from .samples import Exemplar, LabelPairs, MetricType, Series
from .store import SeriesData
from .store.base import Cell, LocalCell

__all__ = [
    "DEFAULT_BUCKETS",
    "INF",
    "Counter",
    "Enum",
    "Gauge",
    "Histogram",
    "Info",
    "Summary",
]

INF = math.inf
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, INF,
)  # fmt: skip
MULTIPROCESS_MODES = frozenset(
    {"all", "liveall", "sum", "livesum", "max", "livemax", "min", "livemin",
     "mostrecent", "livemostrecent"}
)  # fmt: skip
EXEMPLAR_MAX_CHARS = 128


def _exemplar(metric: MetricBase[Any], labels: Any, value: float) -> Exemplar | None:
    """Validate exemplar labels (at most 128 characters of names and values together)."""
    if not isinstance(labels, Mapping):
        metric._error("exemplar", f"exemplar must be a dict of str to str, got {labels!r}")
        return None
    pairs = {}
    for k, v in labels.items():
        if (
            not isinstance(k, str)
            or not LABEL_NAME_RE.match(k)
            or not isinstance(v, str)
            or not _encodable((v,))
        ):
            metric._error("exemplar", f"exemplar label {k!r}={v!r} is not a valid str pair")
            return None
        pairs[k] = v
    length = sum(len(k) + len(v) for k, v in pairs.items())
    if length > EXEMPLAR_MAX_CHARS:
        metric._error(
            "exemplar",
            f"exemplar labels are {length} characters long; the limit is {EXEMPLAR_MAX_CHARS}",
        )
        return None
    return Exemplar(pairs, float(value), time.time())


def _number(metric: MetricBase[Any], value: Any, what: str) -> float | None:
    """*value* as a float, or ``None`` after reporting why it is not one."""
    if isinstance(value, (str, bytes)):
        metric._error("not_a_number", f"{what} must be a number, got {value!r}")
        return None
    if not isinstance(value, (int, float)):
        try:
            value = float(value)  # numpy scalars, Decimal, Fraction
        except (TypeError, ValueError):
            metric._error("not_a_number", f"{what} must be a number, got {value!r}")
            return None
    try:
        return float(value)
    except OverflowError:
        metric._error("not_a_number", f"{what} {value!r} does not fit in a float")
        return None


# ---------------------------------------------------------------------------------- Counter


class CounterChild(Child):
    """One series of a :class:`Counter`."""

    __slots__ = ()

    def inc(self, amount: float = 1.0, exemplar: Mapping[str, str] | None = None) -> None:
        """Add *amount* (non-negative; default 1), optionally with an exemplar."""
        try:
            if amount >= 0 and exemplar is None:
                self._v[0] += amount
                return
        except Exception:
            pass
        self._inc_checked(amount, exemplar)

    def _inc_checked(self, amount: Any, exemplar: Mapping[str, str] | None) -> None:
        metric = self._metric
        value = _number(metric, amount, "counter increment")
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
            ex = _exemplar(metric, exemplar, value)
            if ex is not None and self._v is self._cell:
                metric._store.set_exemplar(metric._desc, self._key, 0, ex)

    def count_exceptions(
        self, exception: type[BaseException] | tuple[type[BaseException], ...] = Exception
    ) -> Scope[None]:
        """Count exceptions of *exception* raised in a block or a (sync or async) function."""

        def on_exit(_: None, exc: BaseException | None) -> None:
            if isinstance(exc, exception):
                self.inc()

        return Scope(lambda: None, on_exit)


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
    _child_methods = ("inc", "count_exceptions")
    _suffixes = ("_total", "_created")

    def __new__(
        cls,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
        *,
        switch: str | None = None,
        max_series: int | None = None,
    ) -> Counter:
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
        )

    def inc(self, amount: float = 1.0, exemplar: Mapping[str, str] | None = None) -> None:
        """Add *amount* (unlabeled counters; labeled ones use ``labels(...).inc()``)."""
        self._labeled_parent("inc")

    def count_exceptions(
        self, exception: type[BaseException] | tuple[type[BaseException], ...] = Exception
    ) -> Scope[None]:
        """Count exceptions raised in a block or function (unlabeled counters)."""
        self._labeled_parent("count_exceptions")
        return self._null_child().count_exceptions(exception)

    def _series(self, labels: LabelPairs, data: SeriesData, created: bool) -> Series:
        values = data.values
        if not data.exemplars and not created:  # the common case, kept cheap
            return Series(labels, (values[0],))
        ex = data.exemplars.get(0)
        return Series(labels, (values[0],), (ex,) if ex else (), created_sample(values[1], created))


# ------------------------------------------------------------------------------------ Gauge


class GaugeChild(Child):
    """One series of a :class:`Gauge`."""

    __slots__ = ("_fn",)

    def inc(self, amount: float = 1.0) -> None:
        """Add *amount* (default 1)."""
        try:
            self._v[0] += amount
        except Exception:
            value = _number(self._metric, amount, "gauge increment")
            if value is not None:
                self._v[0] += value

    def dec(self, amount: float = 1.0) -> None:
        """Subtract *amount* (default 1)."""
        try:
            self._v[0] -= amount
        except Exception:
            value = _number(self._metric, amount, "gauge decrement")
            if value is not None:
                self._v[0] -= value

    def set(self, value: float) -> None:
        """Set to *value*."""
        if value.__class__ is float:
            self._v[0] = value
        else:
            number = _number(self._metric, value, "gauge value")
            if number is not None:
                self._v[0] = number

    def set_to_current_time(self) -> None:
        """Set to the current Unix time in seconds."""
        self._v[0] = time.time()

    def track_inprogress(self) -> Scope[None]:
        """+1 while a block or (sync or async) function runs."""
        return Scope(self.inc, lambda _, exc: self.dec())

    def time(self) -> Scope[float]:
        """Set to the duration in seconds of a block or (sync or async) function."""
        return Scope(time.perf_counter, lambda t0, exc: self.set(time.perf_counter() - t0))

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
        number = _number(self._metric, value, "gauge value")
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

    def track_inprogress(self) -> Scope[None]:
        self._labeled_parent("track_inprogress")
        return self._null_child().track_inprogress()

    def time(self) -> Scope[float]:
        self._labeled_parent("time")
        return self._null_child().time()

    def set_function(self, f: Callable[[], float]) -> None:
        self._labeled_parent("set_function")

    def _series(self, labels: LabelPairs, data: SeriesData, created: bool) -> Series:
        child = self._children.get(data.key)
        fn = getattr(child, "_fn", None) if child is not None else None
        if fn is not None:
            try:
                return Series(labels, (float(fn()),))
            except Exception as exc:
                self._error("set_function", f"set_function callback failed: {exc!r}")
        return Series(labels, (data.values[0],))


class MostRecentGauge(Gauge):
    """A :class:`Gauge` in a ``mostrecent`` multiprocess mode (made by ``Gauge(...)``)."""

    _child_cls = MostRecentGaugeChild


# -------------------------------------------------------------------------------- Histogram


class HistogramChild(Child):
    """One series of a :class:`Histogram`."""

    __slots__ = ("_bounds",)

    def __init__(self, metric: MetricBase[Any], key: tuple[str, ...], cell: Any) -> None:
        super().__init__(metric, key, cell)
        self._bounds = metric._desc.buckets

    def observe(self, amount: float, exemplar: Mapping[str, str] | None = None) -> None:
        """Record one observation of *amount*, optionally with an exemplar for its bucket."""
        try:
            i = bisect_left(self._bounds, amount)
            if amount == amount and exemplar is None:
                # No call between these two updates: a reader sees both or neither.
                v = self._v
                v[0] += amount
                v[i + 1] += 1.0
                return
        except Exception:
            pass
        self._observe_checked(amount, exemplar)

    def _observe_checked(self, amount: Any, exemplar: Mapping[str, str] | None) -> None:
        metric = self._metric
        value = _number(metric, amount, "observation")
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
            ex = _exemplar(metric, exemplar, value)
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

    def _series(self, labels: LabelPairs, data: SeriesData, created: bool) -> Series:
        values = data.values
        cumulative: list[float] = [values[0]]
        total = 0.0
        for count in values[1:-1]:
            total += count
            cumulative.append(total)
        ex = data.exemplars
        exemplars = tuple(ex.get(i) for i in range(len(values) - 2)) if ex else ()
        return Series(labels, tuple(cumulative), exemplars, created_sample(values[-1], created))


# ---------------------------------------------------------------------------------- Summary


class SummaryChild(Child):
    """One series of a :class:`Summary`."""

    __slots__ = ()

    def observe(self, amount: float) -> None:
        """Record one observation of *amount*."""
        try:
            if amount == amount:
                v = self._v
                v[0] += 1.0
                v[1] += amount
                return
        except Exception:
            pass
        value = _number(self._metric, amount, "observation")
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

    def __new__(
        cls,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
        *,
        switch: str | None = None,
        max_series: int | None = None,
    ) -> Summary:
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
        )

    def observe(self, amount: float) -> None:
        self._labeled_parent("observe")

    def time(self) -> Scope[float]:
        self._labeled_parent("time")
        return self._null_child().time()

    def _series(self, labels: LabelPairs, data: SeriesData, created: bool) -> Series:
        v = data.values
        return Series(labels, (v[0], v[1]), (), created_sample(v[2], created))


# ------------------------------------------------------------------------------------- Info


class InfoChild(Child):
    """One series of an :class:`Info`. Its key is the label values plus the encoded info."""

    __slots__ = ("_info_cell", "_info_key")

    def info(self, val: Mapping[str, str]) -> None:
        """Set the info pairs (replacing the previous ones)."""
        metric = self._metric
        if not isinstance(val, Mapping):
            metric._error("info", f"info() needs a dict of str to str, got {val!r}")
            return
        names = metric._desc.labelnames
        for k, v in val.items():
            if not isinstance(k, str) or not LABEL_NAME_RE.match(k) or k.startswith("__"):
                metric._error("info", f"info key {k!r} is not a valid label name")
                return
            if k in names:
                metric._error("info", f"info key {k!r} clashes with a label name")
                return
            if not isinstance(v, str) or not _encodable((v,)):
                metric._error("info", f"info value for {k!r} must be a valid str, got {v!r}")
                return
        key = (*self._key, json.dumps(sorted(val.items()), ensure_ascii=False))
        store = metric._store
        with metric._lock:
            old = getattr(self, "_info_key", None)
            if old == key:
                return
            if old is not None:
                store.remove(metric._desc, old)
            cell = store.cell(metric._desc, key)
            cell[0] = 1.0
            self._info_key = key
            self._info_cell = cell

    def _drop(self) -> None:
        old = getattr(self, "_info_key", None)
        if old is not None:
            self._metric._store.remove(self._metric._desc, old)


class Info(MetricBase[InfoChild]):
    """Static key-value facts about the target (version, build).

    Example::

        >>> from meterhub import Info, Registry
        >>> reg = Registry(self_metrics=False)
        >>> Info("build", "Build facts.", registry=reg).info({"version": "1.2.3"})
        >>> reg.get_sample_value("build_info", {"version": "1.2.3"})
        1.0
    """

    _type = MetricType.INFO
    _child_cls = InfoChild
    _child_methods = ("info",)
    _suffixes = ("_info",)

    def __new__(
        cls,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
        *,
        switch: str | None = None,
    ) -> Info:
        if unit:
            raise DefinitionError(f"metric {name!r}: an info metric has no unit")
        return cls._define(
            name,
            documentation,
            labelnames,
            namespace,
            subsystem,
            "",
            registry,
            switch,
            None,
        )

    def info(self, val: Mapping[str, str]) -> None:
        self._labeled_parent("info")

    def _cell_for(self, key: tuple[str, ...]) -> Cell:
        # A child's stored key gains the encoded info pairs once info() is called.
        return [0.0]

    def _local_cells(self) -> list[LocalCell]:
        return [
            (child._info_key, child._info_cell)
            for child in list(self._children.values())
            if getattr(child, "_info_key", None) is not None
        ]

    def _series(self, labels: LabelPairs, data: SeriesData, created: bool) -> Series:
        # zip() in collect() left the last key element (the encoded info pairs) out.
        pairs: LabelPairs = tuple((k, v) for k, v in json.loads(data.key[-1]))
        return Series(labels + pairs, (1.0,))


# ------------------------------------------------------------------------------------- Enum


class EnumChild(Child):
    """One series of an :class:`Enum`."""

    __slots__ = ("_index",)

    def __init__(self, metric: MetricBase[Any], key: tuple[str, ...], cell: Cell) -> None:
        super().__init__(metric, key, cell)
        self._index = {s: float(i) for i, s in enumerate(metric._desc.states)}

    def state(self, state: str) -> None:
        """Set the current state (one of the metric's ``states``)."""
        try:
            self._v[0] = self._index[state]
        except (KeyError, TypeError):
            self._metric._error(
                "unknown_state",
                f"state {state!r} is not one of {list(self._metric._desc.states)}",
            )


class Enum(MetricBase[EnumChild]):
    """Which of a fixed set of states something is in (exposed as a state set).

    Example::

        >>> from meterhub import Enum, Registry
        >>> reg = Registry(self_metrics=False)
        >>> e = Enum("task_state", "State.", states=["idle", "busy"], registry=reg)
        >>> e.state("busy")
        >>> reg.get_sample_value("task_state", {"task_state": "busy"})
        1.0
    """

    _type = MetricType.STATESET
    _child_cls = EnumChild
    _child_methods = ("state",)

    def __new__(
        cls,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
        states: Sequence[str] | None = None,
        *,
        switch: str | None = None,
    ) -> Enum:
        if unit:
            raise DefinitionError(f"metric {name!r}: an enum metric has no unit")
        if not states or isinstance(states, str) or not all(isinstance(s, str) for s in states):
            raise DefinitionError(f"metric {name!r}: states must be a non-empty list of str")
        if len(set(states)) != len(states):
            raise DefinitionError(f"metric {name!r}: duplicate states in {list(states)}")
        if name in labelnames:
            raise DefinitionError(f"metric {name!r}: a label cannot have the metric's name")
        return cls._define(
            name,
            documentation,
            labelnames,
            namespace,
            subsystem,
            "",
            registry,
            switch,
            None,
            states=tuple(states),
        )

    def state(self, state: str) -> None:
        self._labeled_parent("state")

    def _series(self, labels: LabelPairs, data: SeriesData, created: bool) -> Series:
        current = int(data.values[0])
        return Series(
            labels, tuple(1.0 if i == current else 0.0 for i in range(len(self._desc.states)))
        )
