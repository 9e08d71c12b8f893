"""The node_exporter textfile: atomic writes and a background flusher.

:func:`write_to_textfile` renders a registry in the text format 0.0.4 and replaces the
target atomically: a temporary file in the target's own directory (so ``os.replace``
never crosses a filesystem), written, flushed and fsynced, chmod 0644, renamed over the
target, then the directory fsynced so the rename survives a power cut. node_exporter
reads only ``*.prom`` files, and the temporary name (``.NAME.PID.START.N.tmp``) never
matches, so it sees either the previous file or the new one, never a part. On any error the
temporary file is removed, the previous file stays, and :class:`~meterhub.errors.ExportError`
says which path failed and why. Temporary files of writers killed mid-write are removed on
start and after every write, those of live writers never (:func:`remove_stale_temp_files`);
the one implementation of all this is ``meterhub._atomicfile``.

What goes into the file is decided in one place, :func:`textfile_families`, which every
writer uses (this module's two, ``hub.write_metrics()``, the Celery beat task, ``meterhub
textfile``): the registry's families *without* those of the default process, platform and
GC collectors (``process_*``, ``python_info``, ``python_gc_*``). node_exporter exports its
own ``process_*``, unlabelled like the file's, and drops a duplicate with ``collected metric
"process_cpu_seconds_total" ... was collected before with the same name and label values``
on every scrape; two applications' files in one directory would collide on all of them the
same way; and they describe whichever process wrote the file (a flusher, a sidecar), not the
application. The HTTP endpoint still serves them. ``process_metrics=True`` (or
``METERHUB_TEXTFILE_PROCESS_METRICS=true``) writes them anyway. meterhub's own
``meterhub_*`` series carry the file's ``path`` as a label there, for the same reason: two
files' unlabelled self-metrics would be duplicates.

:class:`TextfileExporter` repeats that every *interval* seconds from a daemon thread that
never raises: failures are logged (once, then again on recovery) and counted in its
self-metrics on the registry it writes, so they reach the file itself on the next
success:

* ``meterhub_textfile_writes_total{path}``, ``meterhub_textfile_write_failures_total{path}``
* ``meterhub_textfile_write_duration_seconds{path}`` (the last write)
* ``meterhub_textfile_last_success_timestamp_seconds{path}``
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from .._atomicfile import remove_dead_temp_files, write_atomic
from .._config import get_config
from ..collectors import GCCollector, PlatformCollector, ProcessCollector
from ..errors import ExportError
from ..exposition.text import families_of, render_text
from ..registry import REGISTRY
from ..samples import MetricFamily, MetricType, Series
from ._per_registry import PerRegistry

__all__ = ["TextfileExporter", "remove_stale_temp_files", "textfile_families", "write_to_textfile"]

log = logging.getLogger("meterhub.export.textfile")

FILE_MODE = 0o644
STALE_TEMP_SECONDS = 300.0
"""Age after which a leftover temporary file that does not name its writer is removed."""

_PROCESS_COLLECTORS = (ProcessCollector, PlatformCollector, GCCollector)


def textfile_families(
    registry: Any, process_metrics: bool | None = None, path: str | os.PathLike[str] | None = None
) -> Iterator[MetricFamily]:
    """The families a textfile of *registry* carries: all of them, except the default
    process, platform and GC collectors' unless *process_metrics* (default:
    ``METERHUB_TEXTFILE_PROCESS_METRICS``, off) says so. See the module docstring for why.

    A family is left out when the collector that yielded it is one of those three
    (whatever its ``namespace``), found by its names in the registry: a metric of your own
    named ``process_jobs_total``, or anything of the multi-process directory, stays.

    With *path* (the file being written), meterhub's own ``meterhub_*`` series are told
    apart from other files' by a ``path`` label: node_exporter reads every file of its
    directory into one set of series, so two applications' unlabelled
    ``meterhub_multiprocess_files_merged`` would be duplicates, and it drops duplicates. The
    ``meterhub_textfile_*`` series are labelled by path already; a file keeps only its own
    (a registry written to two files would otherwise repeat them in both).

    Example::

        >>> from meterhub import Counter, ProcessCollector, Registry
        >>> reg = Registry(self_metrics=False)
        >>> reg.register(ProcessCollector())
        >>> _ = Counter("process_jobs", "Jobs processed.", registry=reg)
        >>> [f.name for f in textfile_families(reg)]
        ['process_jobs']
        >>> "process_open_fds" in [f.name for f in textfile_families(reg, process_metrics=True)]
        True
    """
    if process_metrics is None:
        process_metrics = get_config().textfile_process_metrics
    families = families_of(registry)
    if path is not None:
        families = _own_stats_only(families, os.fspath(path))
    owner = getattr(registry, "get", None)
    if process_metrics or not callable(owner):
        yield from families  # a bare collector or a restricted view: exactly what was asked
        return
    for family in families:
        # A collector is registered under its sample names: a counter's carry "_total" (the
        # three collectors' other families are gauges). ``family.samples`` would build them.
        name = family.name
        if not (
            isinstance(owner(name), _PROCESS_COLLECTORS)
            or isinstance(owner(name + "_total"), _PROCESS_COLLECTORS)
        ):
            yield family


def write_bytes_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace *path* with *data* atomically and durably (see the module docstring)."""
    target = os.fspath(path)
    try:
        write_atomic(target, data, mode=FILE_MODE)
    except OSError as exc:
        raise ExportError(
            f"writing the metrics textfile {target!r} failed: {exc.strerror or exc}"
        ) from exc
    remove_stale_temp_files(target)


