"""ARCHITECTURE.md's rules, checked on the source: the import directions that are never
reversed, integrations on the public API only, and ``_config`` as the one reader of
``METERHUB_*`` settings. Parsed with :mod:`ast` (imports inside functions count too), so
a rule broken in a lazily imported corner fails here, not in review."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module

    def imports(self) -> set[str]:
        """Every ``meterhub`` module this one imports (``from a import b`` counts as
        ``a.b`` where ``b`` is a module, else as ``a``)."""
        package = self.name.split(".")
        if self.path.name != "__init__.py":
            package = package[:-1]
        found = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if _ours(a.name))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if _ours(module):
                    for alias in node.names:
                        sub = f"{module}.{alias.name}"
                        found.add(sub if sub in MODULES else module)
        return found


def _ours(name: str) -> bool:
    return name == "meterhub" or name.startswith("meterhub.")


def _modules() -> dict[str, Module]:
    found = {}
    for path in sorted((SRC / "meterhub").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        found[name] = Module(name, path, ast.parse(path.read_text(), str(path)))
    return found


MODULES = _modules()


def _in(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _edges(where: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    for name, module in MODULES.items():
        if _in(name, *where):
            for imported in sorted(module.imports()):
                yield name, imported


TOOLS = ("meterhub.cli", "meterhub.demo", "meterhub._terminal")
INTEGRATIONS = ("meterhub.integrations",)
DEFINITION = ("meterhub.metrics", "meterhub._definition")
STORAGE = ("meterhub.store",)
RENDERING = ("meterhub.exposition",)
DELIVERY = ("meterhub.export",)
FACADES = ("meterhub._hub", "meterhub.component", "meterhub.oplog", "meterhub.events")


def test_the_modules_were_found() -> None:
    assert {"meterhub", "meterhub.metrics", "meterhub.store.mmap.store"} <= MODULES.keys()
    assert sum(1 for name in MODULES if _in(name, *INTEGRATIONS)) > 5


def test_the_core_never_imports_integrations_or_the_command() -> None:
    wrong = [
        (name, imported)
        for name, module in MODULES.items()
        if not _in(name, *INTEGRATIONS, *TOOLS)
        for imported in module.imports()
        if _in(imported, *INTEGRATIONS, *TOOLS)
    ]
    assert wrong == []


def test_integrations_use_only_the_public_api() -> None:
    """An integration imports public modules (no ``_``-named part) and never the storage or
    definition internals; its own package's helpers are its own business."""
    wrong = []
    for importer, imported in _edges(INTEGRATIONS):
        if _in(imported, *INTEGRATIONS):
            continue
        private = any(part.startswith("_") for part in imported.split("."))
        if private or _in(imported, *STORAGE, "meterhub._definition"):
            wrong.append((importer, imported))
    assert wrong == []


# The one documented cycle: the directory collector takes the registry's configured options.
STORAGE_MAY_IMPORT = {("meterhub.store.mmap.collector", "meterhub.registry")}


def test_storage_knows_no_metric_classes_renderers_or_delivery() -> None:
    wrong = [
        (a, b)
        for a, b in _edges(STORAGE)
        if _in(b, *DEFINITION, *RENDERING, *DELIVERY, *FACADES, "meterhub.registry")
        and (a, b) not in STORAGE_MAY_IMPORT
    ]
    assert wrong == []


def test_rendering_does_no_delivery_and_reads_no_store() -> None:
    wrong = [
        (a, b) for a, b in _edges(RENDERING) if _in(b, *DELIVERY, *STORAGE, *DEFINITION, *FACADES)
    ]
    assert wrong == []


def test_definition_and_storage_never_import_the_facades_above_them() -> None:
    wrong = [(a, b) for a, b in _edges(DEFINITION + STORAGE) if _in(b, *FACADES, *DELIVERY)]
    assert wrong == []


def _environment_reads(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """``os.environ[...]``, ``os.environ.get(...)``, ``os.getenv(...)`` and ``... in
    os.environ`` whose key is a literal (reads only: a demo may set a variable for its
    children)."""

    def is_environ(node: ast.expr) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    def literal(node: ast.expr | None) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return None

    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Subscript) and is_environ(node.value):
            if isinstance(node.ctx, ast.Load):
                key = literal(node.slice)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            func = node.func
            if (func.attr == "get" and is_environ(func.value)) or func.attr == "getenv":
                key = literal(node.args[0])
        elif isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators):
            key = literal(node.left)
        if key is not None:
            yield node.lineno, key


def test_only_config_reads_meterhub_settings_from_the_environment() -> None:
    wrong = [
        f"{module.path.relative_to(SRC)}:{line}: {key}"
        for name, module in MODULES.items()
        if name != "meterhub._config"
        for line, key in _environment_reads(module.tree)
        if key.startswith("METERHUB_")
    ]
    assert wrong == []


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.environ['METERHUB_X']",
        "import os\nos.environ.get('METERHUB_X', '')",
        "import os\nos.getenv('METERHUB_X')",
        "import os\n'METERHUB_X' in os.environ",
    ],
)
def test_the_environment_check_sees_every_form_of_read(code: str) -> None:
    assert [key for _, key in _environment_reads(ast.parse(code))] == ["METERHUB_X"]


def test_the_environment_check_lets_a_child_process_be_configured() -> None:
    assert list(_environment_reads(ast.parse("import os\nos.environ['METERHUB_X'] = '1'"))) == []
