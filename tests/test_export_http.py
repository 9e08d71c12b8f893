"""HTTP serving: the built-in server (real sockets), the WSGI app under wsgiref, the ASGI
app through httpx's ASGI transport. Auth, TLS, methods, paths, gzip, negotiation, slow
and hostile clients, and histogram consistency under concurrent scrapes."""

from __future__ import annotations

import base64
import gzip
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from meterhub import Counter, Histogram, Registry
from meterhub.export import Endpoint
from meterhub.export.http import MetricsHandler, make_asgi_app, make_wsgi_app, start_http_server

OM_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


def get(
    url: str, headers: dict[str, str] | None = None, method: str = "GET", **kw: Any
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10, **kw) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture
def reg() -> Registry:
    r = Registry(self_metrics=False)
    Counter("jobs", "Jobs.", ["queue"], registry=r).labels('we"ird\\ \n ✓').inc(3)
    Histogram("lat_seconds", "Lat.", buckets=(0.1, 1), registry=r).observe(0.5)
    return r


@pytest.fixture
def server(reg: Registry) -> Iterator[Any]:
    s = start_http_server(0, registry=reg)
    yield s
    s.shutdown()


def test_get_head_404_405_and_default_bind(server: Any) -> None:
    assert server.host == "127.0.0.1"
    status, headers, body = get(server.url + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'jobs_total{queue="we\\"ird\\\\ \\n ✓"} 3' in body.decode()
    status, headers, body = get(server.url + "/metrics", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 100
    assert get(server.url + "/")[0] == 404
    status, headers, body = get(server.url + "/nope", method="HEAD")
    assert status == 404 and body == b"" and headers["Content-Length"] == "10"
    # keep-alive stays in sync after HEAD answers: two requests on one connection
    two = (
        b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((server.host, server.port), timeout=10) as c:
        c.sendall(two)
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 404") and b"\r\n\r\nHTTP/1.1 200 OK" in data
    assert get(server.url + "/metrics/extra")[0] == 404
    status, headers, _ = get(server.url + "/metrics", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert get(server.url + "/metrics", method="DELETE")[0] == 405
    assert get(server.url + "/metrics", method="FROB")[0] == 405


def test_promtool_accepts_the_scrape(server: Any) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus')")
    body = get(server.url + "/metrics")[2]
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ipv6_loopback(reg: Registry) -> None:
    try:
        s = start_http_server(0, addr="::1", registry=reg)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with s:
        assert s.url.startswith("http://[::1]:")
        assert get(s.url + "/metrics")[0] == 200


def test_unpacks_like_prometheus_client(reg: Registry) -> None:
    httpd, thread = start_http_server(0, registry=reg)
    assert thread.is_alive()
    httpd.shutdown()
    httpd.server_close()


def test_openmetrics_gzip_and_name_filter(server: Any) -> None:
    status, headers, body = get(
        server.url + "/metrics?name[]=lat_seconds_bucket",
        {"Accept": OM_ACCEPT, "Accept-Encoding": "gzip"},
    )
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    text = gzip.decompress(body).decode()
    assert text.endswith("# EOF\n") and "jobs_total" not in text and "lat_seconds_bucket" in text
    assert [f.name for f in parse_openmetrics(text)] == ["lat_seconds"]


def test_disable_compression(reg: Registry) -> None:
    with start_http_server(0, registry=reg, disable_compression=True) as s:
        _, headers, body = get(s.url + "/metrics", {"Accept-Encoding": "gzip"})
        assert "Content-Encoding" not in headers and b"jobs_total" in body


def test_bearer_token(reg: Registry) -> None:
    with start_http_server(0, registry=reg, bearer_token="s3cret-token") as s:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "s3cret-token"},
            {"Authorization": "Basic czNjcmV0LXRva2Vu"},
        ):
            status, h, body = get(s.url + "/metrics", headers)
            assert status == 401 and h["WWW-Authenticate"].startswith("Bearer")
            assert body == b"Unauthorized\n"
        assert get(s.url + "/nope", {"Authorization": "Bearer x"})[0] == 401  # no path probing
        status, _, body = get(s.url + "/metrics", {"Authorization": "bearer s3cret-token"})
        assert status == 200 and b"jobs_total" in body


def test_basic_auth(reg: Registry) -> None:
    with start_http_server(0, registry=reg, basic_auth=("prom", "pa:ss ✓")) as s:
        good = base64.b64encode("prom:pa:ss ✓".encode()).decode()
        bad = base64.b64encode(b"prom:nope").decode()
        assert get(s.url + "/metrics", {"Authorization": f"Basic {good}"})[0] == 200
        assert get(s.url + "/metrics", {"Authorization": f"Basic {bad}"})[0] == 401
        assert get(s.url + "/metrics", {"Authorization": "Basic %%%not-base64"})[0] == 401


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not installed: cannot make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    crt, key = str(d / "c.pem"), str(d / "k.pem")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return crt, key


def test_tls_with_cert_files_and_context(reg: Registry, cert: tuple[str, str]) -> None:
    crt, key = cert
    client = ssl.create_default_context(cafile=crt)
    with start_http_server(0, registry=reg, certfile=crt, keyfile=key) as s:
        assert s.url.startswith("https://")
        status, _, body = get(s.url + "/metrics", context=client)
        assert status == 200 and b"jobs_total" in body
        with pytest.raises(OSError):  # plain HTTP to a TLS port
            urllib.request.urlopen(s.url.replace("https", "http") + "/metrics", timeout=5)
        assert get(s.url + "/metrics", context=client)[0] == 200  # still serving
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    with start_http_server(0, registry=reg, ssl_context=ctx) as s:
        assert get(s.url + "/metrics", context=client)[0] == 200


def test_large_answers_over_tls_arrive_whole(reg: Registry, cert: tuple[str, str]) -> None:
    crt, key = cert
    g = Histogram("wide_seconds", "Wide.", ["k"], registry=reg)
    for i in range(2000):
        g.labels(f"key-{i:05d}-" + "v" * 40).observe(i / 100)
    client = ssl.create_default_context(cafile=crt)
    with start_http_server(0, registry=reg, certfile=crt, keyfile=key) as s:
        for _ in range(3):  # urllib closes after each answer: the close must not cut it
            status, headers, body = get(s.url + "/metrics", context=client)
            assert status == 200 and len(body) == int(headers["Content-Length"]) > 500_000
            assert b'wide_seconds_count{k="key-01999-' + b"v" * 40 + b'"} 1\n' in body


def test_slow_client_does_not_block_and_is_dropped(reg: Registry) -> None:
    with start_http_server(0, registry=reg, timeout=1.0) as s:
        slow = socket.create_connection((s.host, s.port))
        slow.sendall(b"GET /metr")  # and then nothing
        for _ in range(3):
            assert get(s.url + "/metrics")[0] == 200
        slow.settimeout(15)
        assert slow.recv(1024) == b""  # the server closed it after its timeout
        slow.close()


def test_slow_tls_handshake_does_not_block(reg: Registry, cert: tuple[str, str]) -> None:
    crt, key = cert
    with start_http_server(0, registry=reg, certfile=crt, keyfile=key, timeout=2.0) as s:
        silent = socket.create_connection((s.host, s.port))  # never starts the handshake
        client = ssl.create_default_context(cafile=crt)
        assert get(s.url + "/metrics", context=client)[0] == 200
        silent.close()


@pytest.fixture(scope="module")
def stranger_cert(
    tmp_path_factory: pytest.TempPathFactory, cert: tuple[str, str]
) -> tuple[str, str]:
    """A second self-signed certificate: one the server's client CA did not sign."""
    d = tmp_path_factory.mktemp("tls-stranger")
    crt, key = str(d / "c.pem"), str(d / "k.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
         "-days", "1", "-subj", "/CN=stranger"],
        check=True, capture_output=True,
    )  # fmt: skip
    return crt, key


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_mtls_refuses_an_untrusted_client_certificate_with_a_tls_error(
    reg: Registry,
    cert: tuple[str, str],
    stranger_cert: tuple[str, str],
    version: ssl.TLSVersion,
) -> None:
    """The refusal reaches the client as TLS's alert (``ssl.SSLError``), not a bare
    disconnect: under TLS 1.3 the server learns of the bad certificate only after its own
    Finished, when the client already sends its request, so the alert must still be sent
    then; a trusted certificate and a missing one are told apart as well."""
    crt, key = cert

    def client(chain: tuple[str, str] | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=crt)
        ctx.minimum_version = ctx.maximum_version = version
        if chain is not None:
            ctx.load_cert_chain(*chain)
        return ctx

    with start_http_server(
        0, registry=reg, certfile=crt, keyfile=key, client_cafile=crt, client_auth_required=True
    ) as s:
        assert get(s.url + "/metrics", context=client(cert))[0] == 200
        for chain in (stranger_cert, None):
            # TLS 1.2 fails in the handshake (urllib wraps that in URLError), 1.3 on reading
            with pytest.raises((ssl.SSLError, urllib.error.URLError)) as refused:
                get(s.url + "/metrics", context=client(chain))
            error = refused.value
            if isinstance(error, urllib.error.URLError):
                error = error.reason
            assert isinstance(error, ssl.SSLError) and "alert" in str(error), repr(error)
        assert get(s.url + "/metrics", context=client(cert))[0] == 200  # still serving
        labels = {"address": f"{s.host}:{s.port}", "reason": "tls_handshake"}
        assert reg.get_sample_value("meterhub_http_requests_rejected_total", labels) == 2.0


def raw(s: Any, data: bytes) -> bytes:
    with socket.create_connection((s.host, s.port), timeout=10) as c:
        c.sendall(data)
        return c.recv(4096)


def test_huge_and_malformed_request_lines_are_refused(server: Any) -> None:
    assert raw(server, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 414")
    assert raw(server, b"\x00\x01\x02 garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(server, b"GET\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(server, b"GET /metrics HTTP/9.9\r\n\r\n").split(b" ")[1] in (b"400", b"505")
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    assert raw(server, b"GET /metrics HTTP/1.1\r\n" + many + b"\r\n").split(b" ")[1] == b"431"
    assert get(server.url + "/metrics")[0] == 200  # unharmed


def test_collect_failure_is_a_500_and_the_server_survives() -> None:
    reg = Registry(self_metrics=False)

    class Broken:
        def collect(self) -> Any:
            raise RuntimeError("collector bug")

    reg.register(Broken())
    with start_http_server(0, registry=reg) as s:
        status, _, body = get(s.url + "/metrics")
        assert status == 500 and b"collector bug" not in body
        assert get(s.url + "/metrics")[0] == 500


def test_histogram_is_consistent_under_concurrent_observes(reg: Registry) -> None:
    h = Histogram("busy_seconds", "Busy.", ["k"], buckets=(0.5, 2), registry=reg)
    child = h.labels("x")
    stop = threading.Event()

    def observe() -> None:
        while not stop.is_set():
            for _ in range(1000):
                child.observe(1.0)

    t = threading.Thread(target=observe)
    t.start()
    try:
        with start_http_server(0, registry=reg) as s:
            for _ in range(30):
                text = get(s.url + "/metrics?name[]=busy_seconds_sum")[2].decode()
                vals = {
                    (x.name, x.labels.get("le")): x.value
                    for f in parse_text(text) for x in f.samples
                }  # fmt: skip
                count = vals[("busy_seconds_count", None)]
                assert vals[("busy_seconds_sum", None)] == count
                assert vals[("busy_seconds_bucket", "2.0")] == count
                assert vals[("busy_seconds_bucket", "+Inf")] == count
    finally:
        stop.set()
        t.join()


def test_metrics_handler_factory_any_path(reg: Registry) -> None:
    from http.server import ThreadingHTTPServer

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), MetricsHandler.factory(reg, path=None))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        assert b"jobs_total" in get(url + "/anything")[2]
        assert get(url + "/favicon.ico")[0] == 404
    finally:
        httpd.shutdown()
        httpd.server_close()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_wsgi_app_under_wsgiref(reg: Registry) -> None:
    app = make_wsgi_app(reg, bearer_token="t0k")
    httpd = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_port}/metrics"
        assert get(url)[0] == 401
        auth = {"Authorization": "Bearer t0k"}
        status, headers, body = get(url, {**auth, "Accept": OM_ACCEPT, "Accept-Encoding": "gzip"})
        assert status == 200 and headers["Content-Encoding"] == "gzip"
        assert list(parse_openmetrics(gzip.decompress(body).decode()))
        assert get(url, auth, method="PUT")[0] == 405
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_asgi_app(reg: Registry) -> None:
    httpx = pytest.importorskip("httpx")
    app = make_asgi_app(reg, path="/metrics")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/metrics", headers={"Accept": OM_ACCEPT})
        assert r.status_code == 200 and r.text.endswith("# EOF\n")
        r = await client.get("/metrics?name[]=jobs_total", headers={"Accept-Encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip" and "lat_seconds" not in r.text
        assert (await client.head("/metrics")).content == b""
        assert (await client.get("/other")).status_code == 404
        assert (await client.post("/metrics")).status_code == 405


async def test_asgi_lifespan_and_non_http(reg: Registry) -> None:
    app = make_asgi_app(reg)
    sent: list[dict[str, Any]] = []
    msgs = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(msgs)

    async def send(m: Any) -> None:
        sent.append(m)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    with pytest.raises(ValueError, match="HTTP only"):
        await app({"type": "websocket"}, receive, send)


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"port": "80"}, ValueError),
        ({"port": -1}, ValueError),
        ({"port": 70000}, ValueError),
        ({"port": 0, "addr": ""}, ValueError),
        ({"port": 0, "bearer_token": ""}, ValueError),
        ({"port": 0, "basic_auth": ("a:b", "x")}, ValueError),
        ({"port": 0, "basic_auth": "user:pw"}, ValueError),
        ({"port": 0, "path": "metrics"}, ValueError),
        ({"port": 0, "registry": object()}, TypeError),
        ({"port": 0, "timeout": 0}, ValueError),
        ({"port": 0, "keyfile": "k.pem"}, ValueError),
        ({"port": 0, "certfile": "/nonexistent.pem"}, OSError),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        start_http_server(**kwargs)


