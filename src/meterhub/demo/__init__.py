"""``meterhub demo``: a small simulated service on loopback showing the whole pipeline.

An alert-intake WSGI app takes alerts over HTTP; worker *processes* (multi-process mode)
process them and open Jira issues on a fake Jira that fails a share of calls (tracked by
``hub.component("jira")``); domain events are routed to metrics and stored in SQLite; every
processed alert goes to the operation log. Everything is written under one directory, and
the live ``top`` view reads the app's own ``/metrics`` while it runs. Built only from
meterhub's public API.

Example::

    from meterhub.demo import DemoOptions, run_demo
    run_demo(DemoOptions(duration=10, directory="/tmp/meterhub-demo"))
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

import meterhub

from ._artifacts import (
    EVENT_RULES,
    DemoPrometheus,
    Layout,
    demo_rules_text,
    write_ops_artifacts,
)

__all__ = ["DemoOptions", "run_demo"]

JIRA_ALERT = "ComponentFailureRatioHigh"
"""The generated alert that the fake Jira's failures set off in a real Prometheus."""


@dataclass(frozen=True)
class DemoOptions:
    """What ``meterhub demo`` was asked to do."""

    duration: float = 60.0
    directory: str = "./meterhub-demo"
    port: int = 0
    workers: int = 2
    jira_failure_rate: float = 0.3
    with_prometheus: bool = False
    refresh: float | None = None  # seconds between top frames (default: 2 on a TTY, else 5)
    rate: float = 20.0  # alerts per second sent by the load generator


def _multiprocess_available() -> bool:
    try:
        import meterhub.store.mmap  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM stop the demo gracefully, with a summary. SIGINT is set
    explicitly: a shell starting the demo in the background leaves it ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_demo(options: DemoOptions, console: Console | None = None) -> int:
    """Run the demo; returns the exit status (0 when everything was produced)."""
    from .._terminal import console as default_console

    con = console or default_console()
    layout = Layout(Path(options.directory).resolve())
    layout.prepare()
    multiproc = _multiprocess_available()
    if multiproc:
        # Before the first metric: every process of the demo shares this directory.
        os.environ["METERHUB_MULTIPROC_DIR"] = str(layout.multiproc)
        meterhub.configure(multiproc_dir=str(layout.multiproc))
    with _signals_as_interrupt():
        return _Demo(options, layout, con, multiproc).run()


