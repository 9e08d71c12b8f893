"""Seed 000's flow with real servers: gunicorn web workers (multi-process directory,
recycled every few requests) record; a separate Celery worker with embedded beat, on a
real Redis broker, runs the textfile flush task every half second; a real node_exporter
serves the file - and the web processes' metrics are in it, exact.

The beat/worker process declares none of the web metrics: it serves them because in
multi-process mode ``REGISTRY`` (and so ``hub.write_metrics()``) covers the directory.
"""

from __future__ import annotations

import http.client
import importlib.util
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.celery_worker import CeleryWorker
from support.gunicorn import run_gunicorn

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gunicorn") is None, reason="gunicorn is not installed"
)

WEB_APP = textwrap.dedent(
    """
    from meterhub import Counter, Gauge, Histogram, hub

    JIRA = Counter("sentryhub_jira_api_calls", "Jira API calls.", ["status", "method"])
    LATENCY = Histogram("sentryhub_request_seconds", "Latency.", buckets=(0.01, 0.1, 1.0))
    LAST_OK = Gauge(
        "sentryhub_component_last_successful_api_call_timestamp",
        "Last successful call.",
        ["component"],
        multiprocess_mode="max",  # kept from recycled workers too
    )

    def application(environ, start_response):
        status = "failure" if environ["PATH_INFO"] == "/fail" else "success"
        with LATENCY.time():
            JIRA.labels(status, "create_issue").inc()
            hub.inc_counter("sentryhub_web_requests_total", {"path": environ["PATH_INFO"]})
            if status == "success":
                LAST_OK.labels("jira").set(1700000000.0)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    """
)

GUNICORN_CONF = textwrap.dedent(
    """
    from meterhub.multiprocess import mark_process_dead

    def child_exit(server, worker):
        mark_process_dead(worker.pid)
    """
)

OK, FAILED = 120, 30


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    mp = tmp_path / "mp"
    mp.mkdir()
    with run_gunicorn(
        tmp_path / "web", WEB_APP, GUNICORN_CONF, mp, workers=2, max_requests=20, jitter=5
    ) as port:
        yield port, mp


def _request(port: int, path: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    finally:
        conn.close()


def _node_exporter_samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_web_metrics_reach_node_exporter_through_the_beat_flush(
    web: tuple[int, Path],
    tmp_path: Path,
    redis_url: str,
    celery_worker: Callable[..., CeleryWorker],
    node_exporter: object,
) -> None:
    port, mp = web
    textfile_dir: Path = node_exporter.textfile_dir  # type: ignore[attr-defined]
    url: str = node_exporter.url  # type: ignore[attr-defined]
    worker_dir = tmp_path / "celery"
    worker_dir.mkdir()
    celery_worker(
        worker_dir,
        redis_url,
        pool="threads",
        beat=True,
        env={
            "METERHUB_MULTIPROC_DIR": str(mp),
            "METERHUB_TEXTFILE_PATH": str(textfile_dir / "sentryhub.prom"),
            "MH_FLUSH_EVERY": "0.5",
        },
    )
    for i in range(OK + FAILED):
        _request(port, "/fail" if i % 5 == 4 else "/ok")

    def jira(status: str) -> tuple[str, frozenset[tuple[str, str]]]:
        labels = {"status": status, "method": "create_issue"}
        return ("sentryhub_jira_api_calls_total", frozenset(labels.items()))

    expected = {
        jira("success"): OK,
        jira("failure"): FAILED,
        ("sentryhub_web_requests_total", frozenset({("path", "/ok")})): OK,
        ("sentryhub_web_requests_total", frozenset({("path", "/fail")})): FAILED,
        ("sentryhub_request_seconds_count", frozenset()): OK + FAILED,
    }
    deadline = time.monotonic() + 90
    seen: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    while time.monotonic() < deadline:
        seen = _node_exporter_samples(url)
        if all(seen.get(k) == v for k, v in expected.items()):
            break
        time.sleep(0.25)
    assert {k: seen.get(k) for k in expected} == expected
    stamp = "sentryhub_component_last_successful_api_call_timestamp"
    assert seen.get((stamp, frozenset({("component", "jira")}))) == 1700000000.0
    # the file is complete and node_exporter read it without error
    err = ("node_textfile_scrape_error", frozenset())
    assert seen.get(err) == 0
