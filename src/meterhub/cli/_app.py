"""The ``meterhub`` click group: generators, operation log and event subcommands.

The sidecars and terminal views (serve, textfile, top, lint) live in :mod:`._live`,
the demo in :mod:`meterhub.demo`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

from ._common import (
    CliError,
    OneLineGroup,
    app_option,
    emit,
    friendly,
    load_registry,
    optional_module,
    output_option,
)
from ._live import lint, serve, textfile, top


# show_default reaches every subcommand: each option's help ends with its default.
@click.group(
    "meterhub",
    cls=OneLineGroup,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.version_option(package_name="meterhub", prog_name="meterhub")
def cli() -> None:
    """meterhub: application metrics - demo, sidecars, live view, lint and ops generators."""


cli.add_command(serve)
cli.add_command(textfile)
cli.add_command(top)
cli.add_command(lint)


@cli.command()
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds to run.",
)
@click.option(
    "--dir",
    "directory",
    default="./meterhub-demo",
    show_default=True,
    help="Where the demo writes what it produces (textfile, batches, rules, ...).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port of the demo service (0: any free one).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="Worker processes (multi-process mode).",
)
@click.option(
    "--jira-failure-rate",
    type=click.FloatRange(0, 1),
    default=0.3,
    show_default=True,
    help="Share of the fake Jira's calls that fail.",
)
@click.option(
    "--rate",
    type=click.FloatRange(0, 1000),
    default=20.0,
    show_default=True,
    help="Alerts per second from the built-in load generator (0: none, post your own).",
)
@click.option("--with-prometheus", is_flag=True, help="Also run a real Prometheus (Debian).")
@friendly
def demo(
    duration: float,
    directory: str,
    port: int,
    workers: int,
    jira_failure_rate: float,
    rate: float,
    with_prometheus: bool,
) -> None:
    """Run a simulated service on loopback and show the whole pipeline."""
    from ..demo import DemoOptions, run_demo

    options = DemoOptions(
        duration=duration,
        directory=directory,
        port=port,
        workers=workers,
        jira_failure_rate=jira_failure_rate,
        with_prometheus=with_prometheus,
        rate=rate,
    )
    raise SystemExit(run_demo(options))


# -- ops generators ---------------------------------------------------------------------


@cli.command()
@app_option
@output_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "json"]),
    default="md",
    show_default=True,
    help="Markdown or JSON.",
)
@friendly
def catalog(app: str, output: str | None, fmt: str) -> None:
    """The metric catalog of an application (Markdown or JSON)."""
    mod = optional_module("meterhub.ops.catalog", "the catalog generator")
    emit(mod.render_catalog(load_registry(app), fmt), output)


@cli.command()
@app_option
@output_option
@click.option(
    "--namespace",
    default="",
    show_default=False,
    help="The component metrics' namespace (default: detected from the registry).",
)
@friendly
def rules(app: str, output: str | None, namespace: str) -> None:
    """Prometheus alert rules for what the application registers."""
    mod = optional_module("meterhub.ops.rules", "the rule generator")
    emit(mod.render_rules(registry=load_registry(app), namespace=namespace), output)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@output_option
@friendly
def slo(spec: str, output: str | None) -> None:
    """SLO recording rules and burn-rate alerts from a YAML/JSON SPEC file."""
    mod = optional_module("meterhub.ops.slo", "the SLO generator")
    if not os.path.isfile(spec):
        raise CliError(f"{spec}: no such SLO spec file")
    import yaml

    with open(spec, encoding="utf-8") as fh:
        try:
            parsed = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise CliError(f"{spec}: not YAML: {str(exc).splitlines()[0]}") from None
    emit(mod.render_slo(parsed), output)


@cli.command()
@app_option
@output_option
@click.option(
    "--title",
    default=None,
    help="Dashboard title (default: the application's name, as for --uid).",
)
@click.option(
    "--uid",
    default=None,
    help="Dashboard uid, at most 40 of [a-zA-Z0-9_-] (default: meterhub-<application>, the "
    "application named by its namespace or metric prefix, else by the --app module).",
)
@click.option(
    "--slo",
    "slo_spec",
    default=None,
    type=click.Path(dir_okay=False),
    metavar="SPEC",
    help="Add the SLO row for the SLOs of this YAML/JSON spec (default: no SLO row).",
)
@friendly
def dashboard(
    app: str, output: str | None, title: str | None, uid: str | None, slo_spec: str | None
) -> None:
    """A Grafana dashboard (JSON) for what the application registers."""
    mod = optional_module("meterhub.ops.dashboards", "the dashboard generator")
    if slo_spec is not None and not os.path.isfile(slo_spec):
        raise CliError(f"{slo_spec}: no such SLO spec file")
    registry = load_registry(app)
    application = mod.application_name(registry) or _module_name(app)
    board = mod.render_dashboard(registry, title, uid=uid, application=application, slos=slo_spec)
    emit(board, output)


def _module_name(spec: str) -> str | None:
    """The application's top-level module in ``--app pkg.mod:attr`` (not meterhub's own)."""
    top = spec.partition(":")[0].split(".")[0]
    return None if top in ("", "meterhub") else top


# -- operation log ----------------------------------------------------------------------


@cli.group()
def oplog() -> None:
    """Inspect and prune operation-log batch directories."""


def _existing_dir(path: str) -> str:
    if not os.path.isdir(path):
        raise CliError(f"{path}: no such directory")
    return path


@oplog.command("stats")
@click.argument("directory")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly
def oplog_stats(directory: str, as_json: bool) -> None:
    """Summarise the batches in DIRECTORY (records, failures, per operation)."""
    mod = optional_module("meterhub.oplog", "the operation log")
    summary = mod.summarize(_existing_dir(directory))
    rows = [_as_dict(op) for op in summary.values()]
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True, default=str))
        return
    from .._terminal import print_rows

    columns = ["operation_type", "operation_name", "count", "errors", "error_rate"]
    columns += ["p50_ms", "p95_ms", "p99_ms", "max_ms"]
    print_rows(f"operation log {directory}: {len(rows)} operation(s)", columns, rows)


@oplog.command("cleanup")
@click.argument("directory")
@click.option(
    "--older-than-days",
    type=click.FloatRange(min=0),
    default=7.0,
    show_default=True,
    help="Delete the batch files older than this.",
)
@friendly
def oplog_cleanup(directory: str, older_than_days: float) -> None:
    """Delete batch files older than N days in DIRECTORY."""
    mod = optional_module("meterhub.oplog", "the operation log")
    removed = mod.cleanup(_existing_dir(directory), older_than_days=older_than_days)
    click.echo(f"removed {removed} batch file(s) older than {older_than_days:g} day(s)")


# -- events -----------------------------------------------------------------------------


@cli.group()
def events() -> None:
    """Inspect a domain-event store."""


@events.command("counts")
@click.option("--db", "db", required=True, metavar="PATH", help="SQLite event database.")
@click.option(
    "--bucket-seconds",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Count per time bucket of this size (0: totals per type).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly
def events_counts(db: str, bucket_seconds: int, as_json: bool) -> None:
    """Events per type stored in the SQLite database."""
    if not os.path.isfile(db):
        raise CliError(f"{db}: no such event database")
    mod = optional_module("meterhub.events", "event routing")
    _check_sqlite(db)
    store = mod.SQLiteEventStore(db)
    counts: dict[str, Any] = {}
    try:
        for row in store.counts(bucket_seconds=bucket_seconds or 10**9):
            if bucket_seconds:
                key = f"{row.bucket_start.isoformat()} {row.event_type}"
            else:
                key = row.event_type
            counts[key] = counts.get(key, 0) + row.count
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(counts, indent=2, sort_keys=True))
        return
    from .._terminal import print_mapping

    print_mapping(f"events in {db}", counts)


def _check_sqlite(path: str) -> None:
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head and not head.startswith(b"SQLite format 3"):
        raise CliError(f"{path}: not a SQLite database")


def _as_dict(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "_asdict"):
        return dict(obj._asdict())
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    return dict(vars(obj))
