"""Pushing to a Prometheus Pushgateway (batch jobs, cron scripts).

``push_to_gateway`` (PUT: replaces the whole group), ``pushadd_to_gateway`` (POST:
replaces only the pushed metric names) and ``delete_from_gateway`` (DELETE the group)
take prometheus_client's arguments. The group URL is
``/metrics/job/<job>/<label>/<value>...``; a value that is empty or not plain URL-safe
text (a ``/``, spaces, non-ASCII) is sent base64url-encoded as ``<label>@base64/<value>``,
which Pushgateway decodes, so any value arrives intact.

These are explicit calls: any failure raises :class:`~meterhub.errors.PushgatewayError`
naming the URL and the HTTP status (``None`` when the gateway was unreachable).

Example::

    from meterhub import Gauge, Registry
    from meterhub.export.pushgateway import push_to_gateway

    reg = Registry()
    last = Gauge("backup_last_success_timestamp_seconds", "Last backup.", registry=reg)
    last.set_to_current_time()
    push_to_gateway("pushgateway:9091", job="backup", registry=reg, grouping_key={"db": "main"})
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Mapping
from contextlib import closing
from typing import Any
from urllib.parse import urlsplit

from ..errors import PushgatewayError
from ..exposition.text import CONTENT_TYPE_PLAIN_0_0_4, families_of, render_text
from ..naming import LABEL_NAME_RE
from ..registry import REGISTRY

__all__ = [
    "basic_auth_handler",
    "default_handler",
    "delete_from_gateway",
    "instance_ip_grouping_key",
    "passthrough_redirect_handler",
    "push_to_gateway",
    "pushadd_to_gateway",
    "tls_auth_handler",
]

Handler = Callable[..., Callable[[], None]]
"""``handler(url, method, timeout, headers, data) -> callable`` performing the request."""

_PLAIN = re.compile(r"[A-Za-z0-9_.~:-]+\Z")


def _segment(name: str, value: str) -> str:
    if _PLAIN.match(value) and value not in (".", ".."):
        return f"{name}/{value}"
    encoded = base64.urlsafe_b64encode(value.encode("utf-8", "replace")).decode("ascii") or "="
    return f"{name}@base64/{encoded}"


def group_url(gateway: str, job: str, grouping_key: Mapping[str, Any] | None = None) -> str:
    """The Pushgateway URL of group (*job*, *grouping_key*)."""
    if not isinstance(gateway, str) or not gateway:
        raise ValueError(f"gateway must be a URL or host:port, got {gateway!r}")
    if urlsplit(gateway).scheme not in ("http", "https"):
        gateway = "http://" + gateway
    if not isinstance(job, str) or not job:
        raise ValueError(f"job must be a non-empty str, got {job!r}")
    url = gateway.rstrip("/") + "/metrics/" + _segment("job", job)
    for key, value in sorted((grouping_key or {}).items()):
        if not isinstance(key, str) or not LABEL_NAME_RE.match(key) or key == "job":
            raise ValueError(f"grouping key name {key!r} is not a valid label name")
        url += "/" + _segment(key, str(value))
    return url


def default_handler(
    url: str,
    method: str,
    timeout: float | None,
    headers: list[tuple[str, str]],
    data: bytes,
) -> Callable[[], None]:
    """Performs the request with urllib; raises :class:`PushgatewayError` on failure."""
    return _handler(url, method, timeout, headers, data)


def _handler(
    url: str,
    method: str,
    timeout: float | None,
    headers: list[tuple[str, str]],
    data: bytes,
    *extra: urllib.request.BaseHandler,
) -> Callable[[], None]:
    def handle() -> None:
        # data=b"" (DELETE) still sends "Content-Length: 0", which some servers require
        req = urllib.request.Request(url, data=data, method=method)
        for k, v in headers:
            req.add_header(k, v)
        try:
            with urllib.request.build_opener(*extra).open(req, timeout=timeout) as resp:
                status = int(resp.status)
                if not 200 <= status < 300:
                    raise PushgatewayError(
                        f"Pushgateway {method} {url} answered HTTP {status}", url, status
                    )
        except urllib.error.HTTPError as exc:
            body = exc.read(500).decode("utf-8", "replace").strip()
            raise PushgatewayError(
                f"Pushgateway {method} {url} answered HTTP {exc.code}: {body}", url, exc.code
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PushgatewayError(
                f"Pushgateway {method} {url} failed: {reason}", url, None
            ) from exc

    return handle


class _PassthroughRedirect(urllib.request.HTTPRedirectHandler):
    """Follows redirects for every method, repeating the request as it was."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request:
        new = urllib.request.Request(
            newurl.replace(" ", "%20"),
            data=req.data,
            headers=dict(req.header_items()),
            origin_req_host=req.origin_req_host,
            unverifiable=True,
            method=req.get_method(),
        )
        return new


