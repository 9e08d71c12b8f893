"""The built-in HTTP/1.1 server behind :func:`~meterhub.export.http.start_http_server`.

One event-loop thread owns every connection; a small thread pool runs the collections.
A connection therefore costs a socket and a buffer, never a thread: clients that drip
their request byte by byte (slowloris) or never read the answer hold nothing anyone else
needs, and the thread count is fixed (the loop plus *workers*) whatever the clients do.

Guards, each counted in ``meterhub_http_*`` self-metrics on the served registry:

* **Connection cap** (*max_connections*): a connection beyond it is closed at once
  (a plain ``503`` first, without TLS) and counted in
  ``meterhub_http_connections_refused_total``.
* **Deadline** (*timeout*): a request (TLS handshake, keep-alive wait, head and body) must
  arrive within *timeout* seconds in total, and its answer must be taken within *timeout*;
  otherwise the connection is closed (``reason="timeout"``).
* **Framing**: the request head is at most 64 KiB (an 8 KiB request line, 100 header
  lines); a body is read and discarded by ``Content-Length`` (at most 64 KiB), so it can
  never be taken for the next request on a keep-alive connection. ``Transfer-Encoding``
  (chunked bodies), ``Content-Length`` and ``Transfer-Encoding`` together, conflicting
  lengths, folded headers, or a larger body get an error and the connection is closed
  (after reading what the client still sends, for a moment, so the answer reaches it).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..samples import MetricFamily, MetricType, Series
from ._connection import PlainConnection, TLSConnection
from .endpoint import Endpoint, Response

log = logging.getLogger("meterhub.export.http")

MAX_REQUEST_LINE = 8192
MAX_HEAD = 65536
MAX_HEADERS = 100
MAX_BODY = 65536

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"HTTP/\d\.\d")
_DIGITS = re.compile(r"[0-9]{1,18}")
_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 24\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    b"503 Service Unavailable\n"
)


class _Reject(Exception):
    """A request answered with an error and the connection closed (its framing is unknown)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status)
        self.status = status
        self.reason = reason  # the self-metric's label


