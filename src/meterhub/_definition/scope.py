"""The context managers and decorators behind ``time()``, ``count_exceptions()`` and
``track_inprogress()``.

A :class:`Scope` is a context manager (``with`` and ``async with``) and a decorator
(for sync and async functions alike) built from two callbacks, so the sync and async
paths share one implementation instead of being copied (:func:`decorate`).

A series' own ``time()``, ``count_exceptions()`` and ``track_inprogress()`` are hot paths
(``with latency.time():`` around every request), so they have lean classes of their own:
slotted objects holding their series rather than closures and bound methods, made
without a Python ``__init__`` (a C-level call). A timer's state, entry and classic
histogram exit are :mod:`meterhub._definition.timercore`'s (in C when it is built). A
timer must be a new object per ``with``: its start time belongs to that one entry, and
one series is timed at once by other threads, by interleaved asyncio tasks and by
suspended generators, which enter and leave in no nested order, so no shared object or
stack could hold it. The in-progress tracker keeps nothing between entry and exit, so a
series shares one with every caller.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

from .timercore import HistogramTimerCore, TimerCore, now

__all__ = [
    "ExceptionCounter",
    "GaugeTimer",
    "HistogramTimer",
    "InProgress",
    "Scope",
    "SeriesTimer",
    "Timer",
    "decorate",
]

S = TypeVar("S")
F = TypeVar("F", bound=Callable[..., Any])
W = TypeVar("W", bound="AsyncWith")


class AsyncWith:
    """``async with`` for a context manager whose entry and exit never wait: the same
    ``__enter__``/``__exit__`` (one implementation for ``with`` and ``async with``)."""

    __slots__ = ()

    def __enter__(self: W) -> W:
        raise NotImplementedError

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        raise NotImplementedError

    async def __aenter__(self: W) -> W:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class Scope(AsyncWith, Generic[S]):
    """Calls ``enter()`` on entry and ``exit(state, exc)`` on exit; never swallows exceptions.

    Example::

        >>> import time
        >>> from meterhub._definition.scope import Scope
        >>> seen = []
        >>> with Scope(time.perf_counter, lambda t0, exc: seen.append(exc)):
        ...     pass
        >>> seen
        [None]
    """

    __slots__ = ("_enter", "_exit", "_state")

    def __init__(
        self, enter: Callable[[], S], exit: Callable[[S, BaseException | None], None]
    ) -> None:
        self._enter = enter
        self._exit = exit

    def __enter__(self) -> Scope[S]:
        self._state = self._enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(self._state, exc)

    def _fresh(self) -> Scope[S]:
        return Scope(self._enter, self._exit)

    def __call__(self, func: F) -> F:
        """Decorate *func*: every call runs inside a fresh scope (awaited for coroutines)."""
        return decorate(func, self._fresh)


def decorate(func: F, fresh: Callable[[], Any]) -> F:
    """Wrap *func* so each call runs in ``fresh()``, a new object usable with ``with`` and
    ``async with``; coroutine functions get an async wrapper that uses ``async with``."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            async with fresh():
                return await func(*args, **kwargs)

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with fresh():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# -- a series' own timers, exception counter and in-progress tracker ----------------------


class SeriesTimer(TimerCore, AsyncWith):
    """``time()`` of one series: passes the duration in seconds of a block (``with``,
    ``async with``) or of each call of a decorated (sync or async) function to the
    series' ``observe``; the block's duration is kept as ``.duration`` (``None`` before
    it ends).

    Made as ``t = SeriesTimer(); t._series = series`` (no ``__init__``: a C-level
    construction); a subclass writes its exit for another method.

    Example::

        >>> from meterhub import Registry, Summary
        >>> size = Summary("work_seconds", "Work.", registry=Registry(self_metrics=False))
        >>> with size.time() as t:
        ...     pass
        >>> t.duration >= 0.0
        True
    """

    __slots__ = ()

    @property
    def duration(self) -> float | None:
        """The duration of the block in seconds, once it has ended."""
        return getattr(self, "_duration", None)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._duration = d = now() - self._t0
        self._series.observe(d)

    def labels(self, *values: Any, **kwargs: Any) -> None:
        """A series' timer has its series: always a ``ValueError`` (as prometheus_client)."""
        raise ValueError("labels() on the timer of a series, which has its label values")

    def _fresh(self) -> SeriesTimer:
        timer = type(self)()
        timer._series = self._series
        return timer

    def __call__(self, func: F) -> F:
        """Decorate *func*: every call is timed by a timer of its own."""
        return decorate(func, self._fresh)


