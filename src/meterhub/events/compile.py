"""Rules and handlers compiled into one function per event type: the hot path of ``emit``.

Why code generation: every Python call between ``emit()`` and a metric's cell (router, one
action per rule, the child's method) costs about as much as the cell update it leads to.
So each event type gets one generated function that does, inline: the rate limit, the
payload check, and for every rule its (named) switch, the label tuple
(``(get(n0), get(n1))``), the child lookup and the cell update; then the handlers. Each rule
and each handler runs in its own ``try`` block, so one failing never stops the others. The
source is built the way ``dataclasses`` builds ``__init__``: only fixed code and indices are
formatted into it; rule data (event type, label names, defaults, field names) reach the
function as variables of its namespace, never as source text. ``RouteFunctions.source``
keeps the text for debugging.

The cell update is the child's own lock-free fast path (``CounterChild.inc``,
``HistogramChild.observe``, ``GaugeChild.set``) written out on ``child.active_cell``, with
the slot numbers of :mod:`meterhub.store.layout` formatted into the source (the parity
test ``tests/test_cell_layout.py`` checks the result); see the concurrency contract in
:mod:`meterhub.store.base`. Metrics of any other class (``mostrecent`` gauges, subclasses)
are called through their children's methods. Only the public metric API is used.

Payload values become label values as follows: a missing field or ``None`` gives the rule's
default; a ``str`` is used as is; anything else goes through ``str()``. The fast path looks
the raw tuple up in the metric's own child dict; anything else (a default needed, a non-str
value) goes through :meth:`_Children.slow`, which caches raw tuple -> child too.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._config import is_enabled, watch_switch
from ..metrics import Counter, Gauge, Histogram
from ..store.layout import CounterLayout, GaugeLayout, HistogramLayout
from .rules import Rule, RuleKind

__all__ = ["METRIC_TYPES", "CompiledRule", "RouteFunctions", "SwitchState", "compile_route"]

Handler = Callable[[Mapping[str, Any]], Any]
# reports (reason, message) for one bad value; the router counts it
Invalid = Callable[[str, str], None]
# called with (event type, exception) when a rule or handler raises: re-raises in strict mode
Failed = Callable[[str, Exception], None]
# ``data.get`` for a payload that is not a ``dict`` (None: refused and counted)
Getter = Callable[[Any], Callable[..., Any] | None]
RouteFunction = Callable[[Any], None]

METRIC_TYPES: dict[RuleKind, type[Any]] = {
    RuleKind.COUNTER: Counter,
    RuleKind.HISTOGRAM: Histogram,
    RuleKind.GAUGE: Gauge,
}

_RAW_CACHE_MAX = 1024
_EMPTY: dict[str, Any] = {}


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

    ``get`` looks up the metric's live ``children``: the very mapping ``labels()``
    consults, so ``remove()``/``clear()`` stay visible. ``slow()`` normalises the tuple.
    """

    __slots__ = ("defaults", "get", "labels", "metric", "raw")

    def __init__(self, metric: Any, defaults: tuple[str, ...]) -> None:
        self.metric = metric
        self.defaults = defaults
        self.get = metric.children.get
        self.labels = metric.labels
        self.raw: dict[tuple[Any, ...], tuple[tuple[str, ...], Any]] = {}

    def slow(self, k: tuple[Any, ...]) -> Any:
        if not self.defaults:  # unlabeled: its one child always exists
            child = self.get(())
            return child if child is not None else self.metric.null_child()
        # Only str/None tuples are cached: 0 == 0.0 == False would share one entry. A plain
        # loop rather than all(<generator>): this runs for every event that needs a default.
        cacheable = True
        for v in k:
            if v is not None and type(v) is not str:
                cacheable = False
                break
        if cacheable:
            hit = self.raw.get(k)
            if hit is not None and self.get(hit[0]) is hit[1]:  # still the metric's child
                return hit[1]
        key = tuple(
            d if v is None else (v if type(v) is str else str(v)) for v, d in zip(k, self.defaults)
        )
        child = self.labels(*key)
        # a stale entry (its series was removed) is refreshed even when the cache is full
        if cacheable and (len(self.raw) < _RAW_CACHE_MAX or k in self.raw):
            self.raw[k] = (key, child)
        return child


# -- source templates: {p} is the rule's prefix in the route function's namespace ----------

_LOOKUP = """\
k = {key}
try:
    c = {p}cached(k)
except TypeError:
    c = None
if c is None:
    c = {p}slow(k)
"""

# how each kind gets its value ``v`` (a float) or skips the update (``v`` is None)
_VALUE = {
    "inc_by": """\
v = get({p}field)
if type(v) is not float:
    v = {p}value_of(v, False)
if v is not None and not (0.0 <= v < INF):
    {p}refuse(v)
    v = None
""",
    "observe": """\
v = get({p}field)
if type(v) is not float or v != v:
    v = {p}value_of(v, False)
""",
    "set": """\
v = get({p}field)
if type(v) is not float:
    v = {p}value_of(v, True)
""",
}

# the update on child ``c``: inline for the core's own metric classes, else the method;
# {p} is filled per rule, the slots (doubled braces) here, from the cell layout table
_INLINE = {
    "count": f"c.active_cell[{CounterLayout.TOTAL}] += 1.0\n",
    "inc_by": f"c.active_cell[{CounterLayout.TOTAL}] += v\n",
    # the bucket index first, then sum and bucket with no call in between (atomic together)
    "observe": (
        f"i = bisect_left({{p}}bounds, v) + {HistogramLayout.FIRST_BUCKET}\n"
        f"cell = c.active_cell\ncell[{HistogramLayout.SUM}] += v\ncell[i] += 1.0\n"
    ),
    "set": f"c.active_cell[{GaugeLayout.VALUE}] = v\n",
}
_METHOD = {"count": "c.inc()\n", "inc_by": "c.inc(v)\n", "observe": "c.observe(v)\n",
           "set": "c.set(v)\n"}  # fmt: skip
