"""Value storage: where a metric child's numbers live.

A store hands each series a *cell*: a small mutable sequence of floats (a ``list`` in
:class:`LocalStore`, a ``memoryview`` over a shared file in the multi-process store).
Children update cells with ``cell[i] += x`` only; see :mod:`meterhub.store.base` for why
that is exact without a lock, and :mod:`meterhub.store.layout` for which slot holds what.

:func:`default_store` is the one place that decides which store a registry gets.
"""

from __future__ import annotations

import sys

from .base import MetricDesc, SeriesData, ValueStore
from .local import LocalStore

__all__ = ["LocalStore", "MetricDesc", "SeriesData", "ValueStore", "default_store"]


def require_gil() -> None:
    """Refuse to run where recording without locks would not be exact.

    The cells' lock-free updates rely on the GIL (see :mod:`meterhub.store.base`); on a
    free-threaded build started without it, counts could be lost, so say so instead.
    """
    gil_enabled = getattr(sys, "_is_gil_enabled", None)
    if gil_enabled is not None and not gil_enabled():
        raise RuntimeError(
            "meterhub records without locks and needs the GIL: this free-threaded Python "
            "runs without it. Start it with PYTHON_GIL=1 (or -X gil=1)."
        )


require_gil()


def default_store() -> ValueStore:
    """The store for a new registry: multi-process when ``METERHUB_MULTIPROC_DIR`` is set."""
    from .._config import get_config

    directory = get_config().multiproc_dir
    if directory:
        from .mmap import MultiProcessStore

        store: ValueStore = MultiProcessStore(directory)
        return store
    return LocalStore()
