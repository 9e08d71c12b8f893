"""Rules compiled into small closures: the hot path of ``EventRouter.emit``.

Each rule becomes an *action* ``act(get)`` where ``get`` is the payload's ``dict.get``. Label
extraction is specialised by label count and the metric child comes from the metric's own
child cache, so routing one event to one metric is a handful of dict lookups.

Payload values become label values as follows: a missing field or ``None`` gives the rule's
default; a ``str`` is used as is; anything else goes through ``str()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .._config import is_enabled, watch_switch
from ..metrics import Counter, Gauge, Histogram
from .rules import Rule, RuleKind

__all__ = ["Action", "SwitchState", "compile_rule"]

Getter = Callable[..., Any]
Action = Callable[[Getter], None]
# reports (reason, message) for one bad value; the router counts it
Invalid = Callable[[str, str], None]


class SwitchState:
    """Whether a named switch (and the global one) is on, kept current by ``_config``."""

    __slots__ = ("__weakref__", "name", "on")

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.on = is_enabled(name)
        watch_switch(name, self)

    def _switch_changed(self) -> None:
        self.on = is_enabled(self.name)


def _label_str(v: Any) -> str:
    return v if type(v) is str else str(v)


def _key_fn(
    names: tuple[str, ...], defaults: tuple[str, ...]
) -> Callable[[Getter], tuple[Any, ...]]:
    n = len(names)
    if n == 0:
        empty: tuple[Any, ...] = ()
        return lambda get: empty
    if n == 1:
        (n0,), (d0,) = names, defaults

        def key1(get: Getter) -> tuple[Any, ...]:
            a = get(n0)
            return (d0 if a is None else a,)

        return key1
    if n == 2:
        (n0, n1), (d0, d1) = names, defaults

        def key2(get: Getter) -> tuple[Any, ...]:
            a = get(n0)
            b = get(n1)
            return (d0 if a is None else a, d1 if b is None else b)

        return key2
    if n == 3:
        (n0, n1, n2), (d0, d1, d2) = names, defaults

        def key3(get: Getter) -> tuple[Any, ...]:
            a = get(n0)
            b = get(n1)
            c = get(n2)
            return (d0 if a is None else a, d1 if b is None else b, d2 if c is None else c)

        return key3
    pairs = tuple(zip(names, defaults))

    def key_n(get: Getter) -> tuple[Any, ...]:
        return tuple(d if (v := get(k)) is None else v for k, d in pairs)

    return key_n


class _Children:
    """The metric child for a payload: the metric's own child dict first, ``labels()`` after.

    Reading ``metric._children`` directly (same package) saves two Python calls per update;
    it is the very dict ``labels()`` consults, so ``remove()``/``clear()`` stay visible.
    """

    __slots__ = ("get", "labels", "metric")

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self.get = metric._children.get
        self.labels = metric.labels

    def slow(self, k: tuple[Any, ...]) -> Any:
        if not self.metric.labelnames:
            return self.metric
        try:
            return self.labels(*k)
        except TypeError:  # an unhashable payload value (list, dict): use its str()
            return self.labels(*map(_label_str, k))


def _number(v: Any) -> float | None:
    if type(v) is float:
        return v
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, str, bytes)):
        try:
            return float(v)
        except (ValueError, OverflowError):
            return None
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        return None


def compile_rule(rule: Rule, metric: Any, invalid: Invalid) -> Action:
    """Turn *rule* into ``act(get)`` recording into *metric* (created by the router)."""
    switch = SwitchState(rule.switch)
    key = _key_fn(rule.labelnames, tuple(rule.labels.values()))
    children = _Children(metric)
    cached, slow = children.get, children.slow
    field, default = rule.value, rule.default

    if rule.kind is RuleKind.COUNTER and field is None:
        if not metric.labelnames:

            def count(get: Getter) -> None:
                if switch.on:
                    metric.inc()

        else:

            def count(get: Getter) -> None:
                if switch.on:
                    k = key(get)
                    try:
                        c = cached(k)
                    except TypeError:
                        c = None
                    (slow(k) if c is None else c).inc()

        count.switch = switch  # type: ignore[attr-defined]  # keeps the listener alive
        return count

    def value_of(raw: Any, allow_nan: bool) -> float | None:
        """The slow path: anything but a plain non-NaN float payload value."""
        if raw is None:
            if default is None:
                invalid("missing_value", f"payload field {field!r} is missing")
            return default
        v = _number(raw)
        if v is None:
            invalid("invalid_value", f"payload field {field!r}={raw!r:.80} is not a number")
        elif v != v and not allow_nan:
            invalid("invalid_value", f"payload field {field!r} is NaN")
            return None
        return v

    # The three closures below repeat the child lookup inline on purpose: a helper call
    # costs as much as the dict lookup it would wrap (emit() must stay under ~2 us).
    if rule.kind is RuleKind.HISTOGRAM:

        def observe(get: Getter) -> None:
            if switch.on:
                v = get(field)
                if type(v) is not float or v != v:
                    v = value_of(v, False)
                    if v is None:
                        return
                k = key(get)
                try:
                    c = cached(k)
                except TypeError:
                    c = None
                (slow(k) if c is None else c).observe(v)

        act: Action = observe
    elif rule.kind is RuleKind.GAUGE:

        def set_gauge(get: Getter) -> None:
            if switch.on:
                v = get(field)
                if type(v) is not float:
                    v = value_of(v, True)
                    if v is None:
                        return
                k = key(get)
                try:
                    c = cached(k)
                except TypeError:
                    c = None
                (slow(k) if c is None else c).set(v)

        act = set_gauge
    else:

        def inc_by(get: Getter) -> None:
            if switch.on:
                v = get(field)
                if type(v) is not float:
                    v = value_of(v, False)
                    if v is None:
                        return
                if not (0 <= v < math.inf):
                    invalid("invalid_value", f"counter increment {field!r}={v!r} refused")
                    return
                k = key(get)
                try:
                    c = cached(k)
                except TypeError:
                    c = None
                (slow(k) if c is None else c).inc(v)

        act = inc_by
    act.switch = switch  # type: ignore[attr-defined]
    return act


METRIC_TYPES: dict[RuleKind, type[Any]] = {
    RuleKind.COUNTER: Counter,
    RuleKind.HISTOGRAM: Histogram,
    RuleKind.GAUGE: Gauge,
}
