"""The multi-process store: one memory-mapped file per process, merged on collection.

Public here: :class:`MultiProcessStore` (``Registry(store=MultiProcessStore(path))``).
What users call on a directory (:func:`~meterhub.multiprocess.mark_process_dead`,
:class:`~meterhub.multiprocess.MultiProcessCollector`, ...) is public in
:mod:`meterhub.multiprocess`. The modules of this package are internal; their names say
what each holds:

* :mod:`.store` - :class:`MultiProcessStore`: this process's file, its cells and
  exemplars, repairs, fork handling, self-metrics; its docstring documents the binary
  layout, the merge rules and the fault contract.
* :mod:`.format` - the file format: constants, record keys, the segment writer.
* :mod:`.view` - the read side of the format: a read-only, incrementally indexed view.
* :mod:`.directory` - the directory: file naming, process liveness, locking, compaction.
* :mod:`.reader` - a reader's cached view of the directory: which files to merge now.
* :mod:`.merge` - how one metric is merged across files.
* :mod:`.collector` - the directory collector (``MultiProcessCollector``,
  ``collect_directory``) and the families a multi-process registry adds to its own.
"""

from __future__ import annotations

from .store import MultiProcessStore

__all__ = ["MultiProcessStore"]
