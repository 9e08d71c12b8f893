"""The ``meterhub`` command (the ``cli`` extra: ``pip install '.[cli]'`` in a checkout).

click and rich are imported only here, when the command runs, so ``import meterhub`` never
needs them. Without them the command prints one line saying how to install them.

Example::

    $ meterhub lint http://127.0.0.1:8000/metrics
    $ meterhub demo --duration 20 --dir ./meterhub-demo
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``meterhub`` command with *argv* (default ``sys.argv[1:]``)."""
    try:
        import click  # noqa: F401
        import rich  # noqa: F401
    except ImportError as exc:
        sys.stderr.write(
            f"meterhub: the command needs the 'cli' extra ({exc.name} is missing): "
            "pip install click rich PyYAML\n"
        )
        raise SystemExit(2) from None
    from ._app import cli

    cli.main(args=list(argv) if argv is not None else None, prog_name="meterhub")
