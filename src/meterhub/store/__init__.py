"""Value storage: where a metric child's numbers live.

A store hands each series a *cell*: a small mutable sequence of floats (a ``list`` in
:class:`LocalStore`, a ``memoryview`` over a shared file in the multi-process store).
Children update cells with ``cell[i] += x`` only; see :mod:`meterhub.store.base` for why
that is exact without a lock.

:func:`default_store` is the one place that decides which store a registry gets.
"""

from __future__ import annotations

from .base import MetricDesc, SeriesData, ValueStore
from .local import LocalStore

__all__ = ["LocalStore", "MetricDesc", "SeriesData", "ValueStore", "default_store"]


def default_store() -> ValueStore:
    """The store for a new registry: multi-process when ``METERHUB_MULTIPROC_DIR`` is set."""
    from .._config import get_config

    directory = get_config().multiproc_dir
    if directory:
        from .mmap import MultiProcessStore

        store: ValueStore = MultiProcessStore(directory)
        return store
    return LocalStore()
