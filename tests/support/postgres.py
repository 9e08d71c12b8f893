"""A real PostgreSQL server for tests (Debian's ``postgresql`` package, no Docker).

Fixtures (loaded automatically by ``tests/conftest.py``):

``postgres`` (session scope) -> :class:`PostgresServer`
    One server for the whole test session, started with ``initdb`` + ``pg_ctl`` in a temporary
    directory, listening on a free ``127.0.0.1`` port *and* on a unix socket inside that
    directory, with ``trust`` authentication. A database ``meterhub`` exists. Attributes:
    ``.dsn`` (libpq URL of that database), ``.host``, ``.port``, ``.user``, ``.dbname``,
    ``.socket_dir``, ``.data_dir``; methods ``.stop(mode="fast")``, ``.start()``,
    ``.restart()``, ``.is_running()``, ``.dsn_for(dbname)``, ``.create_database(name)``,
    ``.drop_database(name)``, ``.psql(sql, dbname=None) -> str``.

``postgres_db`` (function scope) -> ``str``
    A fresh, empty database on the session server for one test; yields its DSN and drops it
    afterwards. (If a test stopped the session server, it is started again first.)

``postgres_server`` (function scope) -> :class:`PostgresServer`
    A private server for tests that stop/restart/kill it (so they never disturb the session
    server). Costs one ``initdb`` (~1-2 s).

Outside pytest (benchmarks, scripts)::

    with PostgresServer.launch(fsync=True) as pg:   # tests run with fsync=off (faster)
        conn = psycopg.connect(pg.dsn)

When run as root the server runs as the ``postgres`` OS user (PostgreSQL refuses root) via
``runuser``; the temporary directory is made reachable by that user. Every fixture skips
with a clear reason if the binaries (``initdb``) are missing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "find_pg_bindir", "postgres", "postgres_db", "postgres_server"]

_CANDIDATE_BINDIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")
_DB_USER = "meterhub"
_DB_NAME = "meterhub"


def find_pg_bindir() -> Path | None:
    """The directory holding ``initdb``/``pg_ctl``/``postgres``, or None if not installed."""
    env = os.environ.get("METERHUB_PG_BINDIR")
    candidates = ([env] if env else []) + list(_CANDIDATE_BINDIRS)
    for cand in candidates:
        if (Path(cand) / "initdb").exists() and (Path(cand) / "pg_ctl").exists():
            return Path(cand)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, controlled with ``pg_ctl``."""

    def __init__(self, bindir: Path, base_dir: Path, *, fsync: bool = False) -> None:
        self.bindir = bindir
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.socket_dir = base_dir / "sock"
        self.log_file = base_dir / "postgres.log"
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.user = _DB_USER
        self.dbname = _DB_NAME
        self.fsync = fsync
        self._as_root = os.geteuid() == 0
        self._initdb()

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def launch(cls, *, fsync: bool = False) -> Iterator[PostgresServer]:
        """Create, start, yield and always stop + delete a server (raises if not installed)."""
        bindir = find_pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found")
        base = Path(tempfile.mkdtemp(prefix="meterhub-pg-"))
        server: PostgresServer | None = None
        try:
            server = cls(bindir, base, fsync=fsync)
            server.start()
            server.create_database(server.dbname)
            yield server
        finally:
            if server is not None:
                server.stop(mode="immediate")
            shutil.rmtree(base, ignore_errors=True)

    def _run(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = (["runuser", "-u", "postgres", "--"] if self._as_root else []) + args
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if check and proc.returncode != 0:
            log = (
                self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""
            )
            raise RuntimeError(
                f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{log}"
            )
        return proc

    def _initdb(self) -> None:
        self.base_dir.chmod(0o755)  # mkdtemp makes it 0700; the postgres user must enter it
        self.data_dir.mkdir()
        self.socket_dir.mkdir()
        if self._as_root:
            pw = pwd.getpwnam("postgres")
            for p in (self.base_dir, self.data_dir, self.socket_dir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )

    def start(self) -> None:
        """Start the server (same port as before) and wait until it accepts connections."""
        if self.is_running():
            return
        for attempt in range(3):
            opts = (
                f"-p {self.port} -k {self.socket_dir} -c listen_addresses={self.host} "
                f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=100 "
                "-c shared_buffers=32MB"
            )
            proc = self._run(
                [*self._pg_ctl("-l", str(self.log_file)), "-o", opts, "-w", "-t", "60", "start"],
                check=False,
            )
            if proc.returncode == 0:
                return
            if attempt < 2 and "could not bind" in self.log_file.read_text(errors="replace"):
                # someone took our port between _free_port() and start: pick another
                self.port = _free_port()
                continue
            break
        log = self.log_file.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"pg_ctl start failed:\n{proc.stdout}\n{proc.stderr}\n{log}")

    def _pg_ctl(self, *args: str) -> list[str]:
        return [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), *args]

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``mode`` is pg_ctl's: ``smart``, ``fast`` or ``immediate``."""
        if not self.is_running():
            return
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"])

    def restart(self, mode: str = "fast") -> None:
        """Stop then start on the same port (client connections are cut)."""
        self.stop(mode=mode)
        self.start()

    def is_running(self) -> bool:
        proc = self._run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "status"], check=False
        )
        return proc.returncode == 0

    # -- databases -------------------------------------------------------------------------
    @property
    def dsn(self) -> str:
        """libpq URL of the default test database (TCP on loopback)."""
        return self.dsn_for(self.dbname)

    def dsn_for(self, dbname: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str | None = None) -> str:
        """Run SQL with the ``psql`` binary (unaligned, tuples only) and return its output."""
        proc = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.dsn_for(dbname or "postgres"),
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed: {proc.stderr}")
        return proc.stdout.strip()

    def create_database(self, name: str) -> str:
        """Create database ``name`` (an identifier) and return its DSN."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _require_bindir() -> Path:
    bindir = find_pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not installed (initdb/pg_ctl; Debian package postgresql)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
    return bindir


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server shared by the whole session (see the module docstring)."""
    bindir = _require_bindir()
    base = Path(tempfile.mkdtemp(prefix="meterhub-pg-"))
    server = PostgresServer(bindir, base)
    try:
        server.start()
        server.create_database(server.dbname)
        yield server
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


_db_counter = iter(range(1_000_000))


@pytest.fixture
def postgres_db(postgres: PostgresServer) -> Iterator[str]:
    """A fresh database on the session server; yields its DSN, dropped afterwards."""
    postgres.start()
    name = f"t{os.getpid()}_{next(_db_counter)}"
    dsn = postgres.create_database(name)
    try:
        yield dsn
    finally:
        with contextlib.suppress(RuntimeError):
            postgres.start()
            postgres.drop_database(name)


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    """A private server for one test that may stop, restart or kill it."""
    _require_bindir()
    with PostgresServer.launch() as server:
        yield server
