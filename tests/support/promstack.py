"""Real Prometheus-stack servers for tests (Debian binaries, loopback, temp dirs).

Every server runs as a child process on ``127.0.0.1`` with a free port, in its own temp
directory, and is always stopped (SIGTERM, then SIGKILL) when its fixture ends. A missing
binary skips the test with the reason; a server that fails to start fails the test with the
tail of its log.

Plain functions (usable outside pytest, e.g. from a benchmark)::

    prom = start_prometheus(tmp_path, targets={"app": ["127.0.0.1:8000"]},
                            rule_files=[...], alertmanager_url=None, remote_write_url=None)
    prom.add_target("myjob", "127.0.0.1:9123")          # file_sd: picked up within ~1-2 s
    prom.add_target("tlsjob", "https://127.0.0.1:9443/metrics")  # TLS, certificate not verified
    prom.remove_target("myjob")
    wait_query(prom.url, 'up{job="myjob"} == 1', timeout=30)   # -> non-empty result list
    prom.stop()

    start_node_exporter(tmp_path) -> Server        # .textfile_dir: where to write *.prom files
    start_pushgateway(tmp_path) -> Server
    start_alertmanager(tmp_path, webhook_url=None) -> Server
    start_victoria_metrics(tmp_path) -> Server     # remote_write URL: server.url + "/api/v1/write"

``Server`` has ``url`` ("http://127.0.0.1:PORT"), ``host``, ``port``, ``proc``, ``dir``, ``log``,
``get(path) -> (status, body)``, ``metrics() -> str`` and ``stop()``. ``PrometheusServer`` adds
``add_target(job, target, labels=None)``, ``remove_target(job)``, ``reload()``, ``query(expr)``,
``wait_query(expr, timeout=30, predicate=None)``, ``targets_dir`` and ``config``.

Prometheus runs with scrape/evaluation interval 1s, ``--enable-feature=exemplar-storage``,
``--web.enable-lifecycle``, ``--web.enable-admin-api`` and ``--web.enable-remote-write-receiver``.
Targets come from file_sd files, one per job (``add_target`` rewrites them atomically): the
``job`` label is the job you pass. ``extra_scrape_configs`` (list of dicts) adds raw scrape jobs
(e.g. with ``authorization``).

Helpers: ``query(url, expr)`` (instant query, returns ``data.result``), ``wait_query(url, expr,
timeout=30, predicate=None)`` (polls until the result is non-empty and ``predicate(result)``
holds; raises ``AssertionError`` with the last answer at the deadline), ``query_exemplars(url,
expr, start, end)``, ``wait_for(fn, timeout, what)`` (generic poll-with-deadline), ``free_port()``.

Pytest fixtures:

* ``prometheus`` — a Prometheus shared by the session (fast), handed to each test through a
  view that removes the test's targets at teardown; use unique job names per test.
* ``promstack`` — a factory for fresh servers that are stopped when the test ends:
  ``promstack.prometheus(**kw)``, ``.node_exporter(...)``, ``.pushgateway()``,
  ``.alertmanager(webhook_url=...)``, ``.victoria_metrics()``.
* ``node_exporter``, ``pushgateway``, ``alertmanager``, ``victoria_metrics`` — one fresh server
  per test (each starts in well under a second).
* ``webhook_receiver`` — a local HTTP server recording POST bodies: ``.url``, ``.bodies``
  (list of bytes), ``.json_bodies()``, ``.wait(n=1, timeout=30)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ._promstack_core import (  # re-exported: tests import them from here
    HOST,
    START_TIMEOUT,
    STOP_TIMEOUT,
    BinaryMissing,
    PrometheusServer,
    Server,
    WebhookReceiver,
    find_binary,
    free_port,
    http_get,
    http_post,
    query,
    query_exemplars,
    start_alertmanager,
    start_node_exporter,
    start_prometheus,
    start_pushgateway,
    start_victoria_metrics,
    wait_for,
    wait_query,
)
from ._promstack_core import _api as _api  # private, but other tests use them
from ._promstack_core import _atomic_write as _atomic_write
from ._promstack_core import _parse_target as _parse_target
from ._promstack_core import _start as _start

__all__ = [
    "BinaryMissing",
    "HOST",
    "PrometheusServer",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "Server",
    "WebhookReceiver",
    "find_binary",
    "free_port",
    "http_get",
    "http_post",
    "query",
    "query_exemplars",
    "start_alertmanager",
    "start_node_exporter",
    "start_prometheus",
    "start_pushgateway",
    "start_victoria_metrics",
    "wait_for",
    "wait_query",
    "PromStack",
]


# ---------------------------------------------------------------- fixtures


def _skip_missing(fn: Callable[[], Server]) -> Server:
    try:
        return fn()
    except BinaryMissing as e:
        pytest.skip(str(e))


class PromStack:
    """Factory for fresh servers; everything it started is stopped by ``close()``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.servers: list[Server] = []
        self._n = 0

    def _dir(self) -> Path:
        self._n += 1
        return self.base / f"s{self._n}"

    def _keep(self, fn: Callable[[], Server]) -> Server:
        s = _skip_missing(fn)
        self.servers.append(s)
        return s

    def prometheus(self, **kw: Any) -> PrometheusServer:
        s = self._keep(lambda: start_prometheus(self._dir(), **kw))
        assert isinstance(s, PrometheusServer)
        return s

    def node_exporter(self, textfile_dir: Path | None = None) -> Server:
        return self._keep(lambda: start_node_exporter(self._dir(), textfile_dir))

    def pushgateway(self) -> Server:
        return self._keep(lambda: start_pushgateway(self._dir()))

    def alertmanager(self, webhook_url: str | None = None) -> Server:
        return self._keep(lambda: start_alertmanager(self._dir(), webhook_url))

    def victoria_metrics(self) -> Server:
        return self._keep(lambda: start_victoria_metrics(self._dir()))

    def close(self) -> None:
        for s in reversed(self.servers):
            s.stop()


