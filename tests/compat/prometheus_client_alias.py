"""A pytest plugin that makes ``import prometheus_client...`` give meterhub's objects.

The mapping is by name only: each prometheus_client module name is an alias module whose
attributes are the public names (``__all__``) of the meterhub modules listed for it in
:data:`MODULES`, unchanged. No object is wrapped, adapted or re-implemented here.

A name the suite imports that meterhub does not provide resolves to a :class:`Missing`
placeholder, so one missing name fails the tests that use it instead of the whole file;
using the placeholder in any way raises ``ImportError`` naming it. A prometheus_client
module that is not in :data:`MODULES` (its Twisted, aiohttp, Django and Graphite
integrations) is not found, as if prometheus_client had no such module.

Loaded with ``-p prometheus_client_alias`` by ``run_prometheus_client_suite.py``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence
from typing import Any

MODULES: dict[str, tuple[str, ...]] = {
    "prometheus_client": ("meterhub",),
    "prometheus_client.core": ("meterhub",),
    "prometheus_client.registry": ("meterhub.registry",),
    "prometheus_client.metrics": ("meterhub.metrics",),
    "prometheus_client.metrics_core": ("meterhub.families",),
    "prometheus_client.samples": ("meterhub.samples",),
    "prometheus_client.exposition": (
        "meterhub.exposition",
        "meterhub.export.http",
        "meterhub.export.pushgateway",
        "meterhub.export.textfile",
    ),
    "prometheus_client.openmetrics": (),
    "prometheus_client.openmetrics.exposition": ("meterhub.exposition.openmetrics",),
    "prometheus_client.openmetrics.parser": ("meterhub.exposition.parser",),
    "prometheus_client.parser": ("meterhub.exposition.parser",),
    "prometheus_client.multiprocess": ("meterhub.multiprocess",),
    "prometheus_client.gc_collector": ("meterhub.collectors",),
    "prometheus_client.platform_collector": ("meterhub.collectors",),
    "prometheus_client.process_collector": ("meterhub.collectors",),
    "prometheus_client.validation": ("meterhub.naming",),
    "prometheus_client.utils": ("meterhub.exposition.text",),
    "prometheus_client.asgi": ("meterhub.export.http",),
    # prometheus_client's private modules: meterhub has no counterpart, every name is Missing.
    "prometheus_client.values": (),
    "prometheus_client.mmap_dict": (),
    "prometheus_client.decorator": (),
    "prometheus_client.context_managers": (),
}
"""prometheus_client module name -> the meterhub modules whose public names it shows."""

_PACKAGES = {"prometheus_client", "prometheus_client.openmetrics"}

MISSING_USED: set[str] = set()
"""Names of placeholders that tests touched (reported at the end of the session)."""


class Missing:
    """Stands for a prometheus_client name meterhub does not provide; unusable."""

    def __init__(self, qualname: str) -> None:
        object.__setattr__(self, "_qualname", qualname)

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        qualname = object.__getattribute__(self, "_qualname")
        MISSING_USED.add(qualname)
        raise ImportError(f"meterhub provides no {qualname}")

    __call__ = _fail
    __iter__ = _fail
    __enter__ = _fail
    __mro_entries__ = _fail

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._fail()

    def __repr__(self) -> str:
        return f"<Missing {object.__getattribute__(self, '_qualname')}>"


class AliasModule(types.ModuleType):
    """A prometheus_client module name showing meterhub's public names."""

    def __init__(self, name: str, sources: Sequence[str]) -> None:
        super().__init__(name)
        for source in sources:
            module = importlib.import_module(source)
            for attr in getattr(module, "__all__", ()):
                if attr not in self.__dict__:
                    setattr(self, attr, getattr(module, attr))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        sub = f"{self.__name__}.{name}"
        if sub in MODULES:
            return importlib.import_module(sub)
        value = Missing(sub)
        setattr(self, name, value)
        return value


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "prometheus_client" and not fullname.startswith("prometheus_client."):
            return None
        if fullname not in MODULES:
            raise ModuleNotFoundError(f"no module named {fullname!r} (not mapped to meterhub)")
        return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname in _PACKAGES)

    def create_module(self, spec: Any) -> types.ModuleType:
        module = AliasModule(spec.name, MODULES[spec.name])
        if spec.name in _PACKAGES:
            module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install() -> None:
    """Put the alias finder first and drop any real prometheus_client already imported."""
    for name in list(sys.modules):
        if name == "prometheus_client" or name.startswith("prometheus_client."):
            del sys.modules[name]
    sys.meta_path.insert(0, _Finder())


install()
