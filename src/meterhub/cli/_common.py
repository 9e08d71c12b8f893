"""Helpers shared by the subcommands: the one-line error, output files, app registries."""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .. import _atomicfile
from ..errors import MeterhubError
from ..registry import Registry

F = TypeVar("F", bound=Callable[..., Any])

BAD_INPUT = 2
"""Exit status for wrong input (a URL that does not answer, a missing directory, ...)."""


class CliError(click.ClickException):
    """Wrong input: one line on stderr, exit status 2, never a traceback."""

    exit_code = BAD_INPUT

    def show(self, file: Any = None) -> None:
        click.echo(f"meterhub: {self.message}", err=True)


_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


class OneLineGroup(click.Group):
    """A group whose usage errors are one line too (click prints usage + hint + error)."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            if isinstance(exc, _NO_ARGS_IS_HELP):  # a bare group: its help, as click does
                click.echo(exc.format_message(), err=True)
                sys.exit(BAD_INPUT)
            where = exc.ctx.command_path if exc.ctx is not None else "meterhub"
            click.echo(f"{where}: {exc.format_message()} (see '{where} --help')", err=True)
            sys.exit(BAD_INPUT)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("meterhub: aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def friendly(fn: F) -> F:
    """Turn the expected failures of a command (bad input, I/O) into :class:`CliError`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise  # click's own handling (a closed pipe, as in `| head`, is not an error)
        except (MeterhubError, ValueError, OSError, TypeError, LookupError) as exc:
            raise CliError(_one_line(exc)) from None

    return wrapper  # type: ignore[return-value]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    first = text.splitlines()[0]
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"{exc.filename}: no such file or directory"
    if isinstance(exc, LookupError):  # a bare KeyError reads as just the key: say what it is
        return f"{type(exc).__name__}: {first}"
    return first


def optional_module(name: str, what: str) -> Any:
    """Import meterhub module *name*, or fail with a clear line if it is not available."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise CliError(f"{what} is not available ({name}: {exc})") from None


def cwd_on_path() -> None:
    """Put the current directory first on ``sys.path``, as ``python -m``, gunicorn,
    uvicorn, flask and celery do: ``--app myapp:registry`` next to ``myapp.py`` imports it
    (an installed console script's ``sys.path[0]`` is its ``bin`` directory instead)."""
    cwd = os.getcwd()
    if not any(entry == "" or os.path.abspath(entry) == cwd for entry in sys.path):
        sys.path.insert(0, cwd)


def load_registry(spec: str) -> Registry:
    """The registry designated by ``module:attribute`` (``--app``), importable from the
    current directory."""
    cwd_on_path()
    ops = optional_module("meterhub.ops", "the ops generators")
    try:
        registry: Registry = ops.load_app_registry(spec)
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        raise CliError(f"--app {spec}: {_one_line(exc)}") from None
    return registry


def emit(text: str, output: str | None) -> None:
    """Write *text* to stdout, or atomically to *output* (created with its parent dirs)."""
    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    write_atomic(output, text)


def write_atomic(path: str, text: str) -> None:
    """Write *text* to *path* via a temporary file in the same directory and ``os.replace``."""
    _atomicfile.write_atomic(path, text.encode("utf-8"), fsync=False, make_dirs=True)


def app_option(fn: F) -> F:
    """``--app module:attribute`` (default: meterhub's default registry)."""
    return click.option(
        "--app",
        "app",
        default="meterhub:REGISTRY",
        show_default=True,
        metavar="MODULE:ATTR",
        help="Import the application's registry, hub or metric from here (the current "
        "directory comes first on the import path).",
    )(fn)


def output_option(fn: F) -> F:
    """``-o/--output FILE`` (default: stdout)."""
    return click.option(
        "-o",
        "--output",
        default=None,
        metavar="FILE",
        help="Write here, its directories created (default: stdout).",
    )(fn)
