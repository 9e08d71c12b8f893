"""Delivery against the real Prometheus stack (Debian binaries, started by
``tests/support/promstack.py``): Prometheus scraping the built-in server, a WSGI app under
gunicorn and the ASGI app under uvicorn; exemplars through ``/api/v1/query_exemplars``;
node_exporter reading the textfile. Values are read back through PromQL, label values
with quotes, backslashes, newlines and non-ASCII text included."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meterhub import Counter, Gauge, Histogram, Registry
from meterhub.export.http import start_http_server
from meterhub.export.pushgateway import delete_from_gateway, push_to_gateway
from meterhub.export.textfile import TextfileExporter
from support.promstack import free_port, query_exemplars, wait_for

pytestmark = [pytest.mark.realstack, pytest.mark.timeout(180)]

HOSTILE = ["plain", 'quote " inside', "back \\ slash", "new\nline", "unicode é ✓ 日本", ""]
# Prometheus 2.42 keeps exemplar label values as escaped on the wire (it does not unescape
# \" and \\ there, unlike series labels), so this one needs no escapes to compare equal.
HOSTILE_EXEMPLAR = "trace ✓ é {42} = #"


def by_label(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in result}


def instrumented_registry() -> Registry:
    reg = Registry(self_metrics=False)
    c = Counter("e2e_jobs", "Jobs.", ["queue"], registry=reg)
    for i, v in enumerate(HOSTILE):
        c.labels(v).inc(i + 1)
    h = Histogram("e2e_latency_seconds", "Latency.", buckets=(0.1, 1), registry=reg)
    h.observe(0.05)
    h.observe(0.5, exemplar={"trace_id": HOSTILE_EXEMPLAR})
    Gauge("e2e_temperature", "T.", registry=reg).set(-12.5)
    return reg


def test_prometheus_scrapes_start_http_server(prometheus: Any) -> None:
    reg = instrumented_registry()
    Counter("e2e_exemplar", "Ex.", registry=reg).inc(2, exemplar={"trace_id": "abc123"})
    with start_http_server(0, registry=reg) as server:
        prometheus.add_target("e2e_builtin", f"127.0.0.1:{server.port}")
        result = prometheus.wait_query(
            'e2e_jobs_total{job="e2e_builtin"}', predicate=lambda r: len(r) == len(HOSTILE)
        )
        assert by_label(result, "queue") == {v: float(i + 1) for i, v in enumerate(HOSTILE)}
        bucket = prometheus.wait_query('e2e_latency_seconds_bucket{job="e2e_builtin"}')
        assert by_label(bucket, "le") == {"0.1": 1.0, "1.0": 2.0, "+Inf": 2.0}
        temp = prometheus.query('e2e_temperature{job="e2e_builtin"}')
        assert float(temp[0]["value"][1]) == -12.5

        def exemplars(expr: str) -> list[dict[str, Any]]:
            return [e for r in query_exemplars(prometheus.url, expr) for e in r["exemplars"]]

        ex = wait_for(lambda: exemplars('e2e_exemplar_total{job="e2e_builtin"}'), 30, "exemplar")
        assert ex[0]["labels"] == {"trace_id": "abc123"} and float(ex[0]["value"]) == 2
        ex = wait_for(
            lambda: exemplars('e2e_latency_seconds_bucket{job="e2e_builtin"}'), 30, "exemplar"
        )
        assert ex[0]["labels"] == {"trace_id": HOSTILE_EXEMPLAR} and float(ex[0]["value"]) == 0.5
        up = prometheus.query('scrape_samples_scraped{job="e2e_builtin"}')
        assert float(up[0]["value"][1]) > len(HOSTILE)


def test_prometheus_scrapes_tls_and_bearer(promstack: Any, tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not installed: cannot make a test certificate")
    crt, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
         "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True,
    )  # fmt: skip
    reg = instrumented_registry()
    with start_http_server(0, registry=reg, certfile=crt, keyfile=key) as tls_server, \
         start_http_server(0, registry=reg, bearer_token="t0k-✓") as auth_server:  # fmt: skip
        port = auth_server.port
        prom = promstack.prometheus(
            extra_scrape_configs=[
                {"job_name": "e2e_bearer", "authorization": {"credentials": "t0k-✓"},
                 "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
                {"job_name": "e2e_badtoken", "authorization": {"credentials": "wrong"},
                 "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
            ]
        )  # fmt: skip
        prom.add_target("e2e_tls", f"https://127.0.0.1:{tls_server.port}/metrics")
        prom.wait_query('e2e_temperature{job="e2e_tls"} == -12.5')
        prom.wait_query('e2e_temperature{job="e2e_bearer"} == -12.5')
        prom.wait_query('up{job="e2e_badtoken"} == 0')
        assert prom.query('e2e_temperature{job="e2e_badtoken"}') == []


def test_prometheus_reads_pushed_metrics(promstack: Any, pushgateway: Any) -> None:
    hostport = pushgateway.url.removeprefix("http://")
    prom = promstack.prometheus(
        extra_scrape_configs=[
            {"job_name": "pushgateway", "honor_labels": True,
             "static_configs": [{"targets": [hostport]}]}
        ]
    )  # fmt: skip
    reg = Registry(self_metrics=False)
    Gauge("e2e_backup_size_bytes", "Size.", ["db"], registry=reg).labels(HOSTILE[1]).set(1234)
    push_to_gateway(pushgateway.url, "e2e/backup", reg, grouping_key={"host": "db 1/é"})
    result = prom.wait_query('e2e_backup_size_bytes{job="e2e/backup"}')
    assert result[0]["metric"]["host"] == "db 1/é" and result[0]["metric"]["db"] == HOSTILE[1]
    assert float(result[0]["value"][1]) == 1234
    delete_from_gateway(pushgateway.url, "e2e/backup", grouping_key={"host": "db 1/é"})
    assert wait_for(lambda: b"e2e_backup_size_bytes" not in pushgateway.get("/metrics")[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    def ready() -> bool:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_for(ready, timeout, f"port {port}")


APP = textwrap.dedent(
    """
    from meterhub import Counter, Registry
    from meterhub.export.http import make_asgi_app, make_wsgi_app

    HOSTILE = {hostile!r}
    reg = Registry(self_metrics=False)
    c = Counter("e2e_app_hits", "Hits.", ["v"], registry=reg)
    for i, v in enumerate(HOSTILE):
        c.labels(v).inc(10 + i)
    wsgi = make_wsgi_app(reg)
    asgi = make_asgi_app(reg)
    """
)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "e2e_metrics_app.py").write_text(APP.format(hostile=HOSTILE))
    return tmp_path


def _server(cmd: list[str], port: int, cwd: Path) -> Iterator[None]:
    log = open(cwd / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(cwd)})  # fmt: skip
    try:
        _wait_port(port, proc)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in this environment")
    return str(path)


@pytest.fixture
def gunicorn_app(app_dir: Path) -> Iterator[int]:
    port = free_port()
    cmd = [_bin("gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1",
           "e2e_metrics_app:wsgi"]  # fmt: skip
    yield from (port for _ in _server(cmd, port, app_dir))


@pytest.fixture
def uvicorn_app(app_dir: Path) -> Iterator[int]:
    port = free_port()
    cmd = [_bin("uvicorn"), "--host", "127.0.0.1", "--port", str(port), "--log-level",
           "warning", "e2e_metrics_app:asgi"]  # fmt: skip
    yield from (port for _ in _server(cmd, port, app_dir))


@pytest.mark.parametrize("front", ["gunicorn_app", "uvicorn_app"])
def test_prometheus_scrapes_wsgi_and_asgi(
    prometheus: Any, front: str, request: pytest.FixtureRequest
) -> None:
    port = request.getfixturevalue(front)
    job = f"e2e_{front}"
    prometheus.add_target(job, f"127.0.0.1:{port}")
    result = prometheus.wait_query(
        f'e2e_app_hits_total{{job="{job}"}}', predicate=lambda r: len(r) == len(HOSTILE)
    )
    assert by_label(result, "v") == {v: float(10 + i) for i, v in enumerate(HOSTILE)}


def serving(node_exporter: Any, needle: str) -> str | None:
    text: str = node_exporter.metrics()
    return text if needle in text else None


def test_node_exporter_reads_the_textfile(node_exporter: Any) -> None:
    reg = instrumented_registry()
    target = node_exporter.textfile_dir / "meterhub.prom"
    exp = TextfileExporter(target, interval=0.05, registry=reg)
    exp.start()
    try:
        needle = "meterhub_textfile_writes_total{path="  # present from the 2nd write on
        text = wait_for(lambda: serving(node_exporter, needle), 30, "the textfile")
    finally:
        exp.stop()
    assert "node_textfile_scrape_error 0" in text
    assert 'e2e_jobs_total{queue="quote \\" inside"} 2' in text
    assert 'e2e_jobs_total{queue="new\\nline"} 4' in text
    assert 'e2e_jobs_total{queue="unicode é ✓ 日本"} 5' in text
    assert 'e2e_latency_seconds_bucket{le="1"} 2' in text  # node_exporter re-renders le
    assert "meterhub_textfile_writes_total{path=" in text
    mtime = [line for line in text.splitlines() if "node_textfile_mtime_seconds{" in line]
    assert mtime and 'file="' in mtime[0]


def test_node_exporter_reports_a_broken_file_which_meterhub_never_writes(
    node_exporter: Any,
) -> None:
    # The control experiment: what node_textfile_scrape_error looks like when a file is bad.
    (node_exporter.textfile_dir / "broken.prom").write_text('bad{label="x} 1\n')
    text = wait_for(lambda: serving(node_exporter, "node_textfile_scrape_error 1"), 30, "error")
    assert "node_textfile_scrape_error 1" in text


# An application as deployed: meterhub's default REGISTRY (process, platform and GC
# collectors included) written by the default hub, in a process of its own.
TEXTFILE_APP = textwrap.dedent(
    """
    import sys
    import meterhub
    from meterhub import Counter
    if sys.argv[3] == "worker":  # another process of a multi-process app: records only
        Counter("e2e_worker_jobs", "Jobs.", ["app"]).labels(sys.argv[2]).inc(7)
        raise SystemExit
    Counter("e2e_app_jobs", "Jobs.", ["app"]).labels(sys.argv[2]).inc(3)
    if sys.argv[3] == "with-process-metrics":
        meterhub.configure(textfile_process_metrics=True)
    meterhub.hub.write_metrics(sys.argv[1])
    """
)
DUPLICATE = "was collected before with the same name and label values"


def run_app(target: Path, app: str, mode: str, mpdir: Path | None = None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERHUB_")}
    if mpdir is not None:
        env["METERHUB_MULTIPROC_DIR"] = str(mpdir)
    cmd = [sys.executable, "-c", TEXTFILE_APP, str(target), app, mode]
    subprocess.run(cmd, env=env, check=True, timeout=120)


def scraped_twice(node_exporter: Any) -> str:
    # The second answer is sent after the first scrape's errors were logged.
    node_exporter.metrics()
    return str(node_exporter.metrics())


def test_textfiles_of_two_apps_never_collide_with_node_exporter(
    node_exporter: Any, tmp_path: Path
) -> None:
    # Both multi-process apps: each file carries meterhub_multiprocess_* of its own.
    for app in ("a", "b"):
        mpdir = tmp_path / f"mp-{app}"
        mpdir.mkdir()
        run_app(node_exporter.textfile_dir / "unused.prom", app, "worker", mpdir)
        run_app(node_exporter.textfile_dir / f"{app}.prom", app, "default", mpdir)
    text = scraped_twice(node_exporter)
    log = node_exporter.log.read_text()
    assert DUPLICATE not in log and "error gathering metrics" not in log, log
    assert "node_textfile_scrape_error 0" in text
    assert 'e2e_app_jobs_total{app="a"} 3' in text
    assert 'e2e_app_jobs_total{app="b"} 3' in text
    for app in ("a", "b"):  # the other process of each app, merged; self-metrics by file
        path = node_exporter.textfile_dir / f"{app}.prom"
        assert f'e2e_worker_jobs_total{{app="{app}"}} 7' in text
        assert f'meterhub_multiprocess_files_merged{{path="{path}"}}' in text
    assert "meterhub_multiprocess_files_merged" in text  # self-metrics stay
    written = (node_exporter.textfile_dir / "a.prom").read_text()
    assert "# TYPE meterhub_errors_total counter" in written  # empty: node_exporter omits it
    # node_exporter's own process metrics, once, and the apps' runtime nowhere
    assert len([x for x in text.splitlines() if x.startswith("process_cpu_seconds_total")]) == 1
    assert "python_info" not in text and "python_gc_" not in text


def test_process_metrics_in_a_textfile_are_what_node_exporter_drops(node_exporter: Any) -> None:
    # The control experiment: the collision the default prevents, as node_exporter reports it.
    run_app(node_exporter.textfile_dir / "a.prom", "a", "with-process-metrics")
    text = scraped_twice(node_exporter)
    assert "python_info{" in text  # written on request...
    log = node_exporter.log.read_text()
    assert 'collected metric \\"process_cpu_seconds_total\\"' in log, log  # ...and lost:
    assert DUPLICATE in log


def test_missing_binary_skips_with_the_reason(
    promstack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMSTACK_PUSHGATEWAY_BIN", "no-such-pushgateway-binary")
    with pytest.raises(pytest.skip.Exception, match="pushgateway: binary not found"):
        promstack.pushgateway()
