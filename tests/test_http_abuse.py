"""HTTP conformance and abuse, with raw sockets: request smuggling and desync (a body on
every method, pipelined requests, Content-Length with Transfer-Encoding, conflicting or
oversize lengths), slowloris (many slow clients, a bounded thread count), the header
deadline and the connection cap. Deadlines here only make a hang fail; nothing is timed."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from meterhub import Counter, Registry
from meterhub.export.http import MetricsHandler, start_http_server

HANG = 20.0  # seconds after which a test that waits for the server fails


@pytest.fixture
def reg() -> Registry:
    r = Registry(self_metrics=False)
    Counter("jobs", "Jobs.", registry=r).inc(3)
    return r


class Addr:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port


@pytest.fixture(params=["builtin", "handler"])
def any_server(request: pytest.FixtureRequest, reg: Registry) -> Iterator[Callable[..., Addr]]:
    """The built-in server, or prometheus_client's pattern: MetricsHandler in an HTTPServer."""
    stops: list[Callable[[], None]] = []

    def make(**options: Any) -> Addr:
        if request.param == "builtin":
            s = start_http_server(0, registry=reg, **options)
            stops.append(s.shutdown)
            return Addr(s.host, s.port)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), MetricsHandler.factory(reg, **options))
        httpd.daemon_threads = True
        t = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        t.start()

        def stop() -> None:
            httpd.shutdown()
            httpd.server_close()

        stops.append(stop)
        return Addr("127.0.0.1", httpd.server_address[1])

    yield make
    for stop in stops:
        stop()


def exchange(addr: Addr, data: bytes) -> bytes:
    """Send *data*, then read until the server closes the connection."""
    with socket.create_connection((addr.host, addr.port), timeout=HANG) as c:
        c.sendall(data)
        out = b""
        try:
            while chunk := c.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def responses(data: bytes, methods: list[str]) -> list[tuple[int, dict[str, str], bytes]]:
    """Split a stream of HTTP/1.1 responses (to requests of *methods*, in order)."""
    out = []
    for method in methods:
        if not data:
            break
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, f"truncated response head: {head!r}"
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        n = 0 if method == "HEAD" else int(headers.get("content-length", "0"))
        body, data = data[:n], data[n:]
        out.append((status, headers, body))
    assert not data, f"more bytes than responses: {data[:200]!r}"
    return out


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
FINAL = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize(
    "method", ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "FROB"]
)
def test_a_body_on_any_method_is_never_read_as_a_request(
    any_server: Callable[..., Addr], method: str
) -> None:
    addr = any_server()
    req = f"{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: {len(SMUGGLED)}\r\n\r\n"
    got = responses(exchange(addr, req.encode() + SMUGGLED + FINAL), [method, "GET"])
    assert len(got) == 2, got
    first, last = got
    assert first[0] == (200 if method in ("GET", "HEAD") else 405)
    assert last[0] == 200 and b"jobs_total 3" in last[2]


def test_post_body_cannot_carry_an_unauthenticated_client_past_auth(
    any_server: Callable[..., Addr],
) -> None:
    addr = any_server(bearer_token="tok")
    inner = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\n\r\n"
    post = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(inner)
    data = exchange(addr, post + inner + FINAL)
    got = responses(data, ["POST", "GET"])
    assert [g[0] for g in got] == [401, 401], data
    assert b"jobs_total" not in data


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400),
        (b"Transfer-Encoding: chunked\r\n", 501),
        (b"Transfer-Encoding: gzip, chunked\r\n", 501),
        (b"Content-Length: 5\r\nContent-Length: 7\r\n", 400),
        (b"Content-Length: 5, 7\r\n", 400),
        (b"Content-Length: -5\r\n", 400),
        (b"Content-Length: 0x5\r\n", 400),
        (b"Content-Length: 100000000\r\n", 413),
    ],
)
def test_unknown_or_oversize_framing_is_refused_and_closed(
    any_server: Callable[..., Addr], headers: bytes, status: int
) -> None:
    addr = any_server()
    req = b"POST /metrics HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
    body = b"0\r\n\r\n" + SMUGGLED  # a chunked body's end, then a request
    data = exchange(addr, req + body + FINAL)
    assert data.startswith(b"HTTP/1.1 %d" % status), data
    got = responses(data, ["POST"])
    assert got[0][1]["connection"].lower() == "close"  # closed: nothing more was answered


def test_same_length_repeated_is_accepted(any_server: Callable[..., Addr]) -> None:
    addr = any_server()
    req = b"PUT /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
    got = responses(exchange(addr, req + FINAL), ["PUT", "GET"])
    assert [g[0] for g in got] == [405, 200]


def test_folded_header_and_space_before_colon_are_refused(reg: Registry) -> None:
    with start_http_server(0, registry=reg) as s:
        addr = Addr(s.host, s.port)
        folded = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Content-Length: 5\r\n\r\n"
        assert exchange(addr, folded).startswith(b"HTTP/1.1 400")
        spaced = b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello"
        assert exchange(addr, spaced).startswith(b"HTTP/1.1 400")
        assert (
            reg.get_sample_value(
                "meterhub_http_requests_rejected_total",
                {"address": f"{s.host}:{s.port}", "reason": "bad_request"},
            )
            == 2.0
        )


