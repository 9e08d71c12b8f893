"""The shared HTTP-server vocabulary: names, normalisation, bounds, bad input."""

from __future__ import annotations

import http
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import meterhub
from meterhub import Registry, generate_latest
from meterhub.errors import DefinitionError, RecordingError
from meterhub.integrations.http_metrics import (
    DEFAULT_DURATION_BUCKETS,
    KNOWN_STATUS_CODES,
    OTHER_METHOD,
    STANDARD_METHODS,
    UNMATCHED_ROUTE,
    HttpServerMetrics,
    normalize_method,
    normalize_status,
    template_from_converters,
)

FAMILIES = {
    "http_server_requests",
    "http_server_request_duration_seconds",
    "http_server_requests_in_progress",
    "http_server_request_size_bytes",
    "http_server_response_size_bytes",
    "http_server_exceptions",
}


def _record(m: HttpServerMetrics, method: object, route: str | None, status: object) -> None:
    m.end(m.begin(method), route, status, 0.01, request_size=10, response_size=20)


def test_family_names_and_types(registry: Registry) -> None:
    m = HttpServerMetrics(registry=registry)
    _record(m, "GET", "/users/{id}", 200)
    kinds = {f.name: f.type.value for f in registry.collect()}
    assert set(kinds) == FAMILIES
    assert kinds["http_server_requests"] == "counter"
    assert kinds["http_server_request_duration_seconds"] == "histogram"
    assert kinds["http_server_requests_in_progress"] == "gauge"
    labels = {"method": "GET", "route": "/users/{id}", "status": "200"}
    assert registry.get_sample_value("http_server_requests_total", labels) == 1.0
    assert registry.get_sample_value("http_server_requests_in_progress", {"method": "GET"}) == 0
    body = registry.get_sample_value(
        "http_server_response_size_bytes_sum", {"method": "GET", "route": "/users/{id}"}
    )
    assert body == 20.0


def test_default_buckets_are_the_issue_s(registry: Registry) -> None:
    m = HttpServerMetrics(registry=registry)
    _record(m, "GET", "/", 200)
    les = [
        s.labels["le"]
        for f in registry.collect()
        if f.name == "http_server_request_duration_seconds"
        for s in f.samples
        if s.name.endswith("_bucket")
    ]
    assert [float(x) for x in les] == [*DEFAULT_DURATION_BUCKETS, math.inf]
    assert DEFAULT_DURATION_BUCKETS == (
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
    )  # fmt: skip


def test_custom_buckets(registry: Registry) -> None:
    m = HttpServerMetrics(registry=registry, buckets=(0.1, 1.0))
    m.end(m.begin("GET"), "/", 200, 0.5)
    assert (
        registry.get_sample_value(
            "http_server_request_duration_seconds_bucket",
            {"method": "GET", "route": "/", "status": "200", "le": "1.0"},
        )
        == 1.0
    )


def test_redeclaration_returns_the_same_metrics(registry: Registry) -> None:
    a = HttpServerMetrics(registry=registry)
    b = HttpServerMetrics(registry=registry)
    assert a.requests is b.requests and a.duration is b.duration
    _record(a, "GET", "/", 200)
    _record(b, "GET", "/", 200)
    labels = {"method": "GET", "route": "/", "status": "200"}
    assert registry.get_sample_value("http_server_requests_total", labels) == 2.0


def test_conflicting_buckets_raise_naming_the_metric(registry: Registry) -> None:
    HttpServerMetrics(registry=registry)
    with pytest.raises(DefinitionError, match="http_server_request_duration_seconds"):
        HttpServerMetrics(registry=registry, buckets=(1.0, 2.0))


def test_methods_are_normalised() -> None:
    for method in STANDARD_METHODS:
        assert normalize_method(method) == method
        assert normalize_method(method.lower()) == method
    for hostile in ("BREW", "get\n", "GE T", "", "X" * 10_000, "\u00e9", None, 3, b"GET"):
        assert normalize_method(hostile) == OTHER_METHOD


