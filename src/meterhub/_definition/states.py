"""State metrics: :class:`Info` (key-value facts) and :class:`Enum` (one of a set of states)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..errors import DefinitionError
from ..naming import LABEL_NAME_RE
from ..registry import REGISTRY, Registry
from ..samples import MetricType
from ..store.base import Cell, LocalCell
from ..store.layout import INFO
from .base import Child, MetricBase
from .child import encodable

__all__ = ["Enum", "EnumChild", "Info", "InfoChild"]


# ------------------------------------------------------------------------------------- Info


class InfoChild(Child):
    """One series of an :class:`Info`. Its key is the label values plus the encoded info."""

    __slots__ = ("_info_cell", "_info_key")

    def info(self, val: Mapping[str, str]) -> None:
        """Set the info pairs (replacing the previous ones)."""
        metric = self._metric
        if not isinstance(val, Mapping):
            metric._error("info", f"info() needs a dict of str to str, got {val!r}")
            return
        names = metric._desc.labelnames
        for k, v in val.items():
            if not isinstance(k, str) or not LABEL_NAME_RE.match(k) or k.startswith("__"):
                metric._error("info", f"info key {k!r} is not a valid label name")
                return
            if k in names:
                metric._error("info", f"info key {k!r} clashes with a label name")
                return
            if not isinstance(v, str) or not encodable((v,)):
                metric._error("info", f"info value for {k!r} must be a valid str, got {v!r}")
                return
        with metric._lock:
            self._store_info(val)

    def _store_info(self, val: Mapping[str, str]) -> None:
        # callers hold the metric's lock
        metric = self._metric
        key = (*self._key, json.dumps(sorted(val.items()), ensure_ascii=False))
        store = metric._store
        old = getattr(self, "_info_key", None)
        if old == key:
            return
        if old is not None:
            store.remove(metric._desc, old)
        cell = store.cell(metric._desc, key)
        cell[0] = 1.0
        self._info_key = key
        self._info_cell = cell

    def _drop(self) -> None:
        old = getattr(self, "_info_key", None)
        if old is not None:
            self._metric._store.remove(self._metric._desc, old)


class Info(MetricBase[InfoChild]):
    """Static key-value facts about the target (version, build).

    Example::

        >>> from meterhub import Info, Registry
        >>> reg = Registry(self_metrics=False)
        >>> Info("build", "Build facts.", registry=reg).info({"version": "1.2.3"})
        >>> reg.get_sample_value("build_info", {"version": "1.2.3"})
        1.0
    """

    _type = MetricType.INFO
    _child_cls = InfoChild
    _child_methods = ("info",)
    _suffixes = ("_info",)

    def __new__(
        cls,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
        *,
        switch: str | None = None,
    ) -> Info:
        if unit:
            raise DefinitionError(f"metric {name!r}: an info metric has no unit")
        return cls._define(
            name,
            documentation,
            labelnames,
            namespace,
            subsystem,
            "",
            registry,
            switch,
            None,
        )

    def info(self, val: Mapping[str, str]) -> None:
        self._labeled_parent("info")

    def _cell_for(self, key: tuple[str, ...]) -> Cell:
        # A child's stored key gains the encoded info pairs once info() is called.
        return [0.0] * INFO.width(self._desc)

    def move_series_cell(
        self, key: tuple[str, ...], old: Cell, new_cell: Callable[[], Cell]
    ) -> bool:
        # The store's key of an info series is the child's key plus the encoded pairs.
        child = self._children.get(key[:-1])
        if child is None or getattr(child, "_info_cell", None) is not old:
            return False
        new = new_cell()
        new[0] = old[0]
        child._info_cell = new
        return True

    def _new_child(self, key: tuple[str, ...]) -> InfoChild:
        # As prometheus_client: a series exists (with no info pairs) from its creation.
        # Called with the metric's lock held, or before the metric is shared.
        child = super()._new_child(key)
        if self._recording:
            child._store_info({})
        return child

    def _local_cells(self) -> list[LocalCell]:
        return [
            (child._info_key, child._info_cell)
            for child in list(self._children.values())
            if getattr(child, "_info_key", None) is not None
        ]


# ------------------------------------------------------------------------------------- Enum


class EnumChild(Child):
    """One series of an :class:`Enum`."""

    __slots__ = ("_index",)

    def __init__(self, metric: MetricBase[Any], key: tuple[str, ...], cell: Cell) -> None:
        super().__init__(metric, key, cell)
        self._index = {s: float(i) for i, s in enumerate(metric._desc.states)}

    def state(self, state: str) -> None:
        """Set the current state (one of the metric's ``states``)."""
        try:
            self._v[0] = self._index[state]
        except (KeyError, TypeError):
            self._metric._error(
                "unknown_state",
                f"state {state!r} is not one of {list(self._metric._desc.states)}",
            )


class Enum(MetricBase[EnumChild]):
    """Which of a fixed set of states something is in (exposed as a state set).

    The state is the value of a label named after the metric, so the name cannot contain
    ``:`` (refused with a ``DefinitionError``; prometheus_client would expose an invalid
    label name, or in OpenMetrics a renamed metric).

    Example::

        >>> from meterhub import Enum, Registry
        >>> reg = Registry(self_metrics=False)
        >>> e = Enum("task_state", "State.", states=["idle", "busy"], registry=reg)
        >>> e.state("busy")
        >>> reg.get_sample_value("task_state", {"task_state": "busy"})
        1.0
    """

    _type = MetricType.STATESET
    _child_cls = EnumChild
    _child_methods = ("state",)

    def __new__(
        cls,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Registry | None = REGISTRY,
        states: Sequence[str] | None = None,
        *,
        switch: str | None = None,
    ) -> Enum:
        if unit:
            raise DefinitionError(f"metric {name!r}: an enum metric has no unit")
        if not states or isinstance(states, str) or not all(isinstance(s, str) for s in states):
            raise DefinitionError(f"metric {name!r}: states must be a non-empty list of str")
        if len(set(states)) != len(states):
            raise DefinitionError(f"metric {name!r}: duplicate states in {list(states)}")
        if isinstance(name, str) and ":" in name:
            raise DefinitionError(
                f"metric {name!r}: an enum name must not contain ':' (its state is a label "
                "named after the metric, and label names cannot hold ':'; Prometheus also "
                "reserves ':' for recording rules)"
            )
        if name in labelnames:
            raise DefinitionError(f"metric {name!r}: a label cannot have the metric's name")
        return cls._define(
            name,
            documentation,
            labelnames,
            namespace,
            subsystem,
            "",
            registry,
            switch,
            None,
            states=tuple(states),
        )

    def state(self, state: str) -> None:
        self._labeled_parent("state")
