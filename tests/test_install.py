"""The README's install section stays true to pyproject.toml (the wheel itself is built,
installed into a clean venv and used by ``make dist-check``, see scripts/check_dist.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")


def _install_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.splitlines()] == [
        ["make", "demo"],
        ["make", "test"],
    ]
    assert readme.index("## Install") > readme.index("make test")


def test_the_extras_table_lists_every_extra() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = set(pyproject["project"]["optional-dependencies"])
    section = _install_section()
    listed = {
        name
        for row in re.findall(r"^\| (`[^|]+`) \|", section, flags=re.M)
        for name in re.findall(r"`([a-z]+)`", row)
    }
    assert listed == extras
    assert "pip install '.[cli]'" in section and ".whl[cli" in section


def test_make_test_runs_the_wheel_check() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (test_line,) = [line for line in makefile.splitlines() if line.startswith("test:")]
    assert "dist-check" in test_line.split()
    assert "scripts/check_dist.py" in makefile
    assert (ROOT / "scripts" / "check_dist.py").is_file()
