# The C twins of meterhub._definition.timercore's PyTimerCore and PyHistogramTimerCore.
from types import TracebackType
from typing import Any, TypeVar

_T = TypeVar("_T", bound=TimerCore)

class TimerCore:
    _series: Any
    _t0: float
    _duration: float
    def __enter__(self: _T) -> _T: ...

class HistogramTimerCore(TimerCore):
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
