"""Metric definition: the machinery behind the six types of :mod:`meterhub.metrics`.

Internal: import the types from :mod:`meterhub.metrics` (or :mod:`meterhub`). The modules
here may use each other's names freely; nothing outside this package imports them except
``metrics.py`` (the public home of the types) and, for :class:`~.scope.Scope`-based
decorators, ``component.py`` and ``oplog/track.py``:

* :mod:`.base` - the parent/child machinery shared by every type (``MetricBase``,
  ``Child``): definition, ``labels()``, the series cap, switches, ``collect(options)``.
* :mod:`.distributions` - ``Histogram`` and ``Summary`` and their children.
* :mod:`.states` - ``Info`` and ``Enum`` and their children.
* :mod:`.values` - checking numbers and exemplars on the recording slow path.
* :mod:`.scope` - the one context manager and decorator (sync and async) behind
  ``time()``, ``count_exceptions()`` and ``track_inprogress()``.
"""