def test_pipelined_requests_are_answered_in_order(reg: Registry) -> None:
    with start_http_server(0, registry=reg) as s:
        many = b"".join(b"GET /x%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(20))
        got = responses(exchange(Addr(s.host, s.port), many + FINAL), ["GET"] * 21)
        assert [g[0] for g in got] == [404] * 20 + [200]


def test_expect_continue_is_answered_and_closed(reg: Registry) -> None:
    with start_http_server(0, registry=reg) as s:
        req = (
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(SMUGGLED)
        )
        got = responses(exchange(Addr(s.host, s.port), req + SMUGGLED + FINAL), ["POST"])
        assert got[0][0] == 405 and got[0][1]["connection"] == "close"


def _gauge(reg: Registry, s: Any, name: str = "meterhub_http_connections_open") -> float:
    value = reg.get_sample_value(name, {"address": f"{s.host}:{s.port}"})
    return -1.0 if value is None else value


def _wait(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + HANG
    while not cond():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def test_slowloris_costs_no_threads_and_scrapes_stay_served(reg: Registry) -> None:
    before = threading.active_count()
    with start_http_server(0, registry=reg, timeout=60.0, workers=2) as s:
        slow = []
        try:
            for i in range(300):
                c = socket.create_connection((s.host, s.port), timeout=HANG)
                c.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow-%d: " % i)  # and never the end
                slow.append(c)
            _wait(lambda: _gauge(reg, s) >= 300, "300 connections held")
            for _ in range(5):
                c = socket.create_connection((s.host, s.port), timeout=HANG)
                with c:
                    c.sendall(FINAL)
                    data = b""
                    while chunk := c.recv(65536):
                        data += chunk
                assert data.startswith(b"HTTP/1.1 200") and b"jobs_total 3" in data
            # the server's loop thread, its two workers and nothing per connection
            assert threading.active_count() <= before + 3
        finally:
            for c in slow:
                c.close()
        _wait(lambda: _gauge(reg, s) == 0, "slow connections released")


def test_header_deadline_is_total_not_per_read(reg: Registry) -> None:
    with start_http_server(0, registry=reg, timeout=0.5) as s:
        c = socket.create_connection((s.host, s.port), timeout=HANG)
        closed = False
        deadline = time.monotonic() + HANG
        with c:
            c.sendall(b"GET /metrics HTTP/1.1\r\n")
            while time.monotonic() < deadline:  # one byte every 50 ms: each read is quick
                try:
                    c.sendall(b"X")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                c.settimeout(0.05)
                try:
                    if c.recv(1024) == b"":
                        closed = True
                        break
                except TimeoutError:
                    pass
                except ConnectionResetError:
                    closed = True
                    break
        assert closed, "a dripping client was never closed"
        _wait(
            lambda: (
                (
                    reg.get_sample_value(
                        "meterhub_http_requests_rejected_total",
                        {"address": f"{s.host}:{s.port}", "reason": "timeout"},
                    )
                    or 0
                )
                >= 1
            ),
            "the timeout counted",
        )


def test_connection_cap_refuses_quickly_and_counts(reg: Registry) -> None:
    with start_http_server(0, registry=reg, max_connections=3, timeout=60.0) as s:
        idle = [socket.create_connection((s.host, s.port), timeout=HANG) for _ in range(3)]
        try:
            _wait(lambda: _gauge(reg, s) == 3, "3 connections held")
            extra = socket.create_connection((s.host, s.port), timeout=HANG)
            with extra:
                try:
                    data = extra.recv(4096)  # answered (and closed) without sending anything
                except ConnectionResetError:
                    data = b""
            assert data == b"" or data.startswith(b"HTTP/1.1 503")
            refused = "meterhub_http_connections_refused_total"
            assert _gauge(reg, s, refused) >= 1.0
        finally:
            for c in idle:
                c.close()
        _wait(lambda: _gauge(reg, s) == 0, "idle connections released")
        with socket.create_connection((s.host, s.port), timeout=HANG) as c:
            c.sendall(FINAL)
            assert c.recv(4096).startswith(b"HTTP/1.1 200")


def test_a_client_that_never_reads_is_dropped(reg: Registry) -> None:
    Counter("big", "Big.", ["k"], registry=reg)
    big = reg.get("big_total")
    for i in range(3000):
        big.labels("x" * 200 + str(i)).inc()
    with start_http_server(0, registry=reg, timeout=0.5, disable_compression=True) as s:
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.connect((s.host, s.port))
        with c:
            c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 4)  # and never reads
            timeouts = {"address": f"{s.host}:{s.port}", "reason": "timeout"}
            name = "meterhub_http_requests_rejected_total"
            _wait(lambda: (reg.get_sample_value(name, timeouts) or 0) >= 1, "the reader dropped")
            _wait(lambda: _gauge(reg, s) == 0, "its connection released")
