"""Terminal rendering with rich: the ``top`` view and small key/value tables.

Shared by the ``meterhub`` command (:mod:`meterhub.cli`) and the demo
(:mod:`meterhub.demo`), which both import it; neither imports the other's internals
(the CLI runs the demo through its public ``run_demo``). Needs the ``cli`` extra (rich).

On a terminal the view refreshes in place (``rich.live.Live``); without one (CI, a pipe)
each refresh is printed once as plain text, so logs stay readable.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
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


def render_view(view: TopView, source: str, limit: int = 25) -> Group:
    """The rich renderable of one refresh."""
    metrics = Table(title=f"meterhub top - {source} (every {view.interval:g}s)", expand=False)
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
    """Refresh the top view every *interval* seconds (*iterations* times; 0: until Ctrl-C,
    whose ``KeyboardInterrupt`` reaches the caller)."""
    con = out or console()
    previous, taken = first, time.monotonic()

    def frame() -> Group:
        nonlocal previous, taken
        time.sleep(interval)
        current, now = fetch(), time.monotonic()
        view = compare(previous, current, now - taken, busiest=busiest)
        previous, taken = current, now
        limit = 25 if con.is_terminal else 12
        parts: list[Any] = [render_view(view, source, limit)]
        if footer is not None:
            parts.append(Text(footer()))
        return Group(*parts)

    done = 0
    if con.is_terminal:
        from rich.live import Live

        waiting = Text(f"measuring rates over {interval:g}s ...")
        with Live(waiting, console=con, auto_refresh=False, transient=False) as live:
            while not iterations or done < iterations:
                live.update(frame(), refresh=True)
                done += 1
    else:
        while not iterations or done < iterations:
            con.print(frame())
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
