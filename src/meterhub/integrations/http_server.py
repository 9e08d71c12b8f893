"""Old name of :mod:`meterhub.integrations.http_metrics` (kept for existing imports).

The module never was an HTTP server: it holds the HTTP-server *metrics* vocabulary that
every web adapter records into. Import from :mod:`meterhub.integrations.http_metrics`;
this alias re-exports the same objects.

Example::

    >>> from meterhub.integrations import http_metrics, http_server
    >>> http_server.HttpServerMetrics is http_metrics.HttpServerMetrics
    True
"""

from __future__ import annotations

from .http_metrics import (
    DEFAULT_DURATION_BUCKETS,
    DEFAULT_EXCLUDE_PATHS,
    DEFAULT_SIZE_BUCKETS,
    OTHER_METHOD,
    STANDARD_METHODS,
    UNMATCHED_ROUTE,
    HttpServerMetrics,
    normalize_method,
    normalize_status,
    template_from_converters,
)

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
