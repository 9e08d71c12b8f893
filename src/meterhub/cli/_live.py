"""Subcommands that watch live data: ``serve``, ``textfile``, ``top`` and ``lint``."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any

import click

from ..registry import Registry
from ..store import LocalStore
from ..tools.lint import DEFAULT_MAX_SERIES
from ._common import CliError, friendly, load_registry, optional_module


def directory_registry(directory: str) -> Registry:
    """A registry whose collection merges every process file of *directory* (no metric
    definitions needed: what a sidecar has)."""
    if not os.path.isdir(directory):
        raise CliError(f"{directory}: no such multi-process directory")
    multiprocess = optional_module("meterhub.multiprocess", "multi-process support")
    # A store of its own: with METERHUB_MULTIPROC_DIR set to another directory, the
    # registry would otherwise serve that one too.
    registry = Registry(store=LocalStore(), self_metrics=False)
    registry.register(multiprocess.MultiProcessCollector(directory))
    return registry


def wait_until_stopped(duration: float) -> None:
    """Block until *duration* seconds pass (0: forever), Ctrl-C or SIGTERM."""
    stop = threading.Event()
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait(duration if duration > 0 else None)
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


_duration = click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Stop after this many seconds (0: until Ctrl-C or SIGTERM).",
)


_token = click.option(
    "--token",
    default=None,
    envvar="METERHUB_TOKEN",
    help="Bearer token for a protected URL (default: none, or $METERHUB_TOKEN).",
)

_MULTIPROC_HELP = "The multi-process directory whose process files are merged."


@click.command()
@click.option("--multiproc-dir", required=True, metavar="DIR", help=_MULTIPROC_HELP)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=9464,
    show_default=True,
    help="Port to listen on (0: any free one).",
)
@click.option(
    "--addr",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: every interface).",
)
@click.option(
    "--token",
    default=None,
    envvar="METERHUB_TOKEN",
    help="Require this bearer token (default: none, or $METERHUB_TOKEN).",
)
@_duration
@friendly
def serve(multiproc_dir: str, port: int, addr: str, token: str | None, duration: float) -> None:
    """Serve the merged metrics of a multi-process directory on /metrics."""
    registry = directory_registry(multiproc_dir)
    http = optional_module("meterhub.export.http", "the HTTP exporter")
    kwargs: dict[str, Any] = {"registry": registry}
    if token:
        kwargs["bearer_token"] = token
    server = http.start_http_server(port, addr=addr, **kwargs)
    bound = _bound_port(server, port)
    click.echo(f"serving {multiproc_dir} on http://{addr}:{bound}/metrics", err=True)
    try:
        wait_until_stopped(duration)
    finally:
        server.shutdown()


def _bound_port(server: Any, default: int) -> int:
    for attr in ("port", "server_port"):
        value = getattr(server, attr, None)
        if isinstance(value, int):
            return value
    address = getattr(server, "server_address", None)
    if isinstance(address, tuple) and len(address) >= 2:
        return int(address[1])
    return default


@click.command()
@click.option("--multiproc-dir", required=True, metavar="DIR", help=_MULTIPROC_HELP)
@click.option(
    "--out",
    "out",
    required=True,
    metavar="FILE",
    help="The .prom file to keep fresh (its directories are created).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=15.0,
    show_default=True,
    help="Seconds between writes.",
)
@click.option("--once", is_flag=True, help="Write once and exit.")
@_duration
@friendly
def textfile(multiproc_dir: str, out: str, interval: float, once: bool, duration: float) -> None:
    """Keep a node_exporter textfile fresh from a multi-process directory."""
    registry = directory_registry(multiproc_dir)
    mod = optional_module("meterhub.export.textfile", "the textfile exporter")
    # Like the generators' -o: the target's directories are created (textfile collectors
    # are often pointed at a fresh directory that node_exporter is told about).
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if once:
        mod.write_to_textfile(out, registry)
        click.echo(f"wrote {out}", err=True)
        return
    exporter = mod.TextfileExporter(out, interval=interval, registry=registry)
    exporter.write()  # fail fast on an unwritable target, before going to the background
    exporter.start()
    click.echo(f"writing {out} every {interval:g}s", err=True)
    try:
        wait_until_stopped(duration)
    finally:
        exporter.stop()


@click.command()
@click.argument("source")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes (rates are measured over it).",
)
@click.option(
    "--iterations",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Stop after N refreshes (0: until q or Ctrl-C).",
)
@click.option(
    "--busiest",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many of the busiest series to list.",
)
@_token
@friendly
def top(source: str, interval: float, iterations: int, busiest: int, token: str | None) -> None:
    """Live view of a /metrics URL, a multi-process directory or a textfile."""
    from .._terminal import watch
    from ..tools.top import read_source

    first = read_source(source, token=token)  # bad input fails here, before any screen
    with contextlib.suppress(KeyboardInterrupt):
        watch(
            lambda: read_source(source, token=token),
            first,
            source,
            interval,
            iterations=iterations,
            busiest=busiest,
        )


@click.command()
@click.argument("source", required=False)
@click.option(
    "--app",
    default=None,
    metavar="MODULE:ATTR",
    help="Lint this app's registry instead of a SOURCE (default: none; imported as "
    "the generators' --app, the current directory first on the path).",
)
@click.option(
    "--max-series",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_SERIES,
    show_default=True,
    help="Series per metric above which 'cardinality' is reported.",
)
@_token
@friendly
def lint(source: str | None, app: str | None, max_series: int, token: str | None) -> None:
    """Check exposition against Prometheus naming and cardinality practice.

    SOURCE is a /metrics URL, a textfile or a multi-process directory. Exit status 1 when
    an error is found, 2 for unreadable input.
    """
    from ..tools.lint import lint_families, lint_text
    from ..tools.top import collect_directory, fetch_text

    limit = max_series
    if (source is None) == (app is None):
        raise CliError("give exactly one of SOURCE or --app")
    if app is not None:
        findings = lint_families(load_registry(app).collect(), app, max_series=limit)
    elif source is not None and not source.startswith("http") and os.path.isdir(source):
        findings = lint_families(collect_directory(source), source, max_series=limit)
    else:
        assert source is not None
        findings = lint_text(fetch_text(source, token=token), source, max_series=limit)
    for finding in findings:
        click.echo(str(finding))
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    click.echo(f"{errors} error(s), {warnings} warning(s)", err=True)
    if errors:
        raise SystemExit(1)
