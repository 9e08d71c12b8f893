"""Per-request overhead of the web integrations versus the uninstrumented app and the
anchor exporter, in one run:

* Django: meterhub middleware vs django-prometheus (Before/After middleware);
* Flask: ``MeterHub(app)`` vs prometheus-flask-exporter (``group_by="url_rule"``, so both
  record route templates);
* Starlette: ``MeterHubMiddleware`` vs starlette_exporter.

Two ways of sending the requests, each giving the same table:

* ``direct``: the app is called as a WSGI/ASGI server calls it, so the base cost is the
  framework's alone and the instrumentation is a large part of what is measured;
* ``client``: through the frameworks' test clients, as the issue names them: Django's
  ``django.test.Client``, Flask's ``app.test_client()``, and for Starlette an
  ``httpx.AsyncClient`` over ``httpx.ASGITransport`` (Starlette's ``TestClient`` wraps the
  same transport in a thread portal that costs about 2 ms per request here, a hundred times
  the instrumentation). The client adds the same cost to all three variants.

The figure that matters is the *added* overhead (instrumented minus plain, microseconds
per request) and its ratio meterhub / anchor (target <= 0.5). Times are the CPU time of
this process, in short batches of requests; the three variants take turns batch by batch
(the order rotating), and each variant's figure is the median of its batches, so load from
other processes on a shared machine falls on all three alike.

The anchors register into prometheus_client registries: django-prometheus and
starlette_exporter into its global ``REGISTRY`` (harmless here: meterhub never reads it),
prometheus-flask-exporter into a private ``CollectorRegistry``.

Usage: ``python bench/bench_integrations.py [direct] [client]`` (both by default).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

Runner = Callable[[int], None]
Variants = tuple[Runner, Runner, Runner]  # plain, meterhub, anchor

TARGET = 0.5
BUDGET_S = 13.0  # CPU seconds of timed batches per comparison (six comparisons)
BATCH_S = 0.004  # about this long per batch


def _batch_size(run: Runner) -> int:
    t0 = time.process_time()
    run(20)
    per_request = max((time.process_time() - t0) / 20, 1e-6)
    return max(2, round(BATCH_S / per_request))


def _compare(name: str, variants: Variants) -> str:
    for run in variants:
        run(200)  # warm caches, create series
    batch = _batch_size(variants[0])
    gc.collect()
    gc.freeze()  # what exists now is never collected again: a collection stays cheap
    samples: list[list[float]] = [[], [], []]
    order = [0, 1, 2]
    spent = 0.0
    rounds = 0
    try:
        while spent < BUDGET_S or rounds < 30:
            for k in order[rounds % 3 :] + order[: rounds % 3]:
                gc.disable()  # as timeit does: a collection landing in one batch is not its cost
                t0 = time.process_time_ns()
                variants[k](batch)
                elapsed = time.process_time_ns() - t0
                gc.enable()
                samples[k].append(elapsed / batch / 1e3)
                spent += elapsed / 1e9
            gc.collect()
            rounds += 1
    finally:
        gc.enable()
        gc.unfreeze()
    plain, ours, anchor = (statistics.median(s) for s in samples)
    added_ours = ours - plain
    added_anchor = anchor - plain
    ratio = added_ours / added_anchor if added_anchor > 0 else float("nan")
    verdict = "ok" if ratio <= TARGET else "MISSED"
    return (
        f"{name:<34} {plain:>8.1f} {ours:>9.1f} {anchor:>8.1f} {added_ours:>9.1f} "
        f"{added_anchor:>9.1f} {ratio:>6.2f}x  {verdict}  ({rounds} x {batch} requests)"
    )


# -- WSGI drivers -------------------------------------------------------------------------


def _wsgi_runner(app: Any, path_format: str) -> Runner:
    """Call a WSGI app as a server would, cycling over 100 paths of one route."""
    from werkzeug.test import EnvironBuilder

    environs = [EnvironBuilder(path=path_format.format(i)).get_environ() for i in range(100)]

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    def run(n: int) -> None:
        for i in range(n):
            body = app(dict(environs[i % 100]), start_response)
            for _ in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()

    return run


# -- Django -------------------------------------------------------------------------------

_DJANGO_MIDDLEWARE: tuple[list[str], list[str], list[str]] = (
    [],
    ["meterhub.integrations.django.middleware.MeterHubMiddleware"],
    [
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ],
)


def _django_setup() -> None:
    import django
    from django.conf import settings
    from django.http import HttpResponse
    from django.urls import path

    def user(request: Any, pk: int) -> HttpResponse:
        return HttpResponse(f"user {pk}")

    urls = type("urls", (), {"urlpatterns": [path("users/<int:pk>/", user)]})
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["*"],
            SECRET_KEY="bench",
            ROOT_URLCONF=urls,
            INSTALLED_APPS=["meterhub.integrations.django", "django_prometheus"],
            DATABASES={},
            MIDDLEWARE=[],
            METERHUB={"DATABASE": False},
        )
        django.setup()


def _django_direct() -> Variants:
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    _django_setup()

    def handler(middleware: list[str]) -> WSGIHandler:
        with override_settings(MIDDLEWARE=middleware):
            return WSGIHandler()  # loads its middleware chain from the settings now

    plain, ours, anchor = (_wsgi_runner(handler(m), "/users/{}/") for m in _DJANGO_MIDDLEWARE)
    return plain, ours, anchor


def _django_client() -> Variants:
    from django.test import Client, override_settings

    _django_setup()

    def runner(middleware: list[str]) -> Runner:
        client = Client()
        with override_settings(MIDDLEWARE=middleware):
            client.handler.load_middleware()  # kept for the client's life

        def run(n: int) -> None:
            for i in range(n):
                client.get(f"/users/{i % 100}/")

        return run

    plain, ours, anchor = (runner(m) for m in _DJANGO_MIDDLEWARE)
    return plain, ours, anchor


# -- Flask --------------------------------------------------------------------------------


def _flask_apps() -> tuple[Any, Any, Any]:
    from flask import Flask
    from prometheus_client import CollectorRegistry
    from prometheus_flask_exporter import PrometheusMetrics  # type: ignore[import-untyped]

    from meterhub import Registry
    from meterhub.integrations.flask import MeterHub

    def app() -> Flask:
        a = Flask(__name__)

        @a.get("/users/<int:pk>")
        def user(pk: int) -> str:
            return f"user {pk}"

        return a

    plain, ours, anchor = app(), app(), app()
    MeterHub(ours, registry=Registry())
    PrometheusMetrics(anchor, registry=CollectorRegistry(), group_by="url_rule")
    return plain, ours, anchor


def _flask_direct() -> Variants:
    plain, ours, anchor = (_wsgi_runner(a, "/users/{}") for a in _flask_apps())
    return plain, ours, anchor


def _flask_client() -> Variants:
    def runner(app: Any) -> Runner:
        client = app.test_client()

        def run(n: int) -> None:
            for i in range(n):
                client.get(f"/users/{i % 100}").close()

        return run

    plain, ours, anchor = (runner(a) for a in _flask_apps())
    return plain, ours, anchor


# -- Starlette ----------------------------------------------------------------------------


def _starlette_apps() -> tuple[Any, Any, Any]:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette_exporter import PrometheusMiddleware

    from meterhub import Registry
    from meterhub.integrations.asgi import MeterHubMiddleware

    async def user(request: Any) -> PlainTextResponse:
        return PlainTextResponse(f"user {request.path_params['pk']}")

    def app(middleware: list[Middleware]) -> Starlette:
        return Starlette(routes=[Route("/users/{pk:int}", user)], middleware=middleware)

    return (
        app([]),
        app([Middleware(MeterHubMiddleware, registry=Registry())]),
        app([Middleware(PrometheusMiddleware, group_paths=True)]),
    )


_LOOP: asyncio.AbstractEventLoop | None = None


def _loop() -> asyncio.AbstractEventLoop:
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
    return _LOOP


def _starlette_direct() -> Variants:
    loop = _loop()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    def runner(a: Any) -> Runner:
        async def many(n: int) -> None:
            for i in range(n):
                path = f"/users/{i % 100}"
                scope = {
                    "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
                    "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
                    "raw_path": path.encode(), "root_path": "", "query_string": b"",
                    "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1),
                    "server": ("127.0.0.1", 80),
                }  # fmt: skip
                await a(scope, receive, send)

        def run(n: int) -> None:
            loop.run_until_complete(many(n))

        return run

    plain, ours, anchor = (runner(a) for a in _starlette_apps())
    return plain, ours, anchor


def _starlette_client() -> Variants:
    import httpx

    loop = _loop()

    def runner(a: Any) -> Runner:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://bench")

        async def many(n: int) -> None:
            for i in range(n):
                await client.get(f"/users/{i % 100}")

        def run(n: int) -> None:
            loop.run_until_complete(many(n))

        return run

    plain, ours, anchor = (runner(a) for a in _starlette_apps())
    return plain, ours, anchor


COMPARISONS: dict[str, tuple[tuple[str, Callable[[], Variants]], ...]] = {
    "direct": (
        ("Django vs django-prometheus", _django_direct),
        ("Flask vs prometheus-flask-exporter", _flask_direct),
        ("Starlette vs starlette_exporter", _starlette_direct),
    ),
    "client": (
        ("Django vs django-prometheus", _django_client),
        ("Flask vs prometheus-flask-exporter", _flask_client),
        ("Starlette vs starlette_exporter", _starlette_client),
    ),
}

TITLES = {
    "direct": "called as a server calls the app",
    "client": "through the test clients (Django Client, Flask test_client, httpx ASGITransport)",
}


def main(argv: list[str] | None = None) -> None:
    warnings.simplefilter("ignore")
    modes = [m for m in (argv or []) if m in COMPARISONS] or list(COMPARISONS)
    for mode in modes:
        print(f"\n{mode}: {TITLES[mode]}; target: ratio <= {TARGET}")
        print(
            f"{'per-request, microseconds (median)':<34} {'plain':>8} {'meterhub':>9} "
            f"{'anchor':>8} {'+meterhub':>9} {'+anchor':>9} {'ratio':>7}"
        )
        for name, build in COMPARISONS[mode]:
            try:
                variants = build()
            except ImportError as exc:
                print(f"{name:<34} skipped: {exc}")
                continue
            print(_compare(name, variants), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
