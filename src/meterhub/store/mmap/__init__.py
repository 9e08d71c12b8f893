"""The multi-process store: one memory-mapped file per process, merged on collection.

Public here: :class:`MultiProcessStore` (``Registry(store=MultiProcessStore(path))``).
What users call on a directory (:func:`~meterhub.multiprocess.mark_process_dead`,
:class:`~meterhub.multiprocess.MultiProcessCollector`, ...) is public in
:mod:`meterhub.multiprocess`. The modules of this package are internal; their names say
what each holds:

* :mod:`.store` - :class:`MultiProcessStore`: this process's file, its cells and
  exemplars, repairs, fork handling (the contract: below).
* :mod:`.format` - the file format (its docstring: the binary layout): constants, record
  keys, the segment writer.
* :mod:`.view` - the read side of the format: a read-only, incrementally indexed view.
* :mod:`.directory` - the directory: file naming, process liveness, locking, compaction.
* :mod:`.reader` - a reader's cached view of the directory: which files to merge now.
* :mod:`.selfmetrics` - the ``meterhub_multiprocess_*`` families.
* :mod:`.merge` - how one metric is merged across files (its docstring: the rules).
* :mod:`.collector` - the directory collector (``MultiProcessCollector``,
  ``collect_directory``) and the families a multi-process registry adds to its own.

Faults (the contract; tests/test_multiprocess_faults.py)
--------------------------------------------------------
* Readers never map another process's file: each collection copies every file with
  ``pread`` (what prometheus_client's reader does too), so a file truncated under a
  long-lived collector cannot fault (SIGBUS) it. A file whose header changed (zero-filled,
  overwritten), that holds fewer bytes than its header claims (truncated), whose record
  end went backwards or whose first record changed is damaged: moved into ``corrupt/``
  and counted in ``meterhub_multiprocess_files_corrupt_total``.
* A file the collector cannot open or read (another user's, umask 077, an I/O error) is
  skipped and counted in ``meterhub_multiprocess_files_unreadable`` (a gauge: the last
  collection); a dead one is left in place and compaction merges the others all the same.
  A damaged file the collector may not move aside is skipped and counted there too.
* Full disk (or file size limit, or any failed ``open``/``fallocate``/``mmap``): a series
  that cannot get a cell in the file records into a process-local cell, is counted once
  in ``meterhub_errors_total{reason="multiprocess_file_full"}`` and shows in the
  ``meterhub_multiprocess_series_pending`` gauge; at the next series creation or
  collection in this process (the textfile flusher collects too) after space is back it
  moves into the file, carrying everything it recorded meanwhile (the move loses no
  update of a racing thread: :func:`meterhub._definition.child.move_cell`). A removal that finds no
  room is written before any later record. Exemplars that find no room are dropped and
  counted (``reason="multiprocess_exemplar_dropped"``). Not collected while they wait:
  the pending series' values; lost: what a process that exits before space is back held
  in pending series.
* The writer's own file: at each series creation (size, header) and collection (also:
  is it still in the directory under its name?) the writer checks its file. Truncated,
  it is grown back at once, so its cells never fault from then on; truncated or
  overwritten, its series move into a new file (the old one is moved aside first, so
  readers never count both) and each is counted in ``meterhub_errors_total{reason=
  "multiprocess_file_damaged"}``: values the damage destroyed are lost, the rest (a
  truncation keeps the pages before it) are carried over. Moved away intact (a reader
  quarantined it), the series move into a new file with nothing lost. What remains: a
  recording into pages truncated away *before* the next check is a SIGBUS, as with any
  memory-mapped store (prometheus_client's too) - truncating a live process's file is
  the one fault recording cannot survive, because ``cell[i] += x`` stays a plain store.
* Compaction failing (``rename``, ``fsync``, ``unlink``, no room for the archive) leaves
  the previous state readable (steps in :mod:`.directory`); a reader retries once the set
  of dead files changes, ``compact_directory`` and ``mark_process_dead`` at once.

Fork: an at-fork hook (:mod:`meterhub._forksafe`, after every lock of meterhub was
renewed) gives the child a fresh store state; every metric that uses the store (they
register with :meth:`MultiProcessStore.track`) then re-fetches its children's cells
(``MetricBase.reattach_cells``), which creates them, zeroed, in the child's own file. The
parent's cells are never written by the child. A fork that bypassed Python's hooks is
noticed by pid where series are created and where the directory is read: the same
repair then runs late, and ``meterhub_multiprocess_forks_undetected_total`` (a counter
in the child's own file, so every collector sees it) counts it. Increments the child
made before that went into its parent's file; concurrent ones can be lost there.
"""

from __future__ import annotations

from .store import MultiProcessStore

__all__ = ["MultiProcessStore"]
