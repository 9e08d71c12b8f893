"""The Flask extension against real Flask apps (test client)."""

from __future__ import annotations

import gc
import gzip
import random
import string
import weakref
from typing import Any

import pytest

pytest.importorskip("flask")

from flask import Blueprint, Flask, Response, abort, request, stream_with_context

from meterhub import Registry
from meterhub.integrations.flask import MeterHub
from meterhub.integrations.http_metrics import (
    OTHER_METHOD,
    STANDARD_METHODS,
    UNMATCHED_ROUTE,
    HttpServerMetrics,
)


def requests(reg: Registry, method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return reg.get_sample_value("http_server_requests_total", labels) or 0.0


def create_app(metrics: MeterHub, *, testing: bool = False) -> Flask:
    """An app factory, as real projects write them."""
    app = Flask(__name__)
    app.testing = testing

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> str:
        return f"user {user_id}"

    @app.route("/boom", methods=["GET", "POST"])
    def boom() -> str:
        raise ZeroDivisionError("boom")

    @app.get("/teapot")
    def teapot() -> str:
        abort(418)

    @app.get("/stream")
    def stream() -> Response:
        def body() -> Any:
            yield b"abc"
            yield b"defg"

        return Response(body())

    bp = Blueprint("api", __name__, url_prefix="/api/<version>")

    @bp.get("/items/<path:rest>")
    def item(version: str, rest: str) -> str:
        return rest

    app.register_blueprint(bp)
    metrics.init_app(app)
    return app


@pytest.fixture
def metrics(registry: Registry) -> MeterHub:
    return MeterHub(registry=registry)


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
    c = create_app(MeterHub(registry=registry, naming=naming)).test_client()
    assert c.get("/users/1").status_code == 200
    assert c.get("/teapot").status_code == 418
    assert c.get("/boom").status_code == 500
    for path, code in (("/users/{user_id}", "200"), ("/teapot", "418"), ("/boom", "500")):
        labels = {method: "GET", route: path, status: code}
        assert registry.get_sample_value(f"{duration}_count", labels) == 1.0, (path, code)


def test_route_templates(metrics: MeterHub, registry: Registry) -> None:
    c = create_app(metrics).test_client()
    assert c.get("/users/1").data == b"user 1"
    assert c.get("/users/2").status_code == 200
    assert c.get("/api/v1/items/a/b/c").data == b"a/b/c"
    assert requests(registry, "GET", "/users/{user_id}", 200) == 2.0
    assert requests(registry, "GET", "/api/{version}/items/{rest}", 200) == 1.0


def test_unmatched_and_http_errors(metrics: MeterHub, registry: Registry) -> None:
    c = create_app(metrics).test_client()
    assert c.get("/nope/42").status_code == 404
    assert c.get("/users/notint").status_code == 404
    assert c.post("/users/1").status_code == 405
    assert c.get("/teapot").status_code == 418
    assert requests(registry, "GET", UNMATCHED_ROUTE, 404) == 2.0
    assert requests(registry, "POST", "/users/{user_id}", 405) == 1.0
    assert requests(registry, "GET", "/teapot", 418) == 1.0


def test_handled_exception_is_500_with_its_type(metrics: MeterHub, registry: Registry) -> None:
    c = create_app(metrics, testing=False).test_client()
    assert c.get("/boom").status_code == 500
    assert requests(registry, "GET", "/boom", 500) == 1.0
    labels = {"method": "GET", "route": "/boom", "exception": "ZeroDivisionError"}
    assert registry.get_sample_value("http_server_exceptions_total", labels) == 1.0


def test_propagated_exception_is_500_and_reraised(metrics: MeterHub, registry: Registry) -> None:
    c = create_app(metrics, testing=True).test_client()
    with pytest.raises(ZeroDivisionError):
        c.post("/boom", data=b"x" * 50)
    assert requests(registry, "POST", "/boom", 500) == 1.0
    labels = {"method": "POST", "route": "/boom", "exception": "ZeroDivisionError"}
    assert registry.get_sample_value("http_server_exceptions_total", labels) == 1.0
    size = {"method": "POST", "route": "/boom"}
    assert registry.get_sample_value("http_server_request_size_bytes_sum", size) == 50.0
    assert registry.get_sample_value("http_server_requests_in_progress", {"method": "POST"}) == 0


def test_streamed_body_recorded_when_fully_sent(metrics: MeterHub, registry: Registry) -> None:
    c = create_app(metrics).test_client()
    response = c.get("/stream")
    assert response.data == b"abcdefg"
    labels = {"method": "GET", "route": "/stream"}
    assert registry.get_sample_value("http_server_response_size_bytes_sum", labels) == 7.0
    assert requests(registry, "GET", "/stream", 200) == 1.0


def test_metrics_route_serves_text_and_is_excluded(metrics: MeterHub, registry: Registry) -> None:
    c = create_app(metrics).test_client()
    c.get("/users/1").close()
    response = c.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.data.decode()
    assert (
        'http_server_requests_total{method="GET",route="/users/{user_id}",status="200"} 1' in text
    )
    assert "/metrics" not in {s.labels.get("route") for f in registry.collect() for s in f.samples}


def test_app_created_twice_and_factory_pattern(registry: Registry) -> None:
    ext = MeterHub(registry=registry)
    first = create_app(ext).test_client()
    second = create_app(ext).test_client()
    first.get("/users/1").close()
    second.get("/users/2").close()
    # A second extension on the same registry re-uses the metrics (no duplicate error).
    third = create_app(MeterHub(registry=registry)).test_client()
    third.get("/users/3").close()
    assert requests(registry, "GET", "/users/{user_id}", 200) == 3.0


def test_init_app_twice_on_one_app_instruments_once(registry: Registry) -> None:
    ext = MeterHub(registry=registry)
    app = create_app(ext)
    ext.init_app(app)
    app.test_client().get("/users/1").close()
    assert requests(registry, "GET", "/users/{user_id}", 200) == 1.0


def test_no_metrics_route(registry: Registry) -> None:
    c = create_app(MeterHub(registry=registry, metrics_path=None)).test_client()
    assert c.get("/metrics").status_code == 404


def test_shared_metrics_object(registry: Registry) -> None:
    shared = HttpServerMetrics(registry=registry, exclude_paths=["/metrics", "/users/*"])
    c = create_app(MeterHub(metrics=shared)).test_client()
    c.get("/users/1").close()
    c.get("/teapot").close()
    assert requests(registry, "GET", "/users/{user_id}", 200) == 0.0
    assert requests(registry, "GET", "/teapot", 418) == 1.0


@pytest.mark.parametrize("bad", ["metrics", "", 5])
def test_bad_metrics_path(registry: Registry, bad: Any) -> None:
    with pytest.raises(ValueError):
        MeterHub(registry=registry, metrics_path=bad)


def test_bad_option_combinations(registry: Registry) -> None:
    with pytest.raises(TypeError):
        MeterHub(metrics=HttpServerMetrics(registry=registry), registry=registry)
    with pytest.raises(TypeError):
        MeterHub(registry=registry, not_an_option=1)


def test_recording_failure_never_breaks_the_request(
    metrics: MeterHub, registry: Registry, lenient: None
) -> None:
    c = create_app(metrics).test_client()
    metrics.metrics.duration = None  # type: ignore[assignment]  # a broken instrument
    metrics.metrics._cache.clear()
    assert c.get("/users/1").data == b"user 1"
    assert registry.self_metrics.errors("http_server_requests", "internal") == 1.0


def test_random_paths_and_methods_keep_series_bounded(
    metrics: MeterHub, registry: Registry
) -> None:
    c = create_app(metrics).test_client()
    rng = random.Random(99)
    methods = [*STANDARD_METHODS, "BREW", "PROPFIND", "get", "\u00e9", "A" * 200]
    alphabet = string.ascii_letters + string.digits + "%.-_~\u00e9\"'"

    def segment() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))

    for _ in range(2_000):  # the 10,000-request run is in test_asgi and tests/e2e
        path = "/" + "/".join(segment() for _ in range(rng.randint(1, 4)))
        c.open(path, method=rng.choice(methods), buffered=True).close()
    series = [
        dict(s.labels)
        for f in registry.collect()
        if f.name == "http_server_requests"
        for s in f.samples
        if s.name == "http_server_requests_total"
    ]
    assert {s["method"] for s in series} <= STANDARD_METHODS | {OTHER_METHOD}
    assert {s["route"] for s in series} <= {UNMATCHED_ROUTE, "/users/{user_id}", "/stream"}
    assert len(series) <= 3 * (len(STANDARD_METHODS) + 1) * 3
    assert (
        sum(
            s.value
            for f in registry.collect()
            for s in f.samples
            if s.name == "http_server_requests_total"
        )
        == 2_000
    )