class _Demo:
    """One run. Every piece is an attribute that stays ``None`` until started, so an
    interrupt at any moment stops exactly what runs, in order, and still summarises."""

    def __init__(self, options: DemoOptions, layout: Layout, con: Console, multiproc: bool):
        self.options, self.layout, self.con, self.multiproc = options, layout, con, multiproc
        self.notes: dict[str, str] = {}
        self.results = {"processed": 0, "jira_failed": 0, "tickets": 0}
        self.stopping = threading.Event()
        self.jira: Any = None
        self.router: Any = None
        self.store: Any = None
        self.oplog: Any = None
        self.tasks: Any = None
        self.workers: list[Any] = []
        self.drain: threading.Thread | None = None
        self.intake: Any = None
        self.url = ""
        self.textfile: Any = None
        self.prom: DemoPrometheus | None = None
        self.load: Any = None
        self.alerts: dict[str, str] = {}

    def run(self) -> int:
        from . import _metrics as m

        try:
            self._start(m)
            self._banner()
            self._watch(m)
            if self.prom is not None:
                self._await_jira_alert(self.prom)
        except KeyboardInterrupt:
            self.con.print("interrupted - stopping gracefully")
        finally:
            with _signals_ignored():  # every wait in _stop is bounded; finish it
                self._stop()
        from ._summary import print_summary

        sent = self.load.sent if self.load is not None else {}
        return print_summary(
            self.con,
            self.layout,
            self.url,
            self.notes,
            self.results,
            sent,
            self.jira,
            self.store,
            self.prom,
            self.alerts,
        )

    def _start(self, m: Any) -> None:
        from ._pipeline import OplogRunner, Textfile, start_events
        from ._service import FakeJira, IntakeApp, LoadGenerator, serve_wsgi
        from ._workers import worker_main

        opts, layout = self.options, self.layout
        try:
            m.hub.component("jira")  # declared up front: the catalog and rules see it at once
        except ImportError as exc:
            self.notes["jira"] = f"component tracking skipped ({exc})"
        self.jira = FakeJira(opts.jira_failure_rate)
        layout.event_rules.write_text(EVENT_RULES, encoding="utf-8")
        try:
            self.router, self.store = start_events(layout.event_rules, layout.events_db, m.hub)
        except ImportError as exc:
            self.notes["events"] = f"skipped ({exc})"
        try:
            self.oplog = OplogRunner(layout.oplog)
        except ImportError as exc:
            self.notes["oplog"] = f"skipped ({exc})"
        results: Any
        if self.multiproc:
            ctx = multiprocessing.get_context("spawn")
            self.tasks, results = ctx.Queue(), ctx.Queue()
            make: Any = ctx.Process
        else:
            self.tasks, results = queue.Queue(), queue.Queue()
            make = threading.Thread
            self.notes["workers"] = "threads (meterhub.store.mmap is not installed)"
        self.drain = threading.Thread(target=self._drain, args=(results,), daemon=True)
        self.drain.start()
        for i in range(opts.workers):
            worker = make(target=worker_main, args=(self.tasks, results, self.jira.url, i))
            worker.daemon = True
            worker.start()
            self.workers.append(worker)
        self.intake = serve_wsgi(IntakeApp(self.tasks, self.router), opts.port)
        self.url = f"http://127.0.0.1:{self.intake.server_address[1]}"
        self.textfile = Textfile(layout.textfile, interval=2.0)
        self.notes.update(write_ops_artifacts(layout, meterhub.REGISTRY))
        self.prom = self._start_prometheus(self.url)
        self.load = LoadGenerator(self.url, rate=opts.rate)
        self.load.start()

    def _stop(self) -> None:
        """Stop in dependency order: traffic, workers, results, stores, files, servers."""
        if self.load is not None:
            self.load.stop()
        self._stop_workers()
        self.stopping.set()
        if self.drain is not None:
            self.drain.join(timeout=10)
        if self.oplog is not None:
            self.oplog.stop()
        if self.router is not None:
            self.router.close()
        if self.textfile is not None:
            self.textfile.stop()
            self.notes.update(write_ops_artifacts(self.layout, meterhub.REGISTRY))
        if self.prom is not None:
            self.alerts = self.prom.alerts()
            self.prom.stop()
        for server in (self.intake, self.jira):
            if server is not None:
                server.shutdown()
                server.server_close()

    def _start_prometheus(self, url: str) -> DemoPrometheus | None:
        if not self.options.with_prometheus:
            return None
        try:
            rules = demo_rules_text(meterhub.REGISTRY)
            return DemoPrometheus(self.layout.prometheus, url.split("//", 1)[1], rules)
        except (OSError, RuntimeError) as exc:
            self.notes["prometheus"] = f"not started: {exc}"
            return None

    def _await_jira_alert(self, prom: DemoPrometheus, grace: float = 45.0) -> None:
        """Keep the load on until Prometheus fires the Jira alert (Prometheus needs a few
        scrapes and evaluations after its start), for at most *grace* seconds."""
        deadline = time.monotonic() + grace
        if prom.alerts().get(JIRA_ALERT) != "firing":
            self.con.print(f"waiting up to {grace:g}s for Prometheus to fire {JIRA_ALERT}...")
        while time.monotonic() < deadline:
            if prom.alerts().get(JIRA_ALERT) == "firing":
                self.con.print(f"{JIRA_ALERT} is firing: {prom.url}/alerts")
                return
            time.sleep(1.0)
        self.notes["prometheus"] = f"{JIRA_ALERT} did not fire within {grace:g}s"

    def _drain(self, results: Any) -> None:
        while True:
            try:
                item = results.get(timeout=0.2)
            except queue.Empty:
                if self.stopping.is_set():
                    return
                continue
            self.results["processed"] += 1
            self.results["jira_failed"] += item["outcome"] == "jira_failed"
            self.results["tickets"] += item["outcome"] == "ticket"
            if self.oplog is not None:
                self.oplog.record(item)

    def _stop_workers(self) -> None:
        for _ in self.workers:
            self.tasks.put(None)
        for w in self.workers:
            w.join(timeout=15)
            if w.is_alive() and hasattr(w, "terminate"):
                w.terminate()
                w.join(timeout=5)
        if self.multiproc:
            with suppress(ImportError):
                from meterhub.multiprocess import mark_process_dead

                for w in self.workers:
                    if w.pid is not None:
                        mark_process_dead(w.pid)

    def _banner(self) -> None:
        con, url = self.con, self.url
        con.print(f"[bold]meterhub demo[/bold] - alert desk on {url}  (Ctrl-C stops early)")
        con.print(f"  metrics:    {url}/metrics")
        con.print(f"  artifacts:  {self.layout.root}")
        if self.prom is not None:
            con.print(f"  prometheus: {self.prom.url}  (alerts: {self.prom.url}/alerts)")

    def _watch(self, m: Any) -> None:
        from .._terminal import watch
        from ..tools.top import read_source

        interval = self.options.refresh or (2.0 if self.con.is_terminal else 5.0)
        interval = min(interval, self.options.duration)
        iterations = max(1, round(self.options.duration / interval))

        url, prom = self.url, self.prom

        def fetch() -> list[meterhub.MetricFamily]:
            with suppress(NotImplementedError):
                m.queue_depth.set(self.tasks.qsize())
            return read_source(url + "/metrics")

        def footer() -> str:
            line = (
                f"processed {self.results['processed']} alerts, "
                f"{self.results['jira_failed']} Jira failures - {url}/metrics"
            )
            if prom is not None:
                firing = sorted(n for n, s in prom.alerts().items() if s == "firing")
                line += f" - firing: {', '.join(firing) or 'none yet'}"
            return line

        watch(
            fetch,
            fetch(),
            "alert desk",
            interval,
            iterations=iterations,
            out=self.con,
            footer=footer,
        )
