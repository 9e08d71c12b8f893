"""The ``/metrics`` view, protected by bearer or basic auth when ``METERHUB["AUTH"]`` says so.

The view hands the request to :func:`meterhub.make_wsgi_app`, so authentication
(constant-time comparison, ``401`` with a ``WWW-Authenticate`` challenge), content
negotiation (text 0.0.4 or OpenMetrics), ``name[]`` filtering and gzip behave exactly as
in every other meterhub endpoint. In multi-process mode (``METERHUB_MULTIPROC_DIR``) the
registry merges every worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpResponse

import meterhub

from .conf import DjangoSettings, get_settings

__all__ = ["metrics_view"]

_apps: dict[tuple[str | None, tuple[str, str] | None], Callable[..., Any]] = {}


def _app(conf: DjangoSettings) -> Callable[..., Any]:
    key = (conf.bearer_token, conf.basic_auth)
    app = _apps.get(key)
    if app is None:
        app = _apps[key] = meterhub.make_wsgi_app(
            meterhub.REGISTRY, bearer_token=conf.bearer_token, basic_auth=conf.basic_auth
        )
    return app


def metrics_view(request: Any) -> HttpResponse:
    """Serve the registry (text 0.0.4 unless the scraper asks for OpenMetrics)."""
    meta = request.META
    environ = {k: v for k, v in meta.items() if k.startswith("HTTP_")}
    environ.update(
        REQUEST_METHOD=request.method,
        PATH_INFO="/",
        QUERY_STRING=meta.get("QUERY_STRING", ""),
    )
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started.append((status, headers))

    body = b"".join(_app(get_settings())(environ, start_response))
    status, headers = started[0]
    response = HttpResponse(body, status=int(status[:3]))
    challenges = []
    for name, value in headers:
        if name.lower() == "www-authenticate":
            challenges.append(value)
        else:
            response[name] = value
    if challenges:
        response["WWW-Authenticate"] = ", ".join(challenges)
    return response
