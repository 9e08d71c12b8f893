"""One HTTP-server metric vocabulary for every web framework.

Every adapter (Django, Flask, ASGI) records into the same families, so one dashboard
serves all of them:

==========================================  =========  ===========================
name                                        type       labels
==========================================  =========  ===========================
``http_server_requests_total``              counter    method, route, status
``http_server_request_duration_seconds``    histogram  method, route, status
``http_server_requests_in_progress``        gauge      method
``http_server_request_size_bytes``          histogram  method, route
``http_server_response_size_bytes``         histogram  method, route
``http_server_exceptions_total``            counter    method, route, exception
==========================================  =========  ===========================

Cardinality is bounded by construction: ``route`` is the route *template* given by the
framework (``/users/{id}``), never the raw path, and every unmatched request shares
:data:`UNMATCHED_ROUTE`; ``method`` outside :data:`STANDARD_METHODS` becomes ``OTHER``;
``status`` is a registered code (:data:`KNOWN_STATUS_CODES`), another code of 100..599
folded into its class (``5xx``, so ``status=~"5.."`` still matches it), or ``unknown``. The
counter and the histogram share the ``status`` values, so error latency splits from success
latency and both join on it. Re-creating an app re-declares identical metrics, which
returns the existing ones (no "Duplicated timeseries").

``naming="otel"`` records the same measurements under OpenTelemetry's HTTP semantic
conventions instead (:data:`NAMINGS`): ``http.server.request.duration`` with
``http.request.method``, ``http.route`` and ``http.response.status_code``,
``http.server.active_requests``, ``http.server.request.body.size``,
``http.server.response.body.size``, ``error.type`` for the exception type and ``_OTHER``
for unknown methods. A Prometheus 2 scraper sees them escaped
(``http_server_request_duration_seconds{http_request_method="GET",...}``), as
OpenTelemetry's own Prometheus exporter writes them; the multi-process store, which keeps
to the legacy grammar, gets that spelling directly.

Example::

    >>> from meterhub import Registry
    >>> from meterhub.integrations.http_metrics import HttpServerMetrics
    >>> reg = Registry(self_metrics=False)
    >>> m = HttpServerMetrics(registry=reg)
    >>> method = m.begin("get")
    >>> m.end(method, "/users/{id}", 200, 0.012)
    >>> reg.get_sample_value(
    ...     "http_server_requests_total", {"method": "GET", "route": "/users/{id}", "status": "200"}
    ... )
    1.0
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from meterhub import REGISTRY, Counter, Gauge, Histogram, Registry, shielded
from meterhub.errors import DefinitionError

__all__ = [
    "DEFAULT_DURATION_BUCKETS",
    "DEFAULT_EXCLUDE_PATHS",
    "DEFAULT_SIZE_BUCKETS",
    "KNOWN_STATUS_CODES",
    "NAMINGS",
    "OTHER_METHOD",
    "STANDARD_METHODS",
    "UNMATCHED_ROUTE",
    "HttpServerMetrics",
    "normalize_method",
    "normalize_status",
    "template_from_converters",
]

DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""Request duration buckets (seconds) unless ``buckets=`` says otherwise."""

DEFAULT_SIZE_BUCKETS: tuple[float, ...] = (100.0, 1e3, 1e4, 1e5, 1e6, 1e7)
"""Body size buckets (bytes)."""

STANDARD_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
"""The methods kept as label values; anything else is recorded as :data:`OTHER_METHOD`."""

OTHER_METHOD = "OTHER"
OTEL_OTHER_METHOD = "_OTHER"
"""OpenTelemetry's value for a method it does not know (``naming="otel"``)."""
UNMATCHED_ROUTE = "__unmatched__"
"""The ``route`` of every request no route template matched (404s of random paths)."""

DEFAULT_EXCLUDE_PATHS: tuple[str, ...] = ("/metrics",)

KNOWN_STATUS_CODES: frozenset[int] = frozenset(
    {100, 101, 102, 103,
     200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
     300, 301, 302, 303, 304, 305, 307, 308,
     400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416,
     417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 499,
     500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511}
)  # fmt: skip
"""The codes kept as ``status`` values: IANA's registry (as :class:`http.HTTPStatus`,
spelled out so every Python version agrees), plus 499, which the adapters record when the
client went away. Any other code of 100..599 is folded into its class (``"5xx"``)."""

