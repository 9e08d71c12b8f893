"""HTTP client metrics against a real HTTP server on loopback (requests, httpx sync/async)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

httpx = pytest.importorskip("httpx")
requests = pytest.importorskip("requests")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from meterhub import DefinitionError, Registry, generate_latest
from meterhub.integrations.httpclient import (
    AsyncMeteredTransport,
    ClientMetrics,
    MeteredAdapter,
    MeteredTransport,
    instrument_httpx,
    instrument_requests,
    normalize_method,
)

REQ = "http_client_requests_total"
DUR = "http_client_request_duration_seconds_count"


class _Handler(BaseHTTPRequestHandler):
    """``/status/N`` answers N; ``/redirect`` sends a 302 to ``/status/200``."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/status/200")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        code = int(self.path.rsplit("/", 1)[-1]) if self.path.startswith("/status/") else 404
        body = b"" if code in (204, 304) else b"ok"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_BREW = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def refused_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _count(reg: Registry, component: str, method: str, status: str, **extra: str) -> float:
    labels = {"component": component, "method": method, "status": status, **extra}
    return reg.get_sample_value(REQ, labels) or 0.0


def _observed(reg: Registry, component: str, method: str, **extra: str) -> float:
    labels = {"component": component, "method": method, **extra}
    return reg.get_sample_value(DUR, labels) or 0.0


# -- requests -----------------------------------------------------------------------------


def test_requests_statuses_and_methods(server: str, registry: Registry) -> None:
    with instrument_requests(requests.Session(), "jira", registry=registry) as s:
        assert s.get(f"{server}/status/200").status_code == 200
        assert s.get(f"{server}/status/404").status_code == 404
        assert s.post(f"{server}/status/503", data=b"x").status_code == 503
        assert s.request("brew", f"{server}/status/201").status_code == 201
    assert _count(registry, "jira", "GET", "200") == 1
    assert _count(registry, "jira", "GET", "404") == 1
    assert _count(registry, "jira", "POST", "503") == 1
    assert _count(registry, "jira", "OTHER", "201") == 1
    assert _observed(registry, "jira", "GET") == 2
    assert _observed(registry, "jira", "POST") == 1
    # the host is not a label unless asked for
    assert b"127.0.0.1" not in generate_latest(registry)


def test_requests_connection_refused_counts_error(refused_url: str, registry: Registry) -> None:
    s = instrument_requests(requests.Session(), "down", registry=registry)
    with pytest.raises(requests.ConnectionError):
        s.get(refused_url)
    assert _count(registry, "down", "GET", "error") == 1
    assert _observed(registry, "down", "GET") == 1


def test_requests_redirect_hops_and_reinstrument(server: str, registry: Registry) -> None:
    s = instrument_requests(requests.Session(), "a", registry=registry)
    s = instrument_requests(s, "b", registry=registry)  # replaces, never stacks
    r = s.get(f"{server}/redirect")
    assert r.status_code == 200
    assert _count(registry, "b", "GET", "302") == 1
    assert _count(registry, "b", "GET", "200") == 1
    assert _count(registry, "a", "GET", "200") == 0


def test_requests_host_label_and_explicit_adapter(server: str, registry: Registry) -> None:
    s = requests.Session()
    s.mount("http://", MeteredAdapter(component="api", registry=registry, host_label=True))
    s.get(f"{server}/status/200")
    host = server.removeprefix("http://")
    assert _count(registry, "api", "GET", "200", host=host) == 1
    assert _observed(registry, "api", "GET", host=host) == 1
    # the adapter keeps the wrapped adapter's attributes
    assert s.get_adapter(server).max_retries.total == 0


def test_requests_bad_input(registry: Registry) -> None:
    with pytest.raises(TypeError, match=r"requests\.Session"):
        instrument_requests(object(), "x", registry=registry)
    with pytest.raises(TypeError, match="adapter"):
        MeteredAdapter(object(), registry=registry)
    for bad in ("", None, 3, b"jira"):
        with pytest.raises(DefinitionError, match="component"):
            instrument_requests(requests.Session(), bad, registry=registry)  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="host_label"):
        ClientMetrics("x", registry=registry, host_label="yes")  # type: ignore[arg-type]
    # one registry holds either the host-labelled or the plain definition
    ClientMetrics("x", registry=registry)
    with pytest.raises(ValueError, match="http_client_requests"):
        ClientMetrics("x", registry=registry, host_label=True)


