"""Flask integration: ``MeterHub(app)`` or ``MeterHub()`` + ``init_app(app)``.

Records the :mod:`~meterhub.integrations.http_server` vocabulary for every request:

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
out; a ``teardown_request`` hook (which runs for every request) hands it the URL rule.
Calling ``init_app`` on a re-created app (app factories, tests) re-uses the metrics.

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

from flask import current_app, got_request_exception, request

import meterhub
from meterhub import Registry
from meterhub.integrations.http_server import HttpServerMetrics, template_from_converters

__all__ = ["MeterHub"]

_ROUTE_KEY = "meterhub.route"
_EXC_KEY = "meterhub.exception"
_WRAPPED = "_meterhub_wrapped"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class MeterHub:
    """Flask extension recording HTTP-server metrics (see the module docstring).

    Keyword arguments not listed here go to :class:`HttpServerMetrics` (*registry*,
    *buckets*, *exclude_paths*, ...); the metrics path is excluded automatically and served
    by :func:`meterhub.make_wsgi_app` (so *bearer_token* / *basic_auth* protect it).

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
        self._bearer_token = bearer_token
        self._basic_auth = basic_auth
        if metrics_path is not None:
            # Validates the credentials now rather than at the first scrape.
            meterhub.make_wsgi_app(self.registry, bearer_token=bearer_token, basic_auth=basic_auth)
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
        app.teardown_request(_remember_route)
        # Flask turns an unhandled view exception into a 500 response before the WSGI
        # wrapper sees it; the signal tells the wrapper which exception it was.
        got_request_exception.connect(_remember_exception, app, weak=False)
        if self.metrics_path is not None:
            endpoint = meterhub.make_wsgi_app(
                self.registry, bearer_token=self._bearer_token, basic_auth=self._basic_auth
            )

            def meterhub_metrics() -> Any:
                # The shared scrape endpoint: auth, negotiation and gzip as everywhere else.
                environ = dict(request.environ, PATH_INFO="/")
                return app.response_class.force_type(endpoint, environ)

            app.add_url_rule(self.metrics_path, "meterhub_metrics", meterhub_metrics)
        app.wsgi_app = _Instrumented(app.wsgi_app, self.metrics)
        app.extensions["meterhub"] = self


def _remember_exception(sender: Any, exception: BaseException, **extra: Any) -> None:
    request.environ[_EXC_KEY] = exception


def _remember_route(exc: BaseException | None) -> None:
    try:
        rule = request.url_rule
        request.environ[_ROUTE_KEY] = rule.rule if rule is not None else _allowed_rule()
    except Exception:
        pass  # a teardown hook must not fail the request: the route stays unmatched


def _allowed_rule() -> str | None:
    """For a 405, the rule the path matched with another method (else ``None``)."""
    from werkzeug.exceptions import MethodNotAllowed

    error = request.routing_exception
    if not isinstance(error, MethodNotAllowed) or not error.valid_methods:
        return None
    try:
        adapter = current_app.create_url_adapter(request)
        if adapter is None:
            return None
        rule, _ = adapter.match(method=next(iter(error.valid_methods)), return_rule=True)
    except Exception:
        return None
    return str(rule.rule)


class _Instrumented:
    """The WSGI wrapper: status, duration to the end of the body, exceptions."""

    def __init__(self, app: WSGIApp, metrics: HttpServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        metrics = self.metrics
        if metrics.excluded(environ.get("PATH_INFO", "")):
            return self.app(environ, start_response)
        method = metrics.begin(environ.get("REQUEST_METHOD"))
        started = time.perf_counter()
        status: list[str] = []
        length: list[int] = []

        def capture(code: str, headers: Any, exc_info: Any = None) -> Any:
            status[:] = [code]
            for name, value in headers:
                if name.lower() == "content-length":
                    length[:] = [int(value)] if value.isdigit() else []
            return start_response(code, headers, exc_info)

        def finish(exc: BaseException | None, sent: int | None) -> None:
            code = 500 if exc is not None or not status else status[0][:3]
            if exc is None:
                exc = environ.get(_EXC_KEY)
            metrics.end(
                method,
                _route(environ),
                code,
                time.perf_counter() - started,
                request_size=_content_length(environ),
                response_size=sent,
                exception=exc,
            )

        try:
            body = self.app(environ, capture)
        except BaseException as exc:
            finish(exc, None)
            raise
        if length:
            # A body of known length (what Flask sends for every non-streamed response)
            # is complete now: record without waiting for the server's close().
            finish(None, length[0])
            return body
        return _Body(body, finish)


class _Body:
    """The response iterable: records when it is exhausted or closed, whichever is first."""

    def __init__(
        self, body: Iterable[bytes], finish: Callable[[BaseException | None, int | None], None]
    ) -> None:
        self._body = body
        self._finish: Callable[[BaseException | None, int | None], None] | None = finish
        self._sent = 0

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._body:
                self._sent += len(chunk)
                yield chunk
        except GeneratorExit:
            # The server stopped iterating early (HEAD, a client gone): not a handler error.
            self._done(None)
            raise
        except BaseException as exc:
            self._done(exc)
            raise
        self._done(None)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done(None)

    def _done(self, exc: BaseException | None) -> None:
        finish, self._finish = self._finish, None
        if finish is not None:
            finish(exc, self._sent)


def _route(environ: dict[str, Any]) -> str | None:
    rule = environ.get(_ROUTE_KEY)
    return None if rule is None else template_from_converters(rule)


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = environ.get("CONTENT_LENGTH")
    if not raw:
        return 0
    try:
        return max(int(raw), 0)
    except ValueError:
        return None
