"""Prometheus naming rules and the PII deny-list, checked at definition time.

Every check raises :class:`~meterhub.errors.DefinitionError` (a ``ValueError``) whose
message names the metric and the rule that was broken.

Metric and label names may be any non-empty UTF-8 text, as Prometheus 3 and
prometheus_client accept them (``http.server.duration``). Names outside the legacy grammar
(``[a-zA-Z_:][a-zA-Z0-9_:]*``; no ``:`` in label names) are escaped when rendered, per the
scheme the scraper negotiated (:mod:`meterhub.exposition.escaping`): a Prometheus 2
scraper sees ``http_server_duration``. The multi-process store keeps to the legacy
grammar. Label names starting with ``__`` stay reserved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from ._config import get_config, update
from .errors import DefinitionError

__all__ = [
    "DEFAULT_PII_LABELS",
    "build_name",
    "disable_legacy_validation",
    "enable_legacy_validation",
    "is_legacy_label_name",
    "is_legacy_metric_name",
    "is_pii_name",
    "validate_label_names",
    "validate_metric_name",
]

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

DEFAULT_PII_LABELS: frozenset[str] = frozenset(
    {
        "email",
        "name",
        "username",
        "password",
        "token",
        "key",
        "secret",
        "apikey",
        "userid",
        "clientid",
        "sessionid",
    }
)
"""Label names (and operation-metadata keys) refused as likely personal data or secrets.

