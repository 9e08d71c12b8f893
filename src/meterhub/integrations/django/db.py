"""Database query metrics through ``connection.execute_wrapper`` - no ENGINE swap.

The wrapper is added to every connection: the ones that exist when the app is ready
and, through the ``connection_created`` signal, every connection opened later (each
thread has its own). Swapping ``ENGINE`` for a metrics backend, as django-prometheus
does, breaks projects whose ENGINE is already someone else's (django-tenants, cachalot,
pooling backends); a wrapper composes with all of them.

Families: ``django_db_queries_total``, ``django_db_query_duration_seconds`` and
``django_db_errors_total`` (with ``exception``), by ``alias``, ``vendor`` and
``statement`` (``select``, ``insert``, ``update``, ``delete``, ... or ``other``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from meterhub import REGISTRY, Counter, Histogram, Registry, shielded

__all__ = ["QueryMetrics", "install", "statement_kind", "uninstall"]

_KINDS = frozenset(
    {
        "select", "insert", "update", "delete", "with", "create", "alter", "drop",
        "truncate", "begin", "commit", "rollback", "savepoint", "release", "set",
        "pragma", "explain", "show", "copy", "vacuum", "analyze", "lock",
    }
)  # fmt: skip


def statement_kind(sql: object) -> str:
    """The ``statement`` label of *sql*: its lower-cased first keyword if known, else
    ``other``.

    Example::

        >>> statement_kind("  SELECT 1"), statement_kind("(SELECT 1)"), statement_kind(b"x")
        ('select', 'select', 'other')
    """
    if not isinstance(sql, str):
        return "other"
    head = sql.lstrip(" \t\r\n(")[:10].split(None, 1)
    word = head[0].lower() if head else ""
    return word if word in _KINDS else "other"


class QueryMetrics:
    """The query metrics and the execute wrapper that records them."""

    def __init__(self, registry: Registry | None = None) -> None:
        reg = REGISTRY if registry is None else registry
        labels = ("alias", "vendor", "statement")
        self._self_metrics = reg.self_metrics
        self.queries = Counter(
            "django_db_queries_total", "Database queries executed.", labels, registry=reg
        )
        self.duration = Histogram(
            "django_db_query_duration_seconds",
            "Database query execution time.",
            labels,
            registry=reg,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.errors = Counter(
            "django_db_errors_total",
            "Database queries that raised, by exception type.",
            (*labels, "exception"),
            registry=reg,
        )

    def __call__(
        self, execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any
    ) -> Any:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return execute(sql, params, many, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            elapsed = time.perf_counter() - started
            try:
                conn = context["connection"]
                key = (str(conn.alias), str(conn.vendor), statement_kind(sql))
                self.queries.labels(*key).inc()
                self.duration.labels(*key).observe(elapsed)
                if error is not None:
                    self.errors.labels(*key, type(error).__name__).inc()
            except Exception:
                # The error policy, entered only on failure (a query is a hot path).
                with shielded(self._self_metrics, "django_db_queries"):
                    raise


_wrapper: QueryMetrics | None = None


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    if _wrapper is not None:
        _add(connection, _wrapper)


def _add(connection: Any, wrapper: QueryMetrics) -> None:
    wrappers = connection.execute_wrappers
    if wrapper not in wrappers:
        # First in the list, so it times the other wrappers' work too.
        wrappers.insert(0, wrapper)


def install(registry: Registry | None = None) -> QueryMetrics:
    """Add the query wrapper to every current connection and to every future one
    (idempotent). Called by the app's ``ready()`` unless ``METERHUB["DATABASE"]`` is off.
    """
    global _wrapper
    from django.db import connections
    from django.db.backends.signals import connection_created

    if _wrapper is None:
        _wrapper = QueryMetrics(registry)
    connection_created.connect(_on_connection_created, dispatch_uid="meterhub.db", weak=False)
    for conn in connections.all(initialized_only=True):
        _add(conn, _wrapper)
    return _wrapper


def uninstall() -> None:
    """Remove the wrapper from the current thread's connections and stop adding it."""
    global _wrapper
    from django.db import connections
    from django.db.backends.signals import connection_created

    connection_created.disconnect(dispatch_uid="meterhub.db")
    if _wrapper is not None:
        for conn in connections.all(initialized_only=True):
            while _wrapper in conn.execute_wrappers:
                conn.execute_wrappers.remove(_wrapper)
    _wrapper = None
