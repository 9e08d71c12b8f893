"""Flask integration: ``MeterHub(app)`` or ``MeterHub()`` + ``init_app(app)``.

Records the :mod:`~meterhub.integrations.http_metrics` vocabulary for every request:

* ``route`` is the URL rule (``/users/<int:id>`` recorded as ``/users/{id}``); requests
  no rule matched share ``__unmatched__``;
* an exception escaping a view is recorded as ``500`` in ``http_server_requests_total``
  and by type in ``http_server_exceptions_total`` - also when Flask re-raises it
  (``PROPAGATE_EXCEPTIONS``, testing mode);
* a streamed response is timed until its last chunk has been sent (or the server closed
  it); a response of known length (every buffered one) when Flask hands it to the server;
* ``/metrics`` serves the registry, optionally behind bearer or basic auth
  (``metrics_path=None`` to leave it out).

The WSGI wrapper sits around ``app.wsgi_app``, so it sees every exception Flask lets
out, the status and the body. It reads the URL rule from the request Flask matched, once,
when it records: ``app.request_context`` is wrapped to hand the request context to the
wrapper, which costs a fraction of a ``teardown_request`` hook. Calling ``init_app`` on a
re-created app (app factories, tests) re-uses the metrics.

Example::

    from flask import Flask
    from meterhub.integrations.flask import MeterHub

    metrics = MeterHub()

    def create_app():
        app = Flask(__name__)
        metrics.init_app(app)
        return app
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import got_request_exception, request
from werkzeug.exceptions import MethodNotAllowed

from meterhub import Registry
from meterhub.export import Endpoint
from meterhub.integrations.http_metrics import HttpServerMetrics, template_from_converters

__all__ = ["MeterHub"]

_EXCHANGE_KEY = "meterhub.exchange"
_TEMPLATES: dict[str, str] = {}  # URL rule -> route label
_WRAPPED = "_meterhub_wrapped"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class MeterHub:
    """Flask extension recording HTTP-server metrics (see the module docstring).

    Keyword arguments not listed here go to :class:`HttpServerMetrics` (*registry*,
    *buckets*, *exclude_paths*, ...); the metrics path is excluded automatically and served
    by a :class:`meterhub.export.Endpoint` (so *bearer_token* / *basic_auth* protect it).

    Example::

        >>> from flask import Flask
        >>> from meterhub import Registry
        >>> app = Flask("demo")
        >>> metrics = MeterHub(app, registry=Registry())
        >>> app.test_client().get("/metrics").status_code
        200
    """

    def __init__(
        self,
        app: Any = None,
        *,
        metrics_path: str | None = "/metrics",
        metrics: HttpServerMetrics | None = None,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        **options: Any,
    ) -> None:
        if metrics_path is not None and (
            not isinstance(metrics_path, str) or not metrics_path.startswith("/")
        ):
            raise ValueError(f"metrics_path must start with '/', got {metrics_path!r}")
        if metrics is not None and options:
            raise TypeError("pass either metrics= or HttpServerMetrics options, not both")
        if metrics is None:
            exclude = list(options.pop("exclude_paths", None) or ())
            if metrics_path is not None and metrics_path not in exclude:
                exclude.append(metrics_path)
            metrics = HttpServerMetrics(exclude_paths=exclude, **options)
        self.metrics = metrics
        self.metrics_path = metrics_path
        # Built now, so bad credentials fail here rather than at the first scrape.
        self._endpoint = (
            None
            if metrics_path is None
            else Endpoint(
                self.registry, path=None, bearer_token=bearer_token, basic_auth=basic_auth
            )
        )
        if app is not None:
            self.init_app(app)

    @property
    def registry(self) -> Registry:
        return self.metrics.registry

    def init_app(self, app: Any) -> None:
        """Instrument *app* (once; a second call on the same app does nothing)."""
        if getattr(app, _WRAPPED, False):
            return
        setattr(app, _WRAPPED, True)
        app.request_context = _handing_over(app.request_context)
        # Flask turns an unhandled view exception into a 500 response before the WSGI
        # wrapper sees it; the signal tells the wrapper which exception it was.
        got_request_exception.connect(_remember_exception, app, weak=False)
        endpoint = self._endpoint
        if self.metrics_path is not None and endpoint is not None:

            def meterhub_metrics() -> Any:
                # The shared scrape endpoint: auth, negotiation and gzip as everywhere else.
                resp = endpoint.handle(
                    request.method,
                    "/",
                    request.environ.get("QUERY_STRING", ""),
                    request.headers.get,
                )
                # A list body: werkzeug keeps the endpoint's Content-Length (also for HEAD).
                return app.response_class(
                    [resp.body], status=f"{resp.status} {resp.reason}", headers=resp.headers
                )

            app.add_url_rule(self.metrics_path, "meterhub_metrics", meterhub_metrics)
        app.wsgi_app = _instrumented(app.wsgi_app, self.metrics)
        app.extensions["meterhub"] = self


def _handing_over(request_context: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap ``app.request_context`` to give the request's exchange its context."""

    def meterhub_request_context(environ: Any) -> Any:
        ctx = request_context(environ)
        exchange = environ.get(_EXCHANGE_KEY)
        if exchange is not None:
            exchange.ctx = ctx
        return ctx

    return meterhub_request_context


def _remember_exception(sender: Any, exception: BaseException, **extra: Any) -> None:
    exchange = request.environ.get(_EXCHANGE_KEY)
    if exchange is not None:
        exchange.exception = exception


def _instrumented(wsgi_app: WSGIApp, metrics: HttpServerMetrics) -> WSGIApp:
    """The WSGI wrapper around ``app.wsgi_app`` (a function: cheaper to call than an
    object's ``__call__``)."""
    excluded = metrics.path_filter()

    def meterhub_wsgi_app(
        environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        if excluded(environ.get("PATH_INFO", "")):
            return wsgi_app(environ, start_response)
        exchange = _Exchange(metrics, environ, start_response)
        environ[_EXCHANGE_KEY] = exchange
        try:
            body = wsgi_app(environ, exchange.start_response)
        except BaseException as exc:
            exchange.finish(exc, None)
            raise
        finally:
            # Only Flask's own calls inside wsgi_app() look it up; removing it now also
            # keeps the environ, the exchange and the request context free of cycles.
            environ.pop(_EXCHANGE_KEY, None)
        length = exchange.length
        if length is not None:
            # A body of known length (what Flask sends for every non-streamed response)
            # is complete now: record without waiting for the server's close().
            exchange.finish(None, length)
            return body
        exchange.body = body
        exchange.sent = 0
        return exchange

    return meterhub_wsgi_app


class _Exchange:
    """One request: the ``start_response`` Flask calls, then (for a body of unknown length)
    the response iterable, which records when exhausted or closed, whichever is first.

    One object per request carries what closures and lists would otherwise allocate."""

    __slots__ = (
        "body", "ctx", "exception", "length", "method", "metrics", "open", "request_size",
        "sent", "start", "started", "status",
    )  # fmt: skip
    body: Iterable[bytes]  # these two only once the response turns out to be streamed
    sent: int

    def __init__(
        self, metrics: HttpServerMetrics, environ: dict[str, Any], start: StartResponse
    ) -> None:
        self.metrics = metrics
        self.method = metrics.begin(environ.get("REQUEST_METHOD"))
        raw = environ.get("CONTENT_LENGTH")
        self.request_size = _content_length(raw) if raw else 0
        self.start = start
        self.status: str | None = None
        self.length: int | None = None
        self.ctx: Any = None
        self.exception: BaseException | None = None
        self.open = True
        self.started = time.perf_counter()

    def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        self.status = status
        length = None
        for name, value in headers:
            if name == "Content-Length" or name.lower() == "content-length":
                length = int(value) if value.isdecimal() else None
        self.length = length
        return self.start(status, headers, exc_info)

    def finish(self, exc: BaseException | None, sent: int | None) -> None:
        if not self.open:
            return
        self.open = False
        elapsed = time.perf_counter() - self.started
        status = self.status
        code = "500" if exc is not None or status is None else status[:3]
        route = None
        ctx = self.ctx
        if ctx is not None:  # else the request context could not even be created
            self.ctx = None
            try:
                rule = ctx.request.url_rule
                pattern = rule.rule if rule is not None else _allowed_rule(ctx)
                if pattern is not None:
                    route = _TEMPLATES.get(pattern) or _template(pattern)
            except Exception:
                pass  # an unexpected request object: the request counts as unmatched
        self.metrics.end(
            self.method,
            route,
            code,
            elapsed,
            request_size=self.request_size,
            response_size=sent,
            exception=exc if exc is not None else self.exception,
        )

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.body:
                self.sent += len(chunk)
                yield chunk
        except GeneratorExit:
            # The server stopped iterating early (HEAD, a client gone): not a handler error.
            self.finish(None, self.sent)
            raise
        except BaseException as exc:
            self.finish(exc, self.sent)
            raise
        self.finish(None, self.sent)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.finish(None, self.sent)


def _template(pattern: str) -> str:
    template = _TEMPLATES[pattern] = template_from_converters(pattern)
    if len(_TEMPLATES) > 10_000:  # rules come from the apps' URL maps: never in practice
        _TEMPLATES.clear()
    return template


def _allowed_rule(ctx: Any) -> str | None:
    """For a 405, the rule the path matched with another method (else ``None``)."""
    error = ctx.request.routing_exception
    adapter = ctx.url_adapter
    if not isinstance(error, MethodNotAllowed) or not error.valid_methods or adapter is None:
        return None
    try:
        rule, _ = adapter.match(method=next(iter(error.valid_methods)), return_rule=True)
    except Exception:
        return None
    return str(rule.rule)


def _content_length(raw: str) -> int | None:
    try:
        return max(int(raw), 0)
    except ValueError:
        return None