# -- httpx --------------------------------------------------------------------------------


def test_httpx_sync_transport(server: str, refused_url: str, registry: Registry) -> None:
    transport = MeteredTransport(component="pay", registry=registry)
    with httpx.Client(transport=transport) as client:
        assert client.get(f"{server}/status/200").status_code == 200
        assert client.put(f"{server}/status/500").status_code == 500
        with pytest.raises(httpx.ConnectError):
            client.get(refused_url)
    assert _count(registry, "pay", "GET", "200") == 1
    assert _count(registry, "pay", "PUT", "500") == 1
    assert _count(registry, "pay", "GET", "error") == 1
    assert _observed(registry, "pay", "GET") == 2


def test_instrument_existing_httpx_client(server: str, registry: Registry) -> None:
    client = httpx.Client(follow_redirects=True)
    instrument_httpx(client, "svc", registry=registry)
    instrument_httpx(client, "svc", registry=registry)  # idempotent
    with client:
        assert client.get(f"{server}/redirect").status_code == 200
    assert _count(registry, "svc", "GET", "302") == 1
    assert _count(registry, "svc", "GET", "200") == 1


async def test_httpx_async(server: str, refused_url: str, registry: Registry) -> None:
    transport = AsyncMeteredTransport(component="search", registry=registry, host_label=True)
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.delete(f"{server}/status/204")).status_code == 204
        assert (await client.get(f"{server}/status/418")).status_code == 418
        with pytest.raises(httpx.ConnectError):
            await client.get(refused_url)
    host = server.removeprefix("http://")
    assert _count(registry, "search", "DELETE", "204", host=host) == 1
    assert _count(registry, "search", "GET", "418", host=host) == 1
    refused_host = refused_url.removeprefix("http://").rstrip("/")
    assert _count(registry, "search", "GET", "error", host=refused_host) == 1


async def test_instrument_existing_async_client(server: str, registry: Registry) -> None:
    client = instrument_httpx(httpx.AsyncClient(), "a", registry=registry)
    async with client:
        await client.get(f"{server}/status/200")
    assert _count(registry, "a", "GET", "200") == 1


def test_httpx_bad_input(registry: Registry) -> None:
    with pytest.raises(TypeError, match=r"httpx\.Client"):
        instrument_httpx(requests.Session(), "x", registry=registry)
    with pytest.raises(TypeError, match="sync httpx transport"):
        MeteredTransport(httpx.AsyncHTTPTransport(), registry=registry)
    with pytest.raises(TypeError, match="async httpx transport"):
        AsyncMeteredTransport(httpx.HTTPTransport(), registry=registry)


# -- methods and hostile label values -----------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("get", "GET"), ("Patch", "PATCH"), (b"HEAD", "OTHER"), ("GET\n", "OTHER"), ("", "OTHER"),
     (None, "OTHER"), ("ΓΕΤ", "OTHER"), ("X" * 10_000, "OTHER")],
)  # fmt: skip
def test_normalize_method(raw: object, expected: str) -> None:
    assert normalize_method(raw) == expected


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(component=st.text(min_size=1, max_size=40), method=st.text(max_size=12))
def test_hostile_component_round_trips(component: str, method: str) -> None:
    reg = Registry(self_metrics=False)
    metrics = ClientMetrics(component, registry=reg)
    with metrics.measure(method, "h") as call:
        call.status = 200
    text = generate_latest(reg).decode()
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "http_client_requests"]
    [sample] = family.samples
    assert sample.labels == {
        "component": component,
        "method": normalize_method(method),
        "status": "200",
    }
    assert sample.value == 1.0


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@pytest.mark.usefixtures("lenient")
def test_instrumentation_errors_never_reach_the_caller() -> None:
    reg = Registry()
    metrics = ClientMetrics("x", registry=reg)
    with metrics.measure("GET") as call:
        call.status = _Unprintable()
    assert reg.self_metrics.errors("http_client_requests", "internal") == 1


def test_instrumentation_errors_raise_in_strict_mode(registry: Registry) -> None:
    metrics = ClientMetrics("x", registry=registry)
    with pytest.raises(RuntimeError, match="no text"), metrics.measure("GET") as call:
        call.status = _Unprintable()