Compared after lower-casing and removing ``-`` and ``_``: ``User_ID``, ``user-id`` and
``userId`` all match ``userid``. Extend or replace it with :func:`set_pii_labels`.
"""

_pii_labels = DEFAULT_PII_LABELS

KNOWN_CLEAN_NAMES: set[str] = set()
"""Names already checked and found not to be on the deny-list: a cache for hot paths
(operation-log metadata keys). It is never rebound, only emptied when the deny-list is
replaced, so a reference to it stays valid. Fill it with :func:`remember_clean_name`."""
_CLEAN_NAMES_MAX = 4096

# Suffixes a metric's own samples use; a user name ending in one would collide.
_RESERVED_SUFFIXES = {
    "counter": ("_created",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
}


def set_pii_labels(names: Iterable[str]) -> None:
    """Replace the PII deny-list (names are normalised the same way as label names)."""
    global _pii_labels
    _pii_labels = frozenset(_normalise(n) for n in names)
    KNOWN_CLEAN_NAMES.clear()


def remember_clean_name(name: str) -> bool:
    """Whether *name* is clean (not on the deny-list); clean names are cached (bounded)."""
    if name in KNOWN_CLEAN_NAMES:
        return True
    deny = _pii_labels
    if _normalise(name) in deny:
        return False
    # Not cached if the deny-list was replaced meanwhile: the check used the old one.
    if len(KNOWN_CLEAN_NAMES) < _CLEAN_NAMES_MAX and deny is _pii_labels:
        KNOWN_CLEAN_NAMES.add(name)
    return True


def _normalise(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def is_pii_name(name: str) -> bool:
    """True if *name* is on the PII deny-list (case and ``-``/``_`` variants included).

    Example::

        >>> is_pii_name("User-ID"), is_pii_name("status")
        (True, False)
    """
    return _normalise(name) in _pii_labels


def is_legacy_metric_name(name: str) -> bool:
    """Whether *name* needs no escaping: it matches ``[a-zA-Z_:][a-zA-Z0-9_:]*``.

    Example::

        >>> is_legacy_metric_name("http_requests"), is_legacy_metric_name("http.requests")
        (True, False)
    """
    return METRIC_NAME_RE.match(name) is not None


def is_legacy_label_name(name: str) -> bool:
    """Whether label *name* needs no escaping: it matches ``[a-zA-Z_][a-zA-Z0-9_]*``."""
    return LABEL_NAME_RE.match(name) is not None


def enable_legacy_validation() -> None:
    """Refuse names outside the legacy grammar from now on (``legacy_names=True``;
    prometheus_client's function of the same name)."""
    update(legacy_names=True)


def disable_legacy_validation() -> None:
    """Accept UTF-8 names again (the default)."""
    update(legacy_names=False)


def _utf8(name: str) -> bool:
    if get_config().legacy_names:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def validate_metric_name(name: object, what: str = "metric") -> str:
    """Return *name* if it is a valid metric name (non-empty UTF-8 text), else raise."""
    if not isinstance(name, str):
        raise DefinitionError(f"{what} name must be a str, got {type(name).__name__}: {name!r}")
    if not name or not (METRIC_NAME_RE.match(name) or _utf8(name)):
        raise DefinitionError(f"{what} {name!r}: invalid metric name (must be non-empty UTF-8)")
    return name


def build_name(
    name: object, namespace: str = "", subsystem: str = "", unit: str = "", kind: str = ""
) -> str:
    """Join namespace, subsystem, name and unit the way prometheus_client does.

    A counter's ``_total`` suffix is dropped (it is added back when rendering), and
    the unit is appended unless the name already ends with it.

    Example::

        >>> build_name("request_duration", namespace="shop", unit="seconds", kind="histogram")
        'shop_request_duration_seconds'
        >>> build_name("jobs_total", kind="counter")
        'jobs'
    """
    if not isinstance(name, str) or not name:
        raise DefinitionError(f"metric name must be a non-empty str, got {name!r}")
    for part, label in ((namespace, "namespace"), (subsystem, "subsystem"), (unit, "unit")):
        if not isinstance(part, str):
            raise DefinitionError(f"metric {name!r}: {label} must be a str, got {part!r}")
    full = "_".join(p for p in (namespace, subsystem, name) if p)
    if kind == "counter" and full.endswith("_total"):
        full = full[: -len("_total")]
    if unit:
        if not LABEL_NAME_RE.match(unit):
            raise DefinitionError(f"metric {full!r}: invalid unit {unit!r}")
        if not full.endswith("_" + unit):
            full = f"{full}_{unit}"
    if kind == "info" and full.endswith("_info"):
        full = full[: -len("_info")]
    validate_metric_name(full)
    for suffix in _RESERVED_SUFFIXES.get(kind, ()):
        if full.endswith(suffix):
            raise DefinitionError(
                f"metric {full!r}: a {kind} name must not end with {suffix!r} "
                "(meterhub adds that suffix to its own samples)"
            )
    return full


def validate_label_names(
    metric: str, labelnames: Any, reserved: Sequence[str] = (), check_pii: bool = True
) -> tuple[str, ...]:
    """Validate and return *labelnames* as a tuple of str.

    Refuses non-strings, names outside the grammar, the reserved ``__`` prefix, names the
    metric type uses itself (*reserved*, e.g. ``le``), duplicates and PII names.
    """
    if isinstance(labelnames, str):
        raise DefinitionError(
            f"metric {metric!r}: labelnames must be a sequence of str, not a single str "
            f"({labelnames!r}); write ({labelnames!r},)"
        )
    try:
        names: tuple[Any, ...] = tuple(labelnames)
    except TypeError:
        raise DefinitionError(
            f"metric {metric!r}: labelnames must be a sequence of str, got {labelnames!r}"
        ) from None
    seen: set[str] = set()
    for label in names:
        if not isinstance(label, str):
            raise DefinitionError(f"metric {metric!r}: label name {label!r} is not a str")
        if not label or not (LABEL_NAME_RE.match(label) or _utf8(label)):
            raise DefinitionError(
                f"metric {metric!r}: invalid label name {label!r} (must be non-empty UTF-8)"
            )
        if label.startswith("__"):
            raise DefinitionError(
                f"metric {metric!r}: label name {label!r} uses the reserved '__' prefix"
            )
        if label in reserved:
            raise DefinitionError(
                f"metric {metric!r}: label name {label!r} is reserved for this metric type"
            )
        if label in seen:
            raise DefinitionError(f"metric {metric!r}: duplicate label name {label!r}")
        if check_pii and is_pii_name(label):
            raise DefinitionError(
                f"metric {metric!r}: label name {label!r} is on the PII deny-list "
                "(personal data and secrets must not become labels)"
            )
        seen.add(label)
    return names
