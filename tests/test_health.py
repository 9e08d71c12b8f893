"""Health checks against real components: SQLite files, a real Redis, real HTTP servers."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from meterhub import Registry
from meterhub.health import (
    HealthChecks,
    db_check,
    flask_view,
    http_check,
    make_asgi_app,
    make_wsgi_app,
    redis_check,
)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Hanging checks wait on this; set at teardown so no thread outlives the test."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def status_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = int(self.path.strip("/") or "200")
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _boom() -> None:
    raise RuntimeError('db "primary" down\nTraceback-looking line')


def test_report_shape_and_metrics(registry: Registry) -> None:
    checks = HealthChecks(timeout=30, registry=registry)
    checks.add("sync", lambda: None)

    async def ok_async() -> bool:
        await asyncio.sleep(0)
        return True

    checks.add("async", ok_async)
    report = checks.run()
    data = report.to_dict()
    assert data["status"] == "healthy" and report.http_status == 200
    assert data["timestamp"].endswith("Z")
    assert set(data["checks"]) == {"sync", "async"}
    for result in data["checks"].values():
        assert result["ok"] is True and result["error"] is None
        assert result["latency_ms"] >= 0
    assert registry.get_sample_value("meterhub_health_check_up", {"check": "async"}) == 1.0
    duration = registry.get_sample_value(
        "meterhub_health_check_duration_seconds", {"check": "sync"}
    )
    assert duration is not None and duration >= 0


@pytest.mark.timeout(60)
def test_hanging_checks_are_cut(registry: Registry, release: threading.Event) -> None:
    checks = HealthChecks(timeout=30, registry=registry)
    checks.add("hangs_cut", release.wait, timeout=0.2)

    async def hangs_async() -> None:
        await asyncio.sleep(3600)

    checks.add("hangs_async", hangs_async, timeout=0.2)
    checks.add("fine", lambda: True)
    report = checks.run()
    assert report.status == "unhealthy" and report.http_status == 503
    assert report.checks["hangs_cut"].error == "timed out after 0.2s"
    assert report.checks["hangs_async"].error == "timed out after 0.2s"
    assert report.checks["fine"].ok
    assert registry.get_sample_value("meterhub_health_check_up", {"check": "hangs_cut"}) == 0.0
    # The abandoned thread is still blocked: later runs wait on it instead of adding threads.
    again = checks.run()
    assert again.checks["hangs_cut"].error == "timed out after 0.2s"
    hung = [t for t in threading.enumerate() if t.name == "meterhub-health-hangs_cut"]
    assert len(hung) == 1
    release.set()


def test_raising_and_false_checks(registry: Registry) -> None:
    checks = HealthChecks(registry=registry, timeout=30)
    checks.add("boom", _boom)
    checks.add("false", lambda: False)
    report = checks.run()
    assert report.checks["boom"].error == 'RuntimeError: db "primary" down Traceback-looking line'
    assert report.checks["false"].error == "check returned False"
    long = HealthChecks(registry=None, timeout=30)
    long.add("long", lambda: (_ for _ in ()).throw(ValueError("x" * 5000)))
    error = long.run().checks["long"].error
    assert error is not None and len(error) == 300


@pytest.mark.timeout(60)
def test_concurrent_runs_share_one_call(registry: Registry, release: threading.Event) -> None:
    calls: list[int] = []

    def stuck() -> bool:
        calls.append(1)
        return release.wait(30)

    checks = HealthChecks(timeout=0.3, registry=registry)
    checks.add("stuck", stuck)
    reports: list[Any] = []
    probes = [threading.Thread(target=lambda: reports.append(checks.run())) for _ in range(4)]
    for probe in probes:
        probe.start()
    for probe in probes:
        probe.join()
    # Four concurrent probes, one call: the first is still in flight for all of them.
    assert len(calls) == 1
    assert [r.checks["stuck"].error for r in reports] == ["timed out after 0.3s"] * 4
    release.set()
    assert wait_until(lambda: checks.run().checks["stuck"].ok)
    assert checks.run().checks["stuck"].ok
    assert len(calls) >= 2  # once the call returned, the next run makes a fresh one


def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_sync_callable_returning_coroutine(registry: Registry) -> None:
    async def ping() -> bool:
        return False

    checks = HealthChecks(registry=registry, timeout=30)
    checks.add("wrapped", lambda: ping())
    assert checks.run().checks["wrapped"].error == "check returned False"


def test_non_critical_failure_degrades(registry: Registry) -> None:
    checks = HealthChecks(registry=registry, timeout=30)
    checks.add("cache", _boom, critical=False)

    @checks.check()
    def db() -> None:
        pass

    report = checks.run()
    assert report.status == "degraded" and report.http_status == 200
    assert checks.names == ["cache", "db"]
    checks.remove("cache")
    assert checks.run().status == "healthy"


async def test_run_inside_event_loop(registry: Registry) -> None:
    checks = HealthChecks(registry=registry, timeout=30)
    checks.add("ok", lambda: True)
    assert checks.run().status == "healthy"
    assert (await checks.run_async()).status == "healthy"


def test_empty_registry_is_healthy() -> None:
    report = HealthChecks(registry=None).run()
    assert report.to_dict()["checks"] == {} and report.status == "healthy"


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "x" * 101, 3, None])
def test_bad_names(name: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        HealthChecks(registry=None).add(name, lambda: True)


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, True, "1"])
def test_bad_timeouts(timeout: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        HealthChecks(timeout=timeout, registry=None)
    with pytest.raises((TypeError, ValueError)):
        HealthChecks(registry=None).add("x", lambda: True, timeout=timeout or -1)


def test_bad_registrations() -> None:
    checks = HealthChecks(registry=None, timeout=30)
    checks.add("x", lambda: True)
    with pytest.raises(ValueError, match="already registered"):
        checks.add("x", lambda: True)
    with pytest.raises(TypeError):
        checks.add("y", "not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        db_check(42)
    with pytest.raises(ValueError):
        redis_check("http://localhost:6379")
    with pytest.raises(ValueError):
        http_check("ftp://example.org/")


def test_db_check_on_real_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    checks = HealthChecks(registry=None, timeout=30)
    checks.add("factory", db_check(lambda: sqlite3.connect(path)))
    checks.add("missing_dir", db_check(lambda: sqlite3.connect(tmp_path / "no" / "x.db")))
    # Checks run concurrently: each shared connection serves one check only.
    conn = sqlite3.connect(path, check_same_thread=False)
    checks.add("connection", db_check(conn))
    other = sqlite3.connect(path, check_same_thread=False)
    checks.add("bad_sql", db_check(other, query="SELEC nonsense"))
    report = checks.run()
    assert report.checks["factory"].ok and report.checks["connection"].ok
    assert (report.checks["missing_dir"].error or "").startswith("OperationalError")
    assert "syntax error" in (report.checks["bad_sql"].error or "")
    conn.close()
    other.close()


def test_redis_check_on_real_redis(redis_url: str) -> None:
    import redis

    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    checks = HealthChecks(registry=None, timeout=30)
    checks.add("raw", redis_check(redis_url))
    checks.add("client", redis_check(client=redis.Redis.from_url(redis_url)))
    checks.add("auth", redis_check(f"redis://:s3cret@127.0.0.1:{port}/0"))
    report = checks.run()
    assert report.checks["raw"].ok, report.checks["raw"]
    assert report.checks["client"].ok
    assert (report.checks["auth"].error or "").startswith("ConnectionError: AUTH failed")


def test_redis_check_over_tls_on_real_redis(redis_tls: tuple[int, str]) -> None:
    port, ca = redis_tls
    checks = HealthChecks(registry=None, timeout=30)
    checks.add("verified", redis_check(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"))
    context = ssl.create_default_context(cafile=ca)
    checks.add("context", redis_check(f"rediss://127.0.0.1:{port}", ssl_context=context))
    checks.add("unverified", redis_check(f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none"))
    # the system's CAs do not know the test certificate: refused, not silently accepted
    checks.add("untrusted", redis_check(f"rediss://127.0.0.1:{port}/0"))
    # plain RESP to a TLS-only port gets no PONG
    checks.add("plain", redis_check(f"redis://127.0.0.1:{port}/0", timeout=2))
    report = checks.run()
    for name in ("verified", "context", "unverified"):
        assert report.checks[name].ok, report.checks[name]
    assert "CERTIFICATE_VERIFY_FAILED" in (report.checks["untrusted"].error or "")
    assert not report.checks["plain"].ok


def test_redis_check_refuses_bad_urls() -> None:
    with pytest.raises(ValueError, match="rediss://"):
        redis_check("http://127.0.0.1:6379")
    with pytest.raises(ValueError, match="ssl_cert_reqs"):
        redis_check("rediss://127.0.0.1:6379/0?ssl_cert_reqs=maybe")


def test_redis_check_refused(status_server: str) -> None:
    # A port where nothing listens, and an HTTP server that is not Redis.
    checks = HealthChecks(registry=None, timeout=30)
    checks.add("refused", redis_check("redis://127.0.0.1:1/0", timeout=1))
    checks.add("not_redis", redis_check(status_server.replace("http", "redis"), timeout=1))
    report = checks.run()
    assert "ConnectionRefusedError" in (report.checks["refused"].error or "")
    assert not report.checks["not_redis"].ok


def test_http_check(status_server: str) -> None:
    checks = HealthChecks(registry=None, timeout=30)
    checks.add("ok", http_check(status_server + "/204"))
    checks.add("err", http_check(status_server + "/500"))
    checks.add("strict", http_check(status_server + "/302", expect={200}))
    report = checks.run()
    assert report.checks["ok"].ok
    assert report.checks["err"].error == f"RuntimeError: GET {status_server}/500 answered HTTP 500"
    assert not report.checks["strict"].ok


def _failing_checks(release: threading.Event) -> HealthChecks:
    checks = HealthChecks(timeout=30, registry=None)
    checks.add("boom", _boom)
    checks.add("hangs", release.wait, timeout=0.3)
    checks.add('quote " ünï', lambda: True)
    return checks


def _assert_no_traceback(body: bytes) -> dict[str, Any]:
    assert b"Traceback (most recent" not in body and b'File "' not in body
    data: dict[str, Any] = json.loads(body)
    assert data["status"] == "unhealthy"
    assert data["checks"]["hangs"]["error"] == "timed out after 0.3s"
    assert data["checks"]['quote " ünï']["ok"] is True
    return data


@pytest.mark.timeout(60)
def test_wsgi_endpoint_on_real_server(release: threading.Event) -> None:
    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = make_server(
        "127.0.0.1", 0, make_wsgi_app(_failing_checks(release)), handler_class=Quiet
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/health"
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(url, timeout=30)
        assert info.value.code == 503
        assert info.value.headers["Content-Type"] == "application/json"
        _assert_no_traceback(info.value.read())
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(60)
async def test_asgi_endpoint(release: threading.Event) -> None:
    app = make_asgi_app(_failing_checks(release))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": "/health", "headers": []}, receive, send)
    assert sent[0]["status"] == 503
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    _assert_no_traceback(sent[1]["body"])
    # Lifespan events are acknowledged so the app can be mounted as a whole server.
    events = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    acks: list[dict[str, Any]] = []

    async def lifespan_receive() -> dict[str, Any]:
        return next(events)

    async def lifespan_send(message: dict[str, Any]) -> None:
        acks.append(message)

    await app({"type": "lifespan"}, lifespan_receive, lifespan_send)
    assert [a["type"] for a in acks] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.timeout(60)
@pytest.mark.extra("flask")
def test_flask_view(release: threading.Event) -> None:
    from flask import Flask

    app = Flask("health_test")
    app.add_url_rule("/health", view_func=flask_view(_failing_checks(release)))
    response = app.test_client().get("/health")
    assert response.status_code == 503
    assert response.headers["Cache-Control"] == "no-store"
    _assert_no_traceback(response.data)


_DJANGO_SCRIPT = """
import json, sys, threading
import django
from django.conf import settings

settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[1]}},
    ALLOWED_HOSTS=["*"],
)
django.setup()
from django.test import RequestFactory

from meterhub.health import HealthChecks, django_db_check, django_view

checks = HealthChecks(timeout=30, registry=None)
checks.add("django_db", django_db_check())
checks.add("missing_alias", django_db_check("nope"))
checks.add("hangs", threading.Event().wait, timeout=0.3)
response = django_view(checks)(RequestFactory().get("/health"))
print(json.dumps({"status": response.status_code, "type": response["Content-Type"],
                  "body": response.content.decode()}))
"""


@pytest.mark.timeout(120)
def test_django_view_and_db_check(tmp_path: Path) -> None:
    # A child process: Django settings are process-global and other test modules own them.
    pytest.importorskip("django")
    out = subprocess.run(
        [sys.executable, "-c", _DJANGO_SCRIPT, str(tmp_path / "dj.db")],
        capture_output=True,
        text=True,
        timeout=100,
        check=True,
    ).stdout
    result = json.loads(out.splitlines()[-1])
    assert result["status"] == 503 and result["type"] == "application/json"
    body = result["body"].encode()
    assert b"Traceback (most recent" not in body
    data = json.loads(body)
    assert data["checks"]["django_db"] == {**data["checks"]["django_db"], "ok": True}
    assert "nope" in data["checks"]["missing_alias"]["error"]
    assert data["checks"]["hangs"]["error"] == "timed out after 0.3s"


@pytest.mark.realserver
@pytest.mark.timeout(60)
def test_asgi_endpoint_under_uvicorn(release: threading.Event) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(make_asgi_app(_failing_checks(release)), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.started, timeout=30)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30)
        assert info.value.code == 503
        _assert_no_traceback(info.value.read())
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
