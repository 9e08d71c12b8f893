"""Serving ``/metrics`` over HTTP: a built-in threaded server, a WSGI app, an ASGI app.

All three answer through one :class:`~meterhub.export.endpoint.Endpoint`: content
negotiation (OpenMetrics when the scraper asks for it, text 0.0.4 otherwise), ``name[]``
filtering, gzip when accepted, optional bearer-token or basic auth (constant-time
comparison, a bare 401 on mismatch), GET and HEAD only (405 otherwise).

Example::

    >>> from meterhub import Counter, Registry
    >>> from meterhub.export.http import start_http_server
    >>> reg = Registry(self_metrics=False)
    >>> Counter("jobs", "Jobs run.", registry=reg).inc()
    >>> server = start_http_server(0, registry=reg)       # port 0: any free port
    >>> import urllib.request
    >>> b"jobs_total 1" in urllib.request.urlopen(server.url + "/metrics").read()
    True
    >>> server.shutdown()
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

from .._config import get_config
from ..registry import REGISTRY
from ._per_registry import PerRegistry
from ._server import MAX_BODY, AsyncHTTPServer, HTTPStats
from .endpoint import Endpoint, Response

__all__ = [
    "MetricsHandler",
    "MetricsServer",
    "make_asgi_app",
    "make_wsgi_app",
    "start_http_server",
    "start_wsgi_server",
]

log = logging.getLogger("meterhub.export.http")

DEFAULT_TIMEOUT = 10.0
"""Seconds a request may take to arrive in total (TLS handshake, keep-alive wait, head and
body), and its answer to be taken, before the connection is closed."""
DEFAULT_MAX_CONNECTIONS = 512
"""Connections the built-in server holds at once; more are closed at once (and counted)."""
DEFAULT_WORKERS = 4
"""Threads of the built-in server that run collections (plus one for all the sockets)."""


class MetricsHandler(BaseHTTPRequestHandler):
    """A ``BaseHTTPRequestHandler`` serving metrics (prometheus_client compatible).

    ``MetricsHandler.factory(registry)`` makes a subclass bound to another registry.
    """

    registry: ClassVar[Any] = REGISTRY
    endpoint: ClassVar[Endpoint | None] = None
    timeout: ClassVar[float | None] = DEFAULT_TIMEOUT
    protocol_version = "HTTP/1.1"
    server_version = "meterhub"
    sys_version = ""
    # Errors found before a version is parsed still get a status line (no HTTP/0.9), and
    # error bodies say no more than the status.
    default_request_version = "HTTP/1.0"
    error_message_format = "%(code)d %(message)s\n"
    error_content_type = "text/plain; charset=utf-8"

    @classmethod
    def factory(cls, registry: Any, **options: Any) -> type[MetricsHandler]:
        """A handler class serving *registry* with :class:`Endpoint` *options*."""
        endpoint = Endpoint(registry, **options)
        return type(cls.__name__, (cls,), {"registry": registry, "endpoint": endpoint})

    def setup(self) -> None:
        super().setup()  # applies self.timeout to the socket
        if isinstance(self.request, ssl.SSLSocket):
            # Handshake here, in the connection's thread: a slow TLS client then never
            # blocks the accept loop.
            try:
                self.request.do_handshake()
            except OSError:
                _drain(self.request)
                raise

    def _endpoint(self) -> Endpoint:
        ep = type(self).endpoint
        if ep is None:
            ep = type(self).endpoint = Endpoint(self.registry, path=None)
        return ep

    def _discard_body(self) -> bool:
        """Read and drop the request body so it is never parsed as the next request.

        False (after an error answer that closes the connection) when its length is
        unknown (``Transfer-Encoding``), conflicting or over ``MAX_BODY``.
        """
        if self.headers.get("Transfer-Encoding") is not None:
            self.send_error(400 if "Content-Length" in self.headers else 501)
            return False
        values = {
            v.strip() for h in self.headers.get_all("Content-Length") or () for v in h.split(",")
        }
        if not values:
            return True
        raw_length = values.pop()
        if values or not raw_length.isdigit() or not raw_length.isascii():
            self.send_error(400)
            return False
        length = int(raw_length)
        if length > MAX_BODY:
            self.send_error(413)
            return False
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                self.close_connection = True
                return False
            length -= len(chunk)
        return True

    def _serve(self) -> None:
        if not self._discard_body():
            return
        path, _, query = self.path.partition("?")
        headers = self.headers
        resp = self._endpoint().handle(self.command, path, query, lambda name: headers.get(name))
        self.send_response(resp.status, resp.reason)
        for k, v in resp.headers:
            self.send_header(k, v)
        self.end_headers()
        if resp.body:
            self.wfile.write(resp.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve

    def __getattr__(self, name: str) -> Any:
        # Any other well-formed method reaches the endpoint too, which answers 405
        # (http.server would say 501).
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


def _drain(sock: socket.socket, limit: float = 1.0) -> None:
    """After a failed handshake, read what the client still sends (until it closes, at
    most *limit* seconds) before closing: closing with unread data would reset the
    connection before the client reads the TLS alert that says why it was refused."""
    try:
        raw = socket.socket(fileno=os.dup(sock.fileno()))
    except OSError:
        return
    with raw:
        raw.settimeout(limit)
        deadline = time.monotonic() + limit
        try:
            while time.monotonic() < deadline and raw.recv(65536):
                pass
        except OSError:
            pass


_stats_for = PerRegistry(HTTPStats)
"""The ``meterhub_*`` delivery self-metrics of a registry (registered on first use)."""


class MetricsServer:
    """A running :func:`start_http_server`: ``.url``, ``.port``, ``.shutdown()``.

    It also unpacks like prometheus_client's return value: ``httpd, thread = ...``.
    """

    def __init__(self, httpd: Any, thread: threading.Thread, tls: bool) -> None:
        self.httpd = httpd
        self.thread = thread
        host, port = httpd.server_address[:2]
        self.host = str(host)
        self.port = int(port)
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'https' if tls else 'http'}://{shown}:{self.port}"

    def shutdown(self) -> None:
        """Stop serving, close the socket and join the thread (idempotent)."""
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.thread.join()
        self.httpd.server_close()

    close = shutdown

    def __iter__(self) -> Iterator[Any]:
        return iter((self.httpd, self.thread))

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _tls_context(
    certfile: str | None,
    keyfile: str | None,
    client_cafile: str | None,
    client_auth_required: bool,
    client_capath: str | None = None,
    tls_min_version: ssl.TLSVersion | None = None,
    tls_max_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = tls_min_version or ssl.TLSVersion.TLSv1_2
    if tls_max_version is not None:
        ctx.maximum_version = tls_max_version
    ctx.load_cert_chain(certfile or "", keyfile)
    if client_cafile or client_capath:
        ctx.load_verify_locations(cafile=client_cafile, capath=client_capath)
        ctx.verify_mode = ssl.CERT_REQUIRED if client_auth_required else ssl.CERT_OPTIONAL
    elif client_auth_required:
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def start_http_server(
    port: int,
    addr: str = "127.0.0.1",
    registry: Any = REGISTRY,
    certfile: str | None = None,
    keyfile: str | None = None,
    client_cafile: str | None = None,
    client_capath: str | None = None,
    protocol: int = ssl.PROTOCOL_TLS_SERVER,
    client_auth_required: bool = False,
    tls_min_version: ssl.TLSVersion | None = None,
    tls_max_version: ssl.TLSVersion | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    bearer_token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    path: str = "/metrics",
    disable_compression: bool = False,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    workers: int = DEFAULT_WORKERS,
) -> MetricsServer:
    """Serve *registry* on ``http(s)://addr:port/metrics`` from a daemon thread.

    Binds to 127.0.0.1 unless told otherwise (``addr="0.0.0.0"`` or ``"::"`` to expose
    it). TLS with *certfile*/*keyfile* (and *client_cafile*/*client_capath* for client
    certificates, *tls_min_version* (default 1.2) and *tls_max_version*) or a ready
    *ssl_context*; *protocol* is accepted for prometheus_client's signature (always
    ``PROTOCOL_TLS_SERVER``). Port 0 picks a free port (see ``.port``).

    One thread serves every connection and *workers* threads run the collections, so
    slow or idle clients never cost a thread. A request must arrive within *timeout*
    seconds in total (handshake, keep-alive wait, head and body) and its answer be taken
    within *timeout*; at most *max_connections* are held at once, more are closed at
    once. Request bodies are read and discarded by ``Content-Length`` (at most 64 KiB);
    chunked or ambiguous ones are refused and their connection closed. All of it is
    counted in ``meterhub_http_connections_refused_total``,
    ``meterhub_http_requests_rejected_total{reason}`` and
    ``meterhub_http_connections_open`` on *registry*.

    Example::

        server = start_http_server(9100, bearer_token=os.environ["METRICS_TOKEN"])
        ...
        server.shutdown()
    """
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int in 0..65535, got {port!r}")
    if not isinstance(addr, str) or not addr:
        raise ValueError(f"addr must be a host address string, got {addr!r}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be positive seconds or None, got {timeout!r}")
    for name, value in (("max_connections", max_connections), ("workers", workers)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if ssl_context is None and (certfile or keyfile or client_cafile):
        if not certfile:
            raise ValueError("TLS needs certfile (and keyfile unless the key is inside it)")
        ssl_context = _tls_context(
            certfile,
            keyfile,
            client_cafile,
            client_auth_required,
            client_capath,
            tls_min_version,
            tls_max_version,
        )
    endpoint = Endpoint(
        registry,
        path=path,
        disable_compression=disable_compression,
        bearer_token=bearer_token,
        basic_auth=basic_auth,
    )
    infos = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address[:2])
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    httpd = AsyncHTTPServer(
        sock,
        endpoint,
        ssl_context=ssl_context,
        timeout=timeout,
        max_connections=max_connections,
        workers=workers,
        stats=_stats_for(registry),
    )
    thread = threading.Thread(target=httpd.serve_forever, name="meterhub-http", daemon=True)
    thread.start()
    return MetricsServer(httpd, thread, ssl_context is not None)


start_wsgi_server = start_http_server
"""prometheus_client's other name for :func:`start_http_server` (the same server)."""


