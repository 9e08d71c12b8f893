"""A real gunicorn (4 sync workers, recycled every few requests, ``--preload``) serving a
meterhub-instrumented WSGI app: the merged request counter equals the requests sent,
exactly, and dead workers' files are folded into one archive.

The load comes from a separate Python process on loopback.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.gunicorn import run_gunicorn

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gunicorn") is None, reason="gunicorn is not installed"
)

APP = textwrap.dedent(
    """
    from meterhub import Counter, Gauge, Histogram, Registry, generate_latest, CONTENT_TYPE_LATEST
    from meterhub.multiprocess import MultiProcessCollector

    REQUESTS = Counter("app_requests", "Requests served.", ["path"])
    LATENCY = Histogram("app_latency_seconds", "Latency.", buckets=(0.01, 0.1, 1.0))
    INPROGRESS = Gauge("app_inprogress", "In progress.", multiprocess_mode="livesum")

    def application(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/metrics":
            merged = Registry(self_metrics=False)
            merged.register(MultiProcessCollector())
            body = generate_latest(merged)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [body]
        with INPROGRESS.track_inprogress(), LATENCY.time():
            REQUESTS.labels(path).inc()
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

LOADER = textwrap.dedent(
    """
    import http.client, sys, threading
    port, total, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    ok = [0] * threads
    def run(i):
        for _ in range(total // threads):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/work")
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                ok[i] += 1
    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    print(sum(ok))
    """
)

WORKERS = 4


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return str(resp.read().decode())


def _sample(text: str, line_prefix: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    mpdir = tmp_path / "mp"
    mpdir.mkdir()
    with run_gunicorn(
        tmp_path, APP, CONFIG, mpdir, workers=WORKERS, max_requests=25, jitter=10, preload=True
    ) as port:
        yield port, mpdir


def test_request_count_is_exact_under_worker_churn(
    gunicorn: tuple[int, Path], tmp_path: Path
) -> None:
    port, mpdir = gunicorn
    sent = 600
    loader = tmp_path / "loader.py"
    loader.write_text(LOADER)
    out = subprocess.run(
        [sys.executable, str(loader), str(port), str(sent), "4"],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    assert int(out.stdout.strip()) == sent

    text = _get(port, "/metrics")
    assert _sample(text, 'app_requests_total{path="/work"}') == sent
    assert _sample(text, "app_latency_seconds_count") == sent
    # Workers were recycled many times, and their files were compacted into the archive.
    compactions = _sample(text, "meterhub_multiprocess_compactions_total")
    assert compactions is not None and compactions >= 5
    assert _sample(text, "meterhub_multiprocess_files_corrupt_total") == 0

    # Live workers + the master (it defined the metrics: --preload) + one archive.
    deadline = time.monotonic() + 30
    while True:
        files = [n for n in os.listdir(mpdir) if n.endswith(".db")]
        if len(files) <= WORKERS + 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(files) <= WORKERS + 2, files
    assert len([n for n in files if re.match(r"archive_\d+\.db$", n)]) == 1
    assert len(os.listdir(mpdir)) <= WORKERS + 2 + 2  # .lock and corrupt/ at most

    # The in-progress gauge only counts live workers, and no request is in flight.
    assert _sample(_get(port, "/metrics"), "app_inprogress") == 0
    assert _sample(_get(port, "/metrics"), 'app_requests_total{path="/work"}') == sent