_INLINE_METRIC = {"count": Counter, "inc_by": Counter, "observe": Histogram,
                  "set": Gauge}  # fmt: skip


def _indent(text: str, levels: int) -> str:
    pad = "    " * levels
    return "".join(pad + line if line.strip() else line for line in text.splitlines(True))


def _number(v: Any) -> float | None:
    # the core's rule (meterhub._definition.values.checked_number) plus numeric strings
    # from payloads; bools are refused here (a payload's true is not a count)
    if isinstance(v, (bool, complex)):
        return None
    try:
        if getattr(v, "ndim", 0) != 0 or getattr(getattr(v, "dtype", None), "kind", "f") == "c":
            return None  # arrays, numpy complex
        number = float(v)
    except Exception:
        return None
    return number if number.__class__ is float else None


class CompiledRule:
    """One rule's share of its event type's function: a code block and the names it uses."""

    __slots__ = ("kind", "labelnames", "metric", "names", "rule", "switch")

    def __init__(self, rule: Rule, metric: Any, invalid: Invalid) -> None:
        field = rule.value
        # a float default keeps every recorded value a float (gauge cells hold floats)
        default = None if rule.default is None else float(rule.default)

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

        def refuse(v: float) -> None:
            invalid("invalid_value", f"counter increment {field!r}={v!r} refused")

        if rule.kind is RuleKind.COUNTER:
            self.kind = "count" if field is None else "inc_by"
        else:
            self.kind = "observe" if rule.kind is RuleKind.HISTOGRAM else "set"
        self.rule = rule
        self.metric = metric
        self.labelnames = rule.labelnames
        # A rule without a switch needs no check of its own: the router checks the global
        # switch (and its own) before it calls the event type's function.
        self.switch = None if rule.switch is None else SwitchState(rule.switch)
        children = _Children(metric, tuple(rule.labels.values()))
        self.names: dict[str, Any] = {
            "switch": self.switch,
            "cached": children.get,
            "slow": children.slow,
            "field": field,
            "value_of": value_of,
            "refuse": refuse,
            "bounds": metric.desc.buckets,
            **{f"n{i}": name for i, name in enumerate(self.labelnames)},
        }

    def source(self, p: str) -> str:
        """The block recording one event, its names prefixed with *p*."""
        key = "(" + "".join(f"get({p}n{i}), " for i in range(len(self.labelnames))) + ")"
        native = getattr(getattr(self.metric, "desc", None), "native", None)
        inline = type(self.metric) is _INLINE_METRIC[self.kind] and native is None
        update = _INLINE if inline else _METHOD  # (a native histogram's cell differs)
        record = _LOOKUP.format(key=key, p=p) + update[self.kind].format(p=p)
        if self.kind != "count":
            record = _VALUE[self.kind].format(p=p) + "if v is not None:\n" + _indent(record, 1)
        if self.switch is not None:
            record = f"if {p}switch.on:\n" + _indent(record, 1)
        return record


class RouteFunctions:
    """An event type's generated functions: ``emit`` (rate limit first) and ``dispatch``."""

    __slots__ = ("dispatch", "emit", "source")

    def __init__(self, emit: RouteFunction, dispatch: RouteFunction, source: str) -> None:
        self.emit = emit
        self.dispatch = dispatch
        self.source = source


def compile_route(
    event_type: str,
    rules: Sequence[CompiledRule],
    handlers: Sequence[Handler],
    take: Callable[[], bool] | None,
    rate_limited: Callable[[str], None],
    failed: Failed,
    getter: Getter,
) -> RouteFunctions:
    """Build *event_type*'s functions. ``dispatch(data)`` applies every rule and handler to
    the payload; ``emit(data)`` first takes a token from the rate limit (*take*), if any."""
    namespace: dict[str, Any] = {
        "event_type": event_type,
        "rate_limited": rate_limited,
        "failed": failed,
        "getter": getter,
        "take": take,
        "bisect_left": bisect_left,
        "INF": math.inf,
        "EMPTY": _EMPTY,
    }
    guarded: list[str] = []
    for j, rule in enumerate(rules):
        p = f"r{j}_"
        namespace.update({p + name: value for name, value in rule.names.items()})
        guarded.append(rule.source(p))
    for j, handler in enumerate(handlers):
        namespace[f"h{j}"] = handler
        guarded.append(f"h{j}(data)\n")
    body = [
        # a dict is by far the common payload; None is an empty one; anything else is checked
        "if type(data) is dict:\n",
        "    get = data.get\n",
        "else:\n",
        "    if data is None:\n",
        "        data = EMPTY\n",
        "    get = getter(data)\n",
        "    if get is None:\n",
        "        return\n",
    ]
    for block in guarded:
        body += [
            "try:\n",
            _indent(block, 1),
            "except Exception as exc:\n",
            "    failed(event_type, exc)\n",
        ]
    source = "def dispatch(data):\n" + _indent("".join(body), 1)
    if take is not None:
        limit = "if not take():\n    rate_limited(event_type)\n    return\n"
        source += "\n\ndef emit(data):\n" + _indent(limit + "".join(body), 1)
    code = compile(source, f"<meterhub event route {event_type!r}>", "exec")
    exec(code, namespace)
    dispatch: RouteFunction = namespace["dispatch"]
    emit: RouteFunction = namespace["emit"] if take is not None else dispatch
    return RouteFunctions(emit, dispatch, source)