def test_metrics_route_with_bearer_token(registry: Registry) -> None:
    c = create_app(MeterHub(registry=registry, bearer_token="t0ken")).test_client()
    denied = c.get("/metrics")
    assert denied.status_code == 401
    assert "Bearer" in denied.headers["WWW-Authenticate"]
    assert c.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = c.get("/metrics", headers={"Authorization": "Bearer t0ken"})
    assert ok.status_code == 200 and b"# TYPE" in ok.data


def test_metrics_route_head_and_gzip_answer_as_the_endpoint(registry: Registry) -> None:
    c = create_app(MeterHub(registry=registry)).test_client()
    full = c.get("/metrics")
    head = c.head("/metrics")
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == full.headers["Content-Length"]
    zipped = c.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.data).startswith(b"# HELP")


def test_metrics_route_offers_both_auth_challenges(registry: Registry) -> None:
    metrics = MeterHub(registry=registry, bearer_token="t", basic_auth=("u", "p"))
    denied = create_app(metrics).test_client().get("/metrics")
    assert denied.status_code == 401
    assert sorted(denied.headers.getlist("WWW-Authenticate")) == [
        'Basic realm="metrics", charset="UTF-8"',
        'Bearer realm="metrics"',
    ]


def test_bad_credentials_rejected_at_definition(registry: Registry) -> None:
    with pytest.raises(ValueError):
        MeterHub(registry=registry, bearer_token="")
    with pytest.raises(ValueError):
        MeterHub(registry=registry, basic_auth=("us:er", "pw"))