# ------------------------------------------------------------------------------- WSGI

# In compat mode the WSGI and ASGI apps answer with prometheus_client's headers only
# (their servers frame the body); meterhub adds Vary and Content-Length otherwise.
_COMPAT_HEADERS = ("Content-Type", "Content-Encoding")


def _app_headers(resp: Response) -> list[tuple[str, str]]:
    if get_config().compat is None:
        return resp.headers
    return [(k, v) for k, v in resp.headers if k in _COMPAT_HEADERS]


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def make_wsgi_app(
    registry: Any = REGISTRY,
    disable_compression: bool = False,
    *,
    path: str | None = None,
    bearer_token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
) -> WSGIApp:
    """A WSGI app serving *registry* (on every path unless *path* is given).

    Example::

        # gunicorn 'myapp.metrics:app'
        app = make_wsgi_app(bearer_token=os.environ["METRICS_TOKEN"])
    """
    endpoint = Endpoint(
        registry,
        path=path,
        disable_compression=disable_compression,
        bearer_token=bearer_token,
        basic_auth=basic_auth,
    )

    def metrics_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        def header(name: str) -> str | None:
            value = environ.get("HTTP_" + name.upper().replace("-", "_"))
            return None if value is None else str(value)

        resp = endpoint.handle(
            str(environ.get("REQUEST_METHOD", "GET")),
            str(environ.get("PATH_INFO") or "/"),
            str(environ.get("QUERY_STRING", "")),
            header,
        )
        start_response(f"{resp.status} {resp.reason}", _app_headers(resp))
        return [resp.body]

    return metrics_app