@pytest.fixture
def promstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromStack]:
    """Factory of fresh Prometheus-stack servers, all stopped at the end of the test."""
    stack = PromStack(tmp_path_factory.mktemp("promstack"))
    yield stack
    stack.close()


@pytest.fixture(scope="session")
def _prometheus_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PrometheusServer | BinaryMissing]:
    try:
        server = start_prometheus(tmp_path_factory.mktemp("prometheus"))
    except BinaryMissing as e:
        yield e
        return
    yield server
    server.stop()


@pytest.fixture
def prometheus(_prometheus_session: PrometheusServer | BinaryMissing) -> Iterator[PrometheusServer]:
    """The session's Prometheus; targets this test adds are removed when it ends."""
    if isinstance(_prometheus_session, BinaryMissing):
        pytest.skip(str(_prometheus_session))
    before = _prometheus_session.jobs()
    yield _prometheus_session
    for job in _prometheus_session.jobs() - before:
        _prometheus_session.remove_target(job)


@pytest.fixture
def node_exporter(promstack: PromStack) -> Server:
    """A fresh node_exporter (textfile collector only); write files into ``.textfile_dir``."""
    return promstack.node_exporter()


@pytest.fixture
def pushgateway(promstack: PromStack) -> Server:
    return promstack.pushgateway()


@pytest.fixture
def alertmanager(promstack: PromStack, webhook_receiver: WebhookReceiver) -> Server:
    """A fresh Alertmanager that sends every notification to ``webhook_receiver``."""
    return promstack.alertmanager(webhook_url=webhook_receiver.url)


@pytest.fixture
def victoria_metrics(promstack: PromStack) -> Server:
    return promstack.victoria_metrics()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    recv = WebhookReceiver()
    yield recv
    recv.close()
