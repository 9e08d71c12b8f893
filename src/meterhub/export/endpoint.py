"""One scrape endpoint, independent of the HTTP front end serving it.

:class:`Endpoint` turns (method, path, query string, headers) into a :class:`Response`;
the built-in server, the WSGI app, the ASGI app and the framework integrations (the
Django view, the Flask extension) only translate their request and response objects, so
authentication, negotiation, filtering and gzip behave the same in all of them. A front
end of your own does the same:

    >>> from meterhub import Counter, Registry
    >>> from meterhub.export import Endpoint
    >>> reg = Registry(self_metrics=False)
    >>> Counter("jobs", "Jobs run.", registry=reg).inc()
    >>> endpoint = Endpoint(reg, path=None)            # None: answer on every path
    >>> headers = {"accept": "text/plain"}
    >>> resp = endpoint.handle("GET", "/", "", headers.get)
    >>> resp.status, b"jobs_total 1" in resp.body
    (200, True)
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

from ..exposition.negotiate import negotiate

__all__ = ["Endpoint", "Response"]

log = logging.getLogger("meterhub.export.http")

HeaderGetter = Callable[[str], "str | None"]
"""Returns the value of a request header by lower-case name, or ``None``."""

_ALLOW = "GET, HEAD"
_GZIP_LEVEL = 1  # scrape text is very repetitive: level 1 gets most of the gain, fast


class Response(NamedTuple):
    """An HTTP answer: status, reason phrase, headers and body (empty for HEAD).

    ``headers`` may hold one name more than once (a ``WWW-Authenticate`` challenge per
    configured scheme); a front end whose response object keeps one value per name joins
    them with ``", "``.

    Example::

        >>> from meterhub import Registry
        >>> resp = Endpoint(Registry(), bearer_token="s3cret").handle(
        ...     "GET", "/metrics", "", {}.get
        ... )
        >>> resp.status, resp.reason, ("WWW-Authenticate", 'Bearer realm="metrics"') in resp.headers
        (401, 'Unauthorized', True)
    """

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


def _plain(status: int, reason: str, extra: list[tuple[str, str]] | None = None) -> Response:
    body = f"{reason}\n".encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    return Response(status, reason, headers + (extra or []), body)


def _raw(header_value: str) -> bytes:
    # WSGI, ASGI and http.server hand header bytes over decoded as latin-1: encoding
    # back gives the bytes the client sent (a UTF-8 token compares as UTF-8).
    try:
        return header_value.encode("latin-1")
    except UnicodeEncodeError:
        return header_value.encode("utf-8")


def _gzip(data: bytes) -> bytes:
    c = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 31)  # wbits 31: gzip container
    return c.compress(data) + c.flush()


def _collect(registry: Any, names: tuple[str, ...] | None) -> Any:
    if not names:
        return registry.collect()
    try:
        return registry.collect(names)
    except TypeError:  # a custom registry whose collect() takes no filter
        wanted = set(names)
        return [
            f
            for f in registry.collect()
            if f.name in wanted or any(s.name in wanted for s in f.samples)
        ]


class Endpoint:
    """Answers scrapes of *registry* (anything with ``collect(names=None)``).

    *path* ``None`` answers on every path (what prometheus_client's WSGI/ASGI apps do);
    a string answers only there and 404 elsewhere. With *bearer_token* and/or
    *basic_auth* ``(user, password)`` set, a request must carry one of them; they are
    compared in constant time and a mismatch gets a bare 401.

    :meth:`handle` is the whole interface: *header* returns a request header's value by
    lower-case name (or ``None``). The endpoint does no I/O besides collecting, never
    raises for a request (a failed collection is a logged ``500``) and is thread-safe.

    Example::

        >>> from meterhub import Registry
        >>> endpoint = Endpoint(Registry(self_metrics=False))
        >>> endpoint.handle("GET", "/metrics", "", {}.get).headers[0]
        ('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
        >>> endpoint.handle("POST", "/metrics", "", {}.get).status
        405
    """

    def __init__(
        self,
        registry: Any,
        *,
        path: str | None = "/metrics",
        disable_compression: bool = False,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        if not callable(getattr(registry, "collect", None)):
            raise TypeError(f"registry must have a collect() method, got {registry!r}")
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise ValueError(f"path must start with '/', got {path!r}")
        if bearer_token is not None and (not isinstance(bearer_token, str) or not bearer_token):
            raise ValueError("bearer_token must be a non-empty str")
        if basic_auth is not None and (
            not isinstance(basic_auth, tuple)
            or len(basic_auth) != 2
            or not all(isinstance(x, str) for x in basic_auth)
            or not basic_auth[0]
            or ":" in basic_auth[0]
        ):
            raise ValueError("basic_auth must be a (user, password) tuple of str, no ':' in user")
        self.registry = registry
        self.path = path
        self.disable_compression = disable_compression
        self._bearer = bearer_token.encode() if bearer_token else None
        self._basic = f"{basic_auth[0]}:{basic_auth[1]}".encode() if basic_auth else None
        challenges = []
        if self._bearer:
            challenges.append(("WWW-Authenticate", 'Bearer realm="metrics"'))
        if self._basic:
            challenges.append(("WWW-Authenticate", 'Basic realm="metrics", charset="UTF-8"'))
        self._challenges = challenges

    def authorized(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header satisfies the configured credentials."""
        if self._bearer is None and self._basic is None:
            return True
        scheme, _, cred = (authorization or "").strip().partition(" ")
        given = _raw(cred.strip())
        scheme = scheme.lower()
        if scheme == "bearer" and self._bearer is not None:
            return hmac.compare_digest(given, self._bearer)
        if scheme == "basic" and self._basic is not None:
            try:
                decoded = base64.b64decode(given, validate=True)
            except (binascii.Error, ValueError):
                decoded = b""
            return hmac.compare_digest(decoded, self._basic)
        return False

    def handle(self, method: str, path: str, query: str, header: HeaderGetter) -> Response:
        """The answer to one request (the body is empty for HEAD; lengths stay right)."""
        resp = self._answer(method, path, query, header)
        if method == "HEAD" and resp.body:
            return resp._replace(body=b"")
        return resp

    def _answer(self, method: str, path: str, query: str, header: HeaderGetter) -> Response:
        if not self.authorized(header("authorization")):
            return _plain(401, "Unauthorized", self._challenges)
        if self.path is not None and path != self.path:
            return _plain(404, "Not Found")
        if self.path is None and path == "/favicon.ico":
            return _plain(404, "Not Found")
        if method not in ("GET", "HEAD"):
            return _plain(405, "Method Not Allowed", [("Allow", _ALLOW)])
        neg = negotiate(
            header("accept"), header("accept-encoding"), query, self.disable_compression
        )
        try:
            families = _collect(self.registry, neg.names)
            # "replace": one label value with a lone surrogate must not fail every scrape
            body = neg.render(families).encode("utf-8", "replace")
        except Exception:
            log.exception("meterhub: collecting metrics for a scrape failed")
            return _plain(500, "Internal Server Error")
        headers = [("Content-Type", neg.content_type), ("Vary", "Accept, Accept-Encoding")]
        if neg.gzip:
            body = _gzip(body)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        return Response(200, "OK", headers, body)
