"""Content negotiation for a scrape: which format, which metrics, whether to gzip.

Pure functions of request headers and the query string, shared by every HTTP front end
(the built-in server, the WSGI and the ASGI apps) so they answer identically.

Example::

    >>> n = negotiate("application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
    ...               "gzip", "name[]=jobs_total")
    >>> n.content_type, n.gzip, n.names
    ('application/openmetrics-text; version=1.0.0; charset=utf-8', True, ('jobs_total',))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple
from urllib.parse import parse_qs

from ..samples import MetricFamily
from .openmetrics import CONTENT_TYPE_OPENMETRICS, render_openmetrics
from .protobuf import CONTENT_TYPE_PROTOBUF, render_protobuf
from .text import CONTENT_TYPE_LATEST, render_text

__all__ = [
    "Negotiated",
    "accepts_gzip",
    "choose_encoder",
    "choose_format",
    "choose_renderer",
    "name_filter",
    "negotiate",
]

Renderer = Callable[[Iterable[MetricFamily]], str]
Encoder = Callable[[Iterable[MetricFamily]], bytes]

# OpenMetrics versions this renderer produces a valid answer for.
_OM_VERSIONS = ("", "1.0.0", "0.0.1")


class Negotiated(NamedTuple):
    """The outcome of negotiation for one scrape.

    ``encode`` renders the chosen format to bytes, whatever it is; ``render`` is the text
    renderer of a text format (``None`` for protobuf, which is binary).
    """

    render: Renderer | None
    content_type: str
    gzip: bool
    names: tuple[str, ...] | None
    encode: Encoder


def _media_ranges(header: str) -> list[tuple[str, dict[str, str], float, int]]:
    """``(type, params, q, position)`` of each entry of an ``Accept``-style header."""
    out = []
    for pos, part in enumerate(header.split(",")):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        params: dict[str, str] = {}
        q = 1.0
        for f in fields[1:]:
            key, _, value = f.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:
                    q = 0.0
            else:
                params[key] = value
        out.append((media, params, q, pos))
    return out


def choose_renderer(accept: str | None) -> tuple[Renderer, str]:
    """The renderer and content type best matching an ``Accept`` header.

    OpenMetrics is chosen when ``application/openmetrics-text`` (version 1.0.0, 0.0.1 or
    none) is acceptable with a q-value at least as high as the text format's; anything
    else, a missing header included, gets the text format 0.0.4. Text formats only: the
    scrape endpoint negotiates protobuf too, with :func:`choose_format`.
    """
    best_q, best_pos = -1.0, 0
    for media, params, q, pos in _media_ranges(accept or ""):
        if q <= 0.0 or media != "application/openmetrics-text":
            continue
        if params.get("version", "") not in _OM_VERSIONS:
            continue
        if q > best_q:
            best_q, best_pos = q, pos
    if best_q < 0:
        return render_text, CONTENT_TYPE_LATEST
    for media, _params, q, pos in _media_ranges(accept or ""):
        if media == "text/plain" and (q > best_q or (q == best_q and pos < best_pos)):
            return render_text, CONTENT_TYPE_LATEST
    return render_openmetrics, CONTENT_TYPE_OPENMETRICS


def _protobuf_rank(accept: str | None) -> tuple[float, int] | None:
    """``(q, position)`` of the delimited ``MetricFamily`` protobuf type in *accept*, if any."""
    best: tuple[float, int] | None = None
    for media, params, q, pos in _media_ranges(accept or ""):
        if q <= 0.0 or media != "application/vnd.google.protobuf":
            continue
        if params.get("proto") != "io.prometheus.client.MetricFamily":
            continue
        if params.get("encoding", "delimited") != "delimited":
            continue
        if best is None or q > best[0]:
            best = (q, pos)
    return best


def _text_rank(accept: str | None, content_type: str) -> tuple[float, int]:
    """``(q, position)`` of the text format the header chose (``(0, inf)`` if implied)."""
    if content_type == CONTENT_TYPE_LATEST:
        wanted: tuple[str, ...] = ("text/plain", "text/*", "*/*")  # text is the fallback
    else:
        wanted = ("application/openmetrics-text",)
    best = (0.0, 1 << 30)
    for media, _params, q, pos in _media_ranges(accept or ""):
        if media in wanted and q > best[0]:
            best = (q, pos)
    return best


def _utf8(render: Renderer) -> Encoder:
    def encode(families: Iterable[MetricFamily]) -> bytes:
        # "replace": one label value with a lone surrogate must not fail every scrape
        return render(families).encode("utf-8", "replace")

    return encode


_ENCODERS: dict[Renderer, Encoder] = {r: _utf8(r) for r in (render_text, render_openmetrics)}


def choose_format(accept: str | None) -> tuple[Encoder, str, Renderer | None]:
    """``(encode, content_type, text renderer or None)`` best matching an ``Accept`` header.

    The protobuf exposition (``application/vnd.google.protobuf;
    proto=io.prometheus.client.MetricFamily; encoding=delimited``, which Prometheus lists
    first when its native-histograms feature is on) is chosen when its q-value is higher
    than that of the text format :func:`choose_renderer` picks, or equal and listed
    earlier; otherwise that text format.

    Example::

        >>> choose_format("application/vnd.google.protobuf;"
        ...     "proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,"
        ...     "text/plain;q=0.3")[1].split(";")[0]
        'application/vnd.google.protobuf'
    """
    render, content_type = choose_renderer(accept)
    proto = _protobuf_rank(accept)
    if proto is not None:
        q, pos = _text_rank(accept, content_type)
        if proto[0] > q or (proto[0] == q and proto[1] < pos):
            return render_protobuf, CONTENT_TYPE_PROTOBUF, None
    return _ENCODERS[render], content_type, render


def choose_encoder(accept: str | None) -> tuple[Callable[[object], bytes], str]:
    """prometheus_client's ``choose_encoder``: ``(generate(registry) -> bytes, content_type)``
    (protobuf included, see :func:`choose_format`)."""
    encode, content_type, _ = choose_format(accept)

    def generate(registry: object) -> bytes:
        return encode(registry.collect())  # type: ignore[attr-defined]

    return generate, content_type


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header allows gzip (``gzip`` or ``*`` with q > 0)."""
    allowed = False
    for coding, _params, q, _pos in _media_ranges(accept_encoding or ""):
        if coding in ("gzip", "x-gzip"):
            return q > 0.0
        if coding == "*":
            allowed = q > 0.0
    return allowed


def name_filter(query_string: str | None) -> tuple[str, ...] | None:
    """The ``name[]`` values of a query string (``None`` when there are none: no filter)."""
    if not query_string or "name" not in query_string:
        return None
    names = parse_qs(query_string, keep_blank_values=False).get("name[]")
    return tuple(names) if names else None


def negotiate(
    accept: str | None,
    accept_encoding: str | None = None,
    query_string: str | None = None,
    disable_compression: bool = False,
) -> Negotiated:
    """Everything a front end needs to answer a scrape (see the module docstring)."""
    encode, content_type, render = choose_format(accept)
    gzip = not disable_compression and accepts_gzip(accept_encoding)
    return Negotiated(render, content_type, gzip, name_filter(query_string), encode)
