"""``track_operation``: time a block or a function and record it in an operation log.

One object is a ``with`` block, an ``async with`` block and a decorator of sync and async
functions. Both paths build the record with the same code; they differ only in how it is
delivered (``record_operation_nowait`` vs ``await record_operation``), so the ``"block"``
policy suspends a task instead of blocking its event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .._definition.scope import decorate
from .validate import check_metadata

if TYPE_CHECKING:
    from .log import OperationLog

__all__ = ["TrackedOperation", "track_operation"]

F = TypeVar("F", bound=Callable[..., Any])


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class TrackedOperation:
    """The timing scope :func:`track_operation` returns; ``metadata`` may be edited inside."""

    __slots__ = ("_start", "log", "metadata", "operation_name", "operation_type")

    def __init__(
        self,
        log: OperationLog,
        operation_type: str,
        operation_name: str,
        metadata: dict[str, Any] | None,
    ) -> None:
        self.log = log
        self.operation_type = operation_type
        self.operation_name = operation_name
        self.metadata: dict[str, Any] = {} if metadata is None else check_metadata(metadata)
        self._start = 0.0

    def _fresh(self) -> TrackedOperation:
        return TrackedOperation(
            self.log, self.operation_type, self.operation_name, dict(self.metadata)
        )

    def _record_args(self, exc: BaseException | None) -> dict[str, Any]:
        return {
            "operation_type": self.operation_type,
            "operation_name": self.operation_name,
            "duration_ms": (time.perf_counter() - self._start) * 1000.0,
            "success": exc is None,
            "error_message": None if exc is None else _error_text(exc),
            "metadata": self.metadata or None,
        }

    def __enter__(self) -> TrackedOperation:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.log.record_operation_nowait(**self._record_args(exc))

    async def __aenter__(self) -> TrackedOperation:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.log.record_operation(**self._record_args(exc))

    def __call__(self, func: F) -> F:
        """Decorate *func*: each call is timed in a fresh scope (awaited for coroutines)."""
        return decorate(func, self._fresh)


def track_operation(
    log: OperationLog,
    operation_type: str,
    operation_name: str,
    metadata: dict[str, Any] | None = None,
) -> TrackedOperation:
    """Time a block or function and record it; a failure records ``success=False`` with its
    ``error_message`` and is re-raised.

    Example::

        >>> import asyncio, tempfile
        >>> from meterhub import Registry
        >>> from meterhub.oplog import OperationLog
        >>> async def main(path):
        ...     async with OperationLog(path, registry=Registry(self_metrics=False)) as log:
        ...         async with track_operation(log, "computation", "process_user_data"):
        ...             await asyncio.sleep(0)
        ...     return log.stats().total_persisted
        >>> asyncio.run(main(tempfile.mkdtemp()))
        1
    """
    from .validate import MAX_NAME_CHARS, MAX_TYPE_CHARS, _text

    _text(operation_type, "operation_type", MAX_TYPE_CHARS)
    _text(operation_name, "operation_name", MAX_NAME_CHARS)
    return TrackedOperation(log, operation_type, operation_name, metadata)