def test_port_in_use_raises(server: Any) -> None:
    with pytest.raises(OSError):
        start_http_server(server.port)


def test_wsgi_and_asgi_bad_arguments() -> None:
    with pytest.raises(TypeError):
        make_wsgi_app(object())
    with pytest.raises(ValueError):
        make_asgi_app(bearer_token="")


def test_shutdown_is_idempotent(reg: Registry, tmp_path: Path) -> None:
    s = start_http_server(0, registry=reg)
    s.shutdown()
    s.shutdown()
    with pytest.raises(OSError):
        socket.create_connection((s.host, s.port), timeout=2).close()
    time.sleep(0)  # nothing else to wait for: shutdown() joined the thread
    assert not s.thread.is_alive()


def test_utf8_bearer_token_compares_as_bytes_sent(reg: Registry) -> None:
    with start_http_server(0, registry=reg, bearer_token="t0k-✓") as s:
        req = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer "
        assert raw(s, req + "t0k-✓".encode() + b"\r\n\r\n").startswith(b"HTTP/1.1 200")
        assert raw(s, req + "t0k-✗".encode() + b"\r\n\r\n").startswith(b"HTTP/1.1 401")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=80), st.text(max_size=30), st.text(max_size=60), st.booleans())
def test_endpoint_always_answers_a_parseable_scrape(
    reg: Registry, accept: str, encoding: str, query: str, head: bool
) -> None:
    endpoint = Endpoint(reg)
    hdrs = {"accept": accept, "accept-encoding": encoding}
    resp = endpoint.handle("HEAD" if head else "GET", "/metrics", query, hdrs.get)
    assert resp.status == 200
    headers = dict(resp.headers)
    if head:
        full = endpoint.handle("GET", "/metrics", query, hdrs.get)
        assert resp.body == b"" and int(headers["Content-Length"]) == len(full.body)
        return
    assert int(headers["Content-Length"]) == len(resp.body)
    body = gzip.decompress(resp.body) if headers.get("Content-Encoding") == "gzip" else resp.body
    parse = parse_openmetrics if "openmetrics" in headers["Content-Type"] else parse_text
    list(parse(body.decode()))
