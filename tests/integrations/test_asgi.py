"""The pure ASGI middleware against real Starlette and FastAPI apps."""

from __future__ import annotations

import asyncio
import random
import string
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")  # starlette's TestClient

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from meterhub import Hub, Registry
from meterhub.integrations.asgi import MeterHubMiddleware, lifespan, metrics_app
from meterhub.integrations.http_metrics import (
    OTHER_METHOD,
    STANDARD_METHODS,
    UNMATCHED_ROUTE,
    HttpServerMetrics,
)


def requests(reg: Registry, method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return reg.get_sample_value("http_server_requests_total", labels) or 0.0


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def boom(request: Request) -> Response:
    raise ZeroDivisionError("boom")


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hi")
    await websocket.close()


def starlette_app(reg: Registry, **options: Any) -> Starlette:
    inner = Starlette(routes=[Route("/users/{id:int}", ok)])
    return Starlette(
        routes=[
            Route("/items/{item_id}", ok, methods=["GET"]),
            Route("/boom", boom),
            Mount("/api/{version}", app=inner),
            Mount(
                "/admin",
                routes=[
                    Route("/pages/{slug:str}", ok),
                    Mount("/deep", routes=[Route("/x/{n:int}", ok)]),
                ],
            ),
            Mount("/static", app=PlainTextResponse("static")),
            WebSocketRoute("/ws", ws),
            Route("/metrics", metrics_app(reg)),
        ],
        middleware=[Middleware(MeterHubMiddleware, registry=reg, **options)],
    )


@pytest.fixture
def client(registry: Registry) -> TestClient:
    return TestClient(starlette_app(registry))


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/items/42", "/items/{item_id}"),
        ("/api/v1/users/7", "/api/{version}/users/{id}"),
        ("/admin/pages/hello", "/admin/pages/{slug}"),
        ("/admin/deep/x/3", "/admin/deep/x/{n}"),
        ("/static/css/app.css", "/static/{path}"),
    ],
)
def test_route_templates_through_mounts(
    client: TestClient, registry: Registry, path: str, route: str
) -> None:
    assert client.get(path).status_code == 200
    assert requests(registry, "GET", route, 200) == 1.0


def test_unmatched_and_method_not_allowed(client: TestClient, registry: Registry) -> None:
    assert client.get("/nope/1").status_code == 404
    assert client.get("/api/v1/users/notanint").status_code == 404
    assert client.post("/items/1").status_code == 405
    assert requests(registry, "GET", UNMATCHED_ROUTE, 404) == 2.0
    assert requests(registry, "POST", "/items/{item_id}", 405) == 1.0


def test_exception_recorded_as_500_and_reraised(client: TestClient, registry: Registry) -> None:
    with pytest.raises(ZeroDivisionError):
        client.get("/boom")
    assert requests(registry, "GET", "/boom", 500) == 1.0
    labels = {"method": "GET", "route": "/boom", "exception": "ZeroDivisionError"}
    assert registry.get_sample_value("http_server_exceptions_total", labels) == 1.0
    assert registry.get_sample_value("http_server_requests_in_progress", {"method": "GET"}) == 0


def test_websockets_are_not_counted(client: TestClient, registry: Registry) -> None:
    with client.websocket_connect("/ws") as sock:
        assert sock.receive_text() == "hi"
    assert not any(
        s.name == "http_server_requests_total" for f in registry.collect() for s in f.samples
    )


def test_metrics_path_is_excluded_and_serves_text(client: TestClient, registry: Registry) -> None:
    client.get("/items/1")
    body = client.get("/metrics").text
    assert (
        'http_server_requests_total{method="GET",route="/items/{item_id}",status="200"} 1' in body
    )
    assert "/metrics" not in {s.labels.get("route") for f in registry.collect() for s in f.samples}


