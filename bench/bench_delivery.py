"""Delivery cost of meterhub vs prometheus_client, in one process run.

* a full scrape over HTTP (connect, collect, render, optional gzip, read the body) of
  10k counter series and 1k histogram series, against each library's
  ``start_http_server`` on loopback;
* a textfile write of the same registry (meterhub fsyncs the file and the directory;
  prometheus_client does not).

Ratios are meterhub / prometheus_client (lower is better); prometheus_client renders with
``_created`` disabled so both sides produce the same samples.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import prometheus_client as pc
from _timing import HEADER, row, seconds_pair

import meterhub as mh
from meterhub.export.http import start_http_server
from meterhub.export.textfile import write_to_textfile

COUNTERS, COUNTER_SERIES = 100, 100  # 10k counter series
HISTOGRAMS, HISTOGRAM_SERIES = 10, 100  # 1k histogram series (default 15 buckets)
SLOW_CLIENTS = 300
OM = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


def _fill(mod: Any, registry: Any) -> None:
    for c in range(COUNTERS):
        counter = mod.Counter(f"bench_c{c}", "Counter.", ["route", "code"], registry=registry)
        for s in range(COUNTER_SERIES):
            counter.labels(f"/api/v1/item/{s}", str(200 + s % 5)).inc(s + 1)
    for h in range(HISTOGRAMS):
        hist = mod.Histogram(f"bench_h{h}_seconds", "Histogram.", ["route"], registry=registry)
        for s in range(HISTOGRAM_SERIES):
            child = hist.labels(f"/api/v1/item/{s}")
            for v in (0.003, 0.04, 0.2, 1.5):
                child.observe(v)


def _scrape(url: str, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=60) as r:
        return len(r.read())


def _slow_clients(port: int, n: int) -> list[socket.socket]:
    clients = []
    for i in range(n):
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow-%d: " % i)  # never finished
        clients.append(c)
    return clients


def main() -> None:
    pc.disable_created_metrics()
    ours, theirs = mh.Registry(self_metrics=False), pc.CollectorRegistry()
    _fill(mh, ours)
    _fill(pc, theirs)
    server = start_http_server(0, registry=ours)
    httpd, thread = pc.start_http_server(0, addr="127.0.0.1", registry=theirs)
    ours_url = server.url + "/metrics"
    theirs_url = f"http://127.0.0.1:{httpd.server_address[1]}/metrics"
    rows = []
    notes: list[str] = []
    try:
        cases = [
            ("HTTP scrape 10k+1k series, text, no gzip", {}),
            ("HTTP scrape 10k+1k series, text, gzip", {"Accept-Encoding": "gzip"}),
            ("HTTP scrape 10k+1k series, OpenMetrics, gzip", {"Accept": OM,
                                                              "Accept-Encoding": "gzip"}),
        ]  # fmt: skip
        for name, headers in cases:
            _scrape(ours_url, headers)  # warm up both
            _scrape(theirs_url, headers)
            t_ours, t_theirs = seconds_pair(
                lambda h=headers: _scrape(ours_url, h),  # type: ignore[misc]
                lambda h=headers: _scrape(theirs_url, h),  # type: ignore[misc]
            )
            rows.append(row(name, t_ours * 1e3, t_theirs * 1e3, "ms", 0.25))
        # meterhub's scrape while 300 clients drip their request heads (slowloris), against
        # the same scrape without them: they sit on its one event-loop thread. (Not run
        # against prometheus_client: it spends a thread on each, its listen backlog of 5
        # makes connecting them take most of a minute, and 300 runnable threads then starve
        # this one of the GIL.)
        quiet, _ = seconds_pair(lambda: _scrape(ours_url, {}), lambda: None)
        before = threading.active_count()
        slow = _slow_clients(server.port, SLOW_CLIENTS)
        try:
            time.sleep(0.2)  # let the server accept them all
            busy, _ = seconds_pair(lambda: _scrape(ours_url, {}), lambda: None)
            added = threading.active_count() - before
        finally:
            for c in slow:
                c.close()
        notes.append(
            f"meterhub scrape with {SLOW_CLIENTS} slow clients connected: {busy * 1e3:.1f} ms, "
            f"without: {quiet * 1e3:.1f} ms ({busy / quiet:.2f}x); threads they added: {added}"
        )
    finally:
        server.shutdown()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    with tempfile.TemporaryDirectory() as d:
        ours_path, theirs_path = Path(d) / "ours.prom", Path(d) / "theirs.prom"
        t_ours, t_theirs = seconds_pair(
            lambda: write_to_textfile(ours_path, ours),
            lambda: pc.write_to_textfile(str(theirs_path), theirs),
        )
        rows.append(row("textfile write 10k+1k series (with fsync)", t_ours * 1e3,
                        t_theirs * 1e3, "ms", 0.25))  # fmt: skip
        size = ours_path.stat().st_size
    print(HEADER)
    for r in rows:
        print(r)
    print(f"(textfile size {size / 1e6:.1f} MB)")
    for note in notes:
        print(f"({note})")


if __name__ == "__main__":
    main()
