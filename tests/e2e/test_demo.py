"""``meterhub demo`` end to end: a real subprocess without a terminal, real worker processes,
real files; every artifact is checked with the tool that consumes it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from meterhub.exposition.parser import parse_text
from meterhub.oplog import read_batches
from support.grafana import check_with_grafanas_model

pytestmark = pytest.mark.realstack


def demo(directory: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("METERHUB_MULTIPROC_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "meterhub.cli", "demo", "--dir", str(directory), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return subprocess.run([binary, *args], input=stdin, capture_output=True, check=False)


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    directory = tmp_path_factory.mktemp("demo") / "meterhub-demo"
    return directory, demo(directory, "--duration", "10")


def test_demo_exits_0_and_prints_the_summary(demo_run: tuple[Path, Any]) -> None:
    _, proc = demo_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "/metrics" in proc.stdout
    assert "what was produced where" in proc.stdout
    assert "meterhub top" in proc.stdout  # the live view was shown (plain text, no TTY)


def test_textfile_merges_every_process_and_passes_promtool(demo_run: tuple[Path, Any]) -> None:
    directory, _ = demo_run
    text = (directory / "textfile" / "alertdesk.prom").read_text()
    families = {f.name: f for f in parse_text(text)}
    processed = families["alertdesk_alerts_processed"]  # recorded by the worker processes
    assert sum(s.values[0] for s in processed.series) > 0
    calls = families["alertdesk_component_calls"]
    statuses = {dict(s.labels)["status"] for s in calls.series}
    assert statuses == {"success", "failure"}  # the fake Jira fails a share of calls
    assert {"alertdesk_user_logins", "alertdesk_games_completed"} <= set(families)  # events
    check = promtool("check", "metrics", stdin=text.encode())
    assert check.returncode == 0, check.stdout + check.stderr


def test_oplog_batches_parse(demo_run: tuple[Path, Any]) -> None:
    directory, _ = demo_run
    files = sorted((directory / "oplog").glob("metrics_*.json"))
    assert files
    for path in files:
        data = json.loads(path.read_text())
        assert set(data) >= {"records", "batch_timestamp", "batch_id", "total_records"}
        assert data["total_records"] == len(data["records"])
        assert path.name == f"metrics_{data['batch_id']}.json"
    records = [r for b in read_batches(directory / "oplog") for r in b.records]
    assert records and {r["operation_type"] for r in records} == {"alert"}
    assert any(not r["success"] for r in records)


def test_event_database_holds_both_event_types(demo_run: tuple[Path, Any]) -> None:
    directory, _ = demo_run
    with sqlite3.connect(directory / "events.db") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        (table,) = [t for t in tables if "event" in t]
        types = {r[0] for r in conn.execute(f"SELECT DISTINCT event_type FROM {table}")}
    assert types == {"user_logged_in", "game_completed"}


def test_rules_dashboard_and_catalog_are_valid(demo_run: tuple[Path, Any]) -> None:
    directory, _ = demo_run
    dashboard = json.loads((directory / "dashboards" / "alertdesk.json").read_text())
    assert dashboard["panels"]
    assert (dashboard["uid"], dashboard["title"]) == ("meterhub-alertdesk", "alertdesk")
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]
    assert any(e.startswith("sum by (outcome) (rate(alertdesk_alerts_processed") for e in exprs)
    check_with_grafanas_model(dashboard)
    catalog = json.loads((directory / "catalog.json").read_text())
    names = {m["name"] for m in catalog["metrics"]}
    assert "alertdesk_component_calls_total" in names
    assert (directory / "catalog.md").read_text().startswith("# Metric catalog")
    rules = directory / "rules" / "alertdesk.rules.yml"
    assert "ComponentFailureRatioHigh" in rules.read_text()
    check = promtool("check", "rules", str(rules))
    assert check.returncode == 0, check.stdout + check.stderr


def test_ctrl_c_stops_gracefully_with_a_summary(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meterhub.cli",
            "demo",
            "--dir",
            str(directory),
            "--duration",
            "120",
            "--workers",
            "1",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        textfile = directory / "textfile" / "alertdesk.prom"
        deadline = time.monotonic() + 60
        while not textfile.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        assert textfile.exists()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-2000:] + err[-2000:]
    assert "what was produced where" in out
    assert "Traceback" not in err


def test_with_prometheus_the_jira_alert_fires(tmp_path: Path) -> None:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (Debian package prometheus)")
    proc = demo(tmp_path / "demo", "--duration", "6", "--workers", "1", "--with-prometheus")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ComponentFailureRatioHigh is firing" in proc.stdout


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meterhub.cli", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},  # wide enough that no metric name is folded
    )


def test_the_other_subcommands_read_what_the_demo_left(
    demo_run: tuple[Path, Any], tmp_path: Path
) -> None:
    directory, _ = demo_run
    textfile = directory / "textfile" / "alertdesk.prom"
    lint = cli("lint", str(textfile))  # the demo's own exposition follows the practice
    assert lint.returncode == 0, lint.stdout + lint.stderr
    out = tmp_path / "sidecar.prom"
    sidecar = cli(
        "textfile", "--multiproc-dir", str(directory / "multiproc"), "--out", str(out), "--once"
    )
    assert sidecar.returncode == 0, sidecar.stderr
    merged = {f.name: f for f in parse_text(out.read_text())}
    assert sum(s.values[0] for s in merged["alertdesk_alerts_processed"].series) > 0
    top = cli("top", str(directory / "multiproc"), "--iterations", "1", "--interval", "0.1")
    assert top.returncode == 0 and "alertdesk_alerts_processed" in top.stdout, top.stderr
    stats = cli("oplog", "stats", str(directory / "oplog"), "--json")
    assert stats.returncode == 0, stats.stderr
    assert {row["operation_type"] for row in json.loads(stats.stdout)} == {"alert"}
    counts = cli("events", "counts", "--db", str(directory / "events.db"), "--json")
    assert counts.returncode == 0, counts.stderr
    assert set(json.loads(counts.stdout)) == {"user_logged_in", "game_completed"}


def test_the_printed_look_around_commands_run_as_printed(demo_run: tuple[Path, Any]) -> None:
    _, proc = demo_run
    lines = proc.stdout.split("Look around:\n", 1)[1].splitlines()[:3]
    assert [line.split()[-2] for line in lines] == ["top", "lint", "stats"], lines
    for line in lines:
        command = line.strip() + (" --iterations 1 --interval 0.1" if " top " in line else "")
        # The paths are relative to where the demo ran (this directory) or absolute.
        run = subprocess.run(
            command,
            shell=True,
            cwd=Path.cwd(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, (command, run.stdout[-2000:], run.stderr[-2000:])
