"""Server processes, PromQL helpers and the webhook receiver behind ``promstack``
(see its docstring; the pytest fixtures live there)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
START_TIMEOUT = float(os.environ.get("PROMSTACK_START_TIMEOUT", "60"))
STOP_TIMEOUT = 10.0

_BINARIES: dict[str, tuple[str, ...]] = {
    "prometheus": ("prometheus",),
    "node_exporter": ("prometheus-node-exporter", "node_exporter"),
    "pushgateway": ("prometheus-pushgateway", "pushgateway"),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "victoria_metrics": ("victoria-metrics", "victoria-metrics-prod"),
}
_HEALTH = {
    "prometheus": "/-/ready",
    "node_exporter": "/metrics",
    "pushgateway": "/-/ready",
    "alertmanager": "/-/ready",
    "victoria_metrics": "/health",
}


class BinaryMissing(RuntimeError):
    """The server's binary is not installed (fixtures turn this into a skip)."""


def find_binary(name: str) -> str:
    """Path of the binary for component ``name``, or raise :class:`BinaryMissing`."""
    env = os.environ.get(f"PROMSTACK_{name.upper()}_BIN")
    for cand in (env,) if env else _BINARIES[name]:
        path = shutil.which(cand)
        if path:
            return path
    raise BinaryMissing(
        f"{name}: binary not found (tried {', '.join(_BINARIES[name])}); "
        "install the Debian package or set PROMSTACK_<NAME>_BIN"
    )


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (a race remains; start_* retry on collision)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for(
    fn: Callable[[], Any], timeout: float = 30.0, what: str = "condition", interval: float = 0.1
) -> Any:
    """Call ``fn`` until it returns something truthy; raise ``AssertionError`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fn()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET ``url``; returns (status, body) for any HTTP status, raises on connection errors."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())


def http_post(url: str, data: bytes = b"", timeout: float = 5.0) -> tuple[int, bytes]:
    """POST ``data`` to ``url``; returns (status, body)."""
    req = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())


# ---------------------------------------------------------------- servers


@dataclass
class Server:
    """A running server process. ``stop()`` is idempotent."""

    name: str
    host: str
    port: int
    proc: subprocess.Popen[bytes]
    dir: Path
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def textfile_dir(self) -> Path:
        """node_exporter only: the textfile collector directory."""
        return Path(self.extra["textfile_dir"])

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        return http_get(self.url + path, timeout)

    def metrics(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200, f"{self.name} /metrics answered {status}: {body[:300]!r}"
        return body.decode()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)


class PrometheusServer(Server):
    """Prometheus with file_sd targets that tests change at run time."""

    @property
    def targets_dir(self) -> Path:
        return self.dir / "targets"

    @property
    def config(self) -> Path:
        return self.dir / "prometheus.yml"

    def add_target(
        self, job: str, target: str | Sequence[str], labels: dict[str, str] | None = None
    ) -> None:
        """Scrape ``target`` ("host:port" or "http(s)://host:port/path") under job ``job``.

        Several targets may be given as a list; calling again for the same job replaces them.
        HTTPS targets are scraped without verifying the certificate.
        """
        groups = {"http": [], "https": []}  # type: dict[str, list[dict[str, Any]]]
        for t in [target] if isinstance(target, str) else list(target):
            scheme, hostport, path = _parse_target(t)
            lbl = {"job": job, "__metrics_path__": path, **(labels or {})}
            groups[scheme].append({"targets": [hostport], "labels": lbl})
        self.remove_target(job)
        for scheme, tgs in groups.items():
            if tgs:
                _atomic_write(self.targets_dir / scheme / f"{job}.json", json.dumps(tgs))

    def remove_target(self, job: str) -> None:
        for scheme in ("http", "https"):
            (self.targets_dir / scheme / f"{job}.json").unlink(missing_ok=True)

    def jobs(self) -> set[str]:
        return {p.stem for p in self.targets_dir.glob("*/*.json")}

    def reload(self) -> None:
        status, body = http_post(self.url + "/-/reload")
        assert status == 200, f"prometheus reload failed: {status} {body!r}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        return query(self.url, expr)

    def wait_query(
        self,
        expr: str,
        timeout: float = 30.0,
        predicate: Callable[[list[dict[str, Any]]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        return wait_query(self.url, expr, timeout, predicate)


def _parse_target(t: str) -> tuple[str, str, str]:
    if "://" in t:
        u = urllib.parse.urlsplit(t)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise ValueError(f"bad scrape target {t!r}")
        return u.scheme, u.netloc, u.path or "/metrics"
    return "http", t, "/metrics"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _start(
    name: str,
    base: Path,
    make_cmd: Callable[[int, Path], list[str]],
    cls: type[Server] = Server,
    extra: dict[str, Any] | None = None,
) -> Server:
    binary = find_binary(name)
    d = base / name
    d.mkdir(parents=True, exist_ok=True)
    log = d / f"{name}.log"
    for _attempt in range(3):
        port = free_port()
        with open(log, "ab") as lf:
            proc = subprocess.Popen(
                [binary, *make_cmd(port, d)],
                cwd=d,
                stdin=subprocess.DEVNULL,
                stdout=lf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = cls(name, HOST, port, proc, d, log, dict(extra or {}))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if server.get(_HEALTH[name], timeout=1.0)[0] == 200:
                    return server
            except OSError:
                pass
            time.sleep(0.1)
        server.stop()
        if "address already in use" in server.log_tail().lower():
            continue
        raise RuntimeError(
            f"{name} did not become ready at {server.url} within "
            f"{START_TIMEOUT}s (exit={proc.poll()}); log:\n{server.log_tail()}"
        )
    raise RuntimeError(f"{name}: three port collisions in a row; log:\n{log.read_text()}")


def start_prometheus(
    tmp_path: Path,
    targets: dict[str, Sequence[str]] | None = None,
    rule_files: Sequence[str | Path] = (),
    alertmanager_url: str | None = None,
    remote_write_url: str | None = None,
    scrape_interval: str = "1s",
    extra_scrape_configs: Sequence[dict[str, Any]] = (),
    extra_args: Sequence[str] = (),
) -> PrometheusServer:
    """Start Prometheus; ``targets`` maps job name -> targets (see ``add_target``)."""

    def cmd(port: int, d: Path) -> list[str]:
        for scheme in ("http", "https"):
            (d / "targets" / scheme).mkdir(parents=True, exist_ok=True)
        sd = {"refresh_interval": "1s"}
        scrape: list[dict[str, Any]] = [
            {
                "job_name": "promstack_http",
                "file_sd_configs": [{**sd, "files": [str(d / "targets/http/*.json")]}],
            },
            {
                "job_name": "promstack_https",
                "scheme": "https",
                "tls_config": {"insecure_skip_verify": True},
                "file_sd_configs": [{**sd, "files": [str(d / "targets/https/*.json")]}],
            },
            *extra_scrape_configs,
        ]
        cfg: dict[str, Any] = {
            "global": {
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "evaluation_interval": scrape_interval,
            },
            "scrape_configs": scrape,
        }
        if rule_files:
            cfg["rule_files"] = [str(Path(r).resolve()) for r in rule_files]
        if alertmanager_url:
            u = urllib.parse.urlsplit(alertmanager_url)
            cfg["alerting"] = {
                "alertmanagers": [
                    {"scheme": u.scheme or "http", "static_configs": [{"targets": [u.netloc]}]}
                ]
            }
        if remote_write_url:
            cfg["remote_write"] = [
                {
                    "url": remote_write_url,
                    "queue_config": {
                        "batch_send_deadline": "1s",
                        "min_backoff": "100ms",
                        "max_backoff": "1s",
                    },
                }
            ]
        (d / "prometheus.yml").write_text(json.dumps(cfg, indent=1))  # JSON is valid YAML
        return [
            f"--config.file={d / 'prometheus.yml'}",
            f"--storage.tsdb.path={d / 'data'}",
            f"--web.listen-address={HOST}:{port}",
            f"--web.external-url=http://{HOST}:{port}/",
            "--enable-feature=exemplar-storage",
            "--web.enable-lifecycle",
            "--web.enable-admin-api",
            "--web.enable-remote-write-receiver",
            "--storage.tsdb.retention.time=1d",
            "--rules.alert.resend-delay=1s",
            *extra_args,
        ]

    server = _start("prometheus", tmp_path, cmd, PrometheusServer)
    assert isinstance(server, PrometheusServer)
    for job, tgts in (targets or {}).items():
        server.add_target(job, tgts)
    return server


def start_node_exporter(tmp_path: Path, textfile_dir: Path | None = None) -> Server:
    """node_exporter with only the textfile collector, reading ``textfile_dir``."""
    tdir = Path(textfile_dir) if textfile_dir else tmp_path / "node_exporter" / "textfile"
    tdir.mkdir(parents=True, exist_ok=True)
    return _start(
        "node_exporter",
        tmp_path,
        lambda port, d: [
            f"--web.listen-address={HOST}:{port}",
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={tdir}",
        ],
        extra={"textfile_dir": tdir},
    )


def start_pushgateway(tmp_path: Path) -> Server:
    return _start(
        "pushgateway",
        tmp_path,
        lambda port, d: [
            f"--web.listen-address={HOST}:{port}",
            "--persistence.file=",
            "--web.enable-admin-api",
            "--web.enable-lifecycle",
        ],
    )


def start_alertmanager(tmp_path: Path, webhook_url: str | None = None) -> Server:
    """Alertmanager grouping by alertname with 1s waits; sends to ``webhook_url`` if given."""

    def cmd(port: int, d: Path) -> list[str]:
        recv: dict[str, Any] = {"name": "default"}
        if webhook_url:
            recv["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]
        cfg = {
            "route": {
                "receiver": "default",
                "group_by": ["alertname"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [recv],
        }
        (d / "alertmanager.yml").write_text(json.dumps(cfg, indent=1))
        return [
            f"--config.file={d / 'alertmanager.yml'}",
            f"--storage.path={d / 'data'}",
            f"--web.listen-address={HOST}:{port}",
            f"--web.external-url=http://{HOST}:{port}/",
            "--cluster.listen-address=",
        ]

    return _start("alertmanager", tmp_path, cmd)


def start_victoria_metrics(tmp_path: Path) -> Server:
    return _start(
        "victoria_metrics",
        tmp_path,
        lambda port, d: [
            f"-httpListenAddr={HOST}:{port}",
            f"-storageDataPath={d / 'data'}",
            "-retentionPeriod=1d",
            "-search.latencyOffset=0s",
            "-search.disableCache",
        ],
    )


# ---------------------------------------------------------------- queries


def _api(url: str, path: str, params: dict[str, str]) -> Any:
    status, body = http_get(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=10.0)
    data = json.loads(body)
    if status != 200 or data.get("status") != "success":
        raise AssertionError(f"{path} {params} -> {status}: {body[:500]!r}")
    return data["data"]


def query(url: str, expr: str) -> list[dict[str, Any]]:
    """Instant PromQL query against Prometheus or VictoriaMetrics; returns ``data.result``."""
    result: list[dict[str, Any]] = _api(url, "/api/v1/query", {"query": expr})["result"]
    return result


def wait_query(
    url: str,
    expr: str,
    timeout: float = 30.0,
    predicate: Callable[[list[dict[str, Any]]], bool] | None = None,
) -> list[dict[str, Any]]:
    """Poll ``query`` until the result is non-empty (and ``predicate`` holds)."""

    def once() -> list[dict[str, Any]] | None:
        r = query(url, expr)
        return r if r and (predicate is None or predicate(r)) else None

    result: list[dict[str, Any]] = wait_for(once, timeout, f"PromQL {expr!r} at {url}", 0.25)
    return result


def query_exemplars(
    url: str, expr: str, start: float | None = None, end: float | None = None
) -> list[dict[str, Any]]:
    """``/api/v1/query_exemplars`` (Prometheus with exemplar storage)."""
    now = time.time()
    params = {
        "query": expr,
        "start": str(start if start is not None else now - 3600),
        "end": str(end if end is not None else now + 60),
    }
    result: list[dict[str, Any]] = _api(url, "/api/v1/query_exemplars", params)
    return result


# ---------------------------------------------------------------- webhook receiver


class WebhookReceiver:
    """Records the body of every POST it receives (answers 200)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.paths: list[str] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with receiver._cond:
                    receiver.bodies.append(body)
                    receiver.paths.append(self.path)
                    receiver._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}/"

    def json_bodies(self) -> list[Any]:
        with self._cond:
            return [json.loads(b) for b in self.bodies]

    def wait(self, n: int = 1, timeout: float = 30.0) -> list[bytes]:
        """Block until at least ``n`` bodies arrived; ``AssertionError`` at the deadline."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.bodies) >= n, timeout):
                raise AssertionError(
                    f"webhook got {len(self.bodies)} POSTs, wanted {n} within {timeout}s"
                )
            return list(self.bodies)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