def test_statuses_are_normalised() -> None:
    assert normalize_status(200) == "200"
    assert normalize_status("503") == "503"
    assert normalize_status(499) == "499"  # what the adapters record for a client gone away
    # unregistered codes fold into their class: status=~"5.." still matches them
    assert [normalize_status(c) for c in (299, 450, 599, 100.7)] == ["2xx", "4xx", "5xx", "100"]
    for bad in (None, "abc", 99, 600, 10**100, float("nan"), float("inf"), "2\n00"):
        assert normalize_status(bad) == "unknown"
    values = {normalize_status(code) for code in range(-1000, 10_000)}
    assert len(values) == len(KNOWN_STATUS_CODES) + 6  # five classes and "unknown"
    assert {s.value for s in http.HTTPStatus} <= KNOWN_STATUS_CODES


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("/users/<int:pk>/", "/users/{pk}/"),
        ("/users/<pk>", "/users/{pk}"),
        ("/a/<path:rest>", "/a/{rest}"),
        ("/users/{id:int}", "/users/{id}"),
        ("/users/{id}", "/users/{id}"),
        ("/plain", "/plain"),
        ("/x/<custom.conv:name>/{y:path}", "/x/{name}/{y}"),
    ],
)
def test_templates_share_one_syntax(pattern: str, expected: str) -> None:
    assert template_from_converters(pattern) == expected


def test_unmatched_and_exceptions(registry: Registry) -> None:
    m = HttpServerMetrics(registry=registry)
    m.end(m.begin("GET"), None, 404, 0.001)
    m.end(m.begin("POST"), "/pay", 500, 0.001, exception=ZeroDivisionError("x"))
    m.end(m.begin("POST"), "/pay", 500, 0.001, exception=KeyError)
    assert (
        registry.get_sample_value(
            "http_server_requests_total",
            {"method": "GET", "route": UNMATCHED_ROUTE, "status": "404"},
        )
        == 1.0
    )
    for exc in ("ZeroDivisionError", "KeyError"):
        labels = {"method": "POST", "route": "/pay", "exception": exc}
        assert registry.get_sample_value("http_server_exceptions_total", labels) == 1.0


def test_excluded_paths(registry: Registry) -> None:
    m = HttpServerMetrics(registry=registry, exclude_paths=["/metrics", "/health", "/static/*"])
    assert m.excluded("/metrics") and m.excluded("/health") and m.excluded("/static/a/b.css")
    assert m.excluded("/metrics/") and m.excluded("/health/")
    assert not m.excluded("/metrics/x") and not m.excluded("/healthz") and not m.excluded("/")
    assert HttpServerMetrics(registry=registry).excluded("/metrics")
    assert not HttpServerMetrics(registry=registry, exclude_paths=()).excluded("/metrics")


@pytest.mark.parametrize("bad", ["/metrics", [""], [None], [3], 5])
def test_bad_exclude_paths_raise(registry: Registry, bad: object) -> None:
    with pytest.raises(TypeError):
        HttpServerMetrics(registry=registry, exclude_paths=bad)  # type: ignore[arg-type]


def test_bad_registry_raises() -> None:
    with pytest.raises(TypeError, match="Registry"):
        HttpServerMetrics(registry="REGISTRY")  # type: ignore[arg-type]


def test_sizes_off(registry: Registry) -> None:
    m = HttpServerMetrics(registry=registry, sizes=False)
    _record(m, "GET", "/", 200)
    names = {f.name for f in registry.collect()}
    assert "http_server_request_size_bytes" not in names


def test_hostile_route_values_render_escaped(registry: Registry) -> None:
    m = HttpServerMetrics(registry=registry)
    route = '/a"b\\c\nd/\u00e9'
    _record(m, "GET", route, 200)
    text = generate_latest(registry).decode()
    assert 'route="/a\\"b\\\\c\\nd/\u00e9"' in text


def test_bad_durations_follow_the_error_policy(registry: Registry) -> None:
    m = HttpServerMetrics(registry=registry)
    with pytest.raises(RecordingError):
        m.end(m.begin("GET"), "/", 200, float("nan"))


