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
from functools import partial
from typing import NamedTuple
from urllib.parse import parse_qs

from ..samples import MetricFamily
from .escaping import negotiated_escaping
from .openmetrics import CONTENT_TYPE_OPENMETRICS, generate_latest_openmetrics, render_openmetrics
from .protobuf import CONTENT_TYPE_PROTOBUF, render_protobuf
from .text import CONTENT_TYPE_PLAIN_0_0_4, CONTENT_TYPE_PLAIN_1_0_0, generate_latest, render_text

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


def _escaping(params: dict[str, str]) -> str | None:
    """The explicit ``escaping=`` of a versioned (>= 1.0.0) entry, else ``None``."""
    if "escaping" not in params or _version(params.get("version", "")) < (1, 0, 0):
        return None
    return negotiated_escaping(params)


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return ()


def _with_escaping(
    render: Callable[..., str], content_type: str, escaping: str | None
) -> tuple[Renderer, str]:
    if escaping is None:
        return render, content_type
    return partial(render, escaping=escaping), f"{content_type}; escaping={escaping}"


def choose_renderer(accept: str | None) -> tuple[Renderer, str]:
    """The renderer and content type best matching an ``Accept`` header.

    OpenMetrics is chosen when ``application/openmetrics-text`` (version 1.0.0, 0.0.1 or
    none) is acceptable with a q-value at least as high as the text format's; anything
    else, a missing header included, gets the text format 0.0.4. UTF-8 names are escaped
    with underscores unless the chosen entry (version 1.0.0 or later) says
    ``escaping=allow-utf-8``, ``dots`` or ``values``; the content type then says so too.
    Text formats only: the scrape endpoint negotiates protobuf too, with
    :func:`choose_format`.
    """
    best_q, best_pos, best_params = -1.0, 0, {}
    for media, params, q, pos in _media_ranges(accept or ""):
        if q <= 0.0 or media != "application/openmetrics-text":
            continue
        if params.get("version", "") not in _OM_VERSIONS:
            continue
        if q > best_q:
            best_q, best_pos, best_params = q, pos, params
    text: tuple[float, int, dict[str, str]] | None = None
    for media, params, q, pos in _media_ranges(accept or ""):
        if media == "text/plain" and q > 0.0 and (text is None or q > text[0]):
            text = (q, pos, params)
    if best_q < 0 or (text is not None and (text[0], -text[1]) >= (best_q, -best_pos)):
        params = text[2] if text is not None else {}
        escaping = _escaping(params)
        if escaping is not None:
            return _with_escaping(render_text, CONTENT_TYPE_PLAIN_1_0_0, escaping)
        return render_text, CONTENT_TYPE_PLAIN_0_0_4
    return _with_escaping(render_openmetrics, CONTENT_TYPE_OPENMETRICS, _escaping(best_params))


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
    if content_type.startswith("text/plain"):
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
    # a renderer bound to an escaping scheme (a partial) gets its encoder made here
    encode = _ENCODERS.get(render) or _utf8(render)
    return encode, content_type, render


def _generate_protobuf(registry: object) -> bytes:
    return render_protobuf(registry.collect())  # type: ignore[attr-defined]


def choose_encoder(accept: str | None) -> tuple[Callable[[object], bytes], str]:
    """prometheus_client's ``choose_encoder``: ``(generate(registry) -> bytes, content_type)``,
    with its answers (the first OpenMetrics or versioned text entry wins; a version of
    1.0.0 or later gets ``; escaping=...`` in the content type), and the protobuf exposition
    when the header prefers it (see :func:`choose_format`).

    Example::

        >>> choose_encoder("text/plain; version=1.0.0; escaping=allow-utf-8")[1]
        'text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8'
    """
    if choose_format(accept)[2] is None:  # protobuf wins (prometheus_client has none)
        return _generate_protobuf, CONTENT_TYPE_PROTOBUF
    for entry in (accept or "").split(","):
        toks = entry.split(";")
        media = toks[0].strip()
        params: dict[str, str] = {}
        for tok in toks[1:]:
            if "=" in tok:
                key, value = tok.strip().split("=", 1)
                params.setdefault(key, value)
        version = params.get("version", "")
        escaping = negotiated_escaping(params)
        if media == "application/openmetrics-text":
            if not version:
                return partial(generate_latest_openmetrics), CONTENT_TYPE_OPENMETRICS
            if _version(version) >= (1, 0, 0):
                return (
                    partial(generate_latest_openmetrics, escaping=escaping, version=version),
                    f"application/openmetrics-text; version={version}; charset=utf-8; "
                    f"escaping={escaping}",
                )
        elif media == "text/plain" and _version(version) >= (1, 0, 0):
            return (
                partial(generate_latest, escaping=escaping),
                f"{CONTENT_TYPE_PLAIN_1_0_0}; escaping={escaping}",
            )
    return generate_latest, CONTENT_TYPE_PLAIN_0_0_4  # type: ignore[return-value]


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
