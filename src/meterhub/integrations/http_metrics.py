"""One HTTP-server metric vocabulary for every web framework.

Every adapter (Django, Flask, ASGI) records into the same families, so one dashboard
serves all of them:

==========================================  =========  ===========================
name                                        type       labels
==========================================  =========  ===========================
``http_server_requests_total``              counter    method, route, status
``http_server_request_duration_seconds``    histogram  method, route
``http_server_requests_in_progress``        gauge      method
``http_server_request_size_bytes``          histogram  method, route
``http_server_response_size_bytes``         histogram  method, route
``http_server_exceptions_total``            counter    method, route, exception
==========================================  =========  ===========================

Cardinality is bounded by construction: ``route`` is the route *template* given by the
framework (``/users/{id}``), never the raw path, and every unmatched request shares
:data:`UNMATCHED_ROUTE`; ``method`` outside :data:`STANDARD_METHODS` becomes ``OTHER``;
``status`` is a three-digit code or ``unknown``. Re-creating an app re-declares identical
metrics, which returns the existing ones (no "Duplicated timeseries").

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

__all__ = [
    "DEFAULT_DURATION_BUCKETS",
    "DEFAULT_EXCLUDE_PATHS",
    "DEFAULT_SIZE_BUCKETS",
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
UNMATCHED_ROUTE = "__unmatched__"
"""The ``route`` of every request no route template matched (404s of random paths)."""

DEFAULT_EXCLUDE_PATHS: tuple[str, ...] = ("/metrics",)

_CACHE_LIMIT = 10_000
_ANGLE_RE = re.compile(r"<(?:[^<>:]+:)?([A-Za-z_]\w*)>")
_BRACE_RE = re.compile(r"\{([A-Za-z_]\w*):[^{}]*\}")
_TEMPLATES: dict[str, str] = {}


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
    """The ``status`` label value: a code in 100..599 as text, else ``unknown``.

    Example::

        >>> normalize_status(200), normalize_status("404"), normalize_status(1234)
        ('200', '404', 'unknown')
    """
    try:
        code = int(status)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return "unknown"
    return str(code) if 100 <= code <= 599 else "unknown"


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
    when :mod:`meterhub.integrations.tracing` can provide one.

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
    ) -> None:
        reg = REGISTRY if registry is None else registry
        if not isinstance(reg, Registry):
            raise TypeError(f"registry must be a meterhub Registry, got {reg!r}")
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
            "http_server_requests_total",
            "HTTP requests served, by method, route template and status code.",
            ("method", "route", "status"),
            namespace=ns,
            registry=reg,
        )
        self.duration = Histogram(
            "http_server_request_duration_seconds",
            "Time from receiving an HTTP request to sending the last byte of its response.",
            ("method", "route"),
            namespace=ns,
            registry=reg,
            buckets=DEFAULT_DURATION_BUCKETS if buckets is None else buckets,
        )
        self.in_progress = Gauge(
            "http_server_requests_in_progress",
            "HTTP requests being served right now, by method.",
            ("method",),
            namespace=ns,
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.exceptions = Counter(
            "http_server_exceptions_total",
            "Exceptions raised by HTTP request handlers, by exception type.",
            ("method", "route", "exception"),
            namespace=ns,
            registry=reg,
        )
        self.sizes = sizes
        if sizes:
            sb = DEFAULT_SIZE_BUCKETS if size_buckets is None else size_buckets
            self.request_size = Histogram(
                "http_server_request_size_bytes",
                "Size of HTTP request bodies.",
                ("method", "route"),
                namespace=ns,
                registry=reg,
                buckets=sb,
            )
            self.response_size = Histogram(
                "http_server_response_size_bytes",
                "Size of HTTP response bodies.",
                ("method", "route"),
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
        try:
            children: tuple[Any, ...] = (
                label,
                gauge,
                self.requests.labels(method, label, normalize_status(status)),
                self.duration.labels(method, label),
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
