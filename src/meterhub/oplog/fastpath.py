"""What the operation log's one-pass path has learned: validated types and names.

:meth:`OperationLog.record_operation_nowait <meterhub.oplog.OperationLog.record_operation_nowait>`
checks and encodes a common record in one pass when its operation type and name were
validated before; these bounded caches hold, per type, the metric children it updates and
the record's pre-encoded head, and per name its pre-encoded text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..metrics import CounterChild, HistogramChild
from .instruments import OplogInstruments

__all__ = ["LearnedNames"]

_KINDS_MAX = 1_000
_NAMES_MAX = 10_000


class LearnedNames:
    """The one-pass path's caches (the log reads :attr:`kinds` and :attr:`names` directly)."""

    def __init__(self, metrics: OplogInstruments, dumps: Callable[[Any], bytes]) -> None:
        self._metrics = metrics
        self._dumps = dumps
        self.kinds: dict[str, tuple[CounterChild, CounterChild, HistogramChild, Any, bytes]] = {}
        self.names: dict[str, bytes] = {}
        metrics.share_cache(self.kinds)

    def learn(self, operation_type: str, operation_name: str) -> None:
        """Remember a validated type and name for the fast path (bounded caches).

        Text orjson refuses (a lone surrogate) is not remembered: such records keep taking
        the full path, whose encoder escapes it.
        """
        try:
            if operation_type not in self.kinds and len(self.kinds) < _KINDS_MAX:
                head = b'{"operation_type":' + self._dumps(operation_type)
                ok, histogram = self._metrics.children(operation_type, "", True)
                failed, _ = self._metrics.children(operation_type, "", False)
                self.kinds[operation_type] = (
                    ok,
                    failed,
                    histogram,
                    self._metrics.duration.desc.buckets,
                    head + b',"operation_name":',
                )
            if operation_name not in self.names and len(self.names) < _NAMES_MAX:
                self.names[operation_name] = self._dumps(operation_name) + b',"timestamp":"'
        except TypeError:
            pass
