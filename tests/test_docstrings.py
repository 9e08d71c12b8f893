"""The examples in the docstrings run (every public name documents one).

A module that needs an optional extra which is not installed is skipped, naming it; any
other import failure fails (the core has no required dependency).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import meterhub

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(meterhub.__path__, prefix="meterhub.")
    if not info.name.endswith(".__main__")  # runs the CLI when imported
)

# Top-level packages of the optional extras in pyproject.toml (and what they pull in).
OPTIONAL = frozenset(
    {
        "asgiref", "celery", "click", "django", "flask", "httpx", "kombu", "opentelemetry",
        "orjson", "psycopg", "requests", "rich", "starlette", "werkzeug", "yaml",
    }
)  # fmt: skip


# Modules that import without the extra, but whose examples use it.
EXAMPLES_NEED = {
    "meterhub.integrations.httpclient": ("httpx", "requests"),
    "meterhub.ops.rules": ("yaml",),
    "meterhub.ops.slo": ("yaml",),
}


def _import(name: str) -> ModuleType | None:
    """The module, or ``None`` when it needs an optional extra that is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        # Integrations re-raise a missing framework as an ImportError with an install
        # hint ("pip install 'meterhub[celery]'"), chained to the ModuleNotFoundError.
        cause: BaseException | None = exc
        while cause is not None:
            missing = (
                getattr(cause, "name", None) if isinstance(cause, ModuleNotFoundError) else None
            )
            if missing and missing.partition(".")[0] in OPTIONAL:
                return None
            cause = cause.__cause__ or cause.__context__
        raise


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = _import(name)
    if module is None:
        pytest.skip(f"{name} needs an optional extra that is not installed")
    for extra in EXAMPLES_NEED.get(name, ()):
        pytest.importorskip(extra)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_examples_are_found() -> None:
    finder = doctest.DocTestFinder()
    modules = [m for m in map(_import, MODULES) if m is not None]
    examples = sum(len(test.examples) for module in modules for test in finder.find(module))
    assert examples >= 100  # the core alone (no extra installed) has over 300
