"""A pytest plugin that writes each test's outcome to the JSON file ``$COMPAT_OUTCOMES``.

``{"nodeid": "passed" | "failed" | "skipped" | "error", ...}``; a test counts as failed if
any phase (setup, call, teardown) failed, and as ``error`` if it never reached its call.
Collection errors are recorded under the file's node id with outcome ``error``.
"""

from __future__ import annotations

import json
import os
from typing import Any

_outcomes: dict[str, str] = {}
_details: dict[str, str] = {}


def pytest_runtest_logreport(report: Any) -> None:
    nodeid = report.nodeid
    if report.when == "call":
        if report.failed:
            _outcomes[nodeid] = "failed"
        elif report.skipped:
            _outcomes[nodeid] = "skipped"
        elif _outcomes.get(nodeid) != "failed":
            _outcomes[nodeid] = "passed"
    elif report.failed:
        _outcomes[nodeid] = "error" if report.when == "setup" else "failed"
    elif report.skipped and report.when == "setup":
        _outcomes[nodeid] = "skipped"
    if report.failed and nodeid not in _details:
        _details[nodeid] = _summary(report)


def _summary(report: Any) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0][:300] if crash.message else ""
    return str(report.longrepr).strip().splitlines()[-1][:300] if report.longrepr else ""


def pytest_collectreport(report: Any) -> None:
    if report.failed:
        _outcomes[report.nodeid] = "error"
        _details[report.nodeid] = _summary(report)


def pytest_sessionfinish(session: Any) -> None:
    path = os.environ.get("COMPAT_OUTCOMES")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"outcomes": _outcomes, "details": _details}, f, indent=1, sort_keys=True)
