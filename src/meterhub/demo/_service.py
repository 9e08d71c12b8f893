"""The simulated service's servers: the alert-intake WSGI app, a fake Jira, a load generator.

Everything listens on 127.0.0.1 and runs in daemon threads of the demo process; the
workers that process alerts are separate processes (see :mod:`._workers`).
"""

from __future__ import annotations

import json
import random
import socketserver
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from meterhub import REGISTRY, generate_latest

from . import _metrics as m

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the demo shows metrics, not logs
        pass


def _metrics_app() -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    try:
        from meterhub.export.http import make_wsgi_app
    except ImportError:  # the exporter is optional: render with the core renderer
        from meterhub import CONTENT_TYPE_PLAIN_0_0_4

        def fallback(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
            body = generate_latest(REGISTRY)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)])
            return [body]

        return fallback
    app: Callable[[Environ, StartResponse], Iterable[bytes]] = make_wsgi_app(REGISTRY)
    return app


class IntakeApp:
    """``POST /alerts`` (queue an alert), ``POST /events`` (a domain event), ``GET /metrics``."""

    def __init__(self, tasks: Any, router: Any | None) -> None:
        self.tasks = tasks
        self.router = router
        self.metrics_app = _metrics_app()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return self.metrics_app(environ, start_response)
        method = m.http.begin(environ.get("REQUEST_METHOD", "GET"))
        started = time.perf_counter()
        route, status, body = self._dispatch(environ, path)
        m.http.end(method, route, status, time.perf_counter() - started)
        reason = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found"}[status]
        start_response(f"{status} {reason}", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    def _dispatch(self, environ: Environ, path: str) -> tuple[str, int, dict[str, Any]]:
        if environ.get("REQUEST_METHOD") != "POST" or path not in ("/alerts", "/events"):
            return "<unmatched>", 404, {"error": "not found"}
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            payload = json.loads(environ["wsgi.input"].read(length) or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("payload must be an object")
        except ValueError as exc:
            return path, 400, {"error": str(exc)}
        if path == "/alerts":
            severity = payload.get("severity")
            if severity not in m.SEVERITIES:
                return path, 400, {"error": f"severity must be one of {list(m.SEVERITIES)}"}
            m.alerts_received.labels(severity).inc()
            m.queue_depth.inc()
            self.tasks.put({"severity": severity, "received": time.time()})
            return path, 202, {"queued": True}
        event_type = payload.get("type")
        if event_type not in ("user_logged_in", "game_completed"):
            return path, 400, {"error": "type must be user_logged_in or game_completed"}
        if self.router is not None:
            self.router.track_event(
                str(payload.get("user", "anonymous")), event_type, payload.get("data", {})
            )
        return path, 202, {"recorded": self.router is not None}


def serve_wsgi(app: Any, port: int) -> _ThreadingWSGIServer:
    """Serve *app* on 127.0.0.1:*port* (0: a free port) in a daemon thread."""
    server = make_server(
        "127.0.0.1", port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="demo-intake", daemon=True).start()
    assert isinstance(server, _ThreadingWSGIServer)
    return server


class FakeJira(ThreadingHTTPServer):
    """A Jira stand-in that fails a fixed share of ``create issue`` calls (503).

    The share is exact and deterministic: call *n* fails when ``floor(n * rate)`` steps.
    """

    daemon_threads = True

    def __init__(self, failure_rate: float) -> None:
        super().__init__(("127.0.0.1", 0), _JiraHandler)
        self.failure_rate = failure_rate
        self.calls = 0
        self.failures = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, name="demo-jira", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/rest/api/2/issue"

    def decide(self) -> bool:
        with self.lock:
            n = self.calls
            self.calls += 1
            fail = int((n + 1) * self.failure_rate) > int(n * self.failure_rate)
            self.failures += fail
            return not fail


class _JiraHandler(BaseHTTPRequestHandler):
    server: FakeJira

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ok = self.server.decide()
        status = 201 if ok else 503
        body = json.dumps({"key": f"OPS-{self.server.calls}"} if ok else {"error": "busy"})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LoadGenerator(threading.Thread):
    """Posts alerts and domain events to the intake app until stopped."""

    def __init__(self, base_url: str, rate: float = 20.0, seed: int = 7) -> None:
        super().__init__(name="demo-load", daemon=True)
        self.base_url = base_url
        self.pause = 1.0 / rate if rate > 0 else 0.0
        self.random = random.Random(seed)
        self.stopping = threading.Event()
        self.sent = {"alerts": 0, "events": 0, "errors": 0}

    def run(self) -> None:
        if self.pause <= 0:  # rate 0: the user drives the intake API
            return
        rnd = self.random
        while not self.stopping.wait(self.pause):
            severity = rnd.choices(m.SEVERITIES, weights=(1, 3, 4, 2))[0]
            self._post("/alerts", {"severity": severity}, "alerts")
            if rnd.random() < 0.4:
                user = f"user{rnd.randrange(50)}"
                if rnd.random() < 0.6:
                    data: dict[str, Any] = {"auth_method": rnd.choice(["password", "sso"])}
                    self._post("/events", {"type": "user_logged_in", "user": user, "data": data})
                else:
                    data = {
                        "game_mode": rnd.choice(["solo", "duel", "team"]),
                        "result": rnd.choice(["win", "loss"]),
                        "duration": round(rnd.uniform(5, 600), 1),
                    }
                    self._post("/events", {"type": "game_completed", "user": user, "data": data})

    def _post(self, path: str, payload: dict[str, Any], kind: str = "events") -> None:
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                resp.read()
            self.sent[kind] += 1
        except OSError:
            self.sent["errors"] += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)
