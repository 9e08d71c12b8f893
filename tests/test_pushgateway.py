"""Pushgateway delivery against the real ``prometheus-pushgateway`` (push, pushadd, delete,
grouping-key encoding) and against local stub servers for auth and 5xx answers."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from meterhub import Counter, Gauge, Registry
from meterhub.errors import ExportError, PushgatewayError
from meterhub.export.pushgateway import (
    basic_auth_handler,
    delete_from_gateway,
    group_url,
    push_to_gateway,
    pushadd_to_gateway,
)

HOSTILE = 'quote " back \\ newline \n ✓'


def pgw_samples(pgw: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(pgw.metrics())
        for s in f.samples
    }


def test_group_url_encoding() -> None:
    assert group_url("pgw:9091", "j") == "http://pgw:9091/metrics/job/j"
    assert group_url("https://pgw/", "j", {"b": "x", "a": "y"}).endswith("/job/j/a/y/b/x")
    assert group_url("pgw", "a/b").endswith("/job@base64/YS9i")
    assert group_url("pgw", "j", {"k": ""}).endswith("/k@base64/=")
    assert group_url("pgw", "j", {"k": "é ✓"}).endswith(
        "/k@base64/" + base64.urlsafe_b64encode("é ✓".encode()).decode()
    )


@pytest.mark.parametrize(
    ("gateway", "job", "key", "exc"),
    [("", "j", None, ValueError), (None, "j", None, ValueError), ("pgw", "", None, ValueError),
     ("pgw", 5, None, ValueError), ("pgw", "j", {"bad-name": "x"}, ValueError),
     ("pgw", "j", {"job": "x"}, ValueError), ("pgw", "j", {1: "x"}, ValueError)],
)  # fmt: skip
def test_bad_arguments(gateway: Any, job: Any, key: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        push_to_gateway(gateway, job, Registry(), grouping_key=key)


def test_bad_registry_timeout_compression() -> None:
    with pytest.raises(TypeError):
        push_to_gateway("pgw", "j", object())
    with pytest.raises(ValueError):
        push_to_gateway("pgw", "j", Registry(), timeout=0)
    with pytest.raises(ValueError):
        push_to_gateway("pgw", "j", Registry(), compression="snappy")


@pytest.mark.realstack
def test_push_pushadd_delete_roundtrip(pushgateway: Any) -> None:
    reg = Registry(self_metrics=False)
    a = Counter("batch_a", "A.", ["what"], registry=reg)
    b = Gauge("batch_b", "B.", registry=reg)
    a.labels(HOSTILE).inc(3)
    b.set(1)
    key = {"instance": "host/with/slash", "empty": "", "uni": "é ✓ space"}
    push_to_gateway(pushgateway.url, "nightly/backup", reg, grouping_key=key)
    group = (("empty", ""), ("instance", "host/with/slash"), ("job", "nightly/backup"),
             ("uni", "é ✓ space"))  # fmt: skip
    s = pgw_samples(pushgateway)
    assert s[("batch_a_total", tuple(sorted((*group, ("what", HOSTILE)))))] == 3
    assert s[("batch_b", group)] == 1

    only_b = Registry(self_metrics=False)
    Gauge("batch_b", "B.", registry=only_b).set(2)
    pushadd_to_gateway(pushgateway.url, "nightly/backup", only_b, grouping_key=key)
    s = pgw_samples(pushgateway)
    assert s[("batch_b", group)] == 2
    assert s[("batch_a_total", tuple(sorted((*group, ("what", HOSTILE)))))] == 3  # kept

    push_to_gateway(pushgateway.url, "nightly/backup", only_b, grouping_key=key, compression="gzip")
    s = pgw_samples(pushgateway)
    assert not any(name == "batch_a_total" for name, _ in s)  # PUT replaced the group

    delete_from_gateway(pushgateway.url, "nightly/backup", grouping_key=key)
    assert not any(name.startswith("batch_") for name, _ in pgw_samples(pushgateway))


@pytest.mark.realstack
def test_4xx_names_url_and_status(pushgateway: Any) -> None:
    reg = Registry(self_metrics=False)
    Gauge("x", "X.", registry=reg).set(1)
    with pytest.raises(PushgatewayError) as ei:
        push_to_gateway(pushgateway.url + "/no/such/prefix", "j", reg)
    err = ei.value
    assert err.status is not None and 400 <= err.status < 500
    assert "/no/such/prefix/metrics/job/j" in err.url and str(err.status) in str(err)
    assert isinstance(err, ExportError) and isinstance(err, OSError)


@pytest.mark.realstack
def test_inconsistent_push_is_a_400(pushgateway: Any) -> None:
    reg = Registry(self_metrics=False)
    Counter("clash", "C.", registry=reg).inc()
    push_to_gateway(pushgateway.url, "clashjob", reg)
    other = Registry(self_metrics=False)
    Gauge("clash_total", "Now a gauge.", registry=other).set(1)  # same name, other type
    with pytest.raises(PushgatewayError) as ei:  # in another group: inconsistent
        pushadd_to_gateway(pushgateway.url, "otherjob", other)
    assert ei.value.status == 400 and pushgateway.url in str(ei.value)


def test_unreachable_names_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connection refused
        with pytest.raises(PushgatewayError) as ei:
            push_to_gateway(f"127.0.0.1:{port}", "j", Registry(), timeout=5)
    assert ei.value.status is None and f"127.0.0.1:{port}/metrics/job/j" in str(ei.value)


def test_timeout_names_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)  # accepts connections in the kernel, never answers
        port = s.getsockname()[1]
        with pytest.raises(PushgatewayError) as ei:
            push_to_gateway(f"http://127.0.0.1:{port}", "slow", Registry(), timeout=0.5)
    assert ei.value.status is None and f"127.0.0.1:{port}/metrics/job/slow" in str(ei.value)


class _Stub:
    """A local HTTP server answering every request with a fixed status, recording headers."""

    def __init__(self, status: int) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        stub = self

        class H(BaseHTTPRequestHandler):
            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                stub.requests.append((self.command, self.path, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "5")
                self.end_headers()
                self.wfile.write(b"oops\n")

            do_PUT = do_POST = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stub503() -> Iterator[_Stub]:
    s = _Stub(503)
    yield s
    s.close()


def test_5xx_names_url_and_status(stub503: _Stub) -> None:
    with pytest.raises(PushgatewayError) as ei:
        delete_from_gateway(stub503.url, "j", {"a": "b"})
    assert ei.value.status == 503 and "503" in str(ei.value) and stub503.url in str(ei.value)
    assert stub503.requests[0][:2] == ("DELETE", "/metrics/job/j/a/b")


def test_basic_auth_handler_and_custom_handler_errors() -> None:
    stub = _Stub(200)
    try:
        reg = Registry(self_metrics=False)
        Gauge("x", "X.", registry=reg).set(1)

        def handler(**kw: Any) -> Any:
            return basic_auth_handler(**kw, username="u", password="p ✓")

        push_to_gateway(stub.url, "j", reg, handler=handler)
        method, path, headers, body = stub.requests[0]
        assert (method, path) == ("PUT", "/metrics/job/j")
        assert headers["Authorization"] == "Basic " + base64.b64encode("u:p ✓".encode()).decode()
        assert b"x 1" in body and headers["Content-Type"].startswith("text/plain; version=0.0.4")

        def broken(**kw: Any) -> Any:
            def run() -> None:
                raise RuntimeError("handler bug")

            return run

        with pytest.raises(PushgatewayError, match="handler bug") as ei:
            pushadd_to_gateway(stub.url, "j", reg, handler=broken)
        assert ei.value.url == stub.url + "/metrics/job/j"
    finally:
        stub.close()
