"""The ``/metrics`` view, protected by bearer or basic auth when ``METERHUB["AUTH"]`` says so.

Credentials are compared with :func:`hmac.compare_digest`; a request matching none of
the configured schemes gets ``401`` with a ``WWW-Authenticate`` challenge. In
multi-process mode (``METERHUB_MULTIPROC_DIR``) the registry merges every worker.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from django.http import HttpResponse

from meterhub import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from .conf import DjangoSettings, get_settings

__all__ = ["authorized", "metrics_view"]


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def authorized(header: str | None, conf: DjangoSettings) -> bool:
    """Whether the ``Authorization`` *header* satisfies the configured schemes."""
    if conf.bearer_token is None and conf.basic_auth is None:
        return True
    if not header:
        return False
    # No stripping: servers already trim the header, and anything else is not a match.
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and conf.bearer_token is not None:
        return _same(value, conf.bearer_token)
    if scheme == "basic" and conf.basic_auth is not None:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        # Both compared (no short-circuit) so timing does not reveal which one differs.
        ok_user = _same(user, conf.basic_auth[0])
        ok_password = _same(password, conf.basic_auth[1])
        return ok_user and ok_password
    return False


def metrics_view(request: Any) -> HttpResponse:
    """Serve the registry in Prometheus text format 0.0.4."""
    conf = get_settings()
    if not authorized(request.META.get("HTTP_AUTHORIZATION"), conf):
        response = HttpResponse("unauthorized\n", status=401, content_type="text/plain")
        challenges = []
        if conf.bearer_token is not None:
            challenges.append('Bearer realm="metrics"')
        if conf.basic_auth is not None:
            challenges.append('Basic realm="metrics"')
        response["WWW-Authenticate"] = ", ".join(challenges)
        return response
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
