"""Delivery of collected metrics: HTTP ``/metrics``, the node_exporter textfile, Pushgateway.

The front-end-neutral scrape endpoint (:class:`Endpoint` answering a request with a
:class:`Response`) is what every HTTP front end - the built-in server, the WSGI and ASGI
apps, the Django view, the Flask extension - is a thin adapter around; see
:mod:`meterhub.export.endpoint`.

The other submodules are imported on demand (``meterhub.export.http`` pulls in
``http.server`` and ``ssl``), so ``import meterhub.export`` alone costs next to nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

from .endpoint import Endpoint, Response

__all__ = [
    "Endpoint",
    "MetricsHandler",
    "MetricsServer",
    "Response",
    "TextfileExporter",
    "delete_from_gateway",
    "make_asgi_app",
    "make_wsgi_app",
    "push_to_gateway",
    "pushadd_to_gateway",
    "start_http_server",
    "write_to_textfile",
]

_WHERE = {
    "MetricsHandler": "http",
    "MetricsServer": "http",
    "make_asgi_app": "http",
    "make_wsgi_app": "http",
    "start_http_server": "http",
    "TextfileExporter": "textfile",
    "write_to_textfile": "textfile",
    "delete_from_gateway": "pushgateway",
    "push_to_gateway": "pushgateway",
    "pushadd_to_gateway": "pushgateway",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'meterhub.export' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
