"""Every Python block in README.md runs as pasted (see ``tests/support/_docblocks.py``:
a fresh interpreter, an empty directory, strict mode). The README has no skip markers."""

from __future__ import annotations

from pathlib import Path

import pytest

from support._docblocks import Block, python_blocks, run_block

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_python_blocks_and_runs_them_all() -> None:
    assert len(BLOCKS) >= 3
    assert [b.line for b in BLOCKS if b.skip is not None or b.needs] == []


def test_the_extractor_sees_skip_markers() -> None:
    text = "x\n<!-- doc-test: skip needs a GPU -->\n```python\nboom()\n```\n```py\n```\n"
    assert python_blocks(text) == [Block(4, "boom()\n", "needs a GPU")]
    text = "<!-- doc-test: needs flask, celery -->\n```python\nimport flask\n```\n"
    assert python_blocks(text) == [Block(3, "import flask\n", None, ("flask", "celery"))]
    text = "* item:\n\n  ```python\n  x = 1\n  ```\n"  # in a list item: dedented
    assert python_blocks(text) == [Block(4, "x = 1\n", None)]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}" for b in BLOCKS])
def test_readme_block_runs_as_pasted(block: Block, tmp_path: Path) -> None:
    run_block(f"README.md:{block.line}", block, tmp_path)
