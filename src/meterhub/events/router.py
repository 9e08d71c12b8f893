"""EventRouter: domain events → metric updates (rules + handlers), optionally stored.

Error policy (ARCHITECTURE.md's, applied to events; docs/events.md):

* a bad rule raises :class:`~meterhub.errors.DefinitionError` when it is added/loaded;
* at run time nothing raises into the caller outside strict mode: a handler that raises, a
  payload value that is not a number, a payload that is not a mapping are counted in
  ``meterhub_events_errors_total{event_type,reason}`` (and logged once);
* unknown event types are ignored and counted in ``meterhub_events_unmapped_total{event_type}``
  (the first ``max_unmapped_types`` distinct types keep their name, the rest are ``__other__``);
* events over a rate limit are neither routed nor stored:
  ``meterhub_events_dropped_total{event_type,reason="rate_limited"}``;
* the store and the metrics are independent: a store failure is counted
  (``reason="store_error"``) and the metrics are still updated.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .._hub import Hub
from ..errors import DefinitionError
from .compile import (
    METRIC_TYPES,
    CompiledRule,
    Handler,
    RouteFunction,
    RouteFunctions,
    SwitchState,
    compile_route,
)
from .counters import OTHER, EventCounters
from .limits import TokenBucket
from .rules import Rule, RuleKind, check_limit, load_rules_file
from .stats import register_store
from .stores.base import EventStore

__all__ = ["EventRouter"]

log = logging.getLogger("meterhub.events")

F = TypeVar("F", bound=Callable[[Mapping[str, Any]], Any])


class _Route:
    """Everything one event type triggers, and its generated functions."""

    __slots__ = ("event_type", "fns", "handlers", "limit", "limiter", "rules")

    def __init__(self, event_type: str) -> None:
        self.event_type = event_type
        self.rules: tuple[CompiledRule, ...] = ()
        self.handlers: tuple[Handler, ...] = ()
        self.limit: int | None = None
        self.limiter: TokenBucket | None = None
        self.fns: RouteFunctions | None = None


class EventRouter:
    """Route events to metric updates by rules and handlers; optionally store them.

    Example::

        >>> from meterhub import Hub, Registry
        >>> hub = Hub(registry=Registry(self_metrics=False))
        >>> router = EventRouter(hub=hub)
        >>> router.counter("user_logged_in", "user_logins_total",
        ...                labels={"auth_method": "unknown", "account_type": "normal"})
        >>> router.emit("user_logged_in", {"auth_method": "email"})
        >>> hub.registry.get_sample_value(
        ...     "user_logins_total", {"auth_method": "email", "account_type": "normal"})
        1.0
    """

    def __init__(
        self,
        hub: Hub | None = None,
        store: EventStore | None = None,
        max_per_minute: int | None = None,
        *,
        switch: str | None = None,
        max_unmapped_types: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if hub is None:
            from .._hub import hub as default_hub

            hub = default_hub
        if not isinstance(hub, Hub):
            raise TypeError(f"hub must be a meterhub.Hub, got {hub!r}")
        if store is not None and not isinstance(store, EventStore):
            raise TypeError(f"store must implement meterhub.events.EventStore, got {store!r}")
        check_limit(max_per_minute, "max_per_minute")
        self.hub = hub
        self.registry = hub.registry
        self.store = store
        self.max_per_minute = max_per_minute
        self._clock = clock
        self._on = SwitchState(switch)
        self._lock = threading.Lock()
        self._routes: dict[str, _Route] = {}
        # event type -> its generated emit function: the one dict emit() reads
        self._emitters: dict[str, RouteFunction] = {}
        self._rules: list[Rule] = []
        self._counts = EventCounters(self.registry, max_unmapped_types)
        if store is not None:
            register_store(self.registry, store)

    # -- definition -----------------------------------------------------------------------

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        hub: Hub | None = None,
        store: EventStore | None = None,
        **kwargs: Any,
    ) -> EventRouter:
        """A router with the rules of a YAML file (see :mod:`meterhub.events.rules`).

        A mistake raises :class:`~meterhub.errors.DefinitionError` naming the file, the rule
        and the field. Needs PyYAML (``pip install 'meterhub[yaml]'``).

        Example::

            router = EventRouter.from_file("events.yaml", hub=hub, store=SQLiteEventStore(db))
        """
        rules, limit = load_rules_file(path)
        kwargs.setdefault("max_per_minute", limit)
        router = cls(hub=hub, store=store, **kwargs)
        router.add_rules(rules)
        return router

    def add_rules(self, rules: Iterable[Rule]) -> None:
        for rule in rules:
            self.add_rule(rule)

    def add_rule(self, rule: Rule) -> None:
        """Add one :class:`~meterhub.events.rules.Rule` (creating its metric if needed)."""
        if not isinstance(rule, Rule):
            raise TypeError(f"expected a Rule, got {rule!r}")
        where = rule.where or f"rule for event {rule.event_type!r}"
        extra: dict[str, Any] = {}
        if rule.kind is RuleKind.HISTOGRAM and rule.buckets is not None:
            extra["buckets"] = rule.buckets
        try:
            metric = METRIC_TYPES[rule.kind](
                rule.metric,
                rule.help or f"{rule.metric} (from event {rule.event_type}).",
                rule.labelnames,
                namespace=self.hub.namespace,
                registry=self.registry,
                **extra,
            )
        except DefinitionError as exc:
            msg = str(exc)
            bad_buckets = "bucket" in msg and "already registered" not in msg
            fld = "buckets" if bad_buckets else rule.kind.value
            raise DefinitionError(f"{where}, field {fld!r}: {exc}") from exc
        event_type = rule.event_type

        def invalid(reason: str, message: str) -> None:
            # a missing field is data, not a bug: counted, never raised
            self._counts.error(event_type, reason, message, reason != "missing_value")

        compiled = CompiledRule(rule, metric, invalid)
        with self._lock:
            route = self._route_for(event_type)
            route.rules = (*route.rules, compiled)
            if rule.max_per_minute is not None:
                limit = route.limit
                route.limit = (
                    rule.max_per_minute if limit is None else min(limit, rule.max_per_minute)
                )
                route.limiter = TokenBucket(route.limit, self._clock)
            self._rules.append(rule)
            self._publish(route)

    def _route_for(self, event_type: str) -> _Route:
        route = self._routes.get(event_type)
        if route is None:
            route = _Route(event_type)
            if self.max_per_minute is not None:
                route.limit = self.max_per_minute
                route.limiter = TokenBucket(self.max_per_minute, self._clock)
        return route

    def _publish(self, route: _Route) -> None:
        """(Re)generate *route*'s functions and make them visible (under ``self._lock``)."""
        counts = self._counts
        limiter = route.limiter
        route.fns = compile_route(
            route.event_type,
            route.rules,
            route.handlers,
            None if limiter is None else limiter.take,
            counts.rate_limited,
            counts.failed,
            self._getter_for(route.event_type),
        )
        # copy-on-write: emit() and track_event() read the dicts without a lock
        routes = dict(self._routes)
        routes[route.event_type] = route
        emitters = dict(self._emitters)
        emitters[route.event_type] = route.fns.emit
        self._routes = routes
        self._emitters = emitters

    def _getter_for(self, event_type: str) -> Callable[[Any], Callable[..., Any] | None]:
        counts = self._counts

        def getter(data: Any) -> Callable[..., Any] | None:
            """``data.get`` for a payload that is not a ``dict``; None (counted) if it has none."""
            try:
                get: Callable[..., Any] = data.get
            except AttributeError:
                counts.error(
                    event_type,
                    "invalid_payload",
                    f"payload must be a mapping, got {type(data).__name__}",
                    True,
                )
                return None
            return get

        return getter

    def counter(
        self,
        event_type: str,
        metric: str,
        labels: Mapping[str, str] | None = None,
        *,
        value: str | None = None,
        default: float | None = None,
        help: str | None = None,
        switch: str | None = None,
        max_per_minute: int | None = None,
    ) -> None:
        """Increment counter *metric* per event (by 1, or by payload field *value*)."""
        self.add_rule(
            Rule(event_type, RuleKind.COUNTER, metric, dict(labels or {}), value, default, help,
                 None, switch, max_per_minute)
        )  # fmt: skip

    def histogram(
        self,
        event_type: str,
        metric: str,
        value: str,
        labels: Mapping[str, str] | None = None,
        *,
        default: float | None = None,
        buckets: Iterable[float] | None = None,
        help: str | None = None,
        switch: str | None = None,
        max_per_minute: int | None = None,
    ) -> None:
        """Observe payload field *value* in histogram *metric* per event."""
        b = tuple(buckets) if buckets is not None else None
        self.add_rule(
            Rule(event_type, RuleKind.HISTOGRAM, metric, dict(labels or {}), value, default, help,
                 b, switch, max_per_minute)
        )  # fmt: skip

    def gauge(
        self,
        event_type: str,
        metric: str,
        value: str,
        labels: Mapping[str, str] | None = None,
        *,
        default: float | None = None,
        help: str | None = None,
        switch: str | None = None,
        max_per_minute: int | None = None,
    ) -> None:
        """Set gauge *metric* to payload field *value* per event."""
        self.add_rule(
            Rule(event_type, RuleKind.GAUGE, metric, dict(labels or {}), value, default, help,
                 None, switch, max_per_minute)
        )  # fmt: skip

    def handler(self, event_type: str) -> Callable[[F], F]:
        """Register a function called with the payload of every *event_type* event.

        Example::

            >>> from meterhub import Hub, Registry
            >>> router = EventRouter(hub=Hub(registry=Registry(self_metrics=False)))
            >>> @router.handler("level_up")
            ... def on_level_up(data):
            ...     router.hub.set_gauge("max_level", None, data["level"])
        """
        if not isinstance(event_type, str) or not event_type:
            raise DefinitionError(f"handler event type must be a non-empty str, got {event_type!r}")

        def register(fn: F) -> F:
            if not callable(fn):
                raise DefinitionError(f"handler for {event_type!r} must be callable, got {fn!r}")
            with self._lock:
                route = self._route_for(event_type)
                route.handlers = (*route.handlers, fn)
                self._publish(route)
            return fn

        return register

    def rate_limit(self, event_type: str, max_per_minute: int) -> None:
        """Limit *event_type* to *max_per_minute* events (token bucket, burst = the limit)."""
        if max_per_minute is None:
            raise DefinitionError("max_per_minute must be a positive int, got None")
        check_limit(max_per_minute, f"rate_limit({event_type!r}): max_per_minute")
        with self._lock:
            route = self._route_for(event_type)
            route.limit = max_per_minute
            route.limiter = TokenBucket(max_per_minute, self._clock)
            self._publish(route)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(self._rules)

    @property
    def event_types(self) -> tuple[str, ...]:
        """The event types this router maps (rules or handlers)."""
        return tuple(sorted(self._routes))

    # -- run time -------------------------------------------------------------------------

    def emit(self, event_type: str, data: Mapping[str, Any] | None, enabled: bool = True) -> None:
        """Apply the rules and handlers of *event_type* to payload *data*.

        ``enabled=False`` (the seed's per-module ``METRICS_SWITCH``) makes it a no-op.
        """
        # one dict lookup and one call: the event type's generated function does the rest
        if not enabled or not self._on.on:
            return
        try:
            route_emit = self._emitters.get(event_type)
        except TypeError:  # an unhashable event type
            route_emit = None
        if route_emit is None:
            self._counts.unmapped(event_type)
            return
        route_emit(data)

    def track_event(
        self,
        user_id: Any,
        event_type: str,
        event_data: Mapping[str, Any] | None,
        enabled: bool = True,
    ) -> bool:
        """Store the event (UTC timestamp) and route it to metrics; True if it was stored.

        ``user_id`` is stored with the event, never used as a label. ``enabled=False`` stores
        without updating metrics. A store failure never prevents the metric updates.

        Example::

            router = EventRouter(hub=hub, store=SQLiteEventStore("events.db"))
            router.track_event(42, "user_logged_in", {"auth_method": "email"})
        """
        store = self.store
        if store is None:
            raise DefinitionError(
                "track_event() needs a router with a store: EventRouter(hub=..., store=...)"
            )
        if type(event_type) is not str or not event_type:
            self._counts.unmapped(event_type)
            return False
        route = self._routes.get(event_type)
        if route is not None:
            limiter = route.limiter
            if limiter is not None and not limiter.take():
                self._counts.rate_limited(route.event_type)
                return False
        try:
            stored = store.add(time.time(), user_id, event_type, event_data)
        except Exception as exc:
            stored = False
            self._counts.error(event_type if route else OTHER, "store_error", repr(exc), False)
        if enabled and self._on.on:
            if route is None:
                self._counts.unmapped(event_type)
            else:
                assert route.fns is not None  # published with the route
                route.fns.dispatch(event_data)
        return stored

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the store has written every buffered event."""
        return True if self.store is None else self.store.flush(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Flush and close the store."""
        if self.store is not None:
            self.store.close(timeout)
