"""Outgoing HTTP metrics for ``requests`` sessions and ``httpx`` clients (sync and async).

Every HTTP exchange (each redirect hop and each retry the library surfaces as a separate
send counts once) records:

* ``http_client_requests_total{component,method,status}``: ``status`` is the response
  code (``"200"``, ``"503"``) or ``"error"`` when no response arrived (connection refused,
  DNS failure, timeout, TLS error);
* ``http_client_request_duration_seconds{component,method}``: until the response headers
  arrived (the body is read by the caller, possibly streamed), with the active trace as
  an exemplar when OpenTelemetry is in use (:mod:`meterhub.integrations.tracing`).

``component`` names the remote system (``"jira"``, ``"payments"``) and is chosen by the
caller, so the series count stays bounded. Methods are normalised as by the web
integrations (:func:`meterhub.integrations.http_metrics.normalize_method`): outside the
standard set they become ``OTHER``. The remote host is *not* a label unless
``host_label=True`` (then both metrics get a ``host`` label; a registry holds either the
host-labelled or the plain definition).

The instrumentation never breaks the call: its own errors follow the error policy of
:func:`meterhub.guard.shielded`; the call's own exceptions propagate unchanged.

Example::

    >>> import requests
    >>> from meterhub import Registry
    >>> from meterhub.integrations.httpclient import instrument_requests
    >>> session = instrument_requests(requests.Session(), component="jira",
    ...                               registry=Registry(self_metrics=False))

    >>> import httpx
    >>> from meterhub.integrations.httpclient import MeteredTransport
    >>> client = httpx.Client(transport=MeteredTransport(component="payments"))
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import urlsplit

from meterhub import REGISTRY, Counter, DefinitionError, Histogram, Registry, shielded

from .http_metrics import DEFAULT_DURATION_BUCKETS, STANDARD_METHODS, normalize_method
from .tracing import current_exemplar

__all__ = [
    "DEFAULT_CLIENT_BUCKETS",
    "STANDARD_METHODS",
    "AsyncMeteredTransport",
    "ClientMetrics",
    "MeteredAdapter",
    "MeteredTransport",
    "instrument_httpx",
    "instrument_requests",
    "normalize_method",
]

DEFAULT_CLIENT_BUCKETS = DEFAULT_DURATION_BUCKETS
"""The duration buckets: the web integrations' (5 ms ... 10 s), so dashboards line up."""

_ERROR = "error"
_CHILD_CACHE_LIMIT = 1024


