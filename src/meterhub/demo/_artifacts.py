"""What the demo leaves on disk, and the optional real Prometheus that loads its rules.

Every generator comes from :mod:`meterhub.ops`; a generator that is not installed is
reported in the summary instead of failing the demo.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meterhub import Registry
from meterhub._atomicfile import write_atomic

EVENT_RULES = """\
# Domain events -> metrics, loaded by EventRouter.from_file (the demo writes this file).
events:
  user_logged_in:
    - counter: user_logins_total
      help: User logins by authentication method.
      labels: {auth_method: unknown}
  game_completed:
    - counter: games_completed_total
      help: Games completed by mode and result.
      labels: {game_mode: unknown, result: unknown}
    - histogram: game_duration_seconds
      help: Duration of completed games.
      value: duration
      buckets: [30, 60, 120, 300, 600]
      labels: {game_mode: unknown}
"""


@dataclass(frozen=True)
class Layout:
    """Where the demo writes each artifact, under one root directory."""

    root: Path

    @property
    def multiproc(self) -> Path:
        return self.root / "multiproc"

    @property
    def textfile(self) -> Path:
        return self.root / "textfile" / "alertdesk.prom"

    @property
    def oplog(self) -> Path:
        return self.root / "oplog"

    @property
    def events_db(self) -> Path:
        return self.root / "events.db"

    @property
    def event_rules(self) -> Path:
        return self.root / "events.rules.yml"

    @property
    def rules(self) -> Path:
        return self.root / "rules" / "alertdesk.rules.yml"

    @property
    def dashboard(self) -> Path:
        return self.root / "dashboards" / "alertdesk.json"

    @property
    def catalog_md(self) -> Path:
        return self.root / "catalog.md"

    @property
    def catalog_json(self) -> Path:
        return self.root / "catalog.json"

    @property
    def prometheus(self) -> Path:
        return self.root / "prometheus"

    def prepare(self) -> None:
        """Create the tree, clearing what a previous run left in the demo's own places."""
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"{self.root} exists and is not a directory")
        for d in (self.multiproc, self.textfile.parent, self.oplog, self.rules.parent):
            d.mkdir(parents=True, exist_ok=True)
        self.dashboard.parent.mkdir(parents=True, exist_ok=True)
        for stale in self.multiproc.iterdir():
            if stale.is_file():
                stale.unlink()
        for stale in self.oplog.glob("metrics_*.json"):
            stale.unlink()
        for path in (self.events_db, Path(str(self.events_db) + "-wal")):
            if path.exists():
                path.unlink()
        if self.prometheus.exists():
            shutil.rmtree(self.prometheus)


def _atomic(path: Path, text: str) -> None:
    write_atomic(path, text.encode("utf-8"), fsync=False)


def write_ops_artifacts(layout: Layout, registry: Registry) -> dict[str, str]:
    """Rules, dashboard and catalog for *registry*; returns artifact -> note for the summary."""
    notes: dict[str, str] = {}
    try:
        from meterhub.ops.rules import render_rules

        text = render_rules(registry)
        _atomic(layout.rules, text)
        notes["rules"] = f"{text.count('- alert:')} alert rules"
    except ImportError as exc:
        notes["rules"] = f"skipped ({exc})"
    try:
        from meterhub.ops.dashboards import render_dashboard

        dash = render_dashboard(registry=registry)
        _atomic(layout.dashboard, dash if isinstance(dash, str) else json.dumps(dash, indent=2))
        panels = len(json.loads(layout.dashboard.read_text()).get("panels", []))
        notes["dashboard"] = f"{panels} panels"
    except ImportError as exc:
        notes["dashboard"] = f"skipped ({exc})"
    try:
        from meterhub.ops.catalog import render_catalog

        _atomic(layout.catalog_md, render_catalog(registry, "md"))
        catalog = render_catalog(registry, "json")
        _atomic(layout.catalog_json, catalog)
        notes["catalog"] = f"{len(json.loads(catalog)['metrics'])} metrics"
    except ImportError as exc:
        notes["catalog"] = f"skipped ({exc})"
    return notes


def demo_rules_text(registry: Registry, for_: str = "2s") -> str | None:
    """The alert rules with a short ``for`` so the demo's alerts fire within a short run."""
    try:
        from meterhub.ops.rules import render_rules, rule_packs, with_for
    except ImportError:
        return None
    packs = [with_for(p, for_) for p in rule_packs(registry)]
    text: str = render_rules(packs=packs)
    return text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class DemoPrometheus:
    """A real Prometheus (Debian ``prometheus``) scraping the demo every second."""

    def __init__(self, directory: Path, target: str, rules_text: str | None) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise FileNotFoundError("the prometheus binary is not installed")
        directory.mkdir(parents=True, exist_ok=True)
        rule_files = ""
        if rules_text:
            rules = directory / "demo.rules.yml"
            rules.write_text(rules_text, encoding="utf-8")
            rule_files = f"rule_files:\n  - '{rules}'\n"
        config = directory / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"{rule_files}"
            "scrape_configs:\n  - job_name: alertdesk\n"
            f"    static_configs:\n      - targets: ['{target}']\n",
            encoding="utf-8",
        )
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "prometheus.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal Ctrl-C goes to the demo, which stops it
        )
        self._wait_ready(30.0)

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=3) as resp:
            return json.loads(resp.read() or b"null") if path.startswith("/api") else None

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited early; see {self.log_path}")
            try:
                self._get("/-/ready")
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"prometheus not ready after {timeout:g}s; see {self.log_path}")

    def alerts(self) -> dict[str, str]:
        """alertname -> state (``pending``/``firing``), empty if Prometheus does not answer."""
        try:
            data = self._get("/api/v1/alerts")
        except (OSError, ValueError):
            return {}
        states: dict[str, str] = {}
        for alert in data.get("data", {}).get("alerts", []):
            name = alert.get("labels", {}).get("alertname", "?")
            if states.get(name) != "firing":
                states[name] = alert.get("state", "?")
        return states

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
