"""The examples in the docstrings run (every public name documents one)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import meterhub

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(meterhub.__path__, prefix="meterhub.")
    if not info.name.endswith(".__main__")  # runs the CLI when imported
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_examples_are_found() -> None:
    finder = doctest.DocTestFinder()
    modules = [importlib.import_module(name) for name in MODULES]
    examples = sum(len(test.examples) for module in modules for test in finder.find(module))
    assert examples >= 100