def test_bad_durations_never_raise_when_lenient(registry: Registry, lenient: None) -> None:
    m = HttpServerMetrics(registry=registry)
    m.end(m.begin("GET"), "/", 200, float("nan"))
    m.end(m.begin("GET"), "/", 200, "slow")  # type: ignore[arg-type]
    labels = {"method": "GET", "route": "/", "status": "200"}
    assert registry.get_sample_value("http_server_requests_total", labels) == 2.0
    assert registry.self_metrics.errors("http_server_request_duration_seconds", "nan") == 1.0


def test_disabled_records_nothing(registry: Registry) -> None:
    m = HttpServerMetrics(registry=registry)
    meterhub.disable()
    _record(m, "GET", "/", 200)
    meterhub.enable()
    assert registry.get_sample_value(
        "http_server_requests_total", {"method": "GET", "route": "/", "status": "200"}
    ) in (None, 0.0)


@settings(max_examples=200, deadline=None)
@given(method=st.text(max_size=12), status=st.one_of(st.integers(), st.text(max_size=4)))
def test_series_stay_bounded_for_any_method_and_status(method: str, status: object) -> None:
    reg = Registry(self_metrics=False)
    m = HttpServerMetrics(registry=reg)
    _record(m, method, "/r", status)
    (sample,) = [
        s
        for f in reg.collect()
        if f.name == "http_server_requests"
        for s in f.samples
        if s.name == "http_server_requests_total"
    ]
    assert sample.labels["method"] in STANDARD_METHODS | {OTHER_METHOD}
    status_label = sample.labels["status"]
    assert (
        status_label == "unknown"
        or re.fullmatch("[1-5]xx", status_label)
        or (int(status_label) in KNOWN_STATUS_CODES)
    )


@pytest.mark.parametrize("forget", ["remove", "clear"])
def test_removed_series_are_recorded_again(forget: str) -> None:
    """Requests record into cached children: remove()/clear() must not orphan them."""

    registry = Registry(self_metrics=False)
    metrics = HttpServerMetrics(registry=registry)
    for _ in range(2):
        metrics.end(metrics.begin("GET"), "/users", 200, 0.1)
    if forget == "remove":
        metrics.requests.remove("GET", "/users", "200")
        metrics.duration.remove("GET", "/users", "200")
        metrics.in_progress.remove("GET")
    else:
        for metric in (metrics.requests, metrics.duration, metrics.in_progress):
            metric.clear()
    metrics.end(metrics.begin("GET"), "/users", 200, 0.25)
    labels = {"method": "GET", "route": "/users"}
    value = registry.get_sample_value
    names = {f.name for f in registry.collect()}
    requests = next(n for n in names if n.endswith("requests"))
    duration = next(n for n in names if n.endswith("duration_seconds"))
    assert value(f"{requests}_total", {**labels, "status": "200"}) == 1
    assert value(f"{duration}_count", {**labels, "status": "200"}) == 1
    assert value(f"{duration}_sum", {**labels, "status": "200"}) == 0.25
    in_progress = next(n for n in names if "in_progress" in n)
    assert value(in_progress, {"method": "GET"}) == 0


OTEL_LABELS = {"http.request.method": "GET", "http.route": "/users/{id}"}


def test_latency_splits_by_outcome(registry: Registry) -> None:
    m = HttpServerMetrics(registry=registry)
    m.end(m.begin("GET"), "/users/{id}", 200, 0.01)
    m.end(m.begin("GET"), "/users/{id}", 503, 2.0)
    m.end(m.begin("GET"), "/users/{id}", 599, 3.0)  # unregistered: its class
    get = registry.get_sample_value
    labels = {"method": "GET", "route": "/users/{id}"}
    assert get("http_server_request_duration_seconds_sum", {**labels, "status": "200"}) == 0.01
    assert get("http_server_request_duration_seconds_sum", {**labels, "status": "503"}) == 2.0
    assert get("http_server_request_duration_seconds_count", {**labels, "status": "5xx"}) == 1
    assert get("http_server_requests_total", {**labels, "status": "5xx"}) == 1  # same values