class Timer(SeriesTimer):
    """``time()`` of a labeled metric, or of any *observe* callable. A labeled metric's
    timer (*observe* ``None``) takes its series from ``.labels(...)`` inside the block, as
    prometheus_client's does; without it the exit is a "missing label values" error.

    Example::

        >>> seen = []
        >>> with Timer(seen.append) as t:
        ...     pass
        >>> seen == [t.duration]
        True
    """

    __slots__ = ("_method", "_observe", "_parent")

    def __init__(
        self, observe: Callable[[float], Any] | None, parent: Any = None, method: str = "observe"
    ) -> None:
        self._observe, self._parent, self._method = observe, parent, method

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._duration = d = now() - self._t0
        if self._observe is not None:
            self._observe(d)
        elif self._parent is not None:
            self._parent._labeled_parent("time")

    def labels(self, *values: Any, **kwargs: Any) -> None:
        """Choose the series of a labeled metric (inside the ``with`` block)."""
        if self._parent is None:
            raise ValueError("labels() on the timer of a metric without labels")
        child = self._parent.labels(*values, **kwargs)
        self._observe = getattr(child, self._method)

    def _fresh(self) -> Timer:
        observe = self._observe if self._parent is None else None
        return Timer(observe, self._parent, self._method)


class GaugeTimer(SeriesTimer):
    """``Gauge.time()``: *sets* the series to the duration (its ``set``, not ``observe``)."""

    __slots__ = ()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._duration = d = now() - self._t0
        self._series.set(d)


class HistogramTimer(HistogramTimerCore, SeriesTimer):
    """``time()`` of a classic histogram series: :class:`SeriesTimer` with
    :class:`~meterhub._definition.timercore.HistogramTimerCore`'s exit, the series'
    ``observe`` written out (in C when accelerated)."""

    __slots__ = ()


class ExceptionCounter(AsyncWith):
    """``count_exceptions()`` of one counter series: +1 when a block (``with``, ``async
    with``) or a call of a decorated (sync or async) function raises one of its
    exception classes; the exception is never swallowed. Made like a timer, without
    ``__init__``: ``c = ExceptionCounter(); c._series, c._exception = series, classes``.

    Example::

        >>> from meterhub import Counter, Registry
        >>> reg = Registry(self_metrics=False)
        >>> failures = Counter("failures", "Failures.", registry=reg)
        >>> try:
        ...     with failures.count_exceptions(KeyError):
        ...         {}["missing"]
        ... except KeyError:
        ...     pass
        >>> reg.get_sample_value("failures_total")
        1.0
    """

    __slots__ = ("_exception", "_series")

    _exception: type[BaseException] | tuple[type[BaseException], ...]
    _series: Any

    def __enter__(self) -> ExceptionCounter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and isinstance(exc, self._exception):
            self._series.inc()

    def _same(self) -> ExceptionCounter:
        return self  # nothing is kept between entry and exit: every call may share it

    def __call__(self, func: F) -> F:
        """Decorate *func*: count the exceptions its calls raise."""
        return decorate(func, self._same)


class InProgress(AsyncWith):
    """``track_inprogress()`` of one gauge series: +1 while a block (``with``, ``async
    with``) or a call of a decorated (sync or async) function runs. It keeps nothing
    between entry and exit, so a series hands out one object to every caller, in every
    thread and task, nested or not.

    Example::

        >>> from meterhub import Gauge, Registry
        >>> reg = Registry(self_metrics=False)
        >>> inflight = Gauge("inflight", "In flight.", registry=reg)
        >>> with inflight.track_inprogress():
        ...     reg.get_sample_value("inflight")
        1.0
    """

    __slots__ = ("_series",)

    def __init__(self, series: Any) -> None:
        self._series = series

    def __enter__(self) -> InProgress:
        self._series.inc()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._series.dec()

    def _same(self) -> InProgress:
        return self

    def __call__(self, func: F) -> F:
        """Decorate *func*: +1 while each of its calls runs."""
        return decorate(func, self._same)
