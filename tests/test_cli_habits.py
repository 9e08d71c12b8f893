"""The ``meterhub`` command behaves as people used to other tools expect.

``--app`` imports from the current directory, ``top`` quits on ``q``, every option documents
itself and its default, the demo's printed commands run as printed, and the dashboard is
named after the application. Everything runs for real: a console script in a fresh
process, a pseudo-terminal for ``top``, a shell for the printed commands.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("click")
pytest.importorskip("rich")

import click
from click.testing import CliRunner, Result

from meterhub import Counter, Registry, generate_latest
from meterhub.cli._app import cli
from meterhub.demo._summary import meterhub_command

MYAPP = """
from meterhub import Counter, Registry

registry = Registry(self_metrics=False)
Counter("myapp_orders", "Orders placed.", ["status"], registry=registry).labels("ok").inc()
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _env() -> dict[str, str]:
    """This interpreter's path (meterhub's source included), without the current
    directory: what an installed console script sees."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERHUB_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and p != os.getcwd())
    return env


@pytest.fixture
def console_script(tmp_path: Path) -> Path:
    """A ``meterhub`` console script as pip writes it, in a ``bin`` directory of its own
    (its ``sys.path[0]`` is that directory, not the current one)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "meterhub"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nfrom meterhub.cli import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    return script


def test_app_next_to_the_module_imports_from_the_current_directory(
    tmp_path: Path, console_script: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "myapp.py").write_text(MYAPP)
    for args in (
        ["lint", "--app", "myapp:registry"],
        ["catalog", "--app", "myapp:registry"],
        ["rules", "--app", "myapp:registry"],
        ["dashboard", "--app", "myapp:registry"],
    ):
        proc = subprocess.run(
            [str(console_script), *args],
            cwd=project,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, (args, proc.stderr)
        assert "No module named" not in proc.stderr
    assert "myapp_orders_total" in proc.stdout  # the dashboard of myapp's registry


def _walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _walk(sub, f"{path} {name}")


def test_every_option_has_help_and_shows_its_default() -> None:
    checked = 0
    for path, command in _walk(cli, "meterhub"):
        ctx = click.Context(command, info_name=path, **cli.context_settings)
        for param in command.params:
            if not isinstance(param, click.Option) or param.name == "help":
                continue
            record = param.get_help_record(ctx)
            assert record is not None and param.help, f"{path} {param.opts[0]}: no help text"
            text = record[1]
            default = param.get_default(ctx)
            if param.is_flag or param.required or param.name == "version":
                continue
            if default is None or default == "":
                assert "default:" in text, f"{path} {param.opts[0]}: says nothing of its default"
            else:
                assert "[default: " in text, f"{path} {param.opts[0]}: hides its default"
            checked += 1
        help_text = run(*path.split()[1:], "--help").stdout
        assert "Show this message and exit." in help_text
    assert checked >= 25


def test_top_quits_on_q_and_says_so(tmp_path: Path) -> None:
    source = tmp_path / "app.prom"
    reg = Registry(self_metrics=False)
    Counter("orders", "Orders.", registry=reg).inc()
    source.write_bytes(generate_latest(reg))
    controller, terminal = pty.openpty()
    env = {**_env(), "TERM": "xterm", "COLUMNS": "160", "LINES": "50"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "meterhub.cli", "top", str(source), "--interval", "0.2"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    screen = b""
    try:
        while b"(every 0.2s)" not in screen or b"q quits" not in screen:
            ready, _, _ = select.select([controller], [], [], 60)
            assert ready, screen.decode(errors="replace")
            screen += os.read(controller, 65536)
        os.write(controller, b"q")
        # Keep reading while it exits: a full pty would block its last frames' writes.
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([controller], [], [], 0.5)[0]:
                try:
                    screen += os.read(controller, 65536)
                except OSError:  # the other side closed (Linux: EIO)
                    break
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)
    assert b"orders" in screen


def test_the_demos_commands_run_as_printed(
    tmp_path: Path, console_script: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Look-around line names meterhub the way this shell can run it."""
    bindir = str(console_script.parent)
    monkeypatch.chdir(tmp_path)
    assert meterhub_command(str(console_script), path=bindir) == "meterhub"
    not_on_path = meterhub_command(str(console_script), path=str(tmp_path))
    assert not_on_path == "bin/meterhub"  # relative to here, still a path to the shell
    interpreter = meterhub_command("/usr/lib/python3/dist-packages/pytest/__main__.py")
    assert interpreter == f"{shlex.quote(sys.executable)} -m meterhub.cli"
    textfile = tmp_path / "demo dir" / "app.prom"
    textfile.parent.mkdir()
    reg = Registry(self_metrics=False)
    Counter("orders", "Orders.", registry=reg).inc()
    textfile.write_bytes(generate_latest(reg))
    for command in (not_on_path, interpreter):
        line = f"{command} lint {shlex.quote(str(textfile.relative_to(tmp_path)))}"
        proc = subprocess.run(
            line, shell=True, env=_env(), capture_output=True, text=True, timeout=120, check=False
        )
        assert proc.returncode == 0, (line, proc.stderr)
        assert "0 error(s), 0 warning(s)" in proc.stderr


def test_dashboard_is_named_after_the_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "orders_service.py").write_text(
        "from meterhub import Counter, Registry\n"
        "registry = Registry(self_metrics=False)\n"
        'Counter("orders", "O.", registry=registry)\n'
        'Counter("payments", "P.", registry=registry)\n'
    )
    (tmp_path / "myapp.py").write_text(MYAPP)
    by_module = json.loads(run("dashboard", "--app", "orders_service:registry").stdout)
    assert (by_module["uid"], by_module["title"]) == ("meterhub-orders_service", "orders_service")
    by_prefix = json.loads(run("dashboard", "--app", "myapp:registry").stdout)
    assert (by_prefix["uid"], by_prefix["title"]) == ("meterhub-myapp", "myapp")
    spec = tmp_path / "slo.yml"
    spec.write_text(
        "name: orders\nobjective: 99\nwindow: 30d\n"
        "sli: {good: 'myapp_orders_total{status=\"ok\"}', total: myapp_orders_total}\n"
    )
    named = run(
        "dashboard", "--app", "myapp:registry", "--uid", "myapp-prod", "--title", "My app",
        "--slo", str(spec),
    )  # fmt: skip
    board = json.loads(named.stdout)
    assert (board["uid"], board["title"]) == ("myapp-prod", "My app")
    assert "SLO" in [p["title"] for p in board["panels"]]
    assert "SLO" not in [p["title"] for p in by_prefix["panels"]]
    bad = run("dashboard", "--uid", "no spaces please")
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1
    assert "[a-zA-Z0-9_-]" in bad.stderr
    missing = run("dashboard", "--slo", str(tmp_path / "none.yml"))
    assert missing.exit_code == 2 and "no such SLO spec file" in missing.stderr


def test_top_shows_the_interval_asked_for_not_the_measured_one() -> None:
    from rich.console import Console

    from meterhub._terminal import render_view
    from meterhub.tools.top import compare

    reg = Registry(self_metrics=False)
    Counter("orders", "Orders.", registry=reg).inc()
    view = compare(reg.collect(), reg.collect(), 5.01134)
    for asked, shown in ((5.0, "every 5s"), (0.25, "every 0.25s"), (15.0, "every 15s")):
        con = Console(record=True, width=120)
        con.print(render_view(view, "app.prom", interval=asked))
        text = con.export_text()
        assert shown + ")" in text and "5.01" not in text, text
