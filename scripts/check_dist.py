"""Build the sdist and wheel, install the wheel into a clean venv and smoke-test it there.

``make test`` runs this (``make dist-check`` alone), so what users install is what was
tested: the sdist is built from the checkout, the wheel from the sdist (proving the sdist
holds what a build needs), and the wheel must carry every module of ``src/meterhub``,
``py.typed`` and the C timer cores' stub, and the compiled cores themselves where
``METERHUB_REQUIRE_SPEEDUPS=1`` (CI, which installs a compiler) says so. The installed
package is then used from a directory outside the checkout: imported, rendering a tiny
registry, and through its ``meterhub`` console script. Last, a wheel built from the sdist
with ``CC=/bin/false`` must build, hold no compiled code and load the pure-Python cores.

Usage: ``python scripts/check_dist.py [OUTDIR]`` (default ``build/dist-check``), with the
``build`` package in this interpreter. It builds without isolation (this interpreter's
setuptools and wheel, from the ``test`` extra), so only the ``[cli]`` extra's packages come
from the package index, and pip's cache serves them on later runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What a build from the sdist needs, besides the package itself.
SDIST_NEEDS = (
    "pyproject.toml",
    "setup.py",
    "README.md",
    "src/meterhub/py.typed",
    "src/meterhub/_speedups.c",
    "src/meterhub/_speedups.pyi",
)
WHEEL_NEEDS = ("meterhub/py.typed", "meterhub/_speedups.pyi")
REQUIRE_SPEEDUPS = bool(os.environ.get("METERHUB_REQUIRE_SPEEDUPS"))

SMOKE = textwrap.dedent(
    """
    import pathlib, sys
    import meterhub
    from meterhub import CollectorRegistry, Counter, generate_latest

    here = pathlib.Path(meterhub.__file__).resolve().parent
    assert pathlib.Path(sys.prefix).resolve() in here.parents, here  # the installed copy
    assert (here / "py.typed").is_file(), "py.typed is missing"
    reg = CollectorRegistry()
    Counter("smoke_orders", "Orders.", ["status"], registry=reg).labels("ok").inc(2)
    text = generate_latest(reg).decode()
    assert 'smoke_orders_total{status="ok"} 2' in text, text
    print("import and render: ok", meterhub.__file__)
    from meterhub._definition import timercore
    print("timer cores:", "C" if timercore.ACCELERATED else "pure Python")
    assert timercore.ACCELERATED or not sys.argv[1:], "the C timer cores did not load"
    """
)

MYAPP = textwrap.dedent(
    """
    from meterhub import Counter, Registry

    registry = Registry(self_metrics=False)
    Counter("myapp_orders", "Orders.", ["status"], registry=registry).labels("ok").inc()
    """
)


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"check-dist: {' '.join(map(str, args))} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def modules_in_source() -> set[str]:
    src = ROOT / "src"
    return {p.relative_to(src).as_posix() for p in (src / "meterhub").rglob("*.py")}


def compiled_cores(wheel: Path) -> bool:
    with zipfile.ZipFile(wheel) as whl:
        return any(
            n.startswith("meterhub/_speedups.") and n.endswith((".so", ".pyd"))
            for n in whl.namelist()
        )


def check_without_compiler(sdist: Path, python: Path, out: Path, elsewhere: Path) -> None:
    """A machine with no C compiler (``make demo`` on a bare Python) still builds and installs
    meterhub: the optional extension is skipped and the pure-Python timer cores load."""
    dist = out / "dist-no-compiler"
    env = {**os.environ, "CC": "/bin/false", "LDSHARED": "/bin/false"}
    run(
        sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", dist, sdist, env=env
    )
    (wheel,) = dist.glob("meterhub-*.whl")
    if compiled_cores(wheel):
        sys.exit(f"check-dist: {wheel.name} was built with CC=/bin/false yet holds compiled code")
    run(
        python,
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "--no-deps",
        "--force-reinstall",
        wheel,
    )
    smoke = run(python, "-I", "-c", SMOKE, cwd=elsewhere)
    if "timer cores: pure Python" not in smoke:
        sys.exit(f"check-dist: the wheel built without a compiler did not fall back:\n{smoke}")
    print("check-dist: without a C compiler the build succeeds and the pure-Python cores load")


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "build" / "dist-check").resolve()
    shutil.rmtree(out, ignore_errors=True)
    dist = out / "dist"
    started = time.monotonic()
    # The sdist from the checkout, then the wheel from that sdist (build's default order).
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, ROOT, cwd=ROOT)
    (sdist,) = dist.glob("meterhub-*.tar.gz")
    (wheel,) = dist.glob("meterhub-*.whl")
    with tarfile.open(sdist) as tar:
        top = sdist.name[: -len(".tar.gz")]
        members = {m.name.removeprefix(top + "/") for m in tar.getmembers()}
    missing = [need for need in SDIST_NEEDS if need not in members]
    if missing:
        sys.exit(f"check-dist: {sdist.name} lacks {missing}")
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
    lost = sorted(modules_in_source() - names) + [n for n in WHEEL_NEEDS if n not in names]
    if lost:
        sys.exit(f"check-dist: {wheel.name} lacks {lost}")
    compiled = compiled_cores(wheel)
    if REQUIRE_SPEEDUPS and not compiled:
        sys.exit(f"check-dist: {wheel.name} lacks the C timer cores (METERHUB_REQUIRE_SPEEDUPS=1)")
    cores = "with the C timer cores" if compiled else "pure Python (no C compiler here)"
    print(f"check-dist: built {sdist.name} and {wheel.name} (from the sdist), {cores}")

    # A clean venv: no system site-packages, nothing from the checkout on its path.
    env_dir = out / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python, script = env_dir / "bin" / "python", env_dir / "bin" / "meterhub"
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{wheel}[cli]")
    elsewhere = out / "elsewhere"  # outside the checkout, so src/ cannot be imported
    elsewhere.mkdir()
    print(
        run(python, "-I", "-c", SMOKE, *(["compiled"] if compiled else []), cwd=elsewhere).strip()
    )
    if "Usage: meterhub" not in run(script, "--help", cwd=elsewhere):
        sys.exit("check-dist: `meterhub --help` printed no usage")
    (elsewhere / "myapp.py").write_text(MYAPP)
    run(script, "lint", "--app", "myapp:registry", cwd=elsewhere)
    board = run(script, "dashboard", "--app", "myapp:registry", cwd=elsewhere)
    if '"uid": "meterhub-myapp"' not in board:
        sys.exit("check-dist: the installed `meterhub dashboard` did not name the app")
    check_without_compiler(sdist, python, out, elsewhere)
    print(f"check-dist: the installed wheel works ({time.monotonic() - started:.0f}s)")


if __name__ == "__main__":
    main()
