"""Escaping of UTF-8 metric and label names, per the scheme a scraper negotiated.

Names outside the legacy grammar (``[a-zA-Z_:][a-zA-Z0-9_:]*``, no ``:`` in label names)
are written according to the ``escaping=`` parameter of the scrape's ``Accept`` header,
as Prometheus 3 and prometheus_client define them:

==================  ===================================================================
``allow-utf-8``     kept, in quotes: ``{"http.requests_total",method="GET"} 1``
``underscores``     each character outside the grammar becomes ``_`` (the default)
``dots``            ``.`` becomes ``_dot_``, ``_`` becomes ``__``, others ``__``
``values``          ``U__`` prefix, ``_`` doubled, others as ``_<hex code point>_``
==================  ===================================================================

Legacy names are never changed, except by ``dots`` (which doubles their underscores,
so that the escaping can be undone).

Example::

    >>> escape_metric_name("http.requests", UNDERSCORES), escape_metric_name("http.requests", DOTS)
    ('http_requests', 'http_dot_requests')
    >>> escape_metric_name("http.requests", ALLOWUTF8)
    '"http.requests"'
"""

from __future__ import annotations

import re

__all__ = [
    "ALLOWUTF8",
    "DOTS",
    "ESCAPING_SCHEMES",
    "UNDERSCORES",
    "VALUES",
    "escape_label_name",
    "escape_metric_name",
    "escape_quoted",
    "negotiated_escaping",
]

ALLOWUTF8 = "allow-utf-8"
UNDERSCORES = "underscores"
DOTS = "dots"
VALUES = "values"
ESCAPING_SCHEMES = (ALLOWUTF8, UNDERSCORES, DOTS, VALUES)
"""The ``escaping=`` values a scraper may ask for."""

_LEGACY_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LEGACY_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def _legacy_rune(c: str, i: int, colon: bool) -> bool:
    return (
        "a" <= c <= "z"
        or "A" <= c <= "Z"
        or c == "_"
        or ("0" <= c <= "9" and i > 0)
        or (colon and c == ":")
    )


def escape_quoted(text: str) -> str:
    """``\\``, newline and ``"`` backslash-escaped (a quoted name or a label value)."""
    if "\\" in text or "\n" in text or '"' in text:
        return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return text


def _escape(name: str, escaping: str, colon: bool) -> str:
    if escaping == UNDERSCORES:
        return "".join(c if _legacy_rune(c, i, colon) else "_" for i, c in enumerate(name))
    if escaping == DOTS:
        out = []
        for i, c in enumerate(name):
            if c == "_":
                out.append("__")
            elif c == ".":
                out.append("_dot_")
            else:
                out.append(c if _legacy_rune(c, i, colon) else "__")
        return "".join(out)
    if escaping == VALUES:
        out = ["U__"]
        for i, c in enumerate(name):
            if c == "_":
                out.append("__")
            elif _legacy_rune(c, i, colon):
                out.append(c)
            elif 0xD800 <= ord(c) <= 0xDFFF:
                out.append("_FFFD_")
            else:
                out.append(f"_{ord(c):x}_")
        return "".join(out)
    return name


def escape_sample_name_compat(name: str, escaping: str) -> str:
    """A sample name as prometheus_client's OpenMetrics writer escapes it: every name,
    legacy or not, with the label-name rules (so ``:`` too). Compat mode only."""
    if escaping == ALLOWUTF8:
        return escape_quoted(name)
    return _escape(name, escaping, False)


def _escape_name(name: str, escaping: str, legacy: re.Pattern[str], colon: bool) -> str:
    if not name:
        return name
    if escaping == ALLOWUTF8:
        return name if legacy.match(name) else f'"{escape_quoted(name)}"'
    if escaping == DOTS or not legacy.match(name):
        return _escape(name, escaping, colon)
    return name


def escape_metric_name(name: str, escaping: str = UNDERSCORES) -> str:
    """*name* as written under *escaping* (quoted under ``allow-utf-8`` when not legacy)."""
    return _escape_name(name, escaping, _LEGACY_METRIC, True)


def escape_label_name(name: str, escaping: str = UNDERSCORES) -> str:
    """Label *name* as written under *escaping* (``:`` is not legacy in label names).

    Example::

        >>> escape_label_name("http.status:sum", UNDERSCORES)
        'http_status_sum'
    """
    return _escape_name(name, escaping, _LEGACY_LABEL, False)


def negotiated_escaping(params: dict[str, str]) -> str:
    """The scheme of an ``Accept`` entry's parameters: its ``escaping=``, else underscores."""
    value = params.get("escaping", UNDERSCORES)
    return value if value in ESCAPING_SCHEMES else UNDERSCORES
