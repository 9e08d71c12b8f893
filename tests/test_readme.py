"""Every Python block in README.md runs as pasted.

Each block runs in a fresh interpreter (its own default registry and hub), in an empty
temporary directory, with every ``METERHUB_*`` variable removed except strict mode (the
test default: a recording mistake in an example fails it). A block that truly cannot run
is preceded by ``<!-- readme-test: skip <reason> -->``; the reason is reported.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

import meterhub

README = Path(__file__).resolve().parent.parent / "README.md"
_FENCE = re.compile(
    r"(?:<!--\s*readme-test:\s*skip\s*(?P<skip>.*?)\s*-->\s*\n)?"
    r"^```python[ \t]*\n(?P<code>.*?)^```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


class Block(NamedTuple):
    line: int
    code: str
    skip: str | None


def readme_blocks(text: str) -> list[Block]:
    """The ``python`` fenced blocks of *text* (top-level fences only), with their line."""
    return [
        Block(text.count("\n", 0, m.start("code")) + 1, m.group("code"), m.group("skip"))
        for m in _FENCE.finditer(text)
    ]


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERHUB_")}
    env["METERHUB_STRICT"] = "true"
    src = str(Path(meterhub.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    return env


def test_the_readme_has_python_blocks_and_runs_them_all() -> None:
    assert len(BLOCKS) >= 3
    assert [b.line for b in BLOCKS if b.skip is not None] == []


def test_the_extractor_sees_skip_markers() -> None:
    text = "x\n<!-- readme-test: skip needs a GPU -->\n```python\nboom()\n```\n```py\n```\n"
    assert readme_blocks(text) == [Block(4, "boom()\n", "needs a GPU")]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}" for b in BLOCKS])
def test_readme_block_runs_as_pasted(block: Block, tmp_path: Path) -> None:
    if block.skip is not None:
        pytest.skip(f"README.md:{block.line}: {block.skip}")
    proc = subprocess.run(
        [sys.executable, "-c", block.code],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        f"README.md block at line {block.line} failed:\n{proc.stdout}\n{proc.stderr}"
    )
    assert list(tmp_path.iterdir()) == [], "a README example left files in the working directory"
