"""Line-level lexing of the Prometheus text format: sample lines, label sets, exemplars,
numbers and escapes. Used by :mod:`meterhub.exposition.parser`; raises
:class:`~meterhub.errors.ParseError` naming the line."""

from __future__ import annotations

import math

from ..errors import ParseError
from ..samples import Exemplar

__all__ = ["parse_float", "parse_sample", "unescape_help"]


def parse_sample(
    line: str, lineno: int, openmetrics: bool
) -> tuple[str, list[tuple[str, str]], float, float | None, Exemplar | None]:
    """``name, labels, value, timestamp (seconds), exemplar`` of one sample line."""
    i = 0
    n = len(line)
    while i < n and line[i] not in "{ \t":
        i += 1
    name = line[:i]
    if not name or not _valid_name(name):
        raise ParseError(f"line {lineno}: invalid metric name {name!r}")
    labels: list[tuple[str, str]] = []
    if i < n and line[i] == "{":
        labels, i = _labels(line, i + 1, lineno)
    rest = line[i:]
    exemplar: Exemplar | None = None
    if " # " in rest:
        rest, ex_text = rest.split(" # ", 1)
        exemplar = _exemplar(ex_text, lineno)
    fields = rest.split()
    if not fields or len(fields) > 2:
        raise ParseError(f"line {lineno}: expected a value (and an optional timestamp)")
    value = parse_float(fields[0], lineno)
    ts: float | None = None
    if len(fields) == 2:
        t = parse_float(fields[1], lineno)
        if not math.isfinite(t):
            raise ParseError(f"line {lineno}: invalid timestamp {fields[1]!r}")
        ts = t if openmetrics else t / 1000.0
    return name, labels, value, ts, exemplar


def _labels(line: str, i: int, lineno: int) -> tuple[list[tuple[str, str]], int]:
    labels: list[tuple[str, str]] = []
    n = len(line)
    seen: set[str] = set()
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i < n and line[i] == "}":
            return labels, i + 1
        start = i
        while i < n and line[i] not in '= \t"}':
            i += 1
        key = line[start:i]
        while i < n and line[i] in " \t":
            i += 1
        if not key or not _valid_label(key) or i >= n or line[i] != "=":
            raise ParseError(f"line {lineno}: malformed label near {line[start : start + 20]!r}")
        i += 1
        while i < n and line[i] in " \t":
            i += 1
        if i >= n or line[i] != '"':
            raise ParseError(f"line {lineno}: label {key} has no quoted value")
        i += 1
        chars: list[str] = []
        while True:
            if i >= n:
                raise ParseError(f"line {lineno}: unterminated value of label {key}")
            c = line[i]
            if c == "\\":
                if i + 1 >= n:
                    raise ParseError(f"line {lineno}: dangling backslash in label {key}")
                nxt = line[i + 1]
                chars.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
                i += 2
                continue
            if c == '"':
                i += 1
                break
            chars.append(c)
            i += 1
        if key in seen:
            raise ParseError(f"line {lineno}: duplicate label {key}")
        seen.add(key)
        labels.append((key, "".join(chars)))
        while i < n and line[i] in " \t":
            i += 1
        if i < n and line[i] == ",":
            i += 1
        elif i < n and line[i] == "}":
            return labels, i + 1
        else:
            raise ParseError(f"line {lineno}: expected ',' or '}}' after label {key}")


def _exemplar(text: str, lineno: int) -> Exemplar:
    text = text.strip()
    if not text.startswith("{"):
        raise ParseError(f"line {lineno}: malformed exemplar {text!r}")
    labels, i = _labels(text, 1, lineno)
    fields = text[i:].split()
    if not fields or len(fields) > 2:
        raise ParseError(f"line {lineno}: exemplar needs a value")
    ts = parse_float(fields[1], lineno) if len(fields) == 2 else None
    return Exemplar(dict(labels), parse_float(fields[0], lineno), ts)


def parse_float(text: str, lineno: int) -> float:
    """A sample value or timestamp: Go float syntax plus ``+Inf``/``-Inf``/``NaN``."""
    special = {"+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    if text in special:
        return special[text]
    try:
        return float(text)
    except ValueError:
        raise ParseError(f"line {lineno}: invalid number {text!r}") from None


def _valid_name(name: str) -> bool:
    return (
        (name[0].isalpha() or name[0] in "_:")
        and all(c.isalnum() or c in "_:" for c in name)
        and name.isascii()
    )


def _valid_label(name: str) -> bool:
    return (
        (name[0].isalpha() or name[0] == "_")
        and name.isascii()
        and all(c.isalnum() or c == "_" for c in name)
    )


def unescape_help(text: str) -> str:
    """HELP text with `\\\\` and `\\n` unescaped (other escapes kept as written)."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append({"n": "\n", "\\": "\\"}.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)
