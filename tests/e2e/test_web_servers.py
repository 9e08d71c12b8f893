"""The web integrations under real servers, in multi-process mode, with load from a
separate process: Django under gunicorn (3 workers), Flask under gunicorn, FastAPI under
uvicorn (2 workers). Merged counts are exact and routes are templated; 10,000 requests
to random paths and methods leave the series count bounded."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gunicorn") is None or importlib.util.find_spec("uvicorn") is None,
    reason="gunicorn and uvicorn are needed for the web server tests",
)

PROJECT = Path(__file__).resolve().parents[1] / "integrations"

LOADER = textwrap.dedent(
    """
    import http.client, json, random, sys, threading
    port, plan_file, threads = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    plan = json.load(open(plan_file))
    if isinstance(plan, dict):  # {"random": n, "seed": s}: random methods and paths
        rng = random.Random(plan["seed"])
        chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%C3%A9"
        methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS",
                   "BREW", "PROPFIND", "get", "XYZZY", "M" * 100]
        jobs = []
        for _ in range(plan["random"]):
            segs = ["".join(rng.choice(chars) for _ in range(rng.randint(1, 10)))
                    for _ in range(rng.randint(1, 4))]
            jobs.append((rng.choice(methods), "/" + "/".join(segs)))
    else:
        jobs = [(m, p) for m, p, n in plan for _ in range(n)]
    results = {}
    lock = threading.Lock()
    def run(chunk):
        local = {}
        for method, path in chunk:
            # One connection per request: keep-alive on loopback meets Nagle + delayed ACK
            # (40 ms a request) with servers that write headers and body separately.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request(method, path)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            key = f"{method} {path} {resp.status}"
            local[key] = local.get(key, 0) + 1
        with lock:
            for k, v in local.items():
                results[k] = results.get(k, 0) + v
    ts = [threading.Thread(target=run, args=(jobs[i::threads],)) for i in range(threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    print(json.dumps(results))
    """
)

GUNICORN_CONF = textwrap.dedent(
    """
    from meterhub.multiprocess import mark_process_dead

    def child_exit(server, worker):
        mark_process_dead(worker.pid)
    """
)

FLASK_APP = textwrap.dedent(
    """
    from flask import Flask
    from meterhub.integrations.flask import MeterHub

    metrics = MeterHub()

    def create_app():
        app = Flask(__name__)

        @app.get("/users/<int:user_id>")
        def user(user_id):
            return f"user {user_id}"

        @app.route("/boom", methods=["GET", "POST"])
        def boom():
            raise ZeroDivisionError("boom")

        metrics.init_app(app)
        return app

    app = create_app()
    """
)

FASTAPI_APP = textwrap.dedent(
    """
    from fastapi import APIRouter, FastAPI
    from meterhub.integrations.asgi import MeterHubMiddleware, lifespan, metrics_app

    app = FastAPI(lifespan=lifespan())
    app.add_middleware(MeterHubMiddleware)
    router = APIRouter(prefix="/items")

    @router.get("/{item_id}")
    async def item(item_id: int):
        return {"id": item_id}

    app.include_router(router, prefix="/v1")
    sub = FastAPI()

    @sub.get("/ping/{name}")
    async def ping(name: str):
        return {"pong": name}

    app.mount("/sub", sub)
    app.mount("/metrics", metrics_app())
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as resp:
        return str(resp.read().decode())


def _requests_total(text: str) -> dict[tuple[str, str, str], float]:
    out: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "http_server_requests_total":
                out[s.labels["method"], s.labels["route"], s.labels["status"]] = s.value
    return out


Server = Callable[..., int]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """Start a server command; returns its port once ``ready_path`` answers. Stops it after."""
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(cmd: list[str], *, env: dict[str, str], ready_path: str, cwd: Path) -> int:
        log_path = tmp_path / f"server{len(procs)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        procs.append((proc, log_path))
        port = int(env["TEST_PORT"])
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(port, ready_path)
                return port
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"server did not start: {log_path.read_text()[-3000:]}")
                time.sleep(0.2)

    yield start
    for proc, _ in procs:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    mpdir = tmp_path / "mp"
    mpdir.mkdir(exist_ok=True)
    src = str(Path(__file__).resolve().parents[2] / "src")
    pythonpath = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "METERHUB_MULTIPROC_DIR": str(mpdir),
        "PYTHONPATH": pythonpath,
        "TEST_PORT": str(_free_port()),
        **extra,
    }


def _load(tmp_path: Path, port: int, plan: object, threads: int = 4) -> dict[str, int]:
    (tmp_path / "loader.py").write_text(LOADER)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    out = subprocess.run(
        [sys.executable, str(tmp_path / "loader.py"), str(port), str(tmp_path / "plan.json"),
         str(threads)],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout))


def _gunicorn(port: str, workers: int, app: str, conf: Path) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "--config", str(conf), "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--worker-class", "sync", "--log-level", "warning", app,
    ]  # fmt: skip


