"""Run every benchmark module (bench/bench_*.py) and print its table.

Each module exposes ``main() -> None`` that times meterhub and the anchor library side by
side in this one process and prints ratios (meterhub / anchor; lower is better).
Usage: ``python bench/run.py [name-substring ...]``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    sys.path.insert(0, str(here))
    for path in sorted(here.glob("bench_*.py")):
        if argv and not any(a in path.stem for a in argv):
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"\n=== {path.stem} ===", flush=True)
        module.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
