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
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the demo the way Ctrl-C does: gracefully, with a summary."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(options: DemoOptions, console: Console | None = None) -> int:
    """Run the demo; returns the exit status (0 when everything was produced)."""
    con = console or Console(highlight=False)
    layout = Layout(Path(options.directory).resolve())
    layout.prepare()
    multiproc = _multiprocess_available()
    if multiproc:
        # Before the first metric: every process of the demo shares this directory.
        os.environ["METERHUB_MULTIPROC_DIR"] = str(layout.multiproc)
        meterhub.configure(multiproc_dir=str(layout.multiproc))
    with _sigterm_as_interrupt():
        return _Demo(options, layout, con, multiproc).run()


class _Demo:
    def __init__(self, options: DemoOptions, layout: Layout, con: Console, multiproc: bool):
        self.options, self.layout, self.con, self.multiproc = options, layout, con, multiproc
        self.notes: dict[str, str] = {}
        self.results = {"processed": 0, "jira_failed": 0, "tickets": 0}
        self.stopping = threading.Event()

    def run(self) -> int:
        from . import _metrics as m
        from ._pipeline import OplogRunner, Textfile, start_events
        from ._service import FakeJira, IntakeApp, LoadGenerator, serve_wsgi
        from ._workers import worker_main

        opts, layout, con = self.options, self.layout, self.con
        try:
            m.hub.component("jira")  # declared up front: the catalog and rules see it at once
        except ImportError as exc:
            self.notes["jira"] = f"component tracking skipped ({exc})"
        jira = FakeJira(opts.jira_failure_rate)
        router = store = oplog = None
        layout.event_rules.write_text(EVENT_RULES, encoding="utf-8")
        try:
            router, store = start_events(layout.event_rules, layout.events_db, m.hub)
        except ImportError as exc:
            self.notes["events"] = f"skipped ({exc})"
        try:
            oplog = OplogRunner(layout.oplog)
        except ImportError as exc:
            self.notes["oplog"] = f"skipped ({exc})"
        if self.multiproc:
            ctx = multiprocessing.get_context("spawn")
            tasks: Any = ctx.Queue()
            results: Any = ctx.Queue()
            workers: list[Any] = [
                ctx.Process(target=worker_main, args=(tasks, results, jira.url, i), daemon=True)
                for i in range(opts.workers)
            ]
        else:
            tasks, results = queue.Queue(), queue.Queue()
            workers = [
                threading.Thread(target=worker_main, args=(tasks, results, jira.url, i))
                for i in range(opts.workers)
            ]
            self.notes["workers"] = "threads (meterhub.store.mmap is not installed)"
        for w in workers:
            w.start()
        intake = serve_wsgi(IntakeApp(tasks, router), opts.port)
        url = f"http://127.0.0.1:{intake.server_address[1]}"
        textfile = Textfile(layout.textfile, interval=2.0)
        self.notes.update(write_ops_artifacts(layout, meterhub.REGISTRY))
        prom = self._start_prometheus(url)
        drain = threading.Thread(target=self._drain, args=(results, oplog), daemon=True)
        drain.start()
        load = LoadGenerator(url, rate=opts.rate)
        load.start()
        self._banner(url, prom)
        try:
            self._watch(url, prom, tasks, m)
        finally:
            load.stop()
            self._stop_workers(workers, tasks)
            self.stopping.set()
            drain.join(timeout=10)
            if oplog is not None:
                oplog.stop()
            if router is not None:
                router.close()
            textfile.stop()
            self.notes.update(write_ops_artifacts(layout, meterhub.REGISTRY))
            alerts = prom.alerts() if prom is not None else {}
            if prom is not None:
                prom.stop()
            intake.shutdown()
            intake.server_close()
            jira.shutdown()
            jira.server_close()
        from ._summary import print_summary

        return print_summary(
            con, layout, url, self.notes, self.results, load.sent, jira, store, prom, alerts
        )

    def _start_prometheus(self, url: str) -> DemoPrometheus | None:
        if not self.options.with_prometheus:
            return None
        try:
            rules = demo_rules_text(meterhub.REGISTRY)
            return DemoPrometheus(self.layout.prometheus, url.split("//", 1)[1], rules)
        except (OSError, RuntimeError) as exc:
            self.notes["prometheus"] = f"not started: {exc}"
            return None

    def _drain(self, results: Any, oplog: Any) -> None:
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
            if oplog is not None:
                oplog.record(item)

    def _stop_workers(self, workers: list[Any], tasks: Any) -> None:
        for _ in workers:
            tasks.put(None)
        for w in workers:
            w.join(timeout=15)
            if w.is_alive() and hasattr(w, "terminate"):
                w.terminate()
                w.join(timeout=5)
        if self.multiproc:
            with suppress(ImportError):
                from meterhub.multiprocess import mark_process_dead

                for w in workers:
                    if w.pid is not None:
                        mark_process_dead(w.pid)

    def _banner(self, url: str, prom: DemoPrometheus | None) -> None:
        con = self.con
        con.print(f"[bold]meterhub demo[/bold] - alert desk on {url}  (Ctrl-C stops early)")
        con.print(f"  metrics:    {url}/metrics")
        con.print(f"  artifacts:  {self.layout.root}")
        if prom is not None:
            con.print(f"  prometheus: {prom.url}  (alerts: {prom.url}/alerts)")

    def _watch(self, url: str, prom: DemoPrometheus | None, tasks: Any, m: Any) -> None:
        from ..cli._render import watch
        from ..top import read_source

        interval = self.options.refresh or (2.0 if self.con.is_terminal else 5.0)
        interval = min(interval, self.options.duration)
        iterations = max(1, round(self.options.duration / interval))

        def fetch() -> list[meterhub.MetricFamily]:
            with suppress(NotImplementedError):
                m.queue_depth.set(tasks.qsize())
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
