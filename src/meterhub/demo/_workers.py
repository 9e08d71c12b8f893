"""Alert-processing workers: separate processes writing to the shared multi-process dir.

Each worker takes alerts from a queue, "processes" them (a short sleep), opens a Jira
issue for critical and major ones through ``hub.component("jira").call("create_issue")``
and reports the result to the demo process, which records it in the operation log.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
import urllib.request
from typing import Any

JIRA_SEVERITIES = ("critical", "major")


def worker_main(tasks: Any, results: Any, jira_url: str, index: int) -> None:
    """Process alerts from *tasks* until a ``None`` arrives (the spawn target)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the demo, which stops us
    from . import _metrics as m

    rnd = random.Random(index)
    while True:
        item = tasks.get()
        if item is None:
            break
        severity = item["severity"]
        started = time.perf_counter()
        outcome, error = "done", None
        with m.workers_busy.track_inprogress():
            time.sleep(rnd.uniform(0.002, 0.02))
            if severity in JIRA_SEVERITIES:
                try:
                    with _jira_call(m.hub):
                        _create_issue(jira_url, severity)
                    outcome = "ticket"
                except OSError as exc:
                    outcome, error = "jira_failed", str(exc)
        duration = time.perf_counter() - started
        m.processing_seconds.labels(severity).observe(duration)
        m.alerts_processed.labels(severity, outcome).inc()
        results.put(
            {
                "severity": severity,
                "outcome": outcome,
                "error": error,
                "duration_ms": duration * 1000.0,
                "worker": os.getpid(),
            }
        )


def _jira_call(hub: Any) -> Any:
    try:
        return hub.component("jira").call("create_issue")
    except ImportError:  # the component tracker is optional: still do the call
        return contextlib.nullcontext()


def _create_issue(url: str, severity: str) -> None:
    body = json.dumps({"fields": {"project": {"key": "OPS"}, "priority": severity}}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        resp.read()  # a 5xx raises HTTPError (an OSError): the component records a failure