def _own_stats_only(families: Iterator[MetricFamily], path: str) -> Iterator[MetricFamily]:
    own = ("path", path)
    for family in families:
        if family.name in _STATS_NAMES:
            family = family._replace(series=tuple(s for s in family.series if own in s.labels))
        elif family.name.startswith("meterhub_"):
            family = family._replace(series=tuple(_with_path(s, own) for s in family.series))
        yield family


def _with_path(series: Series, own: tuple[str, str]) -> Series:
    if any(name == "path" for name, _ in series.labels):
        return series  # a path of its own (a label of the self-metric): kept as it is
    return series._replace(labels=(*series.labels, own))


def write_to_textfile(
    path: str | os.PathLike[str], registry: Any = REGISTRY, *, process_metrics: bool | None = None
) -> None:
    """Write *registry* in the text format 0.0.4 to *path*, atomically (node_exporter).

    The default collectors' ``process_*``, ``python_info`` and ``python_gc_*`` are left out
    unless *process_metrics* is true (see :func:`textfile_families`).

    Raises :class:`~meterhub.errors.ExportError` (an ``OSError``) when the write fails;
    the previous file is then left untouched.

    Example::

        >>> import os, tempfile
        >>> from meterhub import Counter, Registry
        >>> reg = Registry(self_metrics=False)
        >>> Counter("backups", "Backups made.", registry=reg).inc()
        >>> path = os.path.join(tempfile.mkdtemp(), "app.prom")
        >>> write_to_textfile(path, reg)
        >>> open(path).read().splitlines()[-1]
        'backups_total 1'
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if not os.fspath(path) or os.fspath(path).endswith(os.sep):
        raise ValueError(f"path must name a file, got {path!r}")
    if not callable(getattr(registry, "collect", None)):
        raise TypeError(f"registry must have a collect() method, got {registry!r}")
    families = textfile_families(registry, process_metrics, path)
    write_bytes_atomically(path, render_text(families).encode("utf-8", "replace"))


def remove_stale_temp_files(
    path: str | os.PathLike[str], older_than: float = STALE_TEMP_SECONDS
) -> int:
    """Delete the temporary files next to *path* (``.NAME.*.tmp``) that dead writers left.

    A writer killed mid-write (SIGKILL, OOM, power loss) leaves its temporary file behind;
    node_exporter ignores it, but the directory would slowly fill up. A file whose name
    records its writer (pid and start time) is removed as soon as that writer is gone,
    never while it runs; one without (an older meterhub's) once older than *older_than*
    seconds. Runs on start and after every write. Returns how many files were removed;
    never raises.
    """
    directory, base = os.path.split(os.path.abspath(os.fspath(path)))
    return remove_dead_temp_files(directory, f".{base}.", unowned_older_than=older_than)


class _Stats:
    """Per-path write statistics of a registry's textfile exporters (a collector)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # path -> [writes, failures, last duration, last success timestamp]
        self._paths: dict[str, list[float]] = {}

    def record(self, path: str, ok: bool, duration: float) -> None:
        with self._lock:
            row = self._paths.setdefault(path, [0.0, 0.0, 0.0, 0.0])
            row[2] = duration
            if ok:
                row[0] += 1.0
                row[3] = time.time()
            else:
                row[1] += 1.0

    def get(self, path: str) -> tuple[float, float, float, float]:
        with self._lock:
            w, f, d, ts = self._paths.get(path, [0.0, 0.0, 0.0, 0.0])
        return w, f, d, ts

    def collect(self) -> Iterator[MetricFamily]:
        with self._lock:
            rows = sorted((p, tuple(r)) for p, r in self._paths.items())
        specs = (
            ("meterhub_textfile_writes", "Successful textfile writes.", MetricType.COUNTER),
            ("meterhub_textfile_write_failures", "Failed textfile writes.", MetricType.COUNTER),
            ("meterhub_textfile_write_duration_seconds", "Duration of the last textfile write.",
             MetricType.GAUGE),
            ("meterhub_textfile_last_success_timestamp_seconds",
             "Unix time of the last successful textfile write.", MetricType.GAUGE),
        )  # fmt: skip
        for i, (name, doc, kind) in enumerate(specs):
            yield MetricFamily(
                name, doc, kind, series=tuple(Series((("path", p),), (r[i],)) for p, r in rows)
            )


_STATS_NAMES = frozenset(
    {"meterhub_textfile_writes", "meterhub_textfile_write_failures",
     "meterhub_textfile_write_duration_seconds", "meterhub_textfile_last_success_timestamp_seconds"}
)  # fmt: skip
"""The families of :class:`_Stats` (labelled by ``path``)."""

_stats_for = PerRegistry(_Stats)
"""The ``meterhub_*`` delivery self-metrics of a registry (registered on first use)."""


class TextfileExporter:
    """Writes *registry* to *path* every *interval* seconds from a daemon thread.

    ``write()`` writes now and raises :class:`~meterhub.errors.ExportError` on failure;
    the background loop never raises. ``stop()`` writes one last time and joins.
    *process_metrics* is :func:`write_to_textfile`'s.

    Example::

        exporter = TextfileExporter("/var/lib/node_exporter/textfile/app.prom", interval=15)
        exporter.start()
        ...
        exporter.stop()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        interval: float = 15.0,
        registry: Any = REGISTRY,
        *,
        process_metrics: bool | None = None,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise TypeError(f"path must be a non-empty str or os.PathLike, got {path!r}")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)):
            raise TypeError(f"interval must be a number of seconds, got {interval!r}")
        if not interval > 0 or interval == float("inf"):
            raise ValueError(f"interval must be positive and finite, got {interval!r}")
        if not callable(getattr(registry, "collect", None)):
            raise TypeError(f"registry must have a collect() method, got {registry!r}")
        self.path = os.fspath(path)
        self.interval = float(interval)
        self.registry = registry
        self.process_metrics = process_metrics
        self._stats = _stats_for(registry)
        self._lock = threading.Lock()  # one write at a time (loop, write(), stop())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    @property
    def writes(self) -> float:
        """Successful writes to this path so far."""
        return self._stats.get(self.path)[0]

    @property
    def failures(self) -> float:
        """Failed writes to this path so far."""
        return self._stats.get(self.path)[1]

    def write(self) -> None:
        """Write the file now; raises :class:`~meterhub.errors.ExportError` on failure."""
        with self._lock:
            t0 = time.perf_counter()
            try:
                write_to_textfile(self.path, self.registry, process_metrics=self.process_metrics)
            except Exception as exc:
                self._stats.record(self.path, False, time.perf_counter() - t0)
                if not self._failing:
                    self._failing = True
                    log.warning("meterhub: %s (counted in meterhub_textfile_write_failures)", exc)
                if isinstance(exc, ExportError):
                    raise
                raise ExportError(
                    f"writing the metrics textfile {self.path!r} failed: {exc!r}"
                ) from exc
            self._stats.record(self.path, True, time.perf_counter() - t0)
            if self._failing:
                self._failing = False
                log.warning("meterhub: textfile %s written again", self.path)

    def _safe_write(self) -> None:
        try:
            self.write()
        except Exception:
            pass  # counted and logged by write(); the loop must survive anything

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._safe_write()

    def start(self) -> None:
        """Write once now, then every *interval* seconds (idempotent).

        Temporary files that dead writers left next to the target are removed first.
        """
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop = threading.Event()
        remove_stale_temp_files(self.path)
        self._safe_write()
        self._thread = threading.Thread(target=self._run, name="meterhub-textfile", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the loop, join it and write one last time (never raises)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        self._safe_write()

    def __enter__(self) -> TextfileExporter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"TextfileExporter({self.path!r}, interval={self.interval})"
