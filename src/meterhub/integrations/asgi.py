"""ASGI integration (Starlette, FastAPI, any ASGI app): a pure ASGI middleware.

:class:`MeterHubMiddleware` records the :mod:`~meterhub.integrations.http_metrics`
vocabulary without Starlette's ``BaseHTTPMiddleware`` (which buffers and changes task
semantics):

* ``route`` is the matched route's template, mounts and included routers included
  (``/api/{version}/users/{id}``); unmatched requests share ``__unmatched__``;
* the duration ends when the last body chunk of the response is sent, so streaming
  responses are timed to their end and background tasks are not counted;
* a client that disconnects before the response is complete is recorded as ``499``;
* an exception escaping the app is recorded as ``500`` (and in
  ``http_server_exceptions_total``) and re-raised;
* websocket and lifespan traffic passes through untouched.

Example::

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from meterhub.integrations.asgi import MeterHubMiddleware, lifespan

    app = Starlette(routes=[...], middleware=[Middleware(MeterHubMiddleware)],
                    lifespan=lifespan())

:func:`lifespan` starts the hub's background flushers (and an optional
:class:`~meterhub.OperationLog`) at startup and stops them at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

from meterhub import REGISTRY, Hub, Registry, shielded
from meterhub import hub as default_hub
from meterhub.export.http import make_asgi_app
from meterhub.integrations.http_metrics import HttpServerMetrics, template_from_converters

__all__ = ["MeterHubMiddleware", "lifespan", "metrics_app", "route_template"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CLIENT_CLOSED_REQUEST = 499


def _flatten(routes: Sequence[Any]) -> Iterable[Any]:
    """The matchable routes of a route list (FastAPI >= 0.137 wraps them in contexts)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return routes
    try:
        contexts = list(iter_route_contexts(routes))
    except Exception:
        return routes
    return [getattr(c, "starlette_route", None) or c for c in contexts]


def route_template(routes: Sequence[Any], scope: Scope, prefix: str = "") -> str | None:
    """The template of the route in *routes* that matches *scope*, descending into mounts.

    A full match wins; else the first partial match (a known path with another method,
    answered 405); ``None`` when nothing matches.
    """
    from starlette.routing import Match

    partial: str | None = None
    for route in _flatten(routes):
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        children = getattr(route, "routes", None)
        path = getattr(route, "path", None)
        if children is not None and isinstance(path, str):
            # A Mount: its own path is a prefix; the template continues inside it.
            inner_prefix = prefix + template_from_converters(path)
            if match is Match.FULL:
                if not children:
                    return inner_prefix + "/{path}"
                return route_template(children, {**scope, **child}, inner_prefix)
            continue
        fmt = getattr(route, "path_format", None) or path
        if not isinstance(fmt, str):
            continue
        if match is Match.FULL:
            return prefix + template_from_converters(fmt)
        if partial is None:
            partial = prefix + template_from_converters(fmt)
    return partial


class _Request:
    """What one request has done so far (a plain object: cheaper than closures' cells)."""

    __slots__ = ("disconnected", "done", "received", "sent", "status")

    def __init__(self) -> None:
        self.status: int | None = None
        self.sent = 0
        self.received = 0
        self.disconnected = False
        self.done = False


