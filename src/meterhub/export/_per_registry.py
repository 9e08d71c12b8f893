"""One self-metrics collector per registry, registered on it at first use.

The HTTP server and the textfile exporter each count into a collector of their own on the
registry they deliver, shared by every server or exporter of that registry.

Example::

    >>> from meterhub import Registry
    >>> class Stats:
    ...     def collect(self): return iter(())
    >>> stats_for = PerRegistry(Stats)
    >>> reg = Registry()
    >>> stats_for(reg) is stats_for(reg)
    True
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .._forksafe import renew_locks_after_fork

__all__ = ["PerRegistry"]

C = TypeVar("C")


class PerRegistry(Generic[C]):
    """Calling it with a registry returns that registry's collector made by *factory*."""

    def __init__(self, factory: Callable[[], C]) -> None:
        self._factory = factory
        self._by_registry: weakref.WeakKeyDictionary[Any, C] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        renew_locks_after_fork(self)

    def _renew_locks(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, registry: Any) -> C:
        with self._lock:
            try:
                stats = self._by_registry.get(registry)
            except TypeError:  # not weak-referenceable: private stats, not registered
                return self._factory()
            if stats is None:
                stats = self._by_registry[registry] = self._factory()
                register = getattr(registry, "register", None)
                if callable(register):
                    register(stats)
            return stats