_STATUS_LABELS: dict[int, str] = {
    code: str(code) if code in KNOWN_STATUS_CODES else f"{code // 100}xx"
    for code in range(100, 600)
}

NAMINGS = ("meterhub", "otel")
"""The values of ``HttpServerMetrics(naming=)``."""

# naming -> the name of each metric and label, and the value of an unknown method
_VOCABULARIES: dict[str, dict[str, str]] = {
    "meterhub": {
        "requests": "http_server_requests_total",
        "duration": "http_server_request_duration_seconds",
        "in_progress": "http_server_requests_in_progress",
        "request_size": "http_server_request_size_bytes",
        "response_size": "http_server_response_size_bytes",
        "exceptions": "http_server_exceptions_total",
        "method": "method", "route": "route", "status": "status", "exception": "exception",
        "other": OTHER_METHOD,
    },
    "otel": {  # https://opentelemetry.io/docs/specs/semconv/http/http-metrics/
        "requests": "http.server.requests_total",  # no OTel name: duration's count is it
        "duration": "http.server.request.duration_seconds",
        "in_progress": "http.server.active_requests",
        "request_size": "http.server.request.body.size_bytes",
        "response_size": "http.server.response.body.size_bytes",
        "exceptions": "http.server.exceptions_total",  # OTel: error.type on the duration
        "method": "http.request.method", "route": "http.route",
        "status": "http.response.status_code", "exception": "error.type",
        "other": OTEL_OTHER_METHOD,
    },
}  # fmt: skip

_CACHE_LIMIT = 10_000
_ANGLE_RE = re.compile(r"<(?:[^<>:]+:)?([A-Za-z_]\w*)>")
_BRACE_RE = re.compile(r"\{([A-Za-z_]\w*):[^{}]*\}")
_TEMPLATES: dict[str, str] = {}


def _vocabulary(naming: str, legacy: bool) -> dict[str, str]:
    names = _VOCABULARIES[naming]
    return {k: v.replace(".", "_") for k, v in names.items()} if legacy else names


def normalize_method(method: object) -> str:
    """The ``method`` label value of *method*: upper-cased if standard, else ``OTHER``.

    Example::

        >>> normalize_method("get"), normalize_method("BREW"), normalize_method(None)
        ('GET', 'OTHER', 'OTHER')
    """
    if type(method) is str:
        if method in STANDARD_METHODS:
            return method
        upper = method.upper()
        if upper in STANDARD_METHODS:
            return upper
    return OTHER_METHOD


def normalize_status(status: object) -> str:
    """The ``status`` label value: a code of :data:`KNOWN_STATUS_CODES` as text, another
    code of 100..599 as its class, else ``unknown``: at most 69 values.

    Example::

        >>> normalize_status(200), normalize_status("404"), normalize_status(299)
        ('200', '404', '2xx')
        >>> normalize_status(1234), normalize_status(None)
        ('unknown', 'unknown')
    """
    try:
        code = int(status)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return "unknown"
    return _STATUS_LABELS.get(code, "unknown")


def template_from_converters(pattern: str) -> str:
    """Rewrite framework placeholders to the shared ``{name}`` form.

    Django's ``<int:pk>``, Flask's ``<int:pk>`` and Starlette's ``{pk:int}`` all become
    ``{pk}``, so one dashboard query matches every framework.

    Example::

        >>> template_from_converters("/users/<int:user>/posts/{slug:str}")
        '/users/{user}/posts/{slug}'
    """
    if "<" not in pattern and ":" not in pattern:
        return pattern
    cached = _TEMPLATES.get(pattern)
    if cached is None:
        cached = _BRACE_RE.sub(r"{\1}", _ANGLE_RE.sub(r"{\1}", pattern))
        if len(_TEMPLATES) < _CACHE_LIMIT:  # patterns come from the app's URL map: few
            _TEMPLATES[pattern] = cached
    return cached


def _exemplar_source() -> Callable[[], Mapping[str, str] | None] | None:
    # Imported by name: the tracing module is optional (its own extra) and may be absent.
    try:
        module = importlib.import_module("meterhub.integrations.tracing")
    except ImportError:
        return None
    source = getattr(module, "current_exemplar", None)
    return cast("Callable[[], Mapping[str, str] | None]", source) if callable(source) else None