def test_django_under_gunicorn_three_workers(tmp_path: Path, server: Server) -> None:
    db = tmp_path / "db.sqlite3"
    env = _env(
        tmp_path, METERHUB_TEST_SQLITE=str(db), DJANGO_SETTINGS_MODULE="django_project.settings"
    )
    subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); "
         "from django_project.shop.models import create_tables; create_tables()"],
        cwd=PROJECT, env=env, check=True, timeout=120,
    )  # fmt: skip
    (tmp_path / "gconf.py").write_text(GUNICORN_CONF)
    cmd = _gunicorn(env["TEST_PORT"], 3, "django_project.wsgi:application", tmp_path / "gconf.py")
    port = server(cmd, env=env, ready_path="/health", cwd=PROJECT)
    plan = [
        ["GET", "/users/1/", 90], ["GET", "/users/22/", 60], ["GET", "/api/v1/items/abc/", 45],
        ["GET", "/api/v2/items/x-y/", 45], ["GET", "/boom/", 30], ["GET", "/books/", 30],
        ["GET", "/no/such/page", 30], ["DELETE", "/users/3/", 15], ["BREW", "/users/4/", 15],
    ]  # fmt: skip
    results = _load(tmp_path, port, plan)
    assert sum(results.values()) == 360
    counts = _requests_total(_get(port, "/metrics"))
    assert counts == {
        ("GET", "/users/{pk}/", "200"): 150.0,
        ("GET", "/api/{version}/items/{slug}/", "200"): 90.0,
        ("GET", "/boom/", "500"): 30.0,
        ("GET", "/books/", "200"): 30.0,
        ("GET", "__unmatched__", "404"): 30.0,
        ("DELETE", "/users/{pk}/", "200"): 15.0,
        ("OTHER", "/users/{pk}/", "200"): 15.0,
    }
    # One SELECT COUNT per /books/ request, merged from the workers' query wrappers.
    selects = {
        (s.labels["alias"], s.labels["vendor"]): s.value
        for f in text_string_to_metric_families(_get(port, "/metrics"))
        for s in f.samples
        if s.name == "django_db_queries_total" and s.labels["statement"] == "select"
    }
    assert selects == {("default", "sqlite"): 30.0}
    # The /health probe is excluded; no series carries a raw path.
    assert all("/users/1" not in route for _, route, _ in counts)
    workers = [n for n in os.listdir(tmp_path / "mp") if n.endswith(".db")]
    assert len(workers) >= 2  # the counts above were merged from several processes


def test_flask_under_gunicorn(tmp_path: Path, server: Server) -> None:
    (tmp_path / "flaskapp.py").write_text(FLASK_APP)
    (tmp_path / "gconf.py").write_text(GUNICORN_CONF)
    env = _env(tmp_path)
    cmd = _gunicorn(env["TEST_PORT"], 2, "flaskapp:app", tmp_path / "gconf.py")
    port = server(cmd, env=env, ready_path="/metrics", cwd=tmp_path)
    plan = [
        ["GET", "/users/1/", 0], ["GET", "/users/7", 80], ["GET", "/users/8", 40],
        ["POST", "/boom", 20], ["GET", "/missing", 20], ["PATCH", "/users/9", 10],
    ]  # fmt: skip
    results = _load(tmp_path, port, plan)
    assert sum(results.values()) == 170
    assert _requests_total(_get(port, "/metrics")) == {
        ("GET", "/users/{user_id}", "200"): 120.0,
        ("POST", "/boom", "500"): 20.0,
        ("GET", "__unmatched__", "404"): 20.0,
        ("PATCH", "/users/{user_id}", "405"): 10.0,
    }


@pytest.fixture
def uvicorn_app(tmp_path: Path, server: Server) -> int:
    (tmp_path / "fastapp.py").write_text(FASTAPI_APP)
    env = _env(tmp_path)
    cmd = [
        sys.executable, "-m", "uvicorn", "fastapp:app", "--host", "127.0.0.1",
        "--port", env["TEST_PORT"], "--workers", "2", "--log-level", "warning",
        "--no-access-log",
    ]  # fmt: skip
    return server(cmd, env=env, ready_path="/metrics/", cwd=tmp_path)


def test_fastapi_under_uvicorn_two_workers(tmp_path: Path, uvicorn_app: int) -> None:
    plan = [
        ["GET", "/v1/items/1", 100], ["GET", "/v1/items/2", 50], ["GET", "/v1/items/x", 20],
        ["GET", "/sub/ping/a", 40], ["GET", "/nowhere", 30], ["POST", "/v1/items/1", 10],
    ]  # fmt: skip
    results = _load(tmp_path, uvicorn_app, plan)
    assert sum(results.values()) == 250
    assert _requests_total(_get(uvicorn_app, "/metrics/")) == {
        ("GET", "/v1/items/{item_id}", "200"): 150.0,
        ("GET", "/v1/items/{item_id}", "422"): 20.0,
        ("GET", "/sub/ping/{name}", "200"): 40.0,
        ("GET", "__unmatched__", "404"): 30.0,
        ("POST", "/v1/items/{item_id}", "405"): 10.0,
    }


def test_ten_thousand_random_requests_keep_series_bounded(tmp_path: Path, uvicorn_app: int) -> None:
    results = _load(tmp_path, uvicorn_app, {"random": 10_000, "seed": 7}, threads=4)
    assert sum(results.values()) == 10_000
    counts = _requests_total(_get(uvicorn_app, "/metrics/"))
    assert sum(counts.values()) == 10_000
    methods = {m for m, _, _ in counts}
    routes = {r for _, r, _ in counts}
    statuses = {s for _, _, s in counts}
    assert methods <= {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "OTHER"}
    assert routes <= {"__unmatched__", "/v1/items/{item_id}", "/sub/ping/{name}"}
    # routes x methods x statuses, plus the unmatched and OTHER values
    assert len(counts) <= 3 * 8 * len(statuses)
    assert len(counts) <= 30
