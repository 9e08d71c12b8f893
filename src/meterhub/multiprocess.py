"""Multi-process mode: dead-worker compaction and collecting a whole directory.

Set ``METERHUB_MULTIPROC_DIR`` before the first metric is created (or pass
``Registry(store=MultiProcessStore(path))``); every process then records into its own
memory-mapped file in that directory (layout and merge rules: :mod:`meterhub.store.mmap.store`).

* :func:`mark_process_dead` - call it from gunicorn's ``child_exit`` hook (or any
  supervisor) when a worker exits: the worker's files are merged into the archive.
  Collection also compacts dead processes by itself (liveness = pid *and* process start
  time), so the hook only makes it prompt.
* ``REGISTRY`` itself: in multi-process mode it serves every metric of the directory,
  its own and those only other processes declared (rendered from the metadata the files
  carry), so a process that defines no metric (a Celery beat process writing the
  textfile, a cron script) serves them all with no extra setup.
* :class:`MultiProcessCollector` / :func:`collect_directory` - the same, for a registry
  that does not record into the directory (the ``meterhub serve`` sidecar).

What is per-process: only the metrics (Counter, Gauge, ...) live in the files. Custom
collectors and the default process/platform/GC collectors report on the process that
collects, so register them only where they mean something (the sidecar reports itself).

Example::

    >>> import tempfile
    >>> from meterhub import Counter, Registry, generate_latest
    >>> from meterhub.multiprocess import MultiProcessCollector, MultiProcessStore
    >>> path = tempfile.mkdtemp()
    >>> Counter("jobs", "Jobs.", registry=Registry(store=MultiProcessStore(path))).inc()
    >>> sidecar = Registry(self_metrics=False)
    >>> sidecar.register(MultiProcessCollector(path))
    >>> sidecar.get_sample_value("jobs_total")
    1.0
"""

from __future__ import annotations

from .store.mmap import MultiProcessStore
from .store.mmap.collector import (
    MultiProcessCollector,
    collect_directory,
    compact_directory,
    mark_process_dead,
)

__all__ = [
    "MultiProcessCollector",
    "MultiProcessStore",
    "collect_directory",
    "compact_directory",
    "mark_process_dead",
]
