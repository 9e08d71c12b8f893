"""A real gunicorn server for the multi-process tests, on a free loopback port.

Example::

    def test_app(tmp_path):
        with run_gunicorn(tmp_path, APP, CONFIG, mpdir, workers=2) as port:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/")

*app* is the source of ``app.py`` (its WSGI callable named ``application``), *config* that
of ``gconf.py``; the server runs with ``METERHUB_MULTIPROC_DIR=mpdir`` and sync workers
recycled every *max_requests* (plus up to *jitter*) requests. It is up once its port
accepts connections; a server that exits or does not start in 30 s fails the test with
its log.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ._promstack_core import free_port

__all__ = ["run_gunicorn"]


@contextmanager
def run_gunicorn(
    where: Path,
    app: str,
    config: str,
    mpdir: Path,
    *,
    workers: int,
    max_requests: int,
    jitter: int,
    preload: bool = False,
) -> Iterator[int]:
    where.mkdir(parents=True, exist_ok=True)
    (where / "app.py").write_text(app)
    (where / "gconf.py").write_text(config)
    port = free_port()
    env = {**os.environ, "METERHUB_MULTIPROC_DIR": str(mpdir)}
    cmd = [
        sys.executable, "-m", "gunicorn", "--chdir", str(where),
        "--config", str(where / "gconf.py"), "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--worker-class", "sync",
        "--max-requests", str(max_requests), "--max-requests-jitter", str(jitter),
        "--log-level", "warning", *(["--preload"] if preload else []), "app:application",
    ]  # fmt: skip
    log_path = where / "gunicorn.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not start: {log_path.read_text()}")
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