def test_duration_carries_the_trace_id_exemplar(metrics: MeterHub, registry: Registry) -> None:
    trace = pytest.importorskip("opentelemetry.trace")
    ctx = trace.SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=trace.TraceFlags(1),
    )
    c = create_app(metrics).test_client()
    with trace.use_span(trace.NonRecordingSpan(ctx)):
        assert c.get("/users/5").status_code == 200
    exemplars = [
        s.exemplar
        for f in registry.collect()
        if f.name == "http_server_request_duration_seconds"
        for s in f.samples
        if s.exemplar is not None
    ]
    assert len(exemplars) == 1
    assert exemplars[0].labels["trace_id"] == "0af7651916cd43dd8448eb211c80319c"


def _call(app: Flask, path: str, method: str = "GET") -> tuple[dict[str, Any], bytes]:
    """Call *app* as a WSGI server does; returns the environ it saw and the body sent."""
    from werkzeug.test import EnvironBuilder

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return lambda data: None

    environ = EnvironBuilder(path=path, method=method).get_environ()
    body = app(environ, start_response)
    try:
        data = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return environ, data


def test_stream_with_context_and_a_failing_stream(metrics: MeterHub, registry: Registry) -> None:
    app = create_app(metrics)

    @app.get("/ctx-stream/<name>")
    def ctx_stream(name: str) -> Response:
        def body() -> Any:
            yield request.path.encode()  # the request context is still there
            yield b"!"

        return Response(stream_with_context(body()))

    @app.get("/broken-stream")
    def broken_stream() -> Response:
        def body() -> Any:
            yield b"ab"
            raise KeyError("half way")

        return Response(body())

    assert _call(app, "/ctx-stream/x")[1] == b"/ctx-stream/x!"
    labels = {"method": "GET", "route": "/ctx-stream/{name}"}
    assert registry.get_sample_value("http_server_response_size_bytes_sum", labels) == 14.0
    assert requests(registry, "GET", "/ctx-stream/{name}", 200) == 1.0
    with pytest.raises(KeyError):
        _call(app, "/broken-stream")
    assert requests(registry, "GET", "/broken-stream", 500) == 1.0
    exc = {"method": "GET", "route": "/broken-stream", "exception": "KeyError"}
    assert registry.get_sample_value("http_server_exceptions_total", exc) == 1.0
    assert registry.get_sample_value("http_server_requests_in_progress", {"method": "GET"}) == 0