class MeterHubMiddleware:
    """Pure ASGI middleware recording the HTTP-server vocabulary (see the module docstring).

    Pass *metrics* to share one :class:`HttpServerMetrics`, or the keyword arguments it
    takes (*registry*, *buckets*, *exclude_paths*, ...). *route_resolver* overrides how the
    route template is found: a callable taking the scope after the app ran.
    """

    def __init__(
        self,
        app: ASGIApp,
        /,
        *,
        metrics: HttpServerMetrics | None = None,
        route_resolver: Callable[[Scope], str | None] | None = None,
        **options: Any,
    ) -> None:
        self.app = app
        if metrics is not None and options:
            raise TypeError("pass either metrics= or HttpServerMetrics options, not both")
        self.metrics = metrics if metrics is not None else HttpServerMetrics(**options)
        self._resolver = route_resolver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.metrics
        path: str = scope.get("path", "")
        if metrics.excluded(path):
            await self.app(scope, receive, send)
            return
        root_path = scope.get("root_path", "")
        method = metrics.begin(scope.get("method"))
        started = time.perf_counter()
        req = _Request()

        def finish(status: int | None, exc: BaseException | None) -> None:
            req.done = True
            metrics.end(
                method,
                self._route(scope, path, root_path),
                status,
                time.perf_counter() - started,
                request_size=_declared_size(scope) or req.received,
                response_size=req.sent,
                exception=exc,
            )

        async def receive_wrapper() -> Message:
            message = await receive()
            kind = message.get("type")
            if kind == "http.request":
                req.received += len(message.get("body", b""))
            elif kind == "http.disconnect":
                req.disconnected = True
            return message

        async def send_wrapper(message: Message) -> None:
            kind = message.get("type")
            if kind == "http.response.start":
                req.status = message.get("status")
            elif kind == "http.response.body" and not req.done:
                req.sent += len(message.get("body", b""))
                if not message.get("more_body", False):
                    await _send(message)
                    # The response is complete here: background tasks run after this
                    # and must not count as request latency.
                    finish(req.status, None)
                    return
            await _send(message)

        async def _send(message: Message) -> None:
            try:
                await send(message)
            except OSError:
                # ASGI spec 2.4: a send to a client that went away raises OSError; the
                # app may translate it (Starlette raises ClientDisconnect) before we see it.
                req.disconnected = True
                raise

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except BaseException as exc:
            if not req.done:
                gone = req.disconnected or isinstance(exc, (OSError, asyncio.CancelledError))
                finish(CLIENT_CLOSED_REQUEST if gone else 500, exc)
            raise
        if not req.done:
            # The app returned without completing the response: a streaming response
            # aborted by a disconnect, or an app that never answered (the server sends 500).
            finish(CLIENT_CLOSED_REQUEST if req.disconnected else (req.status or 500), None)

    def _route(self, scope: Scope, path: str, root_path: str) -> str | None:
        if self._resolver is not None:
            try:
                return self._resolver(scope)
            except Exception:
                with shielded(self.metrics.registry.self_metrics, "route_resolver"):
                    raise
                return None
        route = scope.get("route")
        if (
            route is not None
            and type(route).__module__ == "starlette.routing"
            and scope.get("root_path", "") == root_path
        ):
            # A plain Starlette route and no mount entered: its template is the whole one.
            # (FastAPI routes are walked: an included router's prefix is not on the route.)
            fmt = getattr(route, "path_format", None)
            if isinstance(fmt, str):
                return template_from_converters(fmt)
        router = scope.get("router") or scope.get("app")
        routes = getattr(router, "routes", None)
        if not routes:
            return None
        try:
            return route_template(routes, {**scope, "path": path, "root_path": root_path})
        except Exception:
            return None


def _declared_size(scope: Scope) -> int | None:
    # The body may never be read by the handler: Content-Length is what the client sent.
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def metrics_app(
    registry: Registry | None = None,
    *,
    bearer_token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
) -> ASGIApp:
    """An ASGI app serving *registry* (default ``REGISTRY``): :func:`meterhub.make_asgi_app`,
    with its authentication, content negotiation and gzip.

    Example::

        routes = [Route("/metrics", metrics_app(bearer_token=os.environ["METRICS_TOKEN"]))]
    """
    return _Endpoint(
        make_asgi_app(
            REGISTRY if registry is None else registry,
            bearer_token=bearer_token,
            basic_auth=basic_auth,
        )
    )


class _Endpoint:
    # An object, not a function: Starlette's Route("/metrics", ...) treats functions as
    # request handlers and other callables as ASGI apps.
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def lifespan(
    hub: Hub | None = None,
    *,
    oplog: Any = None,
    stop_timeout: float = 5.0,
    inner: Callable[[Any], contextlib.AbstractAsyncContextManager[Any]] | None = None,
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]:
    """A Starlette/FastAPI ``lifespan=`` that runs the hub's flushers and an OperationLog.

    At startup: ``hub.start()`` (the textfile flusher when a path is configured) and
    ``await oplog.start()``; at shutdown ``await oplog.stop(timeout=stop_timeout)`` then
    ``hub.stop()`` (which writes the textfile one last time). *inner* wraps the app's own
    lifespan, whose state is passed through.

    Example::

        app = FastAPI(lifespan=lifespan(oplog=OperationLog("/var/lib/app/oplog")))
    """
    h = default_hub if hub is None else hub

    @contextlib.asynccontextmanager
    async def run(app: Any) -> AsyncIterator[Any]:
        await asyncio.to_thread(h.start)
        if oplog is not None:
            await oplog.start()
        try:
            if inner is None:
                yield None
            else:
                async with inner(app) as state:
                    yield state
        finally:
            try:
                if oplog is not None:
                    await oplog.stop(timeout=stop_timeout)
            finally:
                await asyncio.to_thread(h.stop)

    return run
