"""The logic behind the command-line tools, without the CLI's own dependencies.

* :mod:`.top` - reading a source (URL, file, multi-process directory), rates between two
  snapshots and ``histogram_quantile`` as PromQL computes it (``meterhub top``).
* :mod:`.lint` - checking exposition text or families against naming and cardinality
  rules (``meterhub lint``).

The ``meterhub`` command (:mod:`meterhub.cli`, the ``cli`` extra) renders what these compute.
"""
