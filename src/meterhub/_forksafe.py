"""Fork safety: locks a forked child must not inherit, and forks Python never saw.

A child forked while another thread holds a lock (a metric creating a series, the
registry registering a collector, the multi-process store growing its file) inherits
that lock *held*, by a thread that does not exist in the child: its first ``labels()``
on a new series would wait forever. Every object with such a lock registers here
(:func:`renew_locks_after_fork`); an ``os.register_at_fork`` hook gives each of them
fresh locks in the child, before any other meterhub hook runs (the multi-process store
re-attaches its metrics afterwards, see :mod:`meterhub.store.mmap`).

A fork at C level that bypasses Python's at-fork hooks (uWSGI without
``py-call-osafterfork``, some embedding servers) runs none of this. Such a child is
recognised by its pid where that is cheap - series creation, collection, the flushers
(never on ``inc()``/``observe()``) - and :func:`check_pid` then does what the hooks
would have done, late, and counts it in ``meterhub_errors_total{reason="fork_undetected"}``
(and, in multi-process mode, in the directory-wide
``meterhub_multiprocess_forks_undetected_total``).

Example::

    >>> import threading
    >>> class Cache:
    ...     def __init__(self) -> None:
    ...         self._lock = threading.Lock()
    ...         renew_locks_after_fork(self)
    ...     def _renew_locks(self) -> None:
    ...         self._lock = threading.Lock()
    >>> cache = Cache()
    >>> check_pid()  # False: this process was not forked behind Python's back
    False
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["after_fork_hook", "check_pid", "forks_undetected", "renew_locks_after_fork"]

_holders: weakref.WeakSet[Any] = weakref.WeakSet()
_hooks: list[Callable[[bool], None]] = []
_pid = os.getpid()
_undetected = 0
_repair = threading.Lock()


def renew_locks_after_fork(obj: Any) -> None:
    """Call ``obj._renew_locks()`` in every forked child (*obj* is held weakly)."""
    _holders.add(obj)


def after_fork_hook(hook: Callable[[bool], None]) -> None:
    """Run ``hook(late)`` in a forked child after the locks are renewed; *late* is true
    when the fork was only noticed afterwards by :func:`check_pid`."""
    _hooks.append(hook)


def forks_undetected() -> int:
    """How many forks this process noticed late (by pid, without Python's hooks)."""
    return _undetected


def _renew_all() -> None:
    global _repair
    _repair = threading.Lock()
    for obj in list(_holders):
        obj._renew_locks()


def _in_child(late: bool) -> None:
    global _pid
    _pid = os.getpid()
    _renew_all()
    for hook in list(_hooks):
        hook(late)


def check_pid() -> bool:
    """True (once) if this process is a child forked without Python's at-fork hooks; the
    child is then repaired (fresh locks, its own multi-process file) and the fork counted.

    Cheap (one ``getpid``); called where series are created and where metrics are collected.
    """
    if os.getpid() == _pid:
        return False
    global _undetected
    with _repair:
        if os.getpid() == _pid:  # another thread repaired it meanwhile
            return False
        _undetected += 1
        _in_child(late=True)
    return True


os.register_at_fork(after_in_child=lambda: _in_child(late=False))
