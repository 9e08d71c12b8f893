"""Timing streamed Django responses to their last chunk.

A ``StreamingHttpResponse`` returns from the view before its body is produced; recording
then would measure only the view. The middleware swaps ``streaming_content`` for one of
these wrappers, which count the bytes and record when the body is exhausted or the
response is closed (whichever comes first; Django closes every response). Responses
served through ``wsgi.file_wrapper`` (``FileResponse``) are not wrapped: the server sends
the file without iterating ``streaming_content``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

__all__ = ["defer_until_streamed", "is_deferrable"]

Finish = Callable[[int], None]


def is_deferrable(response: Any) -> bool:
    """Whether *response* streams its body through ``streaming_content``."""
    return bool(getattr(response, "streaming", False)) and (
        getattr(response, "file_to_stream", None) is None
    )


class _Once:
    def __init__(self, finish: Finish) -> None:
        self._finish: Finish | None = finish
        self.sent = 0

    def done(self) -> None:
        finish, self._finish = self._finish, None
        if finish is not None:
            finish(self.sent)


class _SyncBody(_Once):
    def __init__(self, content: Iterator[bytes], finish: Finish) -> None:
        super().__init__(finish)
        self._it = iter(content)

    def __iter__(self) -> _SyncBody:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self._it)
        except BaseException:  # StopIteration included: the body is complete
            self.done()
            raise
        self.sent += len(chunk)
        return chunk

    def close(self) -> None:
        try:
            close = getattr(self._it, "close", None)
            if close is not None:
                close()
        finally:
            self.done()


class _AsyncBody(_Once):
    def __init__(self, content: AsyncIterator[bytes], finish: Finish) -> None:
        super().__init__(finish)
        self._it = aiter(content)

    def __aiter__(self) -> _AsyncBody:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await anext(self._it)
        except BaseException:  # StopAsyncIteration included: the body is complete
            self.done()
            raise
        self.sent += len(chunk)
        return chunk

    def close(self) -> None:
        # Django calls resource closers synchronously; an async generator left
        # unfinished is finalised by the event loop.
        self.done()


def defer_until_streamed(response: Any, finish: Finish) -> None:
    """Make *response* call ``finish(bytes_sent)`` once, when its body is done."""
    content = response.streaming_content
    if getattr(response, "is_async", False):
        response.streaming_content = _AsyncBody(content, finish)
    else:
        response.streaming_content = _SyncBody(content, finish)
