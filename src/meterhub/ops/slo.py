"""SLOs: a small YAML spec → recording rules and multi-window multi-burn-rate alerts.

Spec (one SLO as a mapping, or several under ``slos:``)::

    slos:
      - name: api-availability
        objective: 99.9          # percent
        window: 30d
        sli:                     # good/total counters (PromQL selectors)
          good: http_server_requests_total{status!~"5.."}
          total: http_server_requests_total
      - name: api-latency
        objective: 99
        window: 30d
        sli:                     # or: share of requests faster than a bucket bound
          latency:
            metric: http_server_request_duration_seconds
            threshold: 0.5       # must be one of the histogram's bucket bounds
            selector: 'route!="/metrics"'

Zero good events count as an error ratio of 1 (not as "no data"); no traffic at all stays
"no data". For each SLO the rules record ``slo:sli_error:ratio_rate<w>{slo=...}`` for every
window the alerts need, ``slo:objective:ratio`` and ``slo:error_budget_remaining:ratio``
(1 = untouched, 0 = spent, negative = overspent over the SLO window), and alert
``SLOErrorBudgetBurn`` with the Google SRE workbook pairs: 1h/5m at 14.4x and 6h/30m at 6x
(critical, page), 1d/2h at 3x and 3d/6h at 1x (warning, ticket).

Example::

    >>> from meterhub.ops.slo import render_slo
    >>> spec = {"name": "api", "objective": 99.9, "window": "30d",
    ...         "sli": {"good": "ok_total", "total": "all_total"}}
    >>> "slo:error_budget_remaining:ratio" in render_slo(spec)
    True
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..samples import format_le
from ._yaml import dump_yaml, load_yaml

__all__ = ["BURN_WINDOWS", "SLO", "parse_slos", "render_slo", "slo_groups"]

BURN_WINDOWS: tuple[tuple[str, str, float, str, str], ...] = (
    # long window, short window, burn-rate factor, severity, for
    ("1h", "5m", 14.4, "critical", "2m"),
    ("6h", "30m", 6.0, "critical", "15m"),
    ("1d", "2h", 3.0, "warning", "1h"),
    ("3d", "6h", 1.0, "warning", "3h"),
)

_DURATION = re.compile(r"^[1-9][0-9]*[smhdwy]$")
_SLO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
_SELECTOR = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^{}\n]*\})?$")


@dataclass(frozen=True)
class SLO:
    """One validated SLO: *good* and *total* are PromQL range-vector-ready selectors."""

    name: str
    objective: float  # a ratio, e.g. 0.999
    window: str
    good: str
    total: str

    def windows(self) -> list[str]:
        seen: dict[str, None] = {}
        for long_w, short_w, *_ in BURN_WINDOWS:
            seen[long_w] = None
            seen[short_w] = None
        seen[self.window] = None
        return list(seen)


def _err(name: object, msg: str) -> ValueError:
    return ValueError(f"SLO {name!r}: {msg}")


def _selector(name: str, what: str, value: object) -> str:
    if not isinstance(value, str) or not _SELECTOR.match(value.strip()):
        raise _err(
            name, f"{what} must be a metric selector like 'x_total{{a=\"b\"}}', got {value!r}"
        )
    return value.strip()


def _parse_one(raw: object) -> SLO:
    if not isinstance(raw, dict):
        raise ValueError(f"an SLO must be a mapping, got {type(raw).__name__}")
    name = raw.get("name")
    if not isinstance(name, str) or not _SLO_NAME.match(name):
        raise _err(name, "name must be 1-100 letters, digits, '_', '.', ':' or '-'")
    objective = raw.get("objective")
    if isinstance(objective, bool) or not isinstance(objective, (int, float)):
        raise _err(name, f"objective must be a percentage such as 99.9, got {objective!r}")
    if not math.isfinite(objective) or not 0 < objective < 100:
        raise _err(name, f"objective must be strictly between 0 and 100, got {objective!r}")
    window = raw.get("window", "30d")
    if not isinstance(window, str) or not _DURATION.match(window):
        raise _err(name, f"window must be a duration such as 30d, got {window!r}")
    sli = raw.get("sli")
    if not isinstance(sli, dict):
        raise _err(name, "sli must be a mapping with good/total or latency")
    if "latency" in sli:
        lat = sli["latency"]
        if not isinstance(lat, dict):
            raise _err(name, "sli.latency must be a mapping with metric and threshold")
        metric = _selector(name, "sli.latency.metric", lat.get("metric"))
        if "{" in metric:
            raise _err(name, "sli.latency.metric is a histogram name; put labels in selector")
        threshold = lat.get("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise _err(name, f"sli.latency.threshold must be a number, got {threshold!r}")
        if not math.isfinite(threshold) or threshold <= 0:
            raise _err(name, "sli.latency.threshold must be a positive bucket bound")
        extra = lat.get("selector", "")
        if not isinstance(extra, str) or any(c in extra for c in "{}\n"):
            raise _err(name, f"sli.latency.selector must be label matchers, got {extra!r}")
        sep = "," if extra.strip() else ""
        le = format_le(float(threshold))
        good = f'{metric}_bucket{{{extra.strip()}{sep}le="{le}"}}'
        total = f"{metric}_count{{{extra.strip()}}}" if extra.strip() else f"{metric}_count"
    else:
        good = _selector(name, "sli.good", sli.get("good"))
        total = _selector(name, "sli.total", sli.get("total"))
    return SLO(name, float(objective) / 100.0, window, good, total)


def _looks_like_path(text: str) -> bool:
    if "\n" in text or ":" in text.split("/")[-1]:
        return False
    return text.endswith((".yml", ".yaml", ".json")) or Path(text).is_file()


def parse_slos(spec: Any) -> list[SLO]:
    """Validate *spec* (a mapping, a list, YAML text or a path to a YAML/JSON file).

    Raises ``ValueError`` naming the SLO and the field for any invalid spec, and
    ``FileNotFoundError`` for a missing spec file.
    """
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and _looks_like_path(spec)):
        spec = load_yaml(Path(spec).read_text(encoding="utf-8"))
    elif isinstance(spec, str):
        spec = load_yaml(spec)
    if isinstance(spec, dict) and "slos" in spec:
        spec = spec["slos"]
    items = spec if isinstance(spec, list) else [spec]
    if not items:
        raise ValueError("the SLO spec defines no SLO")
    slos = [_parse_one(item) for item in items]
    names = [s.name for s in slos]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate SLO names in {names}")
    return slos


def _num(v: float) -> str:
    return repr(round(v, 12))


def slo_groups(slos: list[SLO]) -> list[dict[str, Any]]:
    """One rule group per SLO: recording rules, then the burn-rate alerts."""
    groups = []
    for slo in slos:
        sel = f'{{slo="{slo.name}"}}'
        budget = 1.0 - slo.objective
        rules: list[dict[str, Any]] = [
            {
                "record": f"slo:sli_error:ratio_rate{w}",
                "expr": (
                    f"1 - (\n  (sum(rate({slo.good}[{w}])) or vector(0))\n  /\n"
                    f"  sum(rate({slo.total}[{w}]))\n)"
                ),
                "labels": {"slo": slo.name},
            }
            for w in slo.windows()
        ]
        rules.append(
            {
                "record": "slo:objective:ratio",
                "expr": f"vector({_num(slo.objective)})",
                "labels": {"slo": slo.name},
            }
        )
        rules.append(
            {
                "record": "slo:error_budget_remaining:ratio",
                "expr": f"1 - slo:sli_error:ratio_rate{slo.window}{sel} / {_num(budget)}",
                "labels": {"slo": slo.name},
            }
        )
        for long_w, short_w, factor, severity, for_ in BURN_WINDOWS:
            limit = _num(factor * budget)
            rules.append(
                {
                    "alert": "SLOErrorBudgetBurn",
                    "expr": f"slo:sli_error:ratio_rate{long_w}{sel} > {limit}\n"
                    f"and\nslo:sli_error:ratio_rate{short_w}{sel} > {limit}",
                    "for": for_,
                    "labels": {
                        "slo": slo.name,
                        "severity": severity,
                        "long_window": long_w,
                        "short_window": short_w,
                        "burn_rate": _num(factor),
                    },
                    "annotations": {
                        "summary": (
                            f"SLO {slo.name} burns its error budget {_num(factor)}x too fast"
                        ),
                        "description": (
                            f"Error ratio {{{{ $value | humanizePercentage }}}} over {long_w} "
                            f"(and {short_w}) exceeds {_num(factor)}x the budget of "
                            f"{_num(budget * 100)}% for the {_num(slo.objective * 100)}% objective "
                            f"over {slo.window}."
                        ),
                        "runbook_url": f"https://runbooks.example.com/slo/{slo.name}",
                    },
                }
            )
        groups.append({"name": f"slo.{slo.name}", "rules": rules})
    return groups


def render_slo(spec_path_or_dict: Any) -> str:
    """Prometheus rule-file YAML for the SLO spec (path, YAML text, mapping or list)."""
    return dump_yaml({"groups": slo_groups(parse_slos(spec_path_or_dict))})
