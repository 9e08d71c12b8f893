"""Columnar series (:class:`~meterhub.samples.SeriesColumns`) as text: what the text and
OpenMetrics renderers share for them. A column of label texts and one of value texts,
and no other object per series (a scrape of a million series stays free of
garbage-collector work)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from ..naming import LABEL_NAME_RE, METRIC_NAME_RE
from ..samples import MetricType, SeriesColumns
from .escaping import escape_quoted

__all__ = ["CHUNK", "COLUMN_TYPES", "column_chunks", "column_labels", "column_values", "columns_ok"]

COLUMN_TYPES = (MetricType.COUNTER, MetricType.GAUGE, MetricType.UNKNOWN)
"""The types whose columnar families the renderers write from the columns (one value
per series); others are written from the :class:`~meterhub.samples.Series` they build."""

# Label names already seen to be in the legacy grammar (bounded; names repeat).
_LEGACY: set[str] = set()
_LEGACY_MAX = 4096


def columns_ok(name: str, cols: SeriesColumns) -> bool:
    """Whether *name* and the label names of *cols* are legacy names (written as they are)."""
    if METRIC_NAME_RE.match(name) is None:
        return False
    known = _LEGACY
    for k in cols.labelnames:
        if k not in known:
            if LABEL_NAME_RE.match(k) is None:
                return False
            if len(known) < _LEGACY_MAX:
                known.add(k)
    return True


CHUNK = 4096
"""Series per run: a renderer joins each run's lines at once, so that no object per
series outlives its run (the memory they took is reused by the next run, not grown)."""


def column_chunks(
    cols: SeriesColumns, compat: bool, fmt: Callable[[float], str], memo: dict[float, str] | None
) -> Iterator[tuple[int, list[str], list[str]]]:
    """``(first index, label texts, value texts)`` of each run of :data:`CHUNK` series
    (see :func:`column_labels` and :func:`column_values`)."""
    names, keys, values = cols.labelnames, cols.keys, cols.values
    for lo in range(0, len(keys), CHUNK):
        hi = lo + CHUNK
        yield lo, column_labels(names, keys[lo:hi], compat), column_values(values[lo:hi], fmt, memo)


def column_labels(
    names: tuple[str, ...], keys: Sequence[tuple[str, ...]], compat: bool
) -> list[str]:
    """Each series' label text, braces included (``''`` without labels), from its label
    values *keys* (in the order of *names*). In compat mode the pairs are sorted by name,
    as prometheus_client writes them.

    Example::

        >>> column_labels(("b", "a"), [("x", 'q"')], compat=True)
        ['{a="q\\\\"",b="x"}']
    """
    esc = escape_quoted
    if not names:
        return [""] * len(keys)
    order = sorted(range(len(names)), key=names.__getitem__) if compat else range(len(names))
    if len(names) == 1:  # the common shapes: one f-string per series
        a = f'{{{names[0]}="'
        return [f'{a}{esc(k[0])}"}}' for k in keys]
    if len(names) == 2:
        i, j = order
        a, b = f'{{{names[i]}="', f'",{names[j]}="'
        return [f'{a}{esc(k[i])}{b}{esc(k[j])}"}}' for k in keys]
    parts = [(f'{names[i]}="', i) for i in order]
    return ["{" + ",".join([f'{p}{esc(k[i])}"' for p, i in parts]) + "}" for k in keys]


def column_values(
    values: Sequence[float], fmt: Callable[[float], str], memo: dict[float, str] | None
) -> list[str]:
    """The text of each value. *memo* is given when *fmt* is
    :func:`~meterhub.exposition.text.format_value`: its memo is then read inline and an
    integral float (a counter's usual total) written inline as it does, costing no call."""
    if memo is not None:
        get = memo.get
        return [
            get(v)
            or (str(int(v)) if type(v) is float and v.is_integer() and -1e15 < v < 1e15 else fmt(v))
            for v in values
        ]
    return [fmt(v) for v in values]
