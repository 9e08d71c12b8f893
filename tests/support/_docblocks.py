"""The Python blocks of a Markdown document, and running one as a reader would paste it.

Shared by ``tests/test_readme.py`` (README.md) and ``tests/test_docs.py`` (docs/*.md).
Each block runs in a fresh interpreter (its own default registry and hub), in an empty
temporary directory, with every ``METERHUB_*`` variable removed except strict mode (the
test default: a recording mistake in an example fails it).

A block that cannot run as pasted is preceded by a marker saying why, which the test
reports::

    <!-- doc-test: skip a settings.py fragment (tests/integrations/django_project runs it) -->

``<!-- doc-test: needs flask -->`` runs the block only when that module is importable
(an optional extra), skipping it with that reason otherwise. ``<!-- doc-test: with
pushgateway -->`` (or ``node_exporter``) runs it against the real server of that fixture,
its address (or textfile directory) put in place of the example's; ``with django-settings``
reads a settings fragment with Django's and meterhub's own settings code. A block with top-level
``await`` runs in an event loop, as pasted into ``python -m asyncio``.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import meterhub

# A fence may be indented (inside a list item): its code is dedented.
_FENCE = re.compile(
    r"(?:<!--\s*(?:doc|readme)-test:\s*(?P<verb>skip|needs|with)\s*(?P<arg>.*?)\s*-->\s*\n)?"
    r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


class Block(NamedTuple):
    """One ``python`` fenced block: its first line in the file, its code, why it is
    skipped (``None``: it runs) and the modules it needs."""

    line: int
    code: str
    skip: str | None
    needs: tuple[str, ...] = ()
    server: str | None = None
    """What the block runs with (``<!-- doc-test: with X -->``): a real server, say."""


def python_blocks(text: str) -> list[Block]:
    """The ``python`` fenced blocks of *text*, with their first line."""
    out = []
    for m in _FENCE.finditer(text):
        verb, arg = m.group("verb"), m.group("arg")
        line = text.count("\n", 0, m.start("code")) + 1
        skip = arg if verb == "skip" else None
        needs = tuple(arg.replace(",", " ").split()) if verb == "needs" else ()
        server = arg if verb == "with" else None
        out.append(Block(line, textwrap.dedent(m.group("code")), skip, needs, server))
    return out


def block_env() -> dict[str, str]:
    """The environment a block runs in: no ``METERHUB_*`` but strict mode, this meterhub."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERHUB_")}
    env["METERHUB_STRICT"] = "true"
    src = str(Path(meterhub.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    return env


# A block with top-level ``await`` runs as in ``python -m asyncio``: compiled to a coroutine
# in ``__main__``'s namespace and run in an event loop.
_ASYNC_DRIVER = """
import ast, asyncio, sys
code = compile(sys.argv[1], "<doc block>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, sys.modules["__main__"].__dict__)
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""


def _needs_event_loop(code: str) -> bool:
    try:
        compile(code, "<doc block>", "exec")
    except SyntaxError:
        try:
            compile(code, "<doc block>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError:
            return False  # a real syntax error: reported by the plain run
        return True
    return False


def run_block(
    where: str,
    block: Block,
    cwd: Path,
    *,
    keep_files: bool = False,
    timeout: float = 120,
    replace: tuple[str, str] | None = None,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> None:
    """Run *block* in a fresh interpreter in *cwd*; ``AssertionError`` naming *where* (the
    file and line) with its output if it fails, or if it leaves files in *cwd* unless
    *keep_files* (examples of what writes files, such as the operation log, write them
    relative to where they run). *replace* is ``(old, new)``: a server address, say; *env*
    adds variables (a ``METERHUB_*`` setting the example says to set); *args* go to the
    block's ``sys.argv``."""
    code = block.code if replace is None else block.code.replace(*replace)
    argv = ["-c", code, *args]
    if _needs_event_loop(code):
        argv = ["-c", _ASYNC_DRIVER, code, *args]
    proc = subprocess.run(
        [sys.executable, *argv],
        cwd=cwd,
        env={**block_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"the block at {where} failed:\n{proc.stdout}\n{proc.stderr}"
    if not keep_files:
        left = sorted(p.name for p in cwd.iterdir())
        assert left == [], f"the block at {where} left files in the working directory: {left}"
