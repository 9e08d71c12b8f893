"""The ``/metrics`` view, protected by bearer or basic auth when ``METERHUB["AUTH"]`` says so.

The view hands the request to a :class:`meterhub.export.Endpoint`, so authentication
(constant-time comparison, ``401`` with a ``WWW-Authenticate`` challenge), content
negotiation (text 0.0.4 or OpenMetrics), ``name[]`` filtering and gzip behave exactly as
in every other meterhub endpoint. In multi-process mode (``METERHUB_MULTIPROC_DIR``) the
registry merges every worker.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse

import meterhub
from meterhub.export import Endpoint

from .conf import DjangoSettings, get_settings

__all__ = ["metrics_view"]

_endpoints: dict[tuple[str | None, tuple[str, str] | None], Endpoint] = {}


def _endpoint(conf: DjangoSettings) -> Endpoint:
    key = (conf.bearer_token, conf.basic_auth)
    endpoint = _endpoints.get(key)
    if endpoint is None:
        # path=None: the URLconf decides where the view is mounted.
        endpoint = _endpoints[key] = Endpoint(
            meterhub.REGISTRY,
            path=None,
            bearer_token=conf.bearer_token,
            basic_auth=conf.basic_auth,
        )
    return endpoint


def metrics_view(request: Any) -> HttpResponse:
    """Serve the registry (text 0.0.4 unless the scraper asks for OpenMetrics)."""
    resp = _endpoint(get_settings()).handle(
        request.method, "/", request.META.get("QUERY_STRING", ""), request.headers.get
    )
    response = HttpResponse(resp.body, status=resp.status, reason=resp.reason)
    challenges = []
    for name, value in resp.headers:
        if name.lower() == "www-authenticate":
            challenges.append(value)
        else:
            response[name] = value
    if challenges:
        response["WWW-Authenticate"] = ", ".join(challenges)
    return response
