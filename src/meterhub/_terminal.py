"""Terminal rendering with rich: the ``top`` view and small key/value tables.

Shared by the ``meterhub`` command (:mod:`meterhub.cli`) and the demo
(:mod:`meterhub.demo`), which both import it; neither imports the other's internals
(the CLI runs the demo through its public ``run_demo``). Needs the ``cli`` extra (rich).

On a terminal the view refreshes in place (``rich.live.Live``) and ``q`` quits (the screen
says so); without one (CI, a pipe) each refresh is printed once as plain text, so logs
stay readable.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .samples import MetricFamily
from .tools.top import TopView, compare


def console() -> Console:
    """A stdout console. Without a terminal rich prints plain text; it is given a width
    (``COLUMNS``, else 120) so CI logs do not fold every metric name."""
    con = Console(highlight=False, soft_wrap=False)
    if not con.is_terminal and "COLUMNS" not in os.environ:
        con = Console(highlight=False, soft_wrap=False, width=120)
    return con


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    if value != value:
        return "-"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if abs(value) >= 1000:
        return f"{value:,.0f}{unit}"
    return f"{value:.3g}{unit}"


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}" if pairs else ""


def render_view(
    view: TopView, source: str, limit: int = 25, interval: float | None = None
) -> Group:
    """The rich renderable of one refresh; the title shows *interval* (the one asked for,
    default the measured one) as ``5s``, never a measured ``5.01134s``."""
    every = _seconds(view.interval if interval is None else interval)
    metrics = Table(title=f"meterhub top - {source} (every {every})", expand=False)
    metrics.add_column("metric", overflow="fold")
    metrics.add_column("type")
    metrics.add_column("series", justify="right")
    metrics.add_column("rate/s", justify="right")
    metrics.add_column("value", justify="right")
    metrics.add_column("p50", justify="right")
    metrics.add_column("p95", justify="right")
    metrics.add_column("p99", justify="right")
    for row in view.rows[:limit]:
        qs = [_num(q) for q in row.quantiles] or ["", "", ""]
        metrics.add_row(
            row.name,
            row.type.value,
            str(row.series),
            _num(row.rate),
            _num(row.value),
            *qs,
        )
    busiest = Table(title="busiest series", expand=False)
    busiest.add_column("series", overflow="fold")
    busiest.add_column("rate/s", justify="right")
    for s in view.busiest:
        busiest.add_row(s.metric + _labels(s.labels), _num(s.rate))
    return Group(metrics, busiest)


def _seconds(value: float) -> str:
    return f"{value:.3g}s" if value < 10 else f"{value:.0f}s"


QUIT_HINT = "q quits"


class _Keys:
    """Waits between refreshes, returning early when ``q`` is pressed.

    Reads single keys from a terminal's stdin (cbreak mode: no echo, no Enter needed,
    Ctrl-C still interrupts); with no terminal on stdin (or no termios) it just sleeps.
    """

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    @property
    def interactive(self) -> bool:
        return self.fd is not None

    def wait(self, seconds: float) -> bool:
        """Sleep *seconds*; ``True`` (at once) if ``q`` was pressed meanwhile."""
        if self.fd is None:
            time.sleep(seconds)
            return False
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready and os.read(self.fd, 1).lower() == b"q":
                return True
        return False


@contextlib.contextmanager
def _keys() -> Iterator[_Keys]:
    try:
        import termios
        import tty
    except ImportError:  # not a POSIX terminal (Windows)
        yield _Keys(None)
        return
    if not _stdin_is_tty():
        yield _Keys(None)
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield _Keys(fd)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # closed or replaced stdin
        return False


def watch(
    fetch: Callable[[], list[MetricFamily]],
    first: list[MetricFamily],
    source: str,
    interval: float,
    *,
    iterations: int = 0,
    busiest: int = 10,
    out: Console | None = None,
    footer: Callable[[], str] | None = None,
) -> None:
    """Refresh the top view every *interval* seconds (*iterations* times; 0: until ``q``
    on a terminal, or Ctrl-C, whose ``KeyboardInterrupt`` reaches the caller)."""
    con = out or console()
    previous, taken = first, time.monotonic()

    def frame(hint: str) -> Group:
        nonlocal previous, taken
        current, now = fetch(), time.monotonic()
        view = compare(previous, current, now - taken, busiest=busiest)
        previous, taken = current, now
        limit = 25 if con.is_terminal else 12
        parts: list[Any] = [render_view(view, source, limit, interval)]
        if footer is not None:
            parts.append(Text(footer()))
        if hint:
            parts.append(Text(hint, style="dim"))
        return Group(*parts)

    done = 0
    if con.is_terminal:
        from rich.live import Live

        with _keys() as keys, Live(console=con, auto_refresh=False, transient=False) as live:
            hint = f"{QUIT_HINT} (or Ctrl-C)" if keys.interactive else "Ctrl-C quits"
            waiting = Text(f"measuring rates over {_seconds(interval)} ... {hint}")
            live.update(waiting, refresh=True)
            while not iterations or done < iterations:
                if keys.wait(interval):
                    return
                live.update(frame(hint), refresh=True)
                done += 1
    else:
        while not iterations or done < iterations:
            time.sleep(interval)
            con.print(frame(""))
            done += 1


def print_mapping(title: str, data: Mapping[str, Any], out: Console | None = None) -> None:
    """A two-column table of *data* (nested mappings flattened with dots)."""
    table = Table(title=title)
    table.add_column("key")
    table.add_column("value", justify="right")
    for key, value in _flatten(data):
        table.add_row(key, str(value))
    (out or console()).print(table)


def print_rows(
    title: str, columns: list[str], rows: Sequence[Mapping[str, Any]], out: Console | None = None
) -> None:
    """A table with one row per mapping in *rows*."""
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col.startswith("operation") else "right")
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    (out or console()).print(table)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return _num(value)
    return "" if value is None else str(value)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key in sorted(data, key=str):
        value = data[key]
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows
