"""The request middleware: sync and async capable, one code path for both.

Put it first in ``MIDDLEWARE`` so its duration covers the other middleware too.
Exceptions raised by views are turned into 500 responses by Django before they reach
the middleware; ``process_exception`` tells it which exception it was.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import MiddlewareNotUsed

from meterhub import shielded
from meterhub.integrations.http_metrics import HttpServerMetrics, template_from_converters

from .conf import get_settings, server_metrics
from .streaming import defer_until_streamed, is_deferrable

__all__ = ["MeterHubMiddleware", "route_of"]

_EXC_ATTR = "_meterhub_exception"


def route_of(request: Any) -> str | None:
    """The URL pattern that resolved *request* as a route template, or ``None``.

    ``resolver_match.route`` joins the patterns of nested ``include()`` calls.
    """
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if not isinstance(route, str):
        return None
    return "/" + template_from_converters(route.lstrip("^").rstrip("$")).lstrip("/")


class MeterHubMiddleware:
    """Records ``http_server_*`` metrics for every request (see the package docstring).

    Example::

        MIDDLEWARE = ["meterhub.integrations.django.middleware.MeterHubMiddleware", ...]
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        if not get_settings().enabled:
            raise MiddlewareNotUsed("meterhub metrics are disabled (METERHUB ENABLED=False)")
        self.get_response = get_response
        self.metrics: HttpServerMetrics = server_metrics()
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self._acall(request)
        token = self._begin(request)
        if token is None:
            return self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:
            self._end(request, token, None, exc)
            raise
        self._end(request, token, response, None)
        return response

    async def _acall(self, request: Any) -> Any:
        token = self._begin(request)
        get_response: Callable[[Any], Awaitable[Any]] = self.get_response
        if token is None:
            return await get_response(request)
        try:
            response = await get_response(request)
        except BaseException as exc:
            self._end(request, token, None, exc)
            raise
        self._end(request, token, response, None)
        return response

    def process_exception(self, request: Any, exception: Exception) -> None:
        setattr(request, _EXC_ATTR, exception)

    def _begin(self, request: Any) -> tuple[str, float] | None:
        if self.metrics.excluded(request.path_info):
            return None
        return self.metrics.begin(request.method), time.perf_counter()

    def _end(
        self,
        request: Any,
        token: tuple[str, float],
        response: Any,
        exc: BaseException | None,
    ) -> None:
        method, started = token
        duration = time.perf_counter() - started
        try:
            if exc is None:
                exc = getattr(request, _EXC_ATTR, None)
            status = 500 if response is None else response.status_code
            route = route_of(request)
            request_size = _request_size(request)
            if response is not None and is_deferrable(response):
                metrics = self.metrics

                def finish(sent: int) -> None:
                    elapsed = time.perf_counter() - started
                    metrics.end(
                        method, route, status, elapsed, request_size=request_size,
                        response_size=sent, exception=exc,
                    )  # fmt: skip

                # Streamed: the duration runs to the last chunk, not to the view's return.
                defer_until_streamed(response, finish)
                return
            response_size = _response_size(response)
        except Exception:
            # A request or response object this code did not expect: never the request's
            # problem (the error policy logs and counts it).
            with shielded(self.metrics.registry.self_metrics, "http_server_requests"):
                raise
            return
        self.metrics.end(
            method,
            route,
            status,
            duration,
            request_size=request_size,
            response_size=response_size,
            exception=exc,
        )


def _request_size(request: Any) -> int | None:
    raw = request.META.get("CONTENT_LENGTH")
    if not raw:
        return 0
    try:
        return max(int(raw), 0)
    except (TypeError, ValueError):
        return None


def _response_size(response: Any) -> int | None:
    if response is None:
        return None
    if getattr(response, "streaming", False):
        raw = response.headers.get("Content-Length")
        return int(raw) if raw and raw.isdigit() else None
    return len(response.content)
