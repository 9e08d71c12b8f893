"""``labels(a=.., b=..)`` at the cost of a positional call.

A method taking ``**labelkwargs`` makes CPython build a dict on every keyword call, and
the key of the child must then be read out of it again: about twice a positional call. A
function whose parameters *are* the label names receives them as locals instead, so each
metric whose label names are plain identifiers gets one, generated from its names (as
``collections.namedtuple`` and ``dataclasses`` generate their methods). It only finds
existing children; anything else (a new series, a missing, extra or mixed name, a value
that is not a ``str``) goes to the metric's one slow path, so errors, conversions, the
series cap and switches stay where they are.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from typing import Any

__all__ = ["keyword_labels"]

_MISSING: Any = object()
# names the generated function uses itself; a label called so keeps the general method
_RESERVED = frozenset({"_mh_values", "_mh_extra", "_mh_get", "_mh_slow", "_MISSING"})


def keyword_labels(
    names: tuple[str, ...],
    children: dict[tuple[str, ...], Any],
    slow: Callable[[tuple[Any, ...], dict[str, Any]], Any],
) -> Callable[..., Any] | None:
    """A ``labels(*values, name1=.., name2=..)`` for *names* finding children in
    *children*, else calling ``slow(values, kwargs)``; ``None`` when a name cannot be a
    Python parameter (``http.method``, ``class``), which keeps the general method.

    Example::

        >>> found = {("GET", "200"): "the child"}
        >>> labels = keyword_labels(("method", "code"), found, lambda v, kw: ("slow", v, kw))
        >>> labels(method="GET", code="200"), labels("GET", "200")
        ('the child', 'the child')
        >>> labels(method="GET")
        ('slow', (), {'method': 'GET'})
    """
    if not names or any(
        not n.isidentifier() or keyword.iskeyword(n) or n in _RESERVED for n in names
    ):
        return None
    params = ", ".join(f"{n}=_MISSING" for n in names)
    given = " and ".join(f"{n} is _MISSING" for n in names)
    key = "".join(f"{n}, " for n in names)
    passed = ", ".join(f"({n!r}, {n})" for n in names)
    source = f"""
def labels(*_mh_values, {params}, **_mh_extra):
    try:
        if _mh_extra:
            child = None
        elif not _mh_values:
            child = _mh_get(({key}))
        elif {given}:
            child = _mh_get(_mh_values)
        else:
            child = None
    except TypeError:  # an unhashable value: the slow path converts it to str
        child = None
    if child is not None:
        return child
    kwargs = {{k: v for k, v in ({passed},) if v is not _MISSING}}
    kwargs.update(_mh_extra)
    return _mh_slow(_mh_values, kwargs)
"""
    scope: dict[str, Any] = {"_MISSING": _MISSING, "_mh_get": children.get, "_mh_slow": slow}
    exec(source, scope)
    function: Callable[..., Any] = scope["labels"]
    return function
