"""Shared test setup.

* Every test starts from meterhub's default configuration with strict mode on (the test
  default of design.md §5); tests of the lenient policy call ``configure(strict=False)``.
* Fixture modules under ``tests/support/`` (real servers: Prometheus stack, PostgreSQL,
  Redis, ...) are loaded as plugins automatically.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import meterhub

pytest_plugins = sorted(
    f"support.{p.stem}"
    for p in (Path(__file__).parent / "support").glob("*.py")
    if not p.stem.startswith("_")
)


@pytest.fixture(autouse=True)
def _meterhub_defaults() -> Iterator[None]:
    meterhub.reset_defaults()
    meterhub.configure(strict=True)
    yield
    meterhub.reset_defaults()


@pytest.fixture
def registry() -> meterhub.Registry:
    """A fresh registry without self-metrics (so rendered output holds only the test's metrics)."""
    return meterhub.Registry(self_metrics=False)


@pytest.fixture
def lenient() -> None:
    """Run the test with strict mode off (errors counted instead of raised)."""
    meterhub.configure(strict=False)