class HttpServerMetrics:
    """The shared HTTP-server metrics; every framework adapter records through one of these.

    *buckets* sets the duration buckets; *exclude_paths* lists paths not recorded at all
    (exact, or a prefix when the entry ends with ``*``); ``sizes=False`` skips the body size
    histograms; ``exemplars=True`` attaches the active trace id to duration observations
    when :mod:`meterhub.integrations.tracing` can provide one. ``naming="otel"`` uses
    OpenTelemetry's names for the metrics and labels (see the module docstring).

    Example::

        >>> from meterhub import Registry
        >>> m = HttpServerMetrics(registry=Registry(), exclude_paths=["/metrics", "/static/*"])
        >>> m.excluded("/static/app.css"), m.excluded("/users/1")
        (True, False)
    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        buckets: Sequence[float] | None = None,
        size_buckets: Sequence[float] | None = None,
        exclude_paths: Iterable[str] | None = None,
        namespace: str = "",
        sizes: bool = True,
        exemplars: bool = True,
        naming: str = "meterhub",
    ) -> None:
        reg = REGISTRY if registry is None else registry
        if not isinstance(reg, Registry):
            raise TypeError(f"registry must be a meterhub Registry, got {reg!r}")
        if naming not in NAMINGS:
            raise ValueError(f"naming must be one of {', '.join(NAMINGS)}, got {naming!r}")
        legacy = hasattr(reg.store, "attach")  # the multi-process store keeps to the legacy
        names = _vocabulary(naming, legacy)  # grammar: it gets the escaped spelling
        for other in NAMINGS:
            theirs = _vocabulary(other, legacy)["duration"]
            if other != naming and theirs != names["duration"] and reg.get(theirs) is not None:
                # Escaped for a Prometheus 2 scraper, the two render the same family names.
                # (Spelled alike, in multi-process mode, the label names conflict instead.)
                raise DefinitionError(
                    f"HttpServerMetrics(naming={naming!r}): this registry already has the "
                    f"{other!r} naming's {theirs}; use one naming per registry"
                )
        self.naming = naming
        self._other = names["other"]
        method_l, route_l, status_l = names["method"], names["route"], names["status"]
        paths = DEFAULT_EXCLUDE_PATHS if exclude_paths is None else exclude_paths
        if isinstance(paths, str):
            raise TypeError("exclude_paths must be an iterable of paths, not one str")
        exact: set[str] = set()
        prefixes: list[str] = []
        for p in paths:
            if not isinstance(p, str) or not p:
                raise TypeError(f"exclude_paths entries must be non-empty str, got {p!r}")
            if p.endswith("*"):
                prefixes.append(p[:-1])
            else:
                exact.add(p)
        # "/metrics" also covers "/metrics/": both spellings in one set, one lookup.
        self._exact = frozenset(exact | {p + "/" for p in exact})
        self._prefixes = tuple(prefixes)
        self.registry = reg
        self._self_metrics = reg.self_metrics
        ns = namespace
        self.requests = Counter(
            names["requests"],
            "HTTP requests served, by method, route template and status code.",
            (method_l, route_l, status_l),
            namespace=ns,
            registry=reg,
        )
        self.duration = Histogram(
            names["duration"],
            "Time from receiving an HTTP request to sending the last byte of its response.",
            (method_l, route_l, status_l),
            namespace=ns,
            registry=reg,
            buckets=DEFAULT_DURATION_BUCKETS if buckets is None else buckets,
        )
        self.in_progress = Gauge(
            names["in_progress"],
            "HTTP requests being served right now, by method.",
            (method_l,),
            namespace=ns,
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.exceptions = Counter(
            names["exceptions"],
            "Exceptions raised by HTTP request handlers, by exception type.",
            (method_l, route_l, names["exception"]),
            namespace=ns,
            registry=reg,
        )
        self.sizes = sizes
        if sizes:
            sb = DEFAULT_SIZE_BUCKETS if size_buckets is None else size_buckets
            self.request_size = Histogram(
                names["request_size"],
                "Size of HTTP request bodies.",
                (method_l, route_l),
                namespace=ns,
                registry=reg,
                buckets=sb,
            )
            self.response_size = Histogram(
                names["response_size"],
                "Size of HTTP response bodies.",
                (method_l, route_l),
                namespace=ns,
                registry=reg,
                buckets=sb,
            )
        self._exemplar = _exemplar_source() if exemplars else None
        # (method, route, status) exactly as the adapter passed them -> the route label and
        # the children a request records into, so a request costs one dict lookup rather
        # than a labels() call per metric. Keys are bounded (normalized methods, the app's
        # route templates, status codes); the size cap is a second line of defence.
        self._cache: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._gauges: dict[str, Any] = {}  # method label -> its in-progress child
        for metric in (self.requests, self.duration, self.in_progress):
            metric.watch_series(self)
        if sizes:
            self.request_size.watch_series(self)
            self.response_size.watch_series(self)

    def series_forgotten(self) -> None:
        """``remove()`` or ``clear()`` on these metrics: the cached children are re-fetched."""
        self._cache.clear()
        self._gauges.clear()

    def excluded(self, path: str) -> bool:
        """Whether requests to *path* are left out of the metrics (``/metrics`` also
        covers ``/metrics/``)."""
        if path in self._exact:
            return True
        prefixes = self._prefixes
        return bool(prefixes) and path.startswith(prefixes)

    def path_filter(self) -> Callable[[str], bool]:
        """:meth:`excluded` as the cheapest callable for this configuration (a set lookup
        in C when no prefix is excluded), for adapters that ask on every request."""
        if self._prefixes:
            return self.excluded
        return self._exact.__contains__

    def begin(self, method: object) -> str:
        """Count a request as in progress; returns the ``method`` label value to pass to
        :meth:`end`."""
        # The common case inline: a call less per request.
        m = method if type(method) is str and method in STANDARD_METHODS else None
        if m is None:
            m = normalize_method(method)
            if m is OTHER_METHOD:
                m = self._other
        try:
            gauge = self._gauges.get(m)
            if gauge is None:
                gauge = self._gauge(m)
            gauge.inc()
        except Exception:
            self._failed("http_server_requests_in_progress")
        return m

    def _gauge(self, method: str) -> Any:
        gauge = self.in_progress.labels(method)
        if len(self._gauges) < _CACHE_LIMIT:  # normalized methods: ten at most
            self._gauges[method] = gauge
        return gauge

    def end(
        self,
        method: str,
        route: str | None,
        status: object,
        duration: float,
        *,
        request_size: int | None = None,
        response_size: int | None = None,
        exception: BaseException | type[BaseException] | None = None,
    ) -> None:
        """Record one finished request (*method* as returned by :meth:`begin`).

        *route* is the route template, or ``None`` when no route matched; *exception* is
        what the handler raised, if anything (the status should then be 500, or 499 when
        the client went away).
        """
        try:
            key = (method, route, status)
            try:
                children = self._cache.get(key)
            except TypeError:  # an unhashable status: normalized below, not cached
                children = None
            if children is None:
                children = self._children(key)
            label, gauge, count, timing, request_sizes, response_sizes = children
            gauge.dec()
            count.inc()
            source = self._exemplar
            exemplar = source() if source is not None else None
            if exemplar:
                timing.observe(duration, exemplar)
            else:
                timing.observe(duration)
            if request_sizes is not None and request_size is not None:
                request_sizes.observe(request_size)
            if response_sizes is not None and response_size is not None:
                response_sizes.observe(response_size)
            if exception is not None:
                exc_type = exception if isinstance(exception, type) else type(exception)
                self.exceptions.labels(method, label, exc_type.__name__).inc()
        except Exception:
            self._failed("http_server_requests")

    def _failed(self, what: str) -> None:
        # The error policy of guard.shielded, entered only when recording failed: the
        # happy path pays for a try block, not for a context manager per request.
        with shielded(self._self_metrics, what):
            raise

    def _children(self, key: tuple[Any, ...]) -> tuple[Any, ...]:
        """``(route label, in-progress, requests, duration, request size, response size)``
        (the sizes ``None`` with ``sizes=False``) for a ``(method, route, status)`` key as
        the adapter passed it."""
        method, route, status = key
        label = UNMATCHED_ROUTE if route is None else route
        gauge = self._gauges.get(method)
        if gauge is None:
            gauge = self._gauge(method)
        code = normalize_status(status)
        try:
            children: tuple[Any, ...] = (
                label,
                gauge,
                self.requests.labels(method, label, code),
                self.duration.labels(method, label, code),
            )
            if self.sizes:
                children += (
                    self.request_size.labels(method, label),
                    self.response_size.labels(method, label),
                )
            else:
                children += (None, None)
        except Exception:
            gauge.dec()  # the request is over even if recording it failed
            raise
        if len(self._cache) < _CACHE_LIMIT:
            try:
                self._cache[key] = children
            except TypeError:
                pass  # an unhashable status (see end)
        return children
