"""One helper behind ``time()``, ``count_exceptions()`` and ``track_inprogress()``.

A :class:`Scope` is a context manager (``with`` and ``async with``) and a decorator
(for sync and async functions alike) built from two callbacks, so the sync and async
paths share one implementation instead of being copied.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

__all__ = ["Scope", "Timer", "decorate"]

S = TypeVar("S")
F = TypeVar("F", bound=Callable[..., Any])


class Scope(Generic[S]):
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

    async def __aenter__(self) -> Scope[S]:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _fresh(self) -> Scope[S]:
        return Scope(self._enter, self._exit)

    def __call__(self, func: F) -> F:
        """Decorate *func*: every call runs inside a fresh scope (awaited for coroutines)."""
        return decorate(func, self._fresh)


class Timer(Scope[float]):
    """``time()``: passes the block's duration in seconds to *observe*, and keeps it as
    ``.duration``. A labeled metric's timer (*observe* ``None``) takes its series from
    ``.labels(...)`` inside the block, as prometheus_client's does; without it the exit
    is a "missing label values" error.

    Example::

        >>> seen = []
        >>> with Timer(seen.append) as t:
        ...     pass
        >>> seen == [t.duration]
        True
    """

    __slots__ = ("_method", "_observe", "_parent", "duration")

    def __init__(
        self, observe: Callable[[float], Any] | None, parent: Any = None, method: str = "observe"
    ) -> None:
        self._observe, self._parent, self._method = observe, parent, method
        self.duration: float | None = None
        super().__init__(time.perf_counter, self._done)

    def _done(self, t0: float, exc: BaseException | None) -> None:
        self.duration = duration = time.perf_counter() - t0
        if self._observe is not None:
            self._observe(duration)
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
