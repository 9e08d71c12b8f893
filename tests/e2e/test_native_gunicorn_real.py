"""Native histograms in multi-process mode, end to end: a real gunicorn (4 sync workers,
recycled every few requests, so dead workers' cells are compacted into the archive)
observes a known distribution sent as requests; a real Prometheus 2.42 with native
histograms scrapes the merged registry over protobuf. Same checks as the single-process
test (``test_native_histograms_real``): exact counts, rates equal to a reference
counter's, quantiles within the schema's bucket width.
"""

from __future__ import annotations

import importlib.util
import math
import random
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.gunicorn import run_gunicorn
from support.promstack import _api

pytestmark = [
    pytest.mark.realstack,
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        importlib.util.find_spec("gunicorn") is None, reason="gunicorn is not installed"
    ),
]

APP = textwrap.dedent(
    """
    from urllib.parse import parse_qs
    from meterhub import Counter, Histogram, Registry
    from meterhub.export.http import make_wsgi_app
    from meterhub.multiprocess import MultiProcessCollector

    LATENCY = Histogram("mp_latency_seconds", "Latency.", native_histogram_bucket_factor=1.1,
                        buckets=(0.01, 0.1, 1.0))
    COUNT = Counter("mp_observations", "Reference count.")
    COUNT.inc(1e9)  # once, in the master (--preload): far from zero (see the other test)
    merged = Registry(self_metrics=False)
    merged.register(MultiProcessCollector())
    metrics = make_wsgi_app(merged)

    def application(environ, start_response):
        if environ["PATH_INFO"] == "/metrics":
            return metrics(environ, start_response)
        for v in parse_qs(environ["QUERY_STRING"])["v"][0].split(","):
            LATENCY.observe(float(v))
            COUNT.inc()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    """
)
CONFIG = textwrap.dedent(
    """
    from meterhub.multiprocess import mark_process_dead

    def child_exit(server, worker):
        mark_process_dead(worker.pid)
    """
)
N, PER_REQUEST = 1200, 4
BASE = 2 ** (2**-3)  # factor 1.1: schema 3


def _get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return bytes(resp.read())


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[int]:
    mpdir = tmp_path / "mp"
    mpdir.mkdir()
    with run_gunicorn(
        tmp_path, APP, CONFIG, mpdir, workers=4, max_requests=40, jitter=10, preload=True
    ) as port:
        yield port


def _send(port: int, values: list[float]) -> None:
    for i in range(0, len(values), PER_REQUEST):
        chunk = ",".join(repr(v) for v in values[i : i + PER_REQUEST])
        assert _get(port, f"/work?v={chunk}") == b"ok"


def _at(prom: Any, expr: str, t: float) -> float:
    result = _api(prom.url, "/api/v1/query", {"query": expr, "time": t})["result"]
    assert len(result) == 1, (expr, result)
    return float(result[0]["value"][1])


def test_prometheus_scrapes_merged_native_histograms(promstack: Any, gunicorn: int) -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(-3, 1.2) for _ in range(N)]
    prom = promstack.prometheus(extra_args=["--enable-feature=native-histograms"])
    _send(gunicorn, values)
    prom.add_target("mpnh", f"127.0.0.1:{gunicorn}")
    sel = '{job="mpnh"}'
    prom.wait_query(f"histogram_count(mp_latency_seconds{sel}) == {N}")
    _send(gunicorn, values)
    prom.wait_query(f"histogram_count(mp_latency_seconds{sel}) == {2 * N}")
    prom.wait_query(f"mp_observations_total{sel} == {1e9 + 2 * N}")
    t = time.time()
    s = _at(prom, f"histogram_sum(mp_latency_seconds{sel})", t)
    assert s == pytest.approx(2 * math.fsum(values), rel=1e-9)
    rate = _at(prom, f"histogram_count(rate(mp_latency_seconds{sel}[1m]))", t)
    ref = _at(prom, f"rate(mp_observations_total{sel}[1m])", t)
    assert rate > 0 and rate == pytest.approx(ref, rel=1e-9)
    ordered = sorted(values)
    for q in (0.5, 0.9, 0.99):
        est = _at(prom, f"histogram_quantile({q}, rate(mp_latency_seconds{sel}[1m]))", t)
        exact = ordered[math.ceil(q * N) - 1]
        assert exact / BASE <= est <= exact * BASE, (q, est, exact)
    # workers came and went: their cells were compacted, and nothing was lost
    text = _get(gunicorn, "/metrics").decode()
    compactions = [
        ln for ln in text.splitlines() if ln.startswith("meterhub_multiprocess_compactions_total")
    ]
    assert f"mp_latency_seconds_count {2 * N}" in text
    assert compactions and float(compactions[0].split()[-1]) >= 3