class _Request:
    __slots__ = ("headers", "keep_alive", "method", "path", "query")

    def __init__(
        self, method: str, path: str, query: str, headers: dict[str, str], keep_alive: bool
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.keep_alive = keep_alive


class HTTPStats:
    """Counters of the built-in servers of one registry, by listening address (a collector)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # address -> [open connections, refused connections, {reason: rejected requests}]
        self._rows: dict[str, tuple[list[float], dict[str, float]]] = {}

    def add(self, address: str) -> tuple[list[float], dict[str, float]]:
        with self._lock:
            row = self._rows[address] = ([0.0, 0.0], {})
            return row

    def remove(self, address: str) -> None:
        with self._lock:
            self._rows.pop(address, None)

    def collect(self) -> Iterator[MetricFamily]:
        with self._lock:
            rows = sorted((a, list(r[0]), dict(r[1])) for a, r in self._rows.items())
        yield MetricFamily(
            "meterhub_http_connections_open",
            "Connections the built-in HTTP server holds now.",
            MetricType.GAUGE,
            series=tuple(Series((("address", a),), (v[0],)) for a, v, _ in rows),
        )
        yield MetricFamily(
            "meterhub_http_connections_refused",
            "Connections closed at once because the server held max_connections.",
            MetricType.COUNTER,
            series=tuple(Series((("address", a),), (v[1],)) for a, v, _ in rows),
        )
        yield MetricFamily(
            "meterhub_http_requests_rejected",
            "Requests answered with an error and their connection closed, by reason.",
            MetricType.COUNTER,
            series=tuple(
                Series((("address", a), ("reason", k)), (n,))
                for a, _, reasons in rows
                for k, n in sorted(reasons.items())
            ),
        )


def _response_bytes(resp: Response, close: bool) -> bytes:
    head = [f"HTTP/1.1 {resp.status} {resp.reason}", "Server: meterhub"]
    head.append("Date: " + email.utils.formatdate(usegmt=True))
    head.extend(f"{k}: {v}" for k, v in resp.headers)
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + resp.body


def _error(status: int) -> Response:
    reason = _REASONS[status]
    body = f"{status} {reason}\n".encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    return Response(status, reason, headers, body)


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, list[str]]]:
    """(method, target, version, headers by lower-case name) of a request head."""
    lines = head.split(b"\n")
    parts = lines[0].rstrip(b"\r").split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise _Reject(400, "bad_request")
    version = parts[2].decode("latin-1")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _Reject(505 if _VERSION.fullmatch(version) else 400, "bad_request")
    headers: dict[str, list[str]] = {}
    count = 0
    for raw_line in lines[1:]:
        line = raw_line.rstrip(b"\r")
        if not line:
            continue
        count += 1
        if count > MAX_HEADERS:
            raise _Reject(431, "too_large")
        name, sep, value = line.partition(b":")
        # No folded lines and no space before the colon: both are smuggling vectors.
        if not sep or not _TOKEN.fullmatch(name):
            raise _Reject(400, "bad_request")
        headers.setdefault(name.decode("ascii").lower(), []).append(
            value.strip(b" \t").decode("latin-1")
        )
    return parts[0].decode("ascii"), parts[1].decode("latin-1"), version, headers


def _body_length(headers: dict[str, list[str]]) -> int:
    """The body's length by ``Content-Length``; :class:`_Reject` when it is unknown or large."""
    if "transfer-encoding" in headers:
        raise _Reject(400 if "content-length" in headers else 501, "unsupported")
    values = {v.strip() for value in headers.get("content-length", ()) for v in value.split(",")}
    if not values:
        return 0
    if len(values) != 1 or not _DIGITS.fullmatch(next(iter(values))):
        raise _Reject(400, "bad_request")
    length = int(values.pop())
    if length > MAX_BODY:
        raise _Reject(413, "too_large")
    return length


class AsyncHTTPServer:
    """Serves *endpoint* on the bound listening *sock* (see the module docstring).

    Shaped like ``socketserver``'s servers for prometheus_client compatibility:
    ``serve_forever()`` (run it in a thread), ``shutdown()`` (from another thread),
    ``server_close()``, ``server_address``, ``socket``.
    """

    def __init__(
        self,
        sock: socket.socket,
        endpoint: Endpoint,
        *,
        ssl_context: ssl.SSLContext | None,
        timeout: float | None,
        max_connections: int,
        workers: int,
        stats: HTTPStats,
    ) -> None:
        self.socket = sock
        sock.setblocking(False)
        self.server_address = sock.getsockname()
        self.endpoint = endpoint
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.max_connections = max_connections
        self._stats = stats
        host, port = self.server_address[:2]
        self._address = f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
        self._counts, self._rejected = stats.add(self._address)  # [open, refused]
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="meterhub-http-worker")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._shutdown_requested = False
        self._done = threading.Event()
        self._stop: asyncio.Future[None] | None = None
        self._closed = False

    # -- lifecycle (socketserver-like) --------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until :meth:`shutdown` (*poll_interval* is accepted for compatibility)."""
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_quiet_exception_handler)
        with self._lock:
            if self._shutdown_requested:
                loop.close()
                return
            self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._done.set()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` and wait until it returned (no-op if it is not running)."""
        with self._lock:
            self._shutdown_requested = True
            loop = self._loop
        if loop is None:
            return  # serve_forever() has not started and now never will
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._request_stop)
        self._done.wait()

    def server_close(self) -> None:
        """Close the listening socket and the worker pool (idempotent)."""
        if not self._closed:
            self._closed = True
            self.socket.close()
            self._pool.shutdown(wait=False)
            self._stats.remove(self._address)

    def _request_stop(self) -> None:
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        if self._shutdown_requested:  # shutdown() came before this loop ran
            self._stop.set_result(None)
        connections: set[asyncio.Task[None]] = set()
        accept = loop.create_task(self._accept(connections))
        try:
            await self._stop
        finally:
            accept.cancel()
            for task in list(connections):
                task.cancel()
            await asyncio.gather(accept, *connections, return_exceptions=True)

    async def _accept(self, connections: set[asyncio.Task[None]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(self.socket)
            except OSError:  # EMFILE and friends: back off a moment rather than spin
                log.debug("meterhub: accept failed", exc_info=True)
                await asyncio.sleep(0.05)
                continue
            if len(connections) >= self.max_connections:
                self._counts[1] += 1
                self._refuse(conn)
                continue
            task = loop.create_task(self._connection(conn))
            connections.add(task)
            self._counts[0] = len(connections)
            task.add_done_callback(lambda t: self._finished(connections, t))

    def _finished(self, connections: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
        connections.discard(task)
        self._counts[0] = len(connections)

    def _refuse(self, conn: socket.socket) -> None:
        if self.ssl_context is None:
            with contextlib.suppress(OSError):
                conn.send(_BUSY)  # non-blocking: best effort, the socket buffer is empty
        conn.close()

    def _count(self, reason: str) -> None:
        self._rejected[reason] = self._rejected.get(reason, 0.0) + 1.0

    # -- one connection -----------------------------------------------------------------------

    async def _connection(self, sock: socket.socket) -> None:
        conn: PlainConnection
        if self.ssl_context is None:
            conn = PlainConnection(sock)
        else:
            conn = tls = TLSConnection(sock, self.ssl_context)
            try:
                await asyncio.wait_for(tls.handshake(), self.timeout)
            except asyncio.CancelledError:
                conn.abort()
                raise
            except ssl.SSLError:  # refused (its alert is sent): let the client read it
                self._count("tls_handshake")
                await conn.close()
                return
            except (OSError, asyncio.TimeoutError):
                self._count("tls_handshake")
                conn.abort()
                return
        try:
            await self._requests(conn)
        except asyncio.CancelledError:  # shutdown
            conn.abort()
            raise
        except asyncio.TimeoutError:
            self._count("timeout")  # the client did not take the answer in time
            conn.abort()
        except (OSError, asyncio.IncompleteReadError):
            conn.abort()  # the client went away
        except Exception:
            log.exception("meterhub: the HTTP server failed on a connection")
            conn.abort()
        else:
            await conn.close()

    async def _requests(self, conn: PlainConnection) -> None:
        """Answer requests until the connection should close (then return normally)."""
        loop = asyncio.get_running_loop()
        buf = bytearray()
        while True:
            try:
                request = await asyncio.wait_for(self._read_request(conn, buf), self.timeout)
            except asyncio.TimeoutError:
                self._count("timeout")
                return
            except _Reject as bad:
                self._count(bad.reason)
                await self._send(conn, _response_bytes(_error(bad.status), close=True))
                return
            if request is None:
                return
            resp = await loop.run_in_executor(self._pool, self._handle, request)
            await self._send(conn, _response_bytes(resp, close=not request.keep_alive))
            if not request.keep_alive:
                return

    async def _send(self, conn: PlainConnection, data: bytes) -> None:
        await asyncio.wait_for(conn.send(data), self.timeout)

    async def _read_request(self, conn: PlainConnection, buf: bytearray) -> _Request | None:
        """The next request with its body read and discarded, ``None`` at a clean EOF."""
        searched = 0
        while True:
            # Empty lines before a request are allowed (RFC 9112 §2.2).
            while buf[:2] == b"\r\n" or buf[:1] == b"\n":
                del buf[: 2 if buf[:1] == b"\r" else 1]
            end = _head_end(buf, max(searched - 3, 0))
            if end >= 0:
                break
            searched = len(buf)
            first_line = buf.find(b"\n")
            if len(buf) > MAX_REQUEST_LINE and (first_line < 0 or first_line > MAX_REQUEST_LINE):
                raise _Reject(414, "too_large")
            if len(buf) > MAX_HEAD:
                raise _Reject(431, "too_large")
            chunk = await conn.recv()
            if not chunk:
                if buf.strip():
                    raise asyncio.IncompleteReadError(bytes(buf), None)
                return None
            buf += chunk
        head = bytes(buf[:end])
        del buf[: end + (4 if buf[end : end + 4] == b"\r\n\r\n" else 2)]
        if len(head) > MAX_HEAD:
            raise _Reject(431, "too_large")
        if head.find(b"\n") > MAX_REQUEST_LINE:
            raise _Reject(414, "too_large")
        method, target, version, headers = _parse_head(head)
        length = _body_length(headers)
        connection = {
            t.strip().lower() for v in headers.get("connection", ()) for t in v.split(",")
        }
        keep_alive = version == "HTTP/1.1" and "close" not in connection
        if length and "100-continue" in {v.lower() for v in headers.get("expect", ())}:
            keep_alive = False  # answered without the body, which the close then discards
        else:
            while len(buf) < length:
                chunk = await conn.recv()
                if not chunk:
                    raise asyncio.IncompleteReadError(bytes(buf), length)
                buf += chunk
            del buf[:length]  # the body: discarded, never parsed as a request
        if not target.startswith("/"):
            # absolute-form (a proxy's request): keep the path
            m = re.fullmatch(r"https?://[^/?#]*(.*)", target, re.IGNORECASE)
            target = (m.group(1) or "/") if m else target
        path, _, query = target.partition("?")
        joined = {k: ", ".join(v) for k, v in headers.items()}
        return _Request(method, path, query, joined, keep_alive)

    def _handle(self, request: _Request) -> Response:
        try:
            return self.endpoint.handle(
                request.method, request.path, request.query, request.headers.get
            )
        except Exception:
            log.exception("meterhub: answering a scrape failed")
            return _error(500)


def _head_end(buf: bytearray, start: int) -> int:
    """Where the blank line ending a request head starts (``\\r\\n\\r\\n`` or bare ``\\n\\n``)."""
    crlf = buf.find(b"\r\n\r\n", start)
    lf = buf.find(b"\n\n", start)
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf
    return crlf


def _quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # Resets, failed TLS handshakes and timeouts are the client's business.
    log.debug(
        "meterhub: HTTP server: %s", context.get("message"), exc_info=context.get("exception")
    )
