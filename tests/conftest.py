"""Shared test setup.

* Every test starts from meterhub's default configuration with strict mode on (the test
  default of design.md §5); tests of the lenient policy call ``configure(strict=False)``.
* Fixture modules under ``tests/support/`` (real servers: Prometheus stack, PostgreSQL,
  Redis, ...) are loaded as plugins automatically.
* Every test that starts a real server is marked ``realserver``: all of ``tests/e2e/``,
  every test using one of :data:`REAL_SERVER_FIXTURES` (directly or through another
  fixture) and every ``realstack`` test. ``pytest -m "not realserver"`` is the fast inner
  loop; a test that starts one some other way carries the marker itself.
* ``@pytest.mark.extra("yaml")`` skips a test when that optional extra is not installed
  (whole modules that need one call ``pytest.importorskip`` before importing it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import meterhub

pytest_plugins = sorted(
    f"support.{p.stem}"
    for p in (Path(__file__).parent / "support").glob("*.py")
    if not p.stem.startswith("_")
)


REAL_SERVER_FIXTURES = frozenset(
    {
        # tests/support/promstack.py: Prometheus, node_exporter, Pushgateway, Alertmanager,
        # VictoriaMetrics
        "promstack",
        "_prometheus_session",
        "prometheus",
        "node_exporter",
        "pushgateway",
        "alertmanager",
        "victoria_metrics",
        # tests/support/postgres.py, redis.py, celery_worker.py
        "postgres",
        "postgres_db",
        "postgres_server",
        "redis_url",
        "redis_tls",
        "celery_worker",
    }
)
_E2E = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if (
            _E2E in item.path.parents
            or fixtures & REAL_SERVER_FIXTURES
            or item.get_closest_marker("realstack") is not None
        ):
            item.add_marker(pytest.mark.realserver)


@pytest.hookimpl(tryfirst=True)  # before fixtures are set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    # @pytest.mark.extra("yaml", ...): skip (naming it) when an optional extra is missing.
    for mark in item.iter_markers("extra"):
        for module in mark.args:
            pytest.importorskip(module, reason=f"needs {module!r}, an optional extra")


@pytest.fixture(autouse=True)
def _meterhub_defaults() -> Iterator[None]:
    meterhub.reset_defaults()
    meterhub.configure(strict=True)
    yield
    _stop_leftover_operation_logs()
    meterhub.reset_defaults()


def _stop_leftover_operation_logs() -> None:
    """A log a test left running keeps its writer thread (retrying a removed directory,
    holding its records) and would skew later tests that count writer naps or memory."""
    exitflush = sys.modules.get("meterhub.oplog.exitflush")
    if exitflush is None:
        return
    for log in list(exitflush.RUNNING):
        try:
            log.stop_sync(1.0)
        except Exception:
            pass


@pytest.fixture
def registry() -> meterhub.Registry:
    """A fresh registry without self-metrics (so rendered output holds only the test's metrics)."""
    return meterhub.Registry(self_metrics=False)


@pytest.fixture
def switch_often() -> Iterator[None]:
    """Make the interpreter switch threads as often as it can (every microsecond), so a race
    in the code under test shows up; the old interval comes back after the test."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


@pytest.fixture
def lenient() -> None:
    """Run the test with strict mode off (errors counted instead of raised)."""
    meterhub.configure(strict=False)
