"""The ``meterhub`` command: one success path per subcommand and the bad-input paths.

Wrong input must give exactly one line on stderr and exit status 2, never a traceback.
Sources are real: files, a real HTTP exporter, a real multi-process directory, real
operation-log batches and a real SQLite event store.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("click")
pytest.importorskip("rich")

from click.testing import CliRunner, Result

from meterhub import Counter, Gauge, Histogram, Hub, Registry, generate_latest
from meterhub.cli._app import cli
from meterhub.export.http import start_http_server
from meterhub.store.mmap import MultiProcessStore

BAD_METRICS = (
    "# HELP latency_ms Latency.\n# TYPE latency_ms gauge\nlatency_ms 3\n"
    '# TYPE hits_total counter\nhits_total{user="ada@example.org"} 1\n'
)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def assert_bad_input(result: Result, fragment: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/metrics"


@pytest.fixture
def app_registry() -> Registry:
    reg = Registry(self_metrics=False)
    Counter("orders", "Orders placed.", ["country"], registry=reg).labels("fr").inc(3)
    Histogram("checkout_seconds", "Checkout time.", registry=reg).observe(0.3)
    return reg


@pytest.fixture
def textfile(tmp_path: Path, app_registry: Registry) -> Path:
    path = tmp_path / "app.prom"
    path.write_bytes(generate_latest(app_registry))
    return path


@pytest.fixture
def served(app_registry: Registry) -> Iterator[str]:
    server = start_http_server(0, registry=app_registry)
    yield f"{server.url}/metrics"
    server.shutdown()


@pytest.fixture
def multiproc_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "mp"
    directory.mkdir()
    reg = Registry(MultiProcessStore(str(directory)), self_metrics=False)
    Counter("jobs", "Jobs run.", ["queue"], registry=reg).labels("a").inc(5)
    Gauge("busy", "Busy workers.", registry=reg, multiprocess_mode="livesum").set(2)
    return directory


# -- lint -------------------------------------------------------------------------------


def test_lint_clean_file_exits_0(textfile: Path) -> None:
    result = run("lint", str(textfile))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "0 error(s)" in result.stderr


def test_lint_reports_each_finding_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.prom"
    path.write_text(BAD_METRICS)
    result = run("lint", str(path))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{path}:1: error base-unit: latency_ms uses unit 'ms'; use seconds (latency_seconds)",
        f"{path}:5: error label-email: hits label user='ada@example.org' looks like an e-mail "
        "address",
    ]


def test_lint_url_and_multiproc_dir_and_app(served: str, multiproc_dir: Path) -> None:
    assert run("lint", served).exit_code == 0
    assert run("lint", str(multiproc_dir)).exit_code == 0
    assert run("lint", "--app", "meterhub:REGISTRY").exit_code == 0


def test_lint_and_top_with_a_bearer_token(app_registry: Registry) -> None:
    server = start_http_server(0, registry=app_registry, bearer_token="s3cret")
    try:
        url = f"{server.url}/metrics"
        assert_bad_input(run("lint", url), "answered HTTP 401")
        assert run("lint", url, "--token", "s3cret").exit_code == 0
        result = run("top", url, "--token", "s3cret", "--iterations", "1", "--interval", "0.1")
        assert result.exit_code == 0, result.output
    finally:
        server.shutdown()


def test_lint_max_series_threshold(tmp_path: Path) -> None:
    path = tmp_path / "wide.prom"
    path.write_text("# TYPE x_total counter\n" + "".join(f'x_total{{s="{i}"}} 1\n' for i in "abc"))
    result = run("lint", "--max-series", "2", str(path))
    assert result.exit_code == 1
    assert "cardinality" in result.stdout


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: str(p / "missing.prom"), "no such file"),
        (lambda p: closed_port_url(), "does not answer"),
        (lambda p: _write(p / "garbage.prom", "this is { not metrics\n"), "line 1"),
        (lambda p: _write_bytes(p / "binary.prom", b"\xff\xfe\x00garbage"), "not UTF-8"),
    ],
)
def test_lint_bad_sources(tmp_path: Path, make: object, fragment: str) -> None:
    assert_bad_input(run("lint", make(tmp_path)), fragment)  # type: ignore[operator]


def test_lint_needs_exactly_one_source(textfile: Path) -> None:
    assert_bad_input(run("lint"), "exactly one")
    assert_bad_input(run("lint", str(textfile), "--app", "meterhub:REGISTRY"), "exactly one")


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _write_bytes(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


# -- top --------------------------------------------------------------------------------


def test_top_file_url_and_dir(textfile: Path, served: str, multiproc_dir: Path) -> None:
    for source in (str(textfile), served, str(multiproc_dir)):
        result = run("top", source, "--iterations", "1", "--interval", "0.1")
        assert result.exit_code == 0, result.output
        assert "meterhub top" in result.stdout
    hist = run("top", str(textfile), "--iterations", "1", "--interval", "0.1").stdout
    assert "checkout_seconds" in hist and "p95" in hist


def test_top_bad_sources(tmp_path: Path) -> None:
    assert_bad_input(run("top", str(tmp_path / "nope")), "no such file")
    assert_bad_input(run("top", closed_port_url()), "does not answer")
    assert_bad_input(run("top", _write(tmp_path / "g.prom", 'x{a="1} 2\n')), "line 1")
    assert_bad_input(run("top", str(tmp_path), "--interval", "0"), "--interval")


# -- generators -------------------------------------------------------------------------


def test_catalog_rules_dashboard_to_stdout_and_file(tmp_path: Path) -> None:
    assert run("catalog").stdout.startswith("# Metric catalog")
    catalog = json.loads(run("catalog", "--format", "json").stdout)
    assert "metrics" in catalog
    assert "groups:" in run("rules").stdout
    out = tmp_path / "sub" / "dash.json"
    assert run("dashboard", "-o", str(out)).exit_code == 0
    assert "panels" in json.loads(out.read_text())


@pytest.mark.parametrize("command", ["catalog", "rules", "dashboard"])
@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("no_such_module_xyz:REGISTRY", "no_such_module_xyz"),
        ("meterhub", "module:attribute"),
        ("meterhub:NO_SUCH", "NO_SUCH"),
        ("meterhub:__version__", "not a meterhub Registry"),
    ],
)
def test_generators_bad_app(command: str, spec: str, fragment: str) -> None:
    assert_bad_input(run(command, "--app", spec), fragment)


def test_output_to_unwritable_place(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("catalog", "-o", str(blocker / "catalog.md"))
    assert result.exit_code == 2 and "Traceback" not in result.stderr


def test_slo_spec(tmp_path: Path) -> None:
    spec = tmp_path / "slo.yml"
    spec.write_text(
        "name: api\nobjective: 99.9\nwindow: 30d\nsli: {good: 'ok_total', total: 'all_total'}\n"
    )
    result = run("slo", str(spec))
    assert result.exit_code == 0, result.output
    assert "slo:error_budget_remaining:ratio" in result.stdout
    assert_bad_input(run("slo", str(tmp_path / "missing.yml")), "no such SLO spec")
    assert_bad_input(run("slo", _write(tmp_path / "bad.yml", "a: [1,\n")), "not YAML")
    assert_bad_input(run("slo", _write(tmp_path / "empty.yml", "objective: 120\n")), "")


# -- sidecars ---------------------------------------------------------------------------


def test_textfile_once_and_loop(tmp_path: Path, multiproc_dir: Path) -> None:
    out = tmp_path / "out" / "app.prom"
    out.parent.mkdir()
    result = run("textfile", "--multiproc-dir", str(multiproc_dir), "--out", str(out), "--once")
    assert result.exit_code == 0, result.output
    assert 'jobs_total{queue="a"} 5' in out.read_text()
    out.unlink()
    args = ["--multiproc-dir", str(multiproc_dir), "--out", str(out), "--duration", "0.2"]
    assert run("textfile", *args).exit_code == 0
    assert "busy 2" in out.read_text()
    promtool = shutil.which("promtool")
    if promtool:
        check = subprocess.run([promtool, "check", "metrics"], input=out.read_bytes(), check=False)
        assert check.returncode == 0


def test_textfile_bad_input(tmp_path: Path, multiproc_dir: Path) -> None:
    assert_bad_input(
        run("textfile", "--multiproc-dir", str(tmp_path / "no"), "--out", "x.prom", "--once"),
        "no such multi-process directory",
    )
    blocker = _write(tmp_path / "file", "x")
    result = run(
        "textfile", "--multiproc-dir", str(multiproc_dir), "--out", f"{blocker}/x.prom", "--once"
    )
    assert_bad_input(result, "file")


def test_textfile_out_creates_its_directories(tmp_path: Path, multiproc_dir: Path) -> None:
    out = tmp_path / "new" / "textfile" / "app.prom"  # like the generators' -o
    args = ["--multiproc-dir", str(multiproc_dir), "--out", str(out)]
    assert run("textfile", *args, "--once").exit_code == 0
    assert 'jobs_total{queue="a"} 5' in out.read_text()


def test_serve_sidecar_serves_merged_metrics_with_token(multiproc_dir: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meterhub.cli",
            "serve",
            "--multiproc-dir",
            str(multiproc_dir),
            "--port",
            "0",
            "--token",
            "s3cret",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "serving" in line, line
        url = line.split(" on ", 1)[1].strip()
        request = urllib.request.Request(url, headers={"Authorization": "Bearer s3cret"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            body = resp.read().decode()
        assert 'jobs_total{queue="a"} 5' in body
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(url, timeout=10)
        assert denied.value.code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_serve_bad_input(tmp_path: Path, multiproc_dir: Path) -> None:
    assert_bad_input(run("serve", "--multiproc-dir", str(tmp_path / "no")), "no such")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run("serve", "--multiproc-dir", str(multiproc_dir), "--port", port)
        assert_bad_input(result, "")
    assert_bad_input(
        run("serve", "--multiproc-dir", str(multiproc_dir), "--port", "70000"), "--port"
    )


# -- operation log and events -----------------------------------------------------------


def _batch(directory: Path, batch_id: str, records: list[dict[str, object]]) -> None:
    (directory / f"metrics_{batch_id}.json").write_text(
        json.dumps(
            {
                "records": records,
                "batch_timestamp": "2020-01-01T00:00:00+00:00",
                "batch_id": batch_id,
                "total_records": len(records),
            }
        )
    )


def _record(success: bool, ms: float) -> dict[str, object]:
    return {
        "operation_type": "api",
        "operation_name": "GET /x",
        "duration_ms": ms,
        "timestamp": "2020-01-01T00:00:00+00:00",
        "success": success,
        "error_message": None if success else "boom",
        "metadata": {},
    }


def test_oplog_stats_and_cleanup(tmp_path: Path) -> None:
    _batch(tmp_path, "20200101_000000_000001", [_record(True, 10), _record(False, 30)])
    result = run("oplog", "stats", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert (row["count"], row["errors"]) == (2, 1)
    assert "GET /x" in run("oplog", "stats", str(tmp_path)).stdout
    result = run("oplog", "cleanup", str(tmp_path), "--older-than-days", "1")
    assert result.exit_code == 0 and "removed 1 batch file" in result.stdout
    assert not list(tmp_path.glob("metrics_*.json"))


def test_oplog_bad_input(tmp_path: Path) -> None:
    assert_bad_input(run("oplog", "stats", str(tmp_path / "no")), "no such directory")
    assert_bad_input(run("oplog", "cleanup", str(tmp_path / "no")), "no such directory")
    assert_bad_input(
        run("oplog", "cleanup", str(tmp_path), "--older-than-days", "-1"), "--older-than-days"
    )
    (tmp_path / "metrics_20200101_000000_000001.json").write_text("{not json")
    result = run("oplog", "stats", str(tmp_path))
    assert result.exit_code == 2 and "Traceback" not in result.stderr


def test_events_counts(tmp_path: Path) -> None:
    from meterhub.events import EventRouter, SQLiteEventStore

    db = tmp_path / "events.db"
    router = EventRouter(hub=Hub(registry=Registry(self_metrics=False)), store=SQLiteEventStore(db))
    for event in ("user_logged_in", "user_logged_in", "game_completed"):
        router.track_event("u1", event, {})
    router.close()
    result = run("events", "counts", "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"game_completed": 1, "user_logged_in": 2}
    assert "user_logged_in" in run("events", "counts", "--db", str(db)).stdout


def test_events_bad_input(tmp_path: Path) -> None:
    assert_bad_input(run("events", "counts", "--db", str(tmp_path / "no.db")), "no such event")
    garbage = _write(tmp_path / "garbage.db", "definitely not sqlite")
    assert_bad_input(run("events", "counts", "--db", garbage), "not a SQLite database")


# -- demo and the entry point -----------------------------------------------------------


def test_demo_bad_input(tmp_path: Path) -> None:
    blocker = _write(tmp_path / "file", "x")
    assert_bad_input(run("demo", "--dir", blocker, "--duration", "1"), "not a directory")
    assert_bad_input(
        run("demo", "--duration", "0"), "meterhub demo: Invalid value for '--duration'"
    )
    assert_bad_input(run("demo", "--jira-failure-rate", "2"), "--jira-failure-rate")
    assert_bad_input(run("demo", "--no-such-option"), "No such option")


def test_unknown_command_exits_2() -> None:
    assert_bad_input(run("frobnicate"), "No such command 'frobnicate'")
    assert_bad_input(run("events", "counts"), "Missing option '--db'")


def test_missing_cli_extra_gives_a_hint() -> None:
    code = "import sys; sys.modules['rich'] = None; from meterhub.cli import main; main(['--help'])"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "meterhub: the command needs the 'cli' extra (rich is missing): "
        "pip install click rich PyYAML"
    ]
