"""Rules compiled into small functions: the hot path of ``EventRouter.emit``.

Each rule becomes an *action* ``act(get)`` where ``get`` is the payload's ``dict.get``.

Why code generation: a rule's label tuple must be built inline (``(get(n0), get(n1))``) to
keep one routed update near the cost of a hand-written ``labels(...).inc()`` - a helper
function per label set costs more than the lookups it wraps. So each action is generated
from :data:`_TEMPLATES` (the way ``dataclasses`` builds ``__init__``). Only fixed code and
indices are formatted into the source; rule data (label names, defaults, field names) reach
the function as variables of its namespace, never as source text.

Payload values become label values as follows: a missing field or ``None`` gives the rule's
default; a ``str`` is used as is; anything else goes through ``str()``. The fast path looks
the raw tuple up in the metric's own child dict; anything else (a default needed, a non-str
value) goes through :meth:`_Children.slow`, which caches raw tuple -> child too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .._config import is_enabled, watch_switch
from ..metrics import Counter, Gauge, Histogram
from .rules import Rule, RuleKind

__all__ = ["METRIC_TYPES", "Action", "SwitchState", "compile_rule"]

Getter = Callable[..., Any]
Action = Callable[[Getter], None]
# reports (reason, message) for one bad value; the router counts it
Invalid = Callable[[str, str], None]

METRIC_TYPES: dict[RuleKind, type[Any]] = {
    RuleKind.COUNTER: Counter,
    RuleKind.HISTOGRAM: Histogram,
    RuleKind.GAUGE: Gauge,
}

_RAW_CACHE_MAX = 1024


class SwitchState:
    """Whether a named switch (and the global one) is on, kept current by ``_config``."""

    __slots__ = ("__weakref__", "name", "on")

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.on = is_enabled(name)
        watch_switch(name, self)

    def _switch_changed(self) -> None:
        self.on = is_enabled(self.name)


class _Children:
    """The metric child for a raw label tuple.

    ``get`` is the metric's own child dict (same package): the very dict ``labels()``
    consults, so ``remove()``/``clear()`` stay visible. ``slow()`` normalises the tuple.
    """

    __slots__ = ("defaults", "get", "labels", "metric", "raw")

    def __init__(self, metric: Any, defaults: tuple[str, ...]) -> None:
        self.metric = metric
        self.defaults = defaults
        self.get = metric._children.get
        self.labels = metric.labels
        self.raw: dict[tuple[Any, ...], tuple[tuple[str, ...], Any]] = {}

    def slow(self, k: tuple[Any, ...]) -> Any:
        if not self.defaults:
            return self.metric
        # Only str/None tuples are cached: 0 == 0.0 == False would share one entry.
        cacheable = all(v is None or type(v) is str for v in k)
        if cacheable:
            hit = self.raw.get(k)
            if hit is not None and self.get(hit[0]) is hit[1]:  # still the metric's child
                return hit[1]
        key = tuple(
            d if v is None else (v if type(v) is str else str(v)) for v, d in zip(k, self.defaults)
        )
        child = self.labels(*key)
        if cacheable and len(self.raw) < _RAW_CACHE_MAX:
            self.raw[k] = (key, child)
        return child


_LOOKUP = """
        k = {key}
        try:
            c = cached(k)
        except TypeError:
            c = None
        if c is None:
            c = slow(k)
"""

_TEMPLATES: dict[str, str] = {
    "count": """
def act(get):
    if switch.on:{lookup}
        c.inc()
""",
    "inc_by": """
def act(get):
    if switch.on:
        v = get(field)
        if type(v) is not float:
            v = value_of(v, False)
            if v is None:
                return
        if not (0.0 <= v < INF):
            invalid("invalid_value", f"counter increment {{field!r}}={{v!r}} refused")
            return{lookup}
        c.inc(v)
""",
    "observe": """
def act(get):
    if switch.on:
        v = get(field)
        if type(v) is not float or v != v:
            v = value_of(v, False)
            if v is None:
                return{lookup}
        c.observe(v)
""",
    "set": """
def act(get):
    if switch.on:
        v = get(field)
        if type(v) is not float:
            v = value_of(v, True)
            if v is None:
                return{lookup}
        c.set(v)
""",
}


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        return None


def compile_rule(rule: Rule, metric: Any, invalid: Invalid) -> Action:
    """Turn *rule* into ``act(get)`` recording into *metric* (created by the router)."""
    field, default = rule.value, rule.default

    def value_of(raw: Any, allow_nan: bool) -> float | None:
        """The slow path: anything but a plain float payload value."""
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

    names = rule.labelnames
    children = _Children(metric, tuple(rule.labels.values()))
    switch = SwitchState(rule.switch)
    namespace: dict[str, Any] = {
        "switch": switch,
        "cached": children.get,
        "slow": children.slow,
        "field": field,
        "value_of": value_of,
        "invalid": invalid,
        "INF": math.inf,
        **{f"n{i}": name for i, name in enumerate(names)},
    }
    if rule.kind is RuleKind.COUNTER:
        kind = "count" if field is None else "inc_by"
    else:
        kind = "observe" if rule.kind is RuleKind.HISTOGRAM else "set"
    key = "(" + "".join(f"get(n{i}), " for i in range(len(names))) + ")"
    source = _TEMPLATES[kind].format(lookup=_LOOKUP.format(key=key).rstrip())
    exec(
        compile(source, f"<meterhub event rule {rule.event_type} -> {rule.metric}>", "exec"),
        namespace,
    )
    act: Action = namespace["act"]
    act.switch = switch  # type: ignore[attr-defined]  # keeps the switch listener alive
    return act
