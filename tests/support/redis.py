"""A real Redis server for tests (Debian's ``redis-server``), on a free loopback port.

``redis_url`` is session-scoped: one server per test run, in a temporary directory, with
persistence off; it is stopped (and its directory removed) when the session ends. Tests
skip with the reason when the binary is missing.

Example::

    def test_broker(redis_url: str) -> None:
        import redis
        assert redis.Redis.from_url(redis_url).ping()
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["redis_tls", "redis_url", "start_redis"]

_START_TIMEOUT = 15.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _ready(port: int, log: Path, tls: bool) -> bool:
    if not tls:
        return _ping(port)
    return log.exists() and "Ready to accept" in log.read_text(errors="replace")


def start_redis(
    binary: str, directory: Path, tls: tuple[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``redis-server`` in *directory* on a free port and wait until it answers PING.

    With *tls* (certificate and key files) the port speaks TLS only (``--tls-port``, no
    client certificates asked for); readiness is then the log's "Ready to accept" line.
    Retries with another port when the chosen one was taken in the meantime.
    """
    last_error = ""
    for _attempt in range(3):
        port = _free_port()
        log = directory / f"redis-{port}.log"
        listen = ["--port", str(port)] if tls is None else [
            "--port", "0", "--tls-port", str(port), "--tls-cert-file", tls[0],
            "--tls-key-file", tls[1], "--tls-ca-cert-file", tls[0], "--tls-auth-clients", "no",
        ]  # fmt: skip
        cmd = [
            binary,
            *listen,
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
            "--logfile", str(log),
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _ready(port, log, tls is not None):
                return proc, port
            time.sleep(0.05)
        _stop(proc)
        last_error = log.read_text(errors="replace") if log.exists() else ""
    raise RuntimeError(f"redis-server did not start: {last_error[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if proc.stderr is not None:
        proc.stderr.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL (``redis://127.0.0.1:PORT/0``) of a real Redis server, for the whole session."""
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if binary is None:
        pytest.skip("redis-server binary not found (Debian package: redis-server)")
    directory = Path(tempfile.mkdtemp(prefix="meterhub-redis-"))
    try:
        proc, port = start_redis(binary, directory)
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """A real Redis server speaking TLS only: its port and the CA file (its self-signed
    certificate, for ``127.0.0.1``) a client verifies it with."""
    binary = shutil.which("redis-server")
    openssl = shutil.which("openssl")
    if binary is None or openssl is None:
        pytest.skip("redis-server or openssl not found (Debian packages: redis-server, openssl)")
    directory = tmp_path_factory.mktemp("redis-tls")
    crt, key = str(directory / "redis.crt"), str(directory / "redis.key")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    proc, port = start_redis(binary, directory, tls=(crt, key))
    try:
        yield port, crt
    finally:
        _stop(proc)
