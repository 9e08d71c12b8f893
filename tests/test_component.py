"""hub.component(): the external-integration pattern (the seed's Jira service)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from meterhub import Hub, Registry
from meterhub.component import Component
from meterhub.oplog import OperationLog, read_batches


@pytest.fixture
def reg() -> Registry:
    return Registry(self_metrics=False)


@pytest.fixture
def hub(reg: Registry) -> Hub:
    return Hub(registry=reg, namespace="sentryhub")


def calls(reg: Registry, op: str, status: str, ns: str = "sentryhub_") -> float | None:
    return reg.get_sample_value(
        f"{ns}component_calls_total", {"component": "jira", "operation": op, "status": status}
    )


def last_success(reg: Registry) -> float | None:
    return reg.get_sample_value(
        "sentryhub_component_last_success_timestamp_seconds", {"component": "jira"}
    )


def test_success(hub: Hub, reg: Registry) -> None:
    jira = hub.component("jira")
    assert hub.component("jira") is jira
    before = time.time()
    with jira.call("create_issue"):
        pass
    assert calls(reg, "create_issue", "success") == 1
    assert calls(reg, "create_issue", "failure") == 0
    count = reg.get_sample_value(
        "sentryhub_component_call_duration_seconds_count",
        {"component": "jira", "operation": "create_issue"},
    )
    assert count == 1
    stamp = last_success(reg)
    assert stamp is not None and before <= stamp <= time.time()


def test_failure_reraised_and_last_success_unchanged(hub: Hub, reg: Registry) -> None:
    jira = hub.component("jira")
    with jira.call("add_comment"):
        pass
    stamp = last_success(reg)
    with pytest.raises(ConnectionError, match="jira down"), jira.call("add_comment"):
        raise ConnectionError("jira down")
    assert calls(reg, "add_comment", "failure") == 1
    assert calls(reg, "add_comment", "success") == 1
    assert last_success(reg) == stamp  # only moves on success


def test_last_success_stays_zero_after_failures_only(hub: Hub, reg: Registry) -> None:
    jira = hub.component("jira")
    with pytest.raises(TimeoutError), jira.call("create_issue"):
        raise TimeoutError
    assert last_success(reg) == 0.0


async def test_async_and_decorators(hub: Hub, reg: Registry) -> None:
    jira = hub.component("jira")

    async with jira.call("search"):
        await asyncio.sleep(0)

    @jira.call("transition")
    async def transition(ok: bool) -> str:
        await asyncio.sleep(0)
        if not ok:
            raise RuntimeError("bad transition")
        return "done"

    @hub.track("jira", "get_issue")
    def get_issue(key: str) -> str:
        return key.upper()

    assert await transition(True) == "done"
    with pytest.raises(RuntimeError, match="bad transition"):
        await transition(False)
    assert await asyncio.gather(*(transition(True) for _ in range(5))) == ["done"] * 5
    assert get_issue("ops-1") == "OPS-1"
    assert calls(reg, "search", "success") == 1
    assert calls(reg, "transition", "success") == 6
    assert calls(reg, "transition", "failure") == 1
    assert calls(reg, "get_issue", "success") == 1


def test_initialization_failed(hub: Hub, reg: Registry) -> None:
    jira = hub.component("jira")

    def connect() -> None:
        raise ConnectionRefusedError("no route")

    with pytest.raises(ConnectionRefusedError):
        try:
            connect()
        except Exception:
            jira.initialization_failed()
            raise
    value = reg.get_sample_value(
        "sentryhub_component_initialization_errors_total", {"component": "jira"}
    )
    assert value == 1


def test_components_share_metrics_and_empty_namespace(reg: Registry) -> None:
    hub = Hub(registry=reg)
    with hub.component("jira").call("x"):
        pass
    with hub.component("slack").call("x"):
        pass
    assert calls(reg, "x", "success", ns="") == 1
    assert (
        reg.get_sample_value(
            "component_calls_total", {"component": "slack", "operation": "x", "status": "success"}
        )
        == 1
    )
    # a direct Component on the same hub records into the same metric objects
    Component("jira", hub=hub).initialization_failed()
    assert reg.get_sample_value("component_initialization_errors_total", {"component": "jira"})


@pytest.mark.parametrize("bad", ["", None, 3])
def test_bad_names(hub: Hub, bad: object) -> None:
    with pytest.raises(ValueError, match="non-empty str"):
        Component(bad, hub=hub)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="operation must be a non-empty str"):
        hub.component("jira").call(bad)  # type: ignore[arg-type]


def test_hostile_operation_names_are_escaped(hub: Hub, reg: Registry) -> None:
    from meterhub.exposition import generate_latest

    op = 'quote" back\\slash\nnewline ünï'
    with hub.component("jira").call(op):
        pass
    assert calls(reg, op, "success") == 1
    assert b'operation="quote\\" back\\\\slash\\nnewline \xc3\xbcn\xc3\xaf"' in generate_latest(reg)


async def test_operation_log_record_per_call(hub: Hub, tmp_path: Path) -> None:
    log = OperationLog(tmp_path, registry=Registry(self_metrics=False), fsync=False)
    await log.start()
    jira = hub.component("jira", oplog=log)
    assert hub.component("jira").oplog is log
    with jira.call("create_issue"):
        pass
    with pytest.raises(ValueError), jira.call("create_issue"):
        raise ValueError("project not found")
    async with jira.call("search"):
        pass
    await log.stop()
    got = [r for b in read_batches(tmp_path) for r in b.records]
    assert [(r["operation_type"], r["operation_name"], r["success"]) for r in got] == [
        ("jira", "create_issue", True),
        ("jira", "create_issue", False),
        ("jira", "search", True),
    ]
    assert got[1]["error_message"] == "ValueError: project not found"


def test_stopped_oplog_never_breaks_the_call_in_lenient_mode(
    hub: Hub, reg: Registry, tmp_path: Path, lenient: None
) -> None:
    log = OperationLog(tmp_path, registry=Registry(self_metrics=False))
    jira = hub.component("jira", oplog=log)  # never started
    with jira.call("create_issue"):
        pass
    assert calls(reg, "create_issue", "success") == 1


def test_stopped_oplog_is_reported_in_strict_mode(hub: Hub, reg: Registry, tmp_path: Path) -> None:
    log = OperationLog(tmp_path, registry=Registry(self_metrics=False))
    jira = hub.component("jira", oplog=log)
    with pytest.raises(RuntimeError, match="not running"), jira.call("create_issue"):
        pass
    assert calls(reg, "create_issue", "success") == 1  # the metrics were still recorded
