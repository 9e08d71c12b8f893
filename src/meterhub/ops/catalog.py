"""The metric catalog: what an application registers, as Markdown or JSON.

Each entry has the exposed name (``_total`` for counters), type, unit, label names and help;
entries are grouped by component (the ``component`` label's values where the metric has
one) or by name prefix (the part before the first ``_`` after the namespace), so the
generated document reads like hand-written metrics documentation.

Example::

    >>> from meterhub import Counter, Registry
    >>> from meterhub.ops.catalog import render_catalog
    >>> reg = Registry(self_metrics=False)
    >>> _ = Counter("shop_orders", "Orders placed.", ["country"], registry=reg)
    >>> print(render_catalog(reg).splitlines()[0])
    # Metric catalog
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from ..registry import Registry
from ..samples import MetricFamily, MetricType

__all__ = ["CatalogEntry", "catalog_entries", "render_catalog"]

_SAMPLE_LABELS = frozenset({"le", "quantile"})


@dataclass(frozen=True)
class CatalogEntry:
    """One metric of the catalog."""

    name: str
    family: str
    type: str
    unit: str
    labels: tuple[str, ...]
    help: str
    group: str
    components: tuple[str, ...] = ()


def _exposed_name(family: MetricFamily) -> str:
    if family.type is MetricType.COUNTER:
        return family.name + "_total"
    if family.type is MetricType.INFO:
        return family.name + "_info"
    return family.name


def _label_names(registry: Registry, family: MetricFamily) -> tuple[str, ...]:
    declared = getattr(registry.get(family.name), "labelnames", None)
    if isinstance(declared, tuple) and all(isinstance(n, str) for n in declared):
        return declared
    seen: dict[str, None] = {}
    for series in family.series:
        for name, _ in series.labels:
            if name not in _SAMPLE_LABELS and name != family.name:
                seen[name] = None
    return tuple(seen)


_UNITS = ("seconds", "bytes", "ratio", "celsius", "meters", "volts", "amperes", "joules", "grams")


def _unit(family: MetricFamily) -> str:
    # Names follow Prometheus conventions even when the unit was not declared separately.
    if family.unit:
        return family.unit
    return next((u for u in _UNITS if family.name.endswith("_" + u)), "")


def _group(name: str) -> str:
    # "meterhub_oplog_dropped" -> "meterhub"; "http_server_requests" -> "http"
    head, _, _ = name.partition("_")
    return head or name


def catalog_entries(registry: Registry) -> list[CatalogEntry]:
    """The catalog of *registry*, sorted by group then name.

    Metrics with a ``component`` label are grouped under ``component`` (with the component
    names seen so far); the others by their first name segment.
    """
    if not isinstance(registry, Registry):
        raise TypeError(f"expected a meterhub Registry, got {type(registry).__name__}")
    entries: dict[str, CatalogEntry] = {}
    for family in registry.collect():
        labels = _label_names(registry, family)
        group = "component" if "component" in labels else _group(family.name)
        seen = {v for series in family.series for k, v in series.labels if k == "component"}
        entry = CatalogEntry(
            name=_exposed_name(family),
            family=family.name,
            type=family.type.value,
            unit=_unit(family),
            labels=labels,
            help=family.documentation,
            group=group,
            components=tuple(sorted(seen)),
        )
        entries.setdefault(entry.name, entry)
    return sorted(entries.values(), key=lambda e: (e.group, e.name))


def _md_cell(text: str) -> str:
    # A table cell must stay on one line and must not open a new column.
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


def _components_line(entries: list[CatalogEntry], group: str) -> list[str]:
    names = sorted({c for e in entries if e.group == group for c in e.components})
    if not names:
        return []
    return ["Components seen: " + ", ".join(f"`{_md_cell(c)}`" for c in names) + ".", ""]


def _markdown(entries: list[CatalogEntry]) -> str:
    lines = ["# Metric catalog"]
    current = None
    for e in entries:
        if e.group != current:
            current = e.group
            lines += [
                "",
                f"## {_md_cell(e.group)}",
                "",
                *_components_line(entries, e.group),
                "| metric | type | unit | labels | help |",
                "|---|---|---|---|---|",
            ]
        labels = ", ".join(f"`{n}`" for n in e.labels) or "-"
        lines.append(
            f"| `{e.name}` | {e.type} | {_md_cell(e.unit) or '-'} | {labels} | {_md_cell(e.help)} |"
        )
    return "\n".join(lines) + "\n"


def render_catalog(registry: Any, fmt: str = "md") -> str:
    """The catalog of *registry* (a Registry, Hub or metric) as ``"md"`` or ``"json"``.

    The JSON form is ``{"metrics": [{name, family, type, unit, labels, help, group}, ...]}``.
    """
    from . import registry_of

    if fmt not in ("md", "json"):
        raise ValueError(f"unknown catalog format {fmt!r}: expected 'md' or 'json'")
    entries = catalog_entries(registry_of(registry))
    if fmt == "json":
        data: dict[str, Any] = {"metrics": [asdict(e) for e in entries]}
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return _markdown(entries)
