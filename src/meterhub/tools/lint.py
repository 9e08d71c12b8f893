"""Check exposition against Prometheus naming and cardinality practice.

Rules (code, severity):

* ``base-unit`` (error): a name uses a scaled unit (``_milliseconds``, ``_kilobytes``,
  ``_percent`` ...) instead of the base unit (``_seconds``, ``_bytes``, ``_ratio``).
* ``total-suffix`` (error): ``_total`` on a metric that is not a counter.
* ``counter-suffix`` (warning): a counter whose sample name does not end in ``_total``.
* ``cardinality`` (error): a metric with more series than the threshold.
* ``label-pii`` (error): a label name the PII guard refuses (``user_email``, ``userId``;
  the same rule and settings as meterhub's own metrics, see :func:`meterhub.naming.pii_match`).
* ``label-email`` / ``label-uuid`` (error), ``label-id`` / ``label-path`` (warning): label
  values that look like e-mail addresses, UUIDs, numeric/hex ids or raw URL paths - each
  one makes a series per user, request or object.
  A ``pid`` label is exempt: multi-process mode writes it on per-process gauges (modes
  ``all``, ``liveall``, ... as prometheus_client does), one series per worker process,
  bounded by the workers (meterhub's own ``meterhub_oplog_queue_size`` has it); so is the
  ``path`` of meterhub's own ``meterhub_*`` series in a textfile, the file written (not a
  URL path).

Example::

    >>> findings = lint_text('# TYPE req_ms histogram\\nreq_ms_bucket{le="+Inf"} 1\\n'
    ...                      'req_ms_count 1\\nreq_ms_sum 2\\n', source="app.prom")
    >>> print(findings[0])
    app.prom:1: error base-unit: req_ms uses unit 'ms'; use seconds (req_seconds)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..exposition.parser import parse_text_located
from ..naming import PII_SETTINGS, pii_match
from ..samples import MetricFamily, MetricType, state_label

__all__ = ["DEFAULT_MAX_SERIES", "Finding", "lint_families", "lint_text"]

DEFAULT_MAX_SERIES = 500
"""Series per metric above which ``cardinality`` is reported."""

# scaled unit token -> (base unit, factor description)
_UNITS: dict[str, str] = {
    "ms": "seconds",
    "msec": "seconds",
    "millis": "seconds",
    "millisecond": "seconds",
    "milliseconds": "seconds",
    "us": "seconds",
    "usec": "seconds",
    "microsecond": "seconds",
    "microseconds": "seconds",
    "ns": "seconds",
    "nanosecond": "seconds",
    "nanoseconds": "seconds",
    "minute": "seconds",
    "minutes": "seconds",
    "hour": "seconds",
    "hours": "seconds",
    "day": "seconds",
    "days": "seconds",
    "kb": "bytes",
    "kib": "bytes",
    "kilobyte": "bytes",
    "kilobytes": "bytes",
    "mb": "bytes",
    "mib": "bytes",
    "megabyte": "bytes",
    "megabytes": "bytes",
    "gb": "bytes",
    "gib": "bytes",
    "gigabyte": "bytes",
    "gigabytes": "bytes",
    "percent": "ratio",
    "percentage": "ratio",
}
_SKIP_LABELS = frozenset({"le", "quantile"})
# Values that look like ids but are bounded by what they name (see the module docstring).
_BOUNDED_ID_LABELS = frozenset({"pid"})
_FILE_PATH_LABELS = (("meterhub_", "path"),)  # every meterhub_* series of a textfile
_EMAIL = re.compile(r"[^@\s/]+@[^@\s/]+\.[A-Za-z]{2,}\Z")
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\Z"
)
_NUMERIC_ID = re.compile(r"\d{5,}\Z")
_HEX_ID = re.compile(r"(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{16,}\Z")
_ID_SEGMENT = re.compile(r"\d+\Z|[0-9a-fA-F-]{16,}\Z")


@dataclass(frozen=True)
class Finding:
    """One lint finding: where, how bad, which rule, and what to do."""

    source: str
    line: int
    severity: str
    code: str
    metric: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.severity} {self.code}: {self.message}"


def lint_text(
    text: str, source: str = "<text>", *, max_series: int = DEFAULT_MAX_SERIES
) -> list[Finding]:
    """Parse exposition *text* and lint it; locations are line numbers in *text*.

    Raises :class:`~meterhub.errors.ParseError` if *text* is not exposition text.
    """
    parsed = parse_text_located(text)
    return _lint(
        parsed.families,
        source,
        max_series,
        parsed.family_lines,
        parsed.series_lines,
        parsed.bare_counters,
    )


def lint_families(
    families: Iterable[MetricFamily],
    source: str = "<registry>",
    *,
    max_series: int = DEFAULT_MAX_SERIES,
) -> list[Finding]:
    """Lint collected snapshots (``registry.collect()``); locations are family ordinals."""
    fams = tuple(families)
    lines = {f.name: i for i, f in enumerate(fams, start=1)}
    return _lint(fams, source, max_series, lines, {}, frozenset())


def _lint(
    families: Iterable[MetricFamily],
    source: str,
    max_series: int,
    family_lines: dict[str, int],
    series_lines: dict[tuple[str, tuple[tuple[str, str], ...]], int],
    bare_counters: frozenset[str],
) -> list[Finding]:
    out: list[Finding] = []
    for fam in families:
        line = family_lines.get(fam.name, 0)

        def add(severity: str, code: str, message: str, at: int = line, f: str = fam.name) -> None:
            out.append(Finding(source, at, severity, code, f, message))

        exposed = _exposed_name(fam)
        for token in exposed.split("_"):
            base = _UNITS.get(token.lower())
            if base is not None:
                better = _rename(fam.name, token, base)
                add("error", "base-unit", f"{fam.name} uses unit {token!r}; use {base} ({better})")
                break
        if fam.type is not MetricType.COUNTER and exposed.endswith("_total"):
            add("error", "total-suffix", f"{exposed} is a {fam.type.value}; _total is for counters")
        if fam.name in bare_counters:
            add("warning", "counter-suffix", f"counter {fam.name} should be exposed as {exposed}")
        if len(fam.series) > max_series:
            add(
                "error",
                "cardinality",
                f"{fam.name} has {len(fam.series)} series (threshold {max_series})",
            )
        reported: set[tuple[str, str]] = set()
        for s in fam.series:
            at = series_lines.get((fam.name, s.labels), line)
            for key, value in s.labels:
                if key in _SKIP_LABELS or (
                    fam.type is MetricType.STATESET and key == state_label(fam.name)
                ):
                    continue
                if (key, "label-pii") not in reported:
                    reported.add((key, "label-pii"))
                    entry = pii_match(key)
                    if entry is not None:
                        add(
                            "error",
                            "label-pii",
                            f"{fam.name} label name {key!r} names personal data or a secret "
                            f"(matches {entry!r}; the list is set by {PII_SETTINGS})",
                            at,
                        )
                kind = _value_kind(value)
                if kind is not None and _bounded(fam.name, key, kind[0]):
                    continue
                if kind is None or (key, kind[0]) in reported:
                    continue
                reported.add((key, kind[0]))
                add(kind[1], kind[0], f"{fam.name} label {key}={value!r} looks like {kind[2]}", at)
    return out


def _bounded(family: str, key: str, code: str) -> bool:
    if code == "label-id":
        return key in _BOUNDED_ID_LABELS
    return code == "label-path" and any(
        family.startswith(prefix) and key == label for prefix, label in _FILE_PATH_LABELS
    )


def _exposed_name(fam: MetricFamily) -> str:
    if fam.type is MetricType.COUNTER and not fam.name.endswith("_total"):
        return fam.name + "_total"
    return fam.name


def _rename(name: str, token: str, base: str) -> str:
    parts = name.split("_")
    return "_".join(base if p == token else p for p in parts)


def _value_kind(value: str) -> tuple[str, str, str] | None:
    """``(code, severity, description)`` if *value* looks unbounded, else ``None``."""
    if _EMAIL.match(value):
        return ("label-email", "error", "an e-mail address")
    if _UUID.match(value):
        return ("label-uuid", "error", "a UUID")
    if _NUMERIC_ID.match(value) or _HEX_ID.match(value):
        return ("label-id", "warning", "an id")
    if value.startswith("/") and len(value) > 1:
        path = value.split("?", 1)[0]
        if "?" in value or any(_ID_SEGMENT.match(seg) for seg in path.split("/") if seg):
            return ("label-path", "warning", "a raw path (use the route template)")
    return None