def test_fastapi_included_routers_and_mounted_apps(registry: Registry) -> None:
    app = FastAPI()
    app.add_middleware(MeterHubMiddleware, registry=registry)
    router = APIRouter(prefix="/items")

    @router.get("/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.include_router(router, prefix="/v2")
    sub = FastAPI()

    @sub.get("/s/{key}")
    def sub_item(key: str) -> dict[str, str]:
        return {"k": key}

    app.mount("/sub", sub)
    c = TestClient(app)
    assert c.get("/v2/items/5").status_code == 200
    assert c.get("/sub/s/abc").status_code == 200
    assert c.get("/v2/items/notint").status_code == 422
    assert requests(registry, "GET", "/v2/items/{item_id}", 200) == 1.0
    assert requests(registry, "GET", "/v2/items/{item_id}", 422) == 1.0
    assert requests(registry, "GET", "/sub/s/{key}", 200) == 1.0


@pytest.mark.parametrize(
    ("naming", "method", "route", "status", "duration"),
    [
        ("meterhub", "method", "route", "status", "http_server_request_duration_seconds"),
        ("otel", "http.request.method", "http.route", "http.response.status_code",
         "http.server.request.duration_seconds"),
    ],
)  # fmt: skip
def test_latency_by_outcome_in_both_namings(
    registry: Registry, naming: str, method: str, route: str, status: str, duration: str
) -> None:
    client = TestClient(starlette_app(registry, naming=naming), raise_server_exceptions=False)
    assert client.get("/items/7").status_code == 200
    assert client.get("/boom").status_code == 500
    for path, code in (("/items/{item_id}", "200"), ("/boom", "500")):
        labels = {method: "GET", route: path, status: code}
        assert registry.get_sample_value(f"{duration}_count", labels) == 1.0, (path, code)


def test_streaming_timed_to_the_last_chunk(registry: Registry) -> None:
    seen_during_stream: list[float] = []

    async def stream(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"a" * 10
            await asyncio.sleep(0.05)
            seen_during_stream.append(requests(registry, "GET", "/stream", 200))
            yield b"b" * 5

        return StreamingResponse(body())

    app = Starlette(
        routes=[Route("/stream", stream)],
        middleware=[Middleware(MeterHubMiddleware, registry=registry)],
    )
    assert TestClient(app).get("/stream").content == b"a" * 10 + b"b" * 5
    assert seen_during_stream == [0.0]  # not recorded before the last chunk
    assert requests(registry, "GET", "/stream", 200) == 1.0
    labels = {"method": "GET", "route": "/stream"}
    assert registry.get_sample_value("http_server_response_size_bytes_sum", labels) == 15.0
    # Lower bound only: the sleep between chunks is inside the measured duration.
    timed = {**labels, "status": "200"}  # the histogram splits latency by outcome
    total = registry.get_sample_value("http_server_request_duration_seconds_sum", timed)
    assert total is not None and total >= 0.05


def test_background_tasks_not_in_latency(registry: Registry) -> None:
    seen_in_task: list[float] = []

    def task() -> None:
        # The request is already recorded when its background task runs.
        seen_in_task.append(requests(registry, "POST", "/job", 202))

    async def job(request: Request) -> Response:
        return PlainTextResponse("queued", status_code=202, background=BackgroundTask(task))

    app = Starlette(
        routes=[Route("/job", job, methods=["POST"])],
        middleware=[Middleware(MeterHubMiddleware, registry=registry)],
    )
    assert TestClient(app).post("/job", content=b"x" * 123).status_code == 202
    assert seen_in_task == [1.0]
    labels = {"method": "POST", "route": "/job"}
    assert registry.get_sample_value("http_server_request_size_bytes_sum", labels) == 123.0


async def _drive(
    app: Any, method: str, path: str, *, disconnect: bool = False, spec: str = "2.4"
) -> list[dict[str, Any]]:
    """Run one HTTP request through *app* as an ASGI server would."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": spec}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode("utf-8",
        "surrogateescape"), "root_path": "", "query_string": b"", "headers": [],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"", "more_body": False}
        if disconnect:
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if disconnect and sent and spec == "2.4":
            raise OSError("client disconnected")  # what uvicorn does under spec 2.4
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("spec", ["2.3", "2.4"])
async def test_client_disconnect_recorded_as_499(registry: Registry, spec: str) -> None:
    async def forever(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"first"
            await asyncio.Event().wait()
            yield b"never"

        return StreamingResponse(body())

    app = Starlette(
        routes=[Route("/forever", forever)],
        middleware=[Middleware(MeterHubMiddleware, registry=registry)],
    )
    try:
        await asyncio.wait_for(_drive(app, "GET", "/forever", disconnect=True, spec=spec), 10)
    except Exception as exc:  # spec 2.4: Starlette raises ClientDisconnect to the server
        assert type(exc).__name__ == "ClientDisconnect"
    assert requests(registry, "GET", "/forever", 499) == 1.0
    assert registry.get_sample_value("http_server_requests_in_progress", {"method": "GET"}) == 0


async def test_raw_asgi_app_is_unmatched(registry: Registry) -> None:
    async def raw(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = MeterHubMiddleware(raw, registry=registry)
    await _drive(app, "GET", "/anything/at/all")
    assert requests(registry, "GET", UNMATCHED_ROUTE, 204) == 1.0


async def test_app_that_never_answers_is_500(registry: Registry) -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    await _drive(MeterHubMiddleware(silent, registry=registry), "GET", "/")
    assert requests(registry, "GET", UNMATCHED_ROUTE, 500) == 1.0


async def test_custom_route_resolver(registry: Registry) -> None:
    async def raw(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    app = MeterHubMiddleware(raw, registry=registry, route_resolver=lambda scope: "/custom")
    await _drive(app, "GET", "/whatever")
    assert requests(registry, "GET", "/custom", 200) == 1.0


async def test_random_paths_and_methods_keep_series_bounded(registry: Registry) -> None:
    app = starlette_app(registry)
    rng = random.Random(1234)
    methods = [*STANDARD_METHODS, "BREW", "PROPFIND", "get", "X\nY", "\u00e9", "A" * 300]
    alphabet = string.ascii_letters + string.digits + "/%.-_~\u00e9\u4e2d\"\\'"
    for _ in range(10_000):
        path = "/" + "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        await _drive(app, rng.choice(methods), path)
    series = [
        dict(s.labels)
        for f in registry.collect()
        if f.name == "http_server_requests"
        for s in f.samples
        if s.name == "http_server_requests_total"
    ]
    routes = {s["route"] for s in series}
    assert {s["method"] for s in series} <= STANDARD_METHODS | {OTHER_METHOD}
    assert routes <= {UNMATCHED_ROUTE, "/items/{item_id}", "/static/{path}", "/boom"}
    # routes x methods x statuses, plus the unmatched and OTHER values
    assert len(series) <= (len(routes) + 1) * (len(STANDARD_METHODS) + 1) * 3
    total = sum(
        s.value
        for f in registry.collect()
        for s in f.samples
        if s.name == "http_server_requests_total"
    )
    assert total == 10_000


def test_bad_options(registry: Registry) -> None:
    async def raw(scope: Any, receive: Any, send: Any) -> None: ...

    with pytest.raises(TypeError):
        MeterHubMiddleware(raw, metrics=HttpServerMetrics(registry=registry), registry=registry)
    with pytest.raises(TypeError):
        MeterHubMiddleware(raw, registry=registry, exclude_paths="/metrics")
    with pytest.raises(TypeError):
        MeterHubMiddleware(raw, registry=registry, no_such_option=True)


async def test_lifespan_runs_hub_and_inner(registry: Registry) -> None:
    events: list[str] = []

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def inner(app: Any) -> AsyncIterator[dict[str, str]]:
        events.append("inner-start")
        yield {"db": "up"}
        events.append("inner-stop")

    app = Starlette(
        routes=[Route("/", ok)],
        lifespan=lifespan(Hub(registry=registry), inner=inner),
        middleware=[Middleware(MeterHubMiddleware, registry=registry)],
    )
    with TestClient(app) as c:
        assert c.get("/").status_code == 200
        assert events == ["inner-start"]
    assert events == ["inner-start", "inner-stop"]


async def test_lifespan_starts_and_stops_an_operation_log(
    registry: Registry, tmp_path: Any
) -> None:
    from meterhub.oplog import OperationLog, summarize

    log = OperationLog(tmp_path / "oplog", registry=registry)

    async def index(request: Request) -> Response:
        await log.record_operation("http", "index", 1.5)
        return PlainTextResponse("running" if log.is_running else "stopped")

    app = Starlette(
        routes=[Route("/", index)], lifespan=lifespan(Hub(registry=registry), oplog=log)
    )
    with TestClient(app) as c:
        assert c.get("/").text == "running"
    assert not log.is_running
    # stop() flushed the buffered record to a batch file.
    assert summarize(tmp_path / "oplog")[("http", "index")].count == 1


def test_metrics_app_with_basic_auth(registry: Registry) -> None:
    import base64

    app = Starlette(
        routes=[Route("/metrics", metrics_app(registry, basic_auth=("prom", "pw")))],
        middleware=[Middleware(MeterHubMiddleware, registry=registry)],
    )
    c = TestClient(app)
    assert c.get("/metrics").status_code == 401
    good = "Basic " + base64.b64encode(b"prom:pw").decode()
    bad = "Basic " + base64.b64encode(b"prom:nope").decode()
    assert c.get("/metrics", headers={"Authorization": bad}).status_code == 401
    assert c.get("/metrics", headers={"Authorization": good}).status_code == 200


async def test_failing_route_resolver_never_breaks_the_request(
    registry: Registry, lenient: None
) -> None:
    async def raw(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    def broken(scope: Any) -> str:
        raise RuntimeError("resolver bug")

    app = MeterHubMiddleware(raw, registry=registry, route_resolver=broken)
    sent = await _drive(app, "GET", "/x")
    assert sent[0]["status"] == 200
    assert requests(registry, "GET", UNMATCHED_ROUTE, 200) == 1.0
    assert registry.self_metrics.errors("route_resolver", "internal") == 1.0
