"""Operational assets generated from what an application registers.

* :mod:`meterhub.ops.catalog` - the metric catalog (Markdown, JSON);
* :mod:`meterhub.ops.rules` - Prometheus alert rule packs and their ``promtool`` tests;
* :mod:`meterhub.ops.slo` - SLO recording rules and multi-window burn-rate alerts;
* :mod:`meterhub.ops.dashboards` - Grafana dashboards;
* :mod:`meterhub.ops.deploy` - ``prometheus.yml``, ``alertmanager.yml``, docker-compose.

Example::

    >>> from meterhub import Counter, Registry
    >>> from meterhub.ops import load_app_registry
    >>> load_app_registry("meterhub:REGISTRY") is not None
    True
"""

from __future__ import annotations

import importlib
from typing import Any

from ..registry import Registry

__all__ = ["load_app_registry", "registry_of"]


def registry_of(obj: Any) -> Registry:
    """The registry behind *obj*: a Registry, a Hub (its registry) or a metric (a registry
    holding only that metric). Raises ``TypeError`` for anything else."""
    if isinstance(obj, Registry):
        return obj
    inner = getattr(obj, "registry", None)
    if isinstance(inner, Registry):
        return inner
    if callable(getattr(obj, "collect", None)):
        reg = Registry(self_metrics=False)
        reg.register(_Only(obj))
        return reg
    raise TypeError(
        f"{obj!r} is not a meterhub Registry, Hub or metric (expected something with collect())"
    )


def load_app_registry(spec: str) -> Registry:
    """Import ``"package.module:attribute"`` and return the registry it designates.

    The attribute may be dotted (``"app.metrics:hub.registry"``); it may be a Registry, a
    Hub or a single metric. Raises ``ValueError`` for a malformed spec, ``ImportError`` or
    ``AttributeError`` when the target does not exist, ``TypeError`` when it is not a registry.
    """
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"expected 'module:attribute', got {spec!r}")
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path:
        raise ValueError(f"expected 'module:attribute', got {spec!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        if not part.isidentifier():
            raise ValueError(f"bad attribute {attr_path!r} in {spec!r}")
        obj = getattr(obj, part)
    return registry_of(obj)


class _Only:
    def __init__(self, collector: Any) -> None:
        self._collector = collector

    def collect(self) -> Any:
        return self._collector.collect()