def passthrough_redirect_handler(
    url: str,
    method: str,
    timeout: float | None,
    headers: list[tuple[str, str]],
    data: bytes,
) -> Callable[[], None]:
    """:func:`default_handler` that follows redirects for every method (PUT and POST too),
    repeating the method, headers and body. Use it only with a gateway you trust."""
    return _handler(url, method, timeout, headers, data, _PassthroughRedirect())


def tls_auth_handler(
    url: str,
    method: str,
    timeout: float | None,
    headers: list[tuple[str, str]],
    data: bytes,
    certfile: str,
    keyfile: str,
    cafile: str | None = None,
    protocol: int = ssl.PROTOCOL_TLS_CLIENT,
    insecure_skip_verify: bool = False,
) -> Callable[[], None]:
    """:func:`default_handler` presenting a client certificate (*certfile*, *keyfile*);
    the gateway is verified against *cafile* (default: the system's CAs).

    Example::

        push_to_gateway("https://pgw:9091", "job", reg, handler=lambda *a, **kw:
            tls_auth_handler(*a, **kw, certfile="client.pem", keyfile="client.key"))
    """
    context = ssl.SSLContext(protocol=protocol)
    if cafile is not None:
        context.load_verify_locations(cafile)
    else:
        context.load_default_certs()
    if insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(certfile=certfile, keyfile=keyfile)
    return _handler(
        url, method, timeout, headers, data, urllib.request.HTTPSHandler(context=context)
    )


def instance_ip_grouping_key() -> dict[str, str]:
    """``{"instance": <this host's IP address>}``, a grouping key for :func:`push_to_gateway`."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as s:
        if sys.platform == "darwin":
            s.connect(("10.255.255.255", 1))
        else:
            s.connect(("localhost", 0))
        return {"instance": str(s.getsockname()[0])}


def basic_auth_handler(
    url: str,
    method: str,
    timeout: float | None,
    headers: list[tuple[str, str]],
    data: bytes,
    username: str | None = None,
    password: str | None = None,
) -> Callable[[], None]:
    """:func:`default_handler` with HTTP basic auth (use it through a lambda or partial).

    Example::

        push_to_gateway(gw, "job", reg, handler=lambda *a, **kw: basic_auth_handler(
            *a, **kw, username="u", password=os.environ["PGW_PASSWORD"]))
    """
    if username is not None and password is not None:
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        headers = [*headers, ("Authorization", f"Basic {token}")]
    return default_handler(url, method, timeout, headers, data)


def _use_gateway(
    method: str,
    gateway: str,
    job: str,
    registry: Any,
    grouping_key: Mapping[str, Any] | None,
    timeout: float | None,
    handler: Handler,
    compression: str | None = None,
) -> None:
    url = group_url(gateway, job, grouping_key)
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be positive seconds or None, got {timeout!r}")
    headers: list[tuple[str, str]] = [("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)]
    data = b""
    if method != "DELETE":
        if registry is None:
            registry = REGISTRY
        if not callable(getattr(registry, "collect", None)):
            raise TypeError(f"registry must have a collect() method, got {registry!r}")
        data = render_text(families_of(registry)).encode("utf-8", "replace")
        if compression == "gzip":
            c = zlib.compressobj(6, zlib.DEFLATED, 31)
            data = c.compress(data) + c.flush()
            headers.append(("Content-Encoding", "gzip"))
        elif compression is not None:
            raise ValueError(f"Unsupported compression type: {compression} (None or 'gzip')")
    try:
        handler(url=url, method=method, timeout=timeout, headers=headers, data=data)()
    except PushgatewayError:
        raise
    except Exception as exc:
        raise PushgatewayError(f"Pushgateway {method} {url} failed: {exc!r}", url, None) from exc


def push_to_gateway(
    gateway: str,
    job: str,
    registry: Any = REGISTRY,
    grouping_key: Mapping[str, Any] | None = None,
    timeout: float | None = 30,
    handler: Handler = default_handler,
    compression: str | None = None,
) -> None:
    """Replace every metric of group (*job*, *grouping_key*) with *registry*'s (HTTP PUT)."""
    _use_gateway("PUT", gateway, job, registry, grouping_key, timeout, handler, compression)


def pushadd_to_gateway(
    gateway: str,
    job: str,
    registry: Any = REGISTRY,
    grouping_key: Mapping[str, Any] | None = None,
    timeout: float | None = 30,
    handler: Handler = default_handler,
    compression: str | None = None,
) -> None:
    """Replace only the metrics of the same names in the group (HTTP POST)."""
    _use_gateway("POST", gateway, job, registry, grouping_key, timeout, handler, compression)


def delete_from_gateway(
    gateway: str,
    job: str,
    grouping_key: Mapping[str, Any] | None = None,
    timeout: float | None = 30,
    handler: Handler = default_handler,
) -> None:
    """Delete group (*job*, *grouping_key*) from the Pushgateway (HTTP DELETE)."""
    _use_gateway("DELETE", gateway, job, None, grouping_key, timeout, handler)