class ClientMetrics:
    """The two client metrics of one *component*, shared by every library hook.

    ``measure(method, host)`` is a context manager: set ``.status`` on it when a response
    arrived; leaving it with an exception records ``status="error"``.

    Example::

        >>> from meterhub import Registry
        >>> reg = Registry(self_metrics=False)
        >>> m = ClientMetrics("jira", registry=reg)
        >>> with m.measure("GET", "jira.local") as call:
        ...     call.status = 204
        >>> reg.get_sample_value("http_client_requests_total",
        ...     {"component": "jira", "method": "GET", "status": "204"})
        1.0
    """

    def __init__(
        self,
        component: str,
        *,
        registry: Registry | None = None,
        host_label: bool = False,
        buckets: Sequence[float] | None = None,
    ) -> None:
        if not isinstance(component, str) or not component:
            raise DefinitionError(
                f"http client metrics: component must be a non-empty str, got {component!r}"
            )
        if not isinstance(host_label, bool):
            raise DefinitionError(f"http client metrics: host_label must be a bool: {host_label!r}")
        self.component = component
        self.host_label = host_label
        self.registry = registry if registry is not None else REGISTRY
        host = ("host",) if host_label else ()
        self.requests = Counter(
            "http_client_requests",
            "Outgoing HTTP requests by component, method and status (error: no response).",
            ("component", "method", "status", *host),
            registry=self.registry,
        )
        self.duration = Histogram(
            "http_client_request_duration_seconds",
            "Outgoing HTTP request duration until the response headers, in seconds.",
            ("component", "method", *host),
            buckets=tuple(buckets) if buckets is not None else DEFAULT_CLIENT_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def measure(self, method: Any, host: str = "") -> _Call:
        """Time one exchange (see the class docstring)."""
        return _Call(self, normalize_method(method), host)

    def record(self, method: str, host: str, status: Any, seconds: float) -> None:
        """Record one finished exchange; *method* must already be normalised."""
        try:
            key = (method, status if type(status) is str else str(status), host)
            children = self._children.get(key)
            if children is None:
                children = self._resolve(key)
            children[0].inc()
            children[1].observe(seconds, exemplar=current_exemplar())
        except Exception as exc:
            # The policy lives in shielded(); entering it only on failure keeps the hot
            # path free of a generator-based context manager.
            with shielded(self.registry.self_metrics, "http_client_requests"):
                raise exc from None

    def _resolve(self, key: tuple[str, str, str]) -> tuple[Any, Any]:
        method, status, host = key
        if self.host_label:
            children = (
                self.requests.labels(self.component, method, status, host),
                self.duration.labels(self.component, method, host),
            )
        else:
            children = (
                self.requests.labels(self.component, method, status),
                self.duration.labels(self.component, method),
            )
        if len(self._children) < _CHILD_CACHE_LIMIT:  # hosts may be unbounded
            self._children[key] = children
        return children


class _Call:
    """One timed exchange; the single place the sync and async hooks share."""

    __slots__ = ("_host", "_method", "_metrics", "_start", "status")

    def __init__(self, metrics: ClientMetrics, method: str, host: str) -> None:
        self._metrics = metrics
        self._method = method
        self._host = host
        self._start = 0.0
        self.status: Any = None

    def __enter__(self) -> _Call:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = time.perf_counter() - self._start
        if exc_type is None:
            status = _ERROR if self.status is None else self.status
        elif issubclass(exc_type, Exception):
            status = _ERROR
        else:
            return  # cancellation / interpreter exit: not an outcome of the remote call
        self._metrics.record(self._method, self._host, status, elapsed)


def _metrics(
    component: str,
    metrics: ClientMetrics | None,
    registry: Registry | None,
    host_label: bool,
    buckets: Sequence[float] | None,
) -> ClientMetrics:
    if metrics is not None:
        return metrics
    return ClientMetrics(component, registry=registry, host_label=host_label, buckets=buckets)


# -- requests -----------------------------------------------------------------------------


def _url_host(url: Any) -> str:
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return ""


class MeteredAdapter:
    """A ``requests`` transport adapter that meters the adapter it wraps.

    Mount it like any adapter; everything but ``send``/``close`` is delegated, so a wrapped
    ``HTTPAdapter(max_retries=...)`` keeps its behaviour.

    Example::

        >>> import requests
        >>> from requests.adapters import HTTPAdapter
        >>> s = requests.Session()
        >>> s.mount("https://", MeteredAdapter(HTTPAdapter(max_retries=2), component="api"))
    """

    def __init__(
        self,
        adapter: Any = None,
        component: str = "default",
        *,
        metrics: ClientMetrics | None = None,
        registry: Registry | None = None,
        host_label: bool = False,
        buckets: Sequence[float] | None = None,
    ) -> None:
        if adapter is None:
            from requests.adapters import HTTPAdapter

            adapter = HTTPAdapter()
        if not callable(getattr(adapter, "send", None)):
            raise TypeError(f"MeteredAdapter needs a requests adapter, got {adapter!r}")
        self.adapter = adapter
        self.metrics = _metrics(component, metrics, registry, host_label, buckets)

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        with self.metrics.measure(request.method, _url_host(request.url)) as call:
            response = self.adapter.send(request, *args, **kwargs)
            call.status = response.status_code
        return response

    def close(self) -> None:
        self.adapter.close()

    def __getattr__(self, name: str) -> Any:
        if name == "adapter":  # not set yet (e.g. during unpickling): avoid recursion
            raise AttributeError(name)
        return getattr(self.adapter, name)


def instrument_requests(
    session: Any,
    component: str = "default",
    *,
    registry: Registry | None = None,
    host_label: bool = False,
    buckets: Sequence[float] | None = None,
) -> Any:
    """Meter every adapter mounted on a ``requests.Session``; returns the session.

    Calling it again replaces the metering (no double counting). Adapters mounted
    *afterwards* are not metered: mount a :class:`MeteredAdapter` for those.
    """
    adapters = getattr(session, "adapters", None)
    if not isinstance(adapters, dict) or not callable(getattr(session, "mount", None)):
        raise TypeError(f"instrument_requests needs a requests.Session, got {session!r}")
    metrics = ClientMetrics(component, registry=registry, host_label=host_label, buckets=buckets)
    for prefix, adapter in list(adapters.items()):
        inner = adapter.adapter if isinstance(adapter, MeteredAdapter) else adapter
        adapters[prefix] = MeteredAdapter(inner, metrics=metrics)
    return session


# -- httpx --------------------------------------------------------------------------------


def _httpx_host(request: Any) -> str:
    url = request.url
    return f"{url.host}:{url.port}" if url.port else str(url.host)


class _TransportBase:
    """What the sync and async transports share: construction, timing, delegation."""

    _kind: ClassVar[str]  # "sync" / "async", for the error message
    _needs: ClassVar[str]  # the method the wrapped transport must have
    _default: ClassVar[str]  # the httpx transport class used when none is given

    def __init__(
        self,
        transport: Any = None,
        component: str = "default",
        *,
        metrics: ClientMetrics | None = None,
        registry: Registry | None = None,
        host_label: bool = False,
        buckets: Sequence[float] | None = None,
    ) -> None:
        if transport is None:
            import httpx

            transport = getattr(httpx, self._default)()
        if not callable(getattr(transport, self._needs, None)):
            raise TypeError(
                f"{type(self).__name__} needs a {self._kind} httpx transport, got {transport!r}"
            )
        self.transport = transport
        self.metrics = _metrics(component, metrics, registry, host_label, buckets)

    def _measure(self, request: Any) -> _Call:
        return self.metrics.measure(request.method, _httpx_host(request))

    def __getattr__(self, name: str) -> Any:
        if name == "transport":  # not set yet: avoid recursion
            raise AttributeError(name)
        return getattr(self.transport, name)


class MeteredTransport(_TransportBase):
    """An ``httpx`` transport that meters the one it wraps (default ``httpx.HTTPTransport()``).

    Example::

        >>> import httpx
        >>> client = httpx.Client(transport=MeteredTransport(component="payments"))
    """

    _kind, _needs, _default = "sync", "handle_request", "HTTPTransport"

    def handle_request(self, request: Any) -> Any:
        with self._measure(request) as call:
            response = self.transport.handle_request(request)
            call.status = response.status_code
        return response

    def __enter__(self) -> MeteredTransport:
        self.transport.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.transport.__exit__(*exc)

    def close(self) -> None:
        self.transport.close()


class AsyncMeteredTransport(_TransportBase):
    """The async twin of :class:`MeteredTransport` (default ``httpx.AsyncHTTPTransport()``).

    Example::

        >>> import httpx
        >>> client = httpx.AsyncClient(transport=AsyncMeteredTransport(component="search"))
    """

    _kind, _needs, _default = "async", "handle_async_request", "AsyncHTTPTransport"

    async def handle_async_request(self, request: Any) -> Any:
        with self._measure(request) as call:
            response = await self.transport.handle_async_request(request)
            call.status = response.status_code
        return response

    async def __aenter__(self) -> AsyncMeteredTransport:
        await self.transport.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.transport.__aexit__(*exc)

    async def aclose(self) -> None:
        await self.transport.aclose()


def instrument_httpx(
    client: Any,
    component: str = "default",
    *,
    registry: Registry | None = None,
    host_label: bool = False,
    buckets: Sequence[float] | None = None,
) -> Any:
    """Meter an existing ``httpx.Client`` or ``httpx.AsyncClient``; returns the client.

    Wraps the client's transport and its mounted transports. Prefer passing
    ``transport=MeteredTransport(...)`` when you construct the client yourself.
    """
    import httpx

    if isinstance(client, httpx.AsyncClient):
        wrap: type[_TransportBase] = AsyncMeteredTransport
    elif isinstance(client, httpx.Client):
        wrap = MeteredTransport
    else:
        raise TypeError(f"instrument_httpx needs an httpx.Client or AsyncClient, got {client!r}")
    metrics = ClientMetrics(component, registry=registry, host_label=host_label, buckets=buckets)

    def metered(transport: Any) -> Any:
        if transport is None:  # a mount of None means "use the default transport"
            return None
        if isinstance(transport, _TransportBase):
            transport = transport.transport
        return wrap(transport, metrics=metrics)

    # httpx has no public setter for an existing client's transports; these two
    # attributes have been its stable layout since 0.18.
    client._transport = metered(client._transport)
    client._mounts = {pattern: metered(t) for pattern, t in client._mounts.items()}
    return client
