"""Event → metric routing with an event store.

Application code tracks domain events; :class:`EventRouter` maps each to metric updates through
declarative rules (or a YAML file) and custom handlers, and stores it in an event store::

    from meterhub import Hub
    from meterhub.events import EventRouter, SQLiteEventStore

    router = EventRouter.from_file("events.yaml", hub=Hub(), store=SQLiteEventStore("events.db"))
    router.track_event(user_id, "user_logged_in", {"auth_method": "email"})

Modules: :mod:`.rules` (rule definitions, YAML), :mod:`.compile` (the hot path),
:mod:`.router`, :mod:`.limits` (rate limit), :mod:`.counters` (drops, unmapped types, errors),
:mod:`.stores` (SQLite, PostgreSQL, operation log), :mod:`.stats` (store counters as metrics).
See docs/events.md.
"""

from __future__ import annotations

from .router import EventRouter
from .rules import Rule, RuleKind, load_rules_file, parse_rules
from .stores import (
    EventCount,
    EventStore,
    OperationLogEventStore,
    PostgresEventStore,
    SQLiteEventStore,
    StoredEvent,
    open_store,
)

__all__ = [
    "EventCount",
    "EventRouter",
    "EventStore",
    "OperationLogEventStore",
    "PostgresEventStore",
    "Rule",
    "RuleKind",
    "SQLiteEventStore",
    "StoredEvent",
    "load_rules_file",
    "open_store",
    "parse_rules",
]
