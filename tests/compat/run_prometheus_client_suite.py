"""Run prometheus_client 0.26.0's own test suite against meterhub.

The source distribution is fetched once with pip (``pip download --no-deps --no-binary
:all:``) into ``.cache/compat/`` at the repository root, its ``tests/`` are run with
pytest in a subprocess, with ``prometheus_client.*`` imports answered by meterhub's
public modules (:mod:`prometheus_client_alias`: names only, no behaviour), once in
meterhub's default mode and once with ``METERHUB_COMPAT=prometheus_client``.

The outcome is compared with the expected-failure lists in ``docs/compat.md``.
Run it by hand for a report of what fails, grouped by error message::

    PYTHONPATH=src python tests/compat/run_prometheus_client_suite.py [--mode default|compat]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter as Tally
from pathlib import Path
from typing import NamedTuple

VERSION = "0.26.0"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = ROOT / ".cache" / "compat"
COMPAT_DOC = ROOT / "docs" / "compat.md"

FILES = (
    "test_asgi.py",
    "test_core.py",
    "test_exposition.py",
    "test_gc_collector.py",
    "test_multiprocess.py",
    "test_parser.py",
    "test_platform_collector.py",
    "test_process_collector.py",
    "test_samples.py",
    "test_utils.py",
    "test_wsgi.py",
)
"""The suite's files that exercise what meterhub replaces (docs/compat.md says why the
Twisted, aiohttp, Django and Graphite ones are not run)."""

MODES = {"default": {}, "compat": {"METERHUB_COMPAT": "prometheus_client"}}

_ENTRY = re.compile(r"^- `([^`]+)`\s*(?:—|:|-)\s*\S")
_SECTION = re.compile(r"<!--\s*expected-failures:\s*(\w+)\s*-->")
_END = "<!-- /expected-failures -->"


class FetchError(RuntimeError):
    """The sdist is not cached and pip could not download it."""


class Result(NamedTuple):
    outcomes: dict[str, str]
    details: dict[str, str]

    def failing(self) -> set[str]:
        return {k for k, v in self.outcomes.items() if v in ("failed", "error")}

    def passing(self) -> set[str]:
        return {k for k, v in self.outcomes.items() if v == "passed"}

    def counts(self) -> dict[str, int]:
        return dict(Tally(self.outcomes.values()))


def fetch(cache: Path = CACHE) -> Path:
    """The extracted sdist's directory (downloaded with pip on first use)."""
    tree = cache / f"prometheus_client-{VERSION}"
    if (tree / "tests" / "test_core.py").is_file():
        return tree
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / f"prometheus_client-{VERSION}.tar.gz"
    if not sdist.is_file():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-d", str(cache),
               f"prometheus_client=={VERSION}"]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FetchError(f"pip download failed: {exc}") from None
        if proc.returncode != 0 or not sdist.is_file():
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise FetchError(f"pip download prometheus_client=={VERSION} failed: {last[0]}")
    with tarfile.open(sdist) as tar:
        tar.extractall(cache, filter="data")
    return tree


def run(mode: str, tree: Path | None = None, extra: list[str] | None = None) -> Result:
    """Run the suite in *mode* (``default`` or ``compat``) and return every test's outcome."""
    tree = fetch() if tree is None else tree
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METERHUB_", "PROMETHEUS_"))}
    env.update(MODES[mode])
    paths = [str(HERE), str(ROOT / "src"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "outcomes.json"
        env["COMPAT_OUTCOMES"] = str(out)
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "-p", "prometheus_client_alias", "-p", "outcome_recorder",
               "-c", str(ini), "--rootdir", str(tree), "-o", "timeout=60",
               *(extra or []), *(f"tests/{f}" for f in FILES)]  # fmt: skip
        subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=900)
        if not out.is_file():
            raise RuntimeError("the suite ended without writing its outcomes")
        data = json.loads(out.read_text(encoding="utf-8"))
    return Result(data["outcomes"], data["details"])


def expected_failures(doc: Path = COMPAT_DOC) -> dict[str, dict[str, str]]:
    """``{section: {nodeid: reason}}`` from the marked lists of docs/compat.md."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in doc.read_text(encoding="utf-8").splitlines():
        start = _SECTION.search(line)
        if start:
            current = sections.setdefault(start.group(1), {})
            continue
        if _END in line:
            current = None
            continue
        m = _ENTRY.match(line)
        if current is not None and m:
            current[m.group(1)] = line[m.end(1) + 1 :].strip(" —:-")
    return sections


def expected_in(mode: str, sections: dict[str, dict[str, str]]) -> set[str]:
    """Node ids expected to fail in *mode*: ``both`` (prometheus_client's private
    internals) always, ``default`` (the documented differences) in default mode only."""
    wanted = set(sections.get("both", {}))
    if mode == "default":
        wanted |= set(sections.get("default", {}))
    return wanted


def compare(result: Result, expected: set[str]) -> tuple[list[str], list[str], list[str]]:
    """``(unexpected failures, unexpected passes, listed ids the suite does not have)``."""
    failing, passing = result.failing(), result.passing()
    unexpected = sorted(failing - expected)
    fixed = sorted(expected & passing)
    stale = sorted(expected - set(result.outcomes))
    return unexpected, fixed, stale


def _report(mode: str, result: Result) -> None:
    sections = expected_failures()
    unexpected, fixed, stale = compare(result, expected_in(mode, sections))
    print(f"== {mode}: {result.counts()}")
    buckets = Tally(result.details.get(t, "")[:110] for t in unexpected)
    for message, n in buckets.most_common():
        print(f"{n:4d}  {message}")
    for t in unexpected:
        print(f"  unexpected failure: {t}: {result.details.get(t, '')[:150]}")
    for t in fixed:
        print(f"  listed but passes:  {t}")
    for t in stale:
        print(f"  listed, not in the suite: {t}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=[*MODES, "both"], default="both")
    parser.add_argument("--json", help="also write the outcomes of each mode to this file")
    args, extra = parser.parse_known_args(argv)
    modes = list(MODES) if args.mode == "both" else [args.mode]
    dump = {}
    for mode in modes:
        result = run(mode, extra=extra)
        dump[mode] = result._asdict()
        _report(mode, result)
    if args.json:
        Path(args.json).write_text(json.dumps(dump, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
