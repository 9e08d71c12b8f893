"""Health checks: named checks run concurrently, each cut at its timeout.

A check is any callable, sync or async, taking no argument: it passes unless it raises,
times out or returns ``False``. ``HealthChecks.run()`` (or ``await run_async()``) runs them
all at once and returns a :class:`HealthReport`::

    {"status": "healthy" | "degraded" | "unhealthy", "timestamp": "2026-...Z",
     "checks": {"db": {"ok": true, "latency_ms": 1.2, "error": null}, ...}}

``unhealthy`` (a *critical* check failed) maps to HTTP 503, the others to 200. Each run
sets ``meterhub_health_check_up{check}`` (1/0) and ``meterhub_health_check_duration_seconds
{check}`` in the registry. Failures are described by exception type and message only; the
traceback goes to the log, never into the HTTP answer.

Sync checks run on a daemon thread, so one that hangs is abandoned at its timeout (Python
cannot kill a thread); runs that start while a call of the same check is still in flight
wait for that call instead of starting another, so a hung check holds one thread, not one
per probe.

Example::

    >>> from meterhub import Registry
    >>> from meterhub.health import HealthChecks
    >>> checks = HealthChecks(timeout=1.0, registry=Registry(self_metrics=False))
    >>> checks.add("always", lambda: True)
    >>> report = checks.run()
    >>> report.status, report.http_status, report.checks["always"].ok
    ('healthy', 200, True)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as _dt
import inspect
import json
import logging
import math
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Any

from .metrics import Gauge
from .registry import REGISTRY, Registry

__all__ = [
    "CheckResult",
    "HealthChecks",
    "HealthReport",
    "db_check",
    "django_db_check",
    "django_view",
    "flask_view",
    "http_check",
    "make_asgi_app",
    "make_wsgi_app",
    "redis_check",
]

log = logging.getLogger("meterhub.health")

CheckFn = Callable[[], Any]
_MAX_ERROR = 300


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    ok: bool
    latency_ms: float
    error: str | None = None


@dataclass(frozen=True)
class HealthReport:
    """The outcome of one run of every check."""

    status: str
    timestamp: str
    checks: dict[str, CheckResult]

    @property
    def http_status(self) -> int:
        return 503 if self.status == "unhealthy" else 200

    def to_dict(self) -> dict[str, Any]:
        checks = {
            n: {"ok": r.ok, "latency_ms": r.latency_ms, "error": r.error}
            for n, r in self.checks.items()
        }
        return {"status": self.status, "timestamp": self.timestamp, "checks": checks}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False).encode("utf-8")


@dataclass
class _Check:
    name: str
    fn: CheckFn
    timeout: float
    critical: bool
    is_async: bool
    lock: threading.Lock = field(default_factory=threading.Lock)
    inflight: concurrent.futures.Future[Any] | None = None


def _describe(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."


def _valid_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive finite number of seconds, got {timeout!r}")
    return float(timeout)


class HealthChecks:
    """A registry of named checks (see the module docstring)."""

    def __init__(self, *, timeout: float = 2.0, registry: Registry | None = REGISTRY) -> None:
        self.timeout = _valid_timeout(timeout)
        self._checks: dict[str, _Check] = {}
        self._lock = threading.Lock()
        self._up: Gauge | None = None
        self._duration: Gauge | None = None
        if registry is not None:
            self._up = Gauge(
                "meterhub_health_check_up",
                "1 if the health check passed on its last run.",
                ["check"],
                registry=registry,
            )
            self._duration = Gauge(
                "meterhub_health_check_duration_seconds",
                "Duration of the last run of the health check.",
                ["check"],
                registry=registry,
            )

    def add(
        self, name: str, check: CheckFn, *, timeout: float | None = None, critical: bool = True
    ) -> None:
        """Register *check* under *name*; a non-critical failure only degrades the status."""
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise ValueError(f"health check name must be a non-empty str of <= 100 chars: {name!r}")
        if any(ord(c) < 32 for c in name):
            raise ValueError(f"health check name {name!r} contains control characters")
        if not callable(check):
            raise TypeError(f"health check {name!r} is not callable: {check!r}")
        is_async = inspect.iscoroutinefunction(check) or inspect.iscoroutinefunction(
            getattr(check, "__call__", None)  # noqa: B004 - async callable objects
        )
        entry = _Check(name, check, _valid_timeout(timeout or self.timeout), critical, is_async)
        with self._lock:
            if name in self._checks:
                raise ValueError(f"health check {name!r} is already registered")
            self._checks[name] = entry

    def check(
        self, name: str | None = None, *, timeout: float | None = None, critical: bool = True
    ) -> Callable[[CheckFn], CheckFn]:
        """Decorator form of :meth:`add` (the name defaults to the function's)."""

        def register(fn: CheckFn) -> CheckFn:
            label = name or str(getattr(fn, "__name__", "check"))
            self.add(label, fn, timeout=timeout, critical=critical)
            return fn

        return register

    def remove(self, name: str) -> None:
        with self._lock:
            del self._checks[name]

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    async def run_async(self) -> HealthReport:
        """Run every check concurrently; returns once each has finished or timed out."""
        with self._lock:
            entries = list(self._checks.values())
        results = await asyncio.gather(*(self._run_one(e) for e in entries))
        checks = {e.name: r for e, r in zip(entries, results)}
        failed = [e for e, r in zip(entries, results) if not r.ok]
        status = "healthy"
        if failed:
            status = "unhealthy" if any(e.critical for e in failed) else "degraded"
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
        return HealthReport(status, now.replace("+00:00", "Z"), checks)

    def run(self) -> HealthReport:
        """Synchronous :meth:`run_async` (safe to call from inside a running event loop)."""
        try:
            in_loop = asyncio.get_running_loop() is not None
        except RuntimeError:
            in_loop = False
        if not in_loop:
            return asyncio.run(self.run_async())
        box: list[HealthReport] = []
        helper = threading.Thread(target=lambda: box.append(asyncio.run(self.run_async())))
        helper.start()
        helper.join()
        return box[0]

    async def _run_one(self, entry: _Check) -> CheckResult:
        start = time.perf_counter()
        error: str | None = None
        try:
            if entry.is_async:
                value = await asyncio.wait_for(entry.fn(), entry.timeout)
            else:
                value = await asyncio.wait_for(asyncio.wrap_future(_submit(entry)), entry.timeout)
            if inspect.isawaitable(value):  # a sync callable returning a coroutine
                value = await asyncio.wait_for(value, entry.timeout)
            if value is False:
                error = "check returned False"
        except asyncio.TimeoutError:
            error = f"timed out after {entry.timeout:g}s"
        except Exception as exc:
            log.warning("health check %r failed", entry.name, exc_info=True)
            error = _describe(exc)
        elapsed = time.perf_counter() - start
        if self._up is not None and self._duration is not None:
            self._up.labels(entry.name).set(0.0 if error else 1.0)
            self._duration.labels(entry.name).set(elapsed)
        return CheckResult(error is None, round(elapsed * 1000.0, 3), error)


def _submit(entry: _Check) -> concurrent.futures.Future[Any]:
    """The in-flight call of *entry*'s sync check, started on a daemon thread if there is
    none. Concurrent runs share it, so a slow or hung check never holds more than one thread.
    """
    with entry.lock:
        call = entry.inflight
        if call is None or call.done():
            call = entry.inflight = concurrent.futures.Future()
            # Running futures cannot be cancelled: a waiter that times out leaves it alone.
            call.set_running_or_notify_cancel()
            name = f"meterhub-health-{entry.name}"
            threading.Thread(target=_call, args=(entry.fn, call), name=name, daemon=True).start()
    return call


def _call(fn: CheckFn, call: concurrent.futures.Future[Any]) -> None:
    try:
        value = fn()
    except Exception as exc:
        call.set_exception(exc)
    except BaseException as exc:  # SystemExit & co. must still settle the call
        call.set_exception(RuntimeError(f"check raised {type(exc).__name__}"))
        raise
    else:
        call.set_result(value)


# -- ready-made checks ----------------------------------------------------------------------


def db_check(connection: Any, query: str = "SELECT 1") -> CheckFn:
    """A check running *query* on a DB-API connection, or on a fresh one from a factory
    (preferred: ``db_check(lambda: psycopg.connect(dsn))``, closed after each run)."""
    if not (hasattr(connection, "cursor") or callable(connection)):
        raise TypeError(f"expected a DB-API connection or a factory, got {connection!r}")

    def check() -> None:
        owned = not hasattr(connection, "cursor")
        conn = connection() if owned else connection
        try:
            cur = conn.cursor()
            try:
                cur.execute(query)
                cur.fetchone()
            finally:
                cur.close()
        finally:
            if owned:
                conn.close()

    return check


def django_db_check(alias: str = "default") -> CheckFn:
    """A check running ``SELECT 1`` on Django database *alias* (imported lazily)."""

    def check() -> None:
        from django.db import connections

        conn = connections[alias]
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchone()
        finally:
            conn.close()  # checks run on throwaway threads: don't leak their connections

    return check


def _resp(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for p in parts:
        b = p.encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


_TLS_VERIFY = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


def _redis_tls_context(query: dict[str, list[str]], url: str) -> ssl.SSLContext:
    """The TLS context a ``rediss://`` URL's query asks for (redis-py's and Celery's
    ``ssl_cert_reqs`` / ``ssl_ca_certs`` parameters): verified by default."""
    reqs = (query.get("ssl_cert_reqs") or ["required"])[-1].lower().removeprefix("cert_")
    if reqs not in _TLS_VERIFY:
        raise ValueError(f"ssl_cert_reqs must be one of {sorted(_TLS_VERIFY)}, got {url!r}")
    ca = query["ssl_ca_certs"][-1] if query.get("ssl_ca_certs") else None
    context = ssl.create_default_context(cafile=ca)
    if _TLS_VERIFY[reqs] is ssl.CERT_NONE:
        context.check_hostname = False
    context.verify_mode = _TLS_VERIFY[reqs]
    return context


def redis_check(
    url: str = "redis://127.0.0.1:6379/0",
    *,
    client: Any = None,
    timeout: float = 2.0,
    ssl_context: ssl.SSLContext | None = None,
) -> CheckFn:
    """A Redis PING: through *client* (e.g. ``redis.Redis``) when given, else over a raw
    socket to *url*, so redis-py is not needed.

    *url* is ``redis://[user:password@]host:port`` or, over TLS, ``rediss://...``: the
    server's certificate is verified against the system's CAs, or *ssl_context*, or the
    URL's ``ssl_ca_certs=/path/ca.pem`` (``ssl_cert_reqs=none`` turns verification off, as
    in redis-py and Celery URLs).

    Example::

        >>> check = redis_check("rediss://:secret@cache.internal:6380/0")  # verified TLS
    """
    if client is not None:
        return lambda: bool(client.ping())
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
        raise ValueError(f"expected a redis://host:port or rediss://host:port URL, got {url!r}")
    host, port = parsed.hostname, parsed.port or 6379
    user, password = parsed.username, parsed.password
    context: ssl.SSLContext | None = None
    if parsed.scheme == "rediss":
        context = ssl_context or _redis_tls_context(urllib.parse.parse_qs(parsed.query), url)

    def check() -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        if context is not None:
            try:
                sock = context.wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
        with sock:
            reader = sock.makefile("rb")
            if password is not None:
                auth = ("AUTH", *(p for p in (user, password) if p))
                sock.sendall(_resp(*(urllib.parse.unquote(a) for a in auth)))
                reply = reader.readline().strip()
                if not reply.startswith(b"+"):
                    raise ConnectionError(f"AUTH failed: {reply.decode(errors='replace')}")
            sock.sendall(_resp("PING"))
            reply = reader.readline().strip()
            if reply != b"+PONG":
                raise ConnectionError(f"unexpected PING reply {reply.decode(errors='replace')!r}")

    return check


def http_check(
    url: str,
    *,
    expect: Container[int] = range(200, 400),
    timeout: float = 2.0,
    headers: dict[str, str] | None = None,
) -> CheckFn:
    """An HTTP GET of *url* that passes when the status is in *expect*."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"expected an http(s) URL, got {url!r}")

    def check() -> None:
        request = urllib.request.Request(url, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        if status not in expect:
            raise RuntimeError(f"GET {url} answered HTTP {status}")

    return check


# -- endpoints -------------------------------------------------------------------------------

_HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


def _reason(code: int) -> str:
    return "200 OK" if code == 200 else "503 Service Unavailable"


def make_wsgi_app(checks: HealthChecks) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    """A WSGI app answering every request with the health report (200 or 503)."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        report = checks.run()
        body = b"" if environ.get("REQUEST_METHOD") == "HEAD" else report.to_json()
        start_response(_reason(report.http_status), [*_HEADERS, ("Content-Length", str(len(body)))])
        return [body]

    return app


def make_asgi_app(checks: HealthChecks) -> Callable[[Any, Any, Any], Awaitable[None]]:
    """An ASGI app answering every HTTP request with the health report (200 or 503)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        report = await checks.run_async()
        body = b"" if scope.get("method") == "HEAD" else report.to_json()
        headers = [(k.lower().encode(), v.encode()) for k, v in _HEADERS]
        headers.append((b"content-length", str(len(body)).encode()))
        await send(
            {"type": "http.response.start", "status": report.http_status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": body})

    return app


def django_view(checks: HealthChecks) -> Callable[..., Any]:
    """A Django view: ``path("health/", django_view(checks))``."""

    def view(request: Any) -> Any:
        from django.http import HttpResponse

        report = checks.run()
        response = HttpResponse(
            report.to_json(), status=report.http_status, content_type="application/json"
        )
        response["Cache-Control"] = "no-store"
        return response

    return view


def flask_view(checks: HealthChecks) -> Callable[[], Any]:
    """A Flask view: ``app.add_url_rule("/health", view_func=flask_view(checks))``."""

    def health() -> Any:
        from flask import Response

        report = checks.run()
        return Response(
            report.to_json(),
            status=report.http_status,
            mimetype="application/json",
            headers={"Cache-Control": "no-store"},
        )

    return health
