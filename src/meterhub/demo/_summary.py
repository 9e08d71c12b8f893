"""The demo's closing summary: what was produced where."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ._artifacts import DemoPrometheus, Layout


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def meterhub_command(argv0: str | None = None, path: str | None = None) -> str:
    """How to run ``meterhub`` from the user's shell, as the running command was started:
    ``meterhub`` when that name on *path* (default ``$PATH``) is this very script, else the
    script's path (``.venv/bin/meterhub`` after ``make demo``, whose venv is not
    activated), else ``python -m meterhub.cli`` with this interpreter."""
    script = sys.argv[0] if argv0 is None else argv0
    if os.path.basename(script).startswith("meterhub") and os.path.isfile(script):
        found = shutil.which("meterhub", path=path)
        if found is not None and os.path.samefile(found, script):
            return "meterhub"
        absolute = os.path.abspath(script)
        relative = os.path.relpath(absolute)
        shown = relative if not relative.startswith("..") else absolute
        return shlex.quote(shown if os.sep in shown else os.path.join(".", shown))
    return f"{shlex.quote(sys.executable)} -m meterhub.cli"


def _event_counts(store: Any) -> str:
    if store is None:
        return ""
    totals: dict[str, int] = {}
    try:
        for row in store.counts(bucket_seconds=10**9):
            totals[row.event_type] = totals.get(row.event_type, 0) + row.count
    except Exception as exc:  # the summary reports, it never fails the run
        return f"unreadable: {exc}"
    finally:
        store.close()
    return ", ".join(f"{k}: {v}" for k, v in sorted(totals.items())) or "no events"


def print_summary(
    con: Console,
    layout: Layout,
    url: str,
    notes: dict[str, str],
    results: dict[str, int],
    sent: dict[str, int],
    jira: Any,
    store: Any,
    prom: DemoPrometheus | None,
    alerts: dict[str, str],
) -> int:
    """Print the summary table; returns the exit status (0 if the pipeline produced output)."""
    root = layout.root
    batches = sorted(layout.oplog.glob("metrics_*.json"))
    textfile_lines = (
        sum(1 for line in layout.textfile.read_text().splitlines() if not line.startswith("#"))
        if layout.textfile.exists()
        else 0
    )
    table = Table(title="meterhub demo - what was produced where")
    table.add_column("artifact")
    table.add_column("path", overflow="fold")
    table.add_column("details", overflow="fold")
    rows = [
        ("node_exporter textfile", layout.textfile, f"{textfile_lines} samples"),
        ("multi-process files", layout.multiproc, notes.get("workers", "merged on every scrape")),
        ("operation-log batches", layout.oplog, notes.get("oplog", f"{len(batches)} batch files")),
        ("event database (SQLite)", layout.events_db, notes.get("events") or _event_counts(store)),
        ("event rules", layout.event_rules, "events -> metrics"),
        ("alert rules", layout.rules, notes.get("rules", "")),
        ("Grafana dashboard", layout.dashboard, notes.get("dashboard", "")),
        ("metric catalog", layout.catalog_md, notes.get("catalog", "") + " (+ catalog.json)"),
    ]
    for name, path, detail in rows:
        table.add_row(name, _rel(path, root), detail)
    if prom is not None:
        firing = sorted(n for n, s in alerts.items() if s == "firing")
        table.add_row("Prometheus", prom.url, f"firing at the end: {', '.join(firing) or 'none'}")
    elif "prometheus" in notes:
        table.add_row("Prometheus", "-", notes["prometheus"])
    con.print(table)
    con.print(
        f"alerts sent {sent.get('alerts', 0)}, processed {results['processed']}, "
        f"Jira tickets {results['tickets']}, Jira failures {results['jira_failed']} "
        f"(fake Jira failed {jira.failures} of {jira.calls} calls)"
    )
    # One command per line, never wrapped or read as markup: each runs as printed.
    command = meterhub_command()
    con.print("Look around:")
    for args in (
        ("top", layout.textfile),
        ("lint", layout.textfile),
        ("oplog", "stats", layout.oplog),
    ):
        words = [a if isinstance(a, str) else shlex.quote(_rel(a, root)) for a in args]
        con.print(f"  {command} {' '.join(words)}", markup=False, highlight=False, soft_wrap=True)
    ok = layout.textfile.exists() and (results["processed"] > 0 or sent.get("alerts", 0) == 0)
    if not ok:
        con.print("[red]the demo did not process any alert[/red]")
    return 0 if ok else 1