def test_middleware_copying_the_environ_inside_the_wrapper(registry: Registry) -> None:
    """A middleware between the extension and Flask that passes on a copy of the environ."""
    app = Flask(__name__)

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> str:
        return "u"

    @app.get("/boom")
    def boom() -> str:
        raise ZeroDivisionError

    inner = app.wsgi_app
    app.wsgi_app = lambda environ, start_response: inner(dict(environ), start_response)  # type: ignore[method-assign]
    MeterHub(app, registry=registry)
    c = app.test_client()
    assert c.get("/users/7").status_code == 200
    assert c.get("/boom").status_code == 500
    assert requests(registry, "GET", "/users/{user_id}", 200) == 1.0
    exc = {"method": "GET", "route": "/boom", "exception": "ZeroDivisionError"}
    assert registry.get_sample_value("http_server_exceptions_total", exc) == 1.0


def test_nothing_left_in_the_environ_and_no_reference_cycle(
    metrics: MeterHub, registry: Registry
) -> None:
    """Flask breaks the request's own cycle at the end; the extension must not add one (the
    request would then wait for the garbage collector)."""
    app = create_app(metrics)
    seen: list[weakref.ref[Any]] = []

    @app.get("/weak")
    def weak() -> str:
        seen.append(weakref.ref(request._get_current_object()))  # type: ignore[attr-defined]
        return "w"

    gc.collect()
    gc.disable()
    try:
        environ, data = _call(app, "/weak")
        assert data == b"w"
        assert not any(key.startswith("meterhub") for key in environ)
        del environ
        assert seen[0]() is None
    finally:
        gc.enable()
    assert requests(registry, "GET", "/weak", 200) == 1.0


def test_test_request_context_and_head(metrics: MeterHub, registry: Registry) -> None:
    app = create_app(metrics)
    with app.test_request_context("/users/1"):
        assert request.path == "/users/1"
    assert requests(registry, "GET", "/users/{user_id}", 200) == 0.0
    response = app.test_client().head("/users/1")
    assert response.status_code == 200 and response.data == b""
    assert requests(registry, "HEAD", "/users/{user_id}", 200) == 1.0


def test_trailing_slash_and_prefix_exclusions(registry: Registry) -> None:
    shared = HttpServerMetrics(registry=registry, exclude_paths=["/metrics", "/static/*"])
    for exclusions in (shared, HttpServerMetrics(registry=registry)):
        check = exclusions.path_filter()
        for path in ("/metrics", "/metrics/", "/metrics//", "/static/a.css", "/users/1", "/"):
            assert check(path) == exclusions.excluded(path), path
    c = create_app(MeterHub(metrics=shared)).test_client()
    c.get("/metrics/").close()
    c.get("/static/x.css").close()
    assert {s.labels.get("route") for f in registry.collect() for s in f.samples} <= {None}


def test_an_instrumented_app_is_freed() -> None:
    """The exception signal holds its sender weakly: apps made per test are not kept."""

    def make() -> weakref.ref[Flask]:
        app = Flask("freed")
        # pytest keeps logged records, whose tracebacks would keep the app alive
        app.logger.disabled = True
        MeterHub(app, registry=Registry(self_metrics=False))

        @app.route("/boom")
        def boom() -> str:
            raise RuntimeError("boom")

        assert app.test_client().get("/boom").status_code == 500
        return weakref.ref(app)

    ref = make()
    gc.collect()
    assert ref() is None
