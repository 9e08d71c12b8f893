"""The default collectors of ``REGISTRY``: process, Python platform and garbage collector.

Names and labels match prometheus_client's, so existing dashboards keep working.
"""

from __future__ import annotations

import gc
import os
import platform as _platform
import resource
from collections.abc import Callable, Iterator
from typing import Any

from .samples import MetricFamily, MetricType, Series

__all__ = ["GCCollector", "PlatformCollector", "ProcessCollector"]


def _gauge(name: str, doc: str, value: float) -> MetricFamily:
    return MetricFamily(name, doc, MetricType.GAUGE, series=(Series((), (value,)),))


class ProcessCollector:
    """CPU seconds, memory, open file descriptors and start time of a process (Linux ``/proc``).

    Example::

        >>> from meterhub import Registry
        >>> reg = Registry(self_metrics=False)
        >>> reg.register(ProcessCollector())
        >>> reg.get_sample_value("process_open_fds") > 0
        True
    """

    def __init__(
        self,
        namespace: str = "",
        pid: Callable[[], int | str] = lambda: "self",
        proc: str = "/proc",
        registry: Any = None,
    ) -> None:
        self._prefix = f"{namespace}_process_" if namespace else "process_"
        self._pid, self._proc = pid, proc
        self._ticks = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self._pagesize = resource.getpagesize()
        self._boot: float | None = None
        _register(self, registry)

    def _boot_time(self) -> float:
        if self._boot is None:
            with open(os.path.join(self._proc, "stat"), "rb") as f:
                for line in f:
                    if line.startswith(b"btime "):
                        self._boot = float(line.split()[1])
                        break
        return self._boot or 0.0

    def _sample_names(self) -> tuple[str, ...]:
        p = self._prefix
        return tuple(p + n for n in ("virtual_memory_bytes", "resident_memory_bytes",
                                     "start_time_seconds", "cpu_seconds_total", "open_fds",
                                     "max_fds"))  # fmt: skip

    def collect(self) -> Iterator[MetricFamily]:
        p = self._prefix
        base = os.path.join(self._proc, str(self._pid()).strip())
        try:
            with open(os.path.join(base, "stat"), "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            return
        utime, stime = float(fields[11]), float(fields[12])
        yield _gauge(p + "virtual_memory_bytes", "Virtual memory size in bytes.", float(fields[20]))
        yield _gauge(
            p + "resident_memory_bytes",
            "Resident memory size in bytes.",
            float(fields[21]) * self._pagesize,
        )
        yield _gauge(
            p + "start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            float(fields[19]) / self._ticks + self._boot_time(),
        )
        yield MetricFamily(
            p + "cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            MetricType.COUNTER,
            series=(Series((), ((utime + stime) / self._ticks,)),),
        )
        try:
            yield _gauge(
                p + "open_fds",
                "Number of open file descriptors.",
                float(len(os.listdir(os.path.join(base, "fd")))),
            )
            with open(os.path.join(base, "limits"), "rb") as f:
                for line in f:
                    if line.startswith(b"Max open files"):
                        yield _gauge(
                            p + "max_fds",
                            "Maximum number of open file descriptors.",
                            float(line.split()[3]),
                        )
        except OSError:
            pass


def _register(collector: object, registry: Any) -> None:
    # prometheus_client's collectors take registry= and register themselves there.
    # meterhub's default is None: a collector is registered where it is asked to be.
    if registry is not None:
        registry.register(collector)


class PlatformCollector:
    """``python_info``: the interpreter's implementation and version (and the JVM's on
    Jython). *platform* stands in for the :mod:`platform` module (tests)."""

    def __init__(self, registry: Any = None, platform: Any = None) -> None:
        pf = _platform if platform is None else platform
        major, minor, patch = pf.python_version_tuple()
        labels = [("implementation", pf.python_implementation()),
                  ("major", major), ("minor", minor), ("patchlevel", patch),
                  ("version", pf.python_version())]  # fmt: skip
        if pf.system() == "Java":
            java_version, _, (vm_name, vm_release, vm_vendor), _ = pf.java_ver()
            labels += [("jvm_version", java_version), ("jvm_release", vm_release),
                       ("jvm_vendor", vm_vendor), ("jvm_name", vm_name)]  # fmt: skip
        self._labels = tuple(labels)
        _register(self, registry)

    def _sample_names(self) -> tuple[str, ...]:
        return ("python_info",)

    def collect(self) -> Iterator[MetricFamily]:
        yield MetricFamily(
            "python_info",
            "Python platform information",
            MetricType.GAUGE,
            series=(Series(self._labels, (1.0,)),),
        )


class GCCollector:
    """Objects collected, uncollectable objects and collections, per GC generation."""

    def __init__(self, registry: Any = None) -> None:
        _register(self, registry)

    def _sample_names(self) -> tuple[str, ...]:
        return tuple(
            f"python_gc_{n}_total"
            for n in ("objects_collected", "objects_uncollectable", "collections")
        )

    def collect(self) -> Iterator[MetricFamily]:
        stats = gc.get_stats()
        for key, name, doc in (
            ("collected", "python_gc_objects_collected", "Objects collected during gc"),
            (
                "uncollectable",
                "python_gc_objects_uncollectable",
                "Uncollectable objects found during GC",
            ),
            (
                "collections",
                "python_gc_collections",
                "Number of times this generation was collected",
            ),
        ):
            yield MetricFamily(
                name,
                doc,
                MetricType.COUNTER,
                series=tuple(
                    Series((("generation", str(g)),), (float(s[key]),)) for g, s in enumerate(stats)
                ),
            )


def register_defaults(registry: object) -> None:
    """Add the process, platform and GC collectors to *registry*."""
    for collector in (ProcessCollector(), PlatformCollector(), GCCollector()):
        registry.register(collector)  # type: ignore[attr-defined]
