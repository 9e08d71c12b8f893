"""meterhub's exceptions, in one hierarchy::

    MeterhubError
     ├── DefinitionError (ValueError)   a metric/rule defined wrongly: bad name, label, buckets,
     │    │                             conflicting re-declaration, PII label name
     │    └── DuplicateTimeseries       two collectors of a registry expose one name
     ├── RecordingError (ValueError)    a bad value at run time (negative counter increment,
     │                                  wrong label count, NaN); raised only in strict mode,
     │    │                             otherwise logged once and counted in meterhub_errors_total
     │    └── LabelValueError (TypeError) a label value str() cannot turn into text
     ├── ParseError (ValueError)        exposition text that is not the Prometheus text format
     ├── QueueFullError                 the operation log's buffer is full (policy "raise")
     └── ExportError (OSError)          a delivery failed: Pushgateway, textfile, HTTP
          └── PushgatewayError

Definition errors always raise. Recording errors never reach business code unless
``METERHUB_STRICT`` is on. Exports that the caller asked for explicitly (a push, a
``write_to_textfile``) raise; background flushers count and log instead.
"""

from __future__ import annotations

__all__ = [
    "DefinitionError",
    "DuplicateTimeseries",
    "ExportError",
    "MeterhubError",
    "ParseError",
    "PushgatewayError",
    "QueueFullError",
    "LabelValueError",
    "RecordingError",
]


class MeterhubError(Exception):
    """Base class of every exception meterhub raises on purpose."""


class DefinitionError(MeterhubError, ValueError):
    """A metric, label or rule was defined wrongly. The message names the metric and the rule."""


class DuplicateTimeseries(DefinitionError):
    """Two collectors of one registry expose a sample name (prometheus_client's name)."""


class RecordingError(MeterhubError, ValueError):
    """A value could not be recorded (raised in strict mode only)."""


class LabelValueError(RecordingError, TypeError):
    """A label value that ``str()`` cannot turn into text (strict mode only); also a
    ``TypeError``, which prometheus_client raises there."""


class ParseError(MeterhubError, ValueError):
    """Exposition text could not be parsed; the message names the line."""


class QueueFullError(MeterhubError):
    """A bounded buffer was full and its policy is ``"raise"``."""


class ExportError(MeterhubError, OSError):
    """A delivery to the outside (file, gateway, socket) failed."""


class PushgatewayError(ExportError):
    """A Pushgateway request failed; the message names the URL and the HTTP status."""

    def __init__(self, message: str, url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