# ------------------------------------------------------------------------------- ASGI


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def make_asgi_app(
    registry: Any = REGISTRY,
    disable_compression: bool = False,
    *,
    path: str | None = None,
    bearer_token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI app serving *registry*; collection runs in a worker thread, off the loop.

    Example::

        app.mount("/metrics", make_asgi_app())      # Starlette / FastAPI
    """
    endpoint = Endpoint(
        registry,
        path=path,
        disable_compression=disable_compression,
        bearer_token=bearer_token,
        basic_auth=basic_auth,
    )

    async def metrics_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"meterhub's metrics app serves HTTP only, not {scope['type']!r}")
        headers: dict[str, str] = {}
        for k, v in scope.get("headers") or ():
            headers[k.decode("latin-1").lower()] = v.decode("latin-1")
        args = (
            str(scope.get("method", "GET")),
            str(scope.get("path") or "/"),
            bytes(scope.get("query_string") or b"").decode("latin-1"),
            headers.get,
        )
        if get_config().compat is None:
            resp: Response = await asyncio.to_thread(endpoint.handle, *args)
            out = [(k.lower().encode(), v.encode()) for k, v in resp.headers]
        else:  # as prometheus_client: collected on the event loop, its header spelling
            resp = endpoint.handle(*args)
            out = [(k.encode(), v.encode()) for k, v in _app_headers(resp)]
        await send({"type": "http.response.start", "status": resp.status, "headers": out})
        await send({"type": "http.response.body", "body": resp.body})

    return metrics_app
