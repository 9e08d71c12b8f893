"""Operation logs still running when the interpreter exits are flushed first.

The writer is a daemon thread, so without this the records buffered at exit would be lost;
each log gets :data:`EXIT_FLUSH_TIMEOUT` seconds to write them.
"""

from __future__ import annotations

import atexit
import weakref
from typing import Any

__all__ = ["EXIT_FLUSH_TIMEOUT", "RUNNING"]

RUNNING: weakref.WeakSet[Any] = weakref.WeakSet()
"""The logs started and not stopped (``OperationLog`` adds and discards itself)."""
EXIT_FLUSH_TIMEOUT = 5.0


@atexit.register
def _flush_at_exit() -> None:
    for log in list(RUNNING):
        try:
            log.stop_sync(EXIT_FLUSH_TIMEOUT)
        except Exception:  # exiting anyway; the writer already logged what went wrong
            pass
