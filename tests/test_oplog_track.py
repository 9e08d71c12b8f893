"""track_operation as a sync/async context manager and decorator, and a FastAPI lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from meterhub import Registry
from meterhub.errors import RecordingError
from meterhub.oplog import OperationLog, read_batches, track_operation


def records(path: Path) -> list[dict[str, Any]]:
    return [r for b in read_batches(path) for r in b.records]


def make_log(path: Path) -> OperationLog:
    return OperationLog(path, registry=Registry(self_metrics=False), fsync=False)


def test_sync_block_success_and_failure(tmp_path: Path) -> None:
    with make_log(tmp_path) as log:
        with track_operation(log, "computation", "ok", metadata={"size": 3}) as op:
            op.metadata["rows"] = 7
        with pytest.raises(KeyError), track_operation(log, "computation", "bad"):
            raise KeyError("missing")
    ok, bad = records(tmp_path)
    assert ok["success"] is True and ok["error_message"] is None
    assert ok["metadata"] == {"size": 3, "rows": 7} and ok["duration_ms"] >= 0
    assert bad["success"] is False and bad["error_message"] == "KeyError: 'missing'"


async def test_async_block_and_decorators(tmp_path: Path) -> None:
    async with make_log(tmp_path) as log:
        async with track_operation(log, "io", "sleep"):
            await asyncio.sleep(0.01)

        @track_operation(log, "io", "async_fn")
        async def fetch(x: int) -> int:
            if x < 0:
                raise ValueError("negative")
            return x * 2

        @track_operation(log, "cpu", "sync_fn")
        def compute(x: int) -> int:
            return x + 1

        assert await fetch(2) == 4
        with pytest.raises(ValueError, match="negative"):
            await fetch(-1)
        assert compute(1) == 2
        assert fetch.__name__ == "fetch" and compute.__name__ == "compute"
        # the same decorated coroutine runs concurrently without sharing timing state
        assert await asyncio.gather(*(fetch(i) for i in range(20))) == [2 * i for i in range(20)]
    got = records(tmp_path)
    assert got[0]["operation_name"] == "sleep" and got[0]["duration_ms"] >= 9.0
    names = [(r["operation_name"], r["success"]) for r in got[1:4]]
    assert names == [("async_fn", True), ("async_fn", False), ("sync_fn", True)]
    assert got[2]["error_message"] == "ValueError: negative"
    assert len(got) == 24


def test_track_operation_validates_eagerly(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    with pytest.raises(RecordingError, match="operation_type must not be empty"):
        track_operation(log, "", "x")
    with pytest.raises(RecordingError, match="operation_name must be a str"):
        track_operation(log, "t", None)  # type: ignore[arg-type]
    with pytest.raises(RecordingError, match="PII"):
        track_operation(log, "t", "x", metadata={"password": "hunter2"})


def test_track_operation_on_a_stopped_log_raises(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    with pytest.raises(RuntimeError, match="not running"), track_operation(log, "t", "x"):
        pass


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_fastapi_lifespan(tmp_path: Path) -> None:
    fastapi = pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    state: dict[str, OperationLog] = {}

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        log = OperationLog(tmp_path, registry=Registry(self_metrics=False))
        await log.start()
        state["log"] = log
        yield
        await log.stop()

    app = fastapi.FastAPI(lifespan=lifespan)

    @app.get("/api/users")
    async def users() -> dict[str, Any]:
        async with track_operation(state["log"], "api_request", "GET /api/users") as op:
            found = ["Alice", "Bob"]
            op.metadata["count"] = len(found)
        return {"users": found}

    @app.get("/api/fail")
    async def fail() -> None:
        async with track_operation(state["log"], "api_request", "GET /api/fail"):
            raise RuntimeError("backend down")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert state["log"].is_running
        for _ in range(3):
            assert client.get("/api/users").json() == {"users": ["Alice", "Bob"]}
        assert client.get("/api/fail").status_code == 500
    assert not state["log"].is_running  # shutdown flushed and stopped the log
    got = records(tmp_path)
    assert [r["operation_name"] for r in got] == ["GET /api/users"] * 3 + ["GET /api/fail"]
    assert got[0]["metadata"] == {"count": 2}
    assert got[-1]["success"] is False and got[-1]["error_message"] == "RuntimeError: backend down"