def test_otel_naming_follows_the_semantic_conventions(registry: Registry) -> None:
    m = HttpServerMetrics(registry=registry, naming="otel")
    m.end(m.begin("GET"), "/users/{id}", 404, 0.25, request_size=3, response_size=7)
    m.end(m.begin("BREW"), None, 500, 0.5, exception=KeyError("k"))
    kinds = {f.name: f.type.value for f in registry.collect()}
    assert kinds == {
        "http.server.requests": "counter",
        "http.server.request.duration_seconds": "histogram",
        "http.server.active_requests": "gauge",
        "http.server.request.body.size_bytes": "histogram",
        "http.server.response.body.size_bytes": "histogram",
        "http.server.exceptions": "counter",
    }
    get = registry.get_sample_value
    outcome = {**OTEL_LABELS, "http.response.status_code": "404"}
    assert get("http.server.request.duration_seconds_sum", outcome) == 0.25
    assert get("http.server.requests_total", outcome) == 1
    assert get("http.server.response.body.size_bytes_sum", OTEL_LABELS) == 7
    assert get("http.server.active_requests", {"http.request.method": "GET"}) == 0
    unknown = {"http.request.method": "_OTHER", "http.route": UNMATCHED_ROUTE}
    assert get("http.server.exceptions_total", {**unknown, "error.type": "KeyError"}) == 1


def test_otel_naming_as_prometheus_2_and_3_scrapers_see_it(registry: Registry) -> None:
    m = HttpServerMetrics(registry=registry, naming="otel", sizes=False)
    m.end(m.begin("GET"), "/users/{id}", 200, 0.25)
    legacy = generate_latest(registry).decode()  # underscores: what Prometheus 2 asks for
    assert (
        'http_server_request_duration_seconds_count{http_request_method="GET",'
        'http_route="/users/{id}",http_response_status_code="200"} 1'
    ) in legacy
    utf8 = generate_latest(registry, escaping="allow-utf-8").decode()
    assert (
        '{"http.server.request.duration_seconds_count","http.request.method"="GET",'
        '"http.route"="/users/{id}","http.response.status_code"="200"} 1'
    ) in utf8


def test_otel_naming_in_multi_process_mode_is_spelled_legacy(tmp_path: object) -> None:
    from meterhub.multiprocess import MultiProcessStore

    reg = Registry(MultiProcessStore(str(tmp_path)), self_metrics=False)
    m = HttpServerMetrics(registry=reg, naming="otel", sizes=False)
    m.end(m.begin("GET"), "/r", 200, 0.25)
    labels = {"http_request_method": "GET", "http_route": "/r", "http_response_status_code": "200"}
    assert reg.get_sample_value("http_server_request_duration_seconds_count", labels) == 1
    again = HttpServerMetrics(registry=reg, naming="otel", sizes=False)  # an app factory
    assert again.duration is m.duration
    with pytest.raises(DefinitionError, match="'http_server_requests' is already registered"):
        HttpServerMetrics(registry=reg)  # the same names, other label names


def test_unknown_naming_is_refused(registry: Registry) -> None:
    with pytest.raises(ValueError, match="naming must be one of meterhub, otel, got 'prom'"):
        HttpServerMetrics(registry=registry, naming="prom")


def test_two_namings_on_one_registry_are_refused(registry: Registry) -> None:
    # Escaped, both would render http_server_request_duration_seconds: a broken scrape.
    HttpServerMetrics(registry=registry)
    with pytest.raises(DefinitionError, match="one naming per registry"):
        HttpServerMetrics(registry=registry, naming="otel")
    other = Registry(self_metrics=False)
    HttpServerMetrics(registry=other, naming="otel")
    with pytest.raises(DefinitionError, match=r"'otel' naming's http\.server\.request\.duration"):
        HttpServerMetrics(registry=other)
