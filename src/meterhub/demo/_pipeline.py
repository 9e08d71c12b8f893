"""The delivery side of the demo: operation log, event routing, textfile flusher.

Each piece is optional: when its module is not installed the demo says so in its summary
and keeps going with the rest.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from meterhub import REGISTRY, Hub, generate_latest
from meterhub._atomicfile import write_atomic


class OplogRunner:
    """An :class:`~meterhub.OperationLog` driven from threads: its own event loop thread."""

    def __init__(self, directory: Path) -> None:
        from meterhub.oplog import OperationLog

        self.log = OperationLog(storage_path=str(directory), flush_interval_seconds=1.0)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="demo-oplog", daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.log.start(), self.loop).result(timeout=15)

    def record(self, result: dict[str, Any]) -> None:
        """Record one processed alert (thread-safe: handed to the log's loop)."""

        def put() -> None:
            self.log.record_operation_nowait(
                operation_type="alert",
                operation_name=f"process_{result['severity']}",
                duration_ms=float(result["duration_ms"]),
                success=result["outcome"] != "jira_failed",
                error_message=result["error"],
                metadata={"outcome": result["outcome"], "worker": result["worker"]},
            )

        self.loop.call_soon_threadsafe(put)

    def stats(self) -> Any:
        """The log's :class:`~meterhub.oplog.OplogStats` (persisted, dropped, queued...)."""
        return asyncio.run_coroutine_threadsafe(self.log.get_stats(), self.loop).result(10)

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.log.stop(), self.loop).result(timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()


def start_events(rules_path: Path, db_path: Path, hub: Hub) -> tuple[Any, Any]:
    """An :class:`~meterhub.EventRouter` from the rules file, storing into SQLite."""
    from meterhub.events import EventRouter, SQLiteEventStore

    store = SQLiteEventStore(str(db_path))
    return EventRouter.from_file(str(rules_path), hub=hub, store=store), store


class Textfile:
    """The node_exporter textfile, rewritten every *interval* seconds by the exporter."""

    def __init__(self, path: Path, interval: float) -> None:
        self.path = path
        try:
            from meterhub.export.textfile import TextfileExporter
        except ImportError:
            self.exporter: Any = None
        else:
            self.exporter = TextfileExporter(str(path), interval=interval, registry=REGISTRY)
            self.exporter.start()

    def stop(self) -> None:
        """Stop the flusher and write the final state."""
        if self.exporter is not None:
            self.exporter.stop()
            self.exporter.write()
        else:  # without the exporter: the same atomic write, by hand
            write_atomic(self.path, generate_latest(REGISTRY), fsync=False)
