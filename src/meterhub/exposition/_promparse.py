"""prometheus_client's lax text-format parser: ``text_string_to_metric_families``.

Yields :class:`~meterhub.families.Metric` objects holding :class:`~meterhub.samples.Sample`
tuples, equal to what prometheus_client's parser yields for the same text: samples in
the order written, values as ``int`` when they are integers, timestamps in seconds,
counters named without ``_total`` (their samples keep it), a sample that belongs to no
``# TYPE``/``# HELP`` block an ``unknown`` family of its own. UTF-8 names are quoted
(``{"http.requests", method="GET"} 1``). Errors raise ``ValueError``.

:func:`meterhub.exposition.parser.parse_text` is meterhub's strict parser into
snapshots; this one is for code written against prometheus_client.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from typing import TextIO

from ..families import Metric
from ..naming import METRIC_NAME_RE, validate_metric_name
from ..samples import Sample

__all__ = ["text_fd_to_metric_families", "text_string_to_metric_families"]

_ESCAPES = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}
_HELP_ESCAPE = re.compile(r"\\[\\n]")
_VALUE_ESCAPE = re.compile(r'\\[\\n"]')


def _unescape_help(text: str) -> str:
    return _HELP_ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], text)


def _unescape(text: str) -> str:
    return _VALUE_ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], text)


def _escaped(text: str, pos: int) -> bool:
    """Whether the character at *pos* is preceded by an odd number of backslashes."""
    n = 0
    while pos > n and text[pos - 1 - n] == "\\":
        n += 1
    return n % 2 == 1


def _next_unquoted(text: str, chars: str | None, start: int = 0) -> int:
    """Index of the next of *chars* (default: whitespace) outside quotes, or -1."""
    quoted = False
    for i in range(start, len(text)):
        c = text[i]
        if c == '"' and not _escaped(text, i):
            quoted = not quoted
        if not quoted and (c in chars if chars is not None else c.isspace()):
            return i
    return -1


def _split_quoted(text: str, maxsplit: int) -> list[str]:
    """``str.split()`` on whitespace outside quotes, at most *maxsplit* splits."""
    tokens = [""]
    x = 0
    while x < len(text):
        pos = _next_unquoted(text, None, x)
        if pos == -1:
            tokens[-1] = text[x:]
            break
        if pos == x:  # runs of whitespace
            x += 1
            continue
        if maxsplit > 0 and len(tokens) > maxsplit:
            tokens[-1] = text[x:]
            break
        tokens[-1] = text[x:pos]
        x = pos + 1
        tokens.append("")
    return tokens


def _unquote(text: str) -> tuple[str, bool]:
    """*text* without its quotes and escapes, and whether it was quoted."""
    if not text:
        return text, False
    text = text.strip()
    quoted = False
    if text[0] == '"':
        if len(text) == 1 or text[-1] != '"':
            raise ValueError(f"missing close quote: {text!r}")
        text, quoted = text[1:-1], True
    return (_unescape(text) if "\\" in text else text), quoted


def _next_term(text: str) -> tuple[str, str, str]:
    """``(label name, value term, rest)`` of the next comma-separated label term."""
    if text[0] == ",":
        text = text[1:]
        if not text:
            return "", "", ""
        if text[0] == ",":
            raise ValueError("multiple commas")
    split = _next_unquoted(text, "=,}")
    if split >= 0 and text[split] == "=":
        name = text[:split]
        text = text[split + 1 :]
        split = _next_unquoted(text, ",}")
    else:
        name = "__name__"
    if split == -1:
        split = len(text)
    return name, text[:split].strip(), text[split:].strip()


def _check_label_name(name: str) -> None:
    if name.startswith("__"):
        raise ValueError(f"invalid label name {name!r}")
    name.encode("utf-8")


def parse_labels(text: str) -> dict[str, str]:
    """The label set inside ``{...}`` (the braces excluded); ``__name__`` for a quoted name."""
    labels: dict[str, str] = {}
    rest = text.strip()
    try:
        while rest:
            name_term, value_term, rest = _next_term(rest)
            if not value_term:
                continue
            name, quoted = _unquote(name_term)
            if not quoted and METRIC_NAME_RE.match(name) is None:
                raise ValueError("unquoted UTF-8 name")
            if value_term[0] != '"':
                raise ValueError("label value without quotes")
            i = 1
            while i < len(value_term):
                i = value_term.index('"', i)
                if not _escaped(value_term[:i], i):
                    break
                i += 1
            if i + 1 != len(value_term):
                raise ValueError("text after the closing quote")
            value, _ = _unquote(value_term)
            if name == "__name__":
                validate_metric_name(name)
            else:
                _check_label_name(name)
            if name in labels:
                raise ValueError(f"duplicate label name {name!r}")
            labels[name] = value
        return labels
    except (ValueError, UnicodeError):
        raise ValueError(f"Invalid labels: {text}") from None


def _number(text: str) -> int | float:
    if text != text.strip() or "_" in text:
        raise ValueError(f"Invalid value: {text!r}")
    try:
        return int(text)
    except ValueError:
        return float(text)


def _value_and_timestamp(text: str) -> tuple[int | float, float | None]:
    text = text.lstrip()
    sep = " " if " " in text else "\t"
    fields = [f.strip() for f in text.split(sep) if f.strip()]
    if not fields:
        return float(text), None
    value = _number(fields[0])
    timestamp = _number(fields[-1]) / 1000 if len(fields) > 1 else None
    return value, timestamp


def _sample(text: str) -> Sample:
    brace = _next_unquoted(text, "{")
    if brace == -1 or " # " in text[:brace]:
        end = _next_unquoted(text, " \t")
        name = text[:end].strip()
        if METRIC_NAME_RE.match(name) is None:
            raise ValueError(f"invalid metric name: {text}")
        value, ts = _value_and_timestamp(text[end + 1 :])
        return Sample(name, {}, value, ts)
    name = text[:brace].strip()
    close = _next_unquoted(text[brace:], "}") + brace
    labels = parse_labels(text[brace + 1 : close])
    if not name:
        if "__name__" not in labels:
            raise ValueError(f"no metric name: {text}")
        name = labels.pop("__name__")
    elif "__name__" in labels:
        raise ValueError(f"metric name given twice: {text}")
    value, ts = _value_and_timestamp(text[close + 1 :])
    return Sample(name, labels, value, ts)


_ALLOWED = {
    "counter": ("",),
    "gauge": ("",),
    "summary": ("_count", "_sum", ""),
    "histogram": ("_count", "_sum", "_bucket"),
}


def _build(name: str, documentation: str, typ: str, samples: list[Sample]) -> Metric:
    if typ == "counter":
        if name.endswith("_total"):
            name = name[: -len("_total")]
        else:
            samples = [s._replace(name=s.name + "_total") for s in samples]
    metric = Metric(name, documentation, typ)
    metric.samples = samples
    return metric


def text_fd_to_metric_families(fd: TextIO | Iterable[str]) -> Iterator[Metric]:
    """Parse the text format from an open text file (or any iterable of lines)."""
    name, documentation, typ = "", "", "untyped"
    samples: list[Sample] = []
    allowed: list[str] = []
    for raw in fd:
        line = raw.strip()
        if line.startswith("#"):
            parts = _split_quoted(line, 3)
            if len(parts) < 2:
                continue
            candidate, quoted = "", False
            if len(parts) > 2:
                if parts[1] not in ("TYPE", "HELP"):
                    continue
                candidate, quoted = _unquote(parts[2])
                if not quoted and METRIC_NAME_RE.match(candidate) is None:
                    raise ValueError(f"invalid metric name in {line!r}")
            if parts[1] == "HELP":
                if candidate != name:
                    if name:
                        yield _build(name, documentation, typ, samples)
                    name, typ, samples, allowed = candidate, "untyped", [], [candidate]
                documentation = _unescape_help(parts[3]) if len(parts) == 4 else ""
            elif parts[1] == "TYPE":
                if len(parts) < 4:
                    raise ValueError(f"TYPE without a type: {line!r}")
                if candidate != name:
                    if name:
                        yield _build(name, documentation, typ, samples)
                    name, documentation, samples = candidate, "", []
                typ = parts[3]
                allowed = [name + suffix for suffix in _ALLOWED.get(typ, ("",))]
        elif line:
            sample = _sample(line)
            if sample.name in allowed:
                samples.append(sample)
                continue
            if name:
                yield _build(name, documentation, typ, samples)
            name, documentation, typ, samples, allowed = "", "", "untyped", [], []
            yield _build(sample.name, "", "untyped", [sample])
    if name:
        yield _build(name, documentation, typ, samples)


def text_string_to_metric_families(text: str) -> Iterator[Metric]:
    """Parse text-format *text* into prometheus_client-style families.

    Example::

        >>> [m] = text_string_to_metric_families("# TYPE jobs_total counter\\njobs_total 3\\n")
        >>> m.name, m.type, m.samples[0].value
        ('jobs', 'counter', 3)
    """
    yield from text_fd_to_metric_families(io.StringIO(text))
