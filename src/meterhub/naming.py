"""Prometheus naming rules and the PII guard, checked at definition time.

Every check raises :class:`~meterhub.errors.DefinitionError` (a ``ValueError``) whose
message names the metric and the rule that was broken.

Metric and label names may be any non-empty UTF-8 text, as Prometheus 3 and
prometheus_client accept them (``http.server.duration``). Names outside the legacy grammar
(``[a-zA-Z_:][a-zA-Z0-9_:]*``; no ``:`` in label names) are escaped when rendered, per the
scheme the scraper negotiated (:mod:`meterhub.exposition.escaping`): a Prometheus 2
scraper sees ``http_server_duration``; the multi-process store keeps such names as they
are, like any other. Label names starting with ``__`` stay reserved.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from ._config import DEFAULT_PII_DENY, get_config, on_config_change, update
from .errors import DefinitionError

__all__ = [
    "DEFAULT_PII_LABELS",
    "PII_SETTINGS",
    "build_name",
    "disable_legacy_validation",
    "enable_legacy_validation",
    "is_legacy_label_name",
    "is_legacy_metric_name",
    "is_pii_name",
    "pii_match",
    "pii_tokens",
    "validate_label_names",
    "validate_metric_name",
]

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

DEFAULT_PII_LABELS = DEFAULT_PII_DENY
"""The default PII deny-list (defined, with the matching rule, in ``meterhub._config``)."""

PII_SETTINGS = "METERHUB_PII_ALLOW / METERHUB_PII_DENY (configure(pii_allow=..., pii_deny=...))"
"""The settings that change the PII guard, named in every refusal."""

KNOWN_CLEAN_NAMES: set[str] = set()
"""Names already checked and found not to be on the deny-list: a cache for hot paths
(operation-log metadata keys). It is never rebound, only emptied when the configuration
changes, so a reference to it stays valid. Fill it with :func:`remember_clean_name`."""
_CLEAN_NAMES_MAX = 4096

# Suffixes a metric's own samples use; a user name ending in one would collide.
_RESERVED_SUFFIXES = {
    "counter": ("_created",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
}

# lower->Upper ("userId") and ACRONYM->Word ("APIKey", "IPAddress") boundaries
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[\W_]+")
# one-word entries also refused at the end of a longer token ("accesstoken"), and at its
# start when what follows qualifies them ("tokenid", "emailaddress"): "secretary" and
# "tokenizer" are ordinary words
_AFFIX_WORDS = ("email", "password", "passwd", "secret", "token")
_QUALIFIERS = frozenset(
    {"s", "id", "ids", "key", "keys", "hash", "address", "addr", "value", "val", "str",
     "string", "text", "raw", "digest", "salt", "plain", "list", "name", "data"}
)  # fmt: skip


def pii_tokens(name: str) -> tuple[str, ...]:
    """*name* split into the tokens the PII guard compares.

    NFKC (fullwidth letters become ASCII), invisible characters (soft hyphen, zero-width
    space/joiners, BOM: Unicode category ``Cf``) removed, camelCase split, case folded,
    and every run of non-alphanumeric characters (``-``, ``_``, ``.``, spaces) a separator.

    Example::

        >>> pii_tokens("User-Email"), pii_tokens("apiKey"), pii_tokens("\uff45\uff4d\uff41il ")
        (('user', 'email'), ('api', 'key'), ('email',))
    """
    if not name.isascii():
        name = unicodedata.normalize("NFKC", name)
        name = "".join(c for c in name if unicodedata.category(c) != "Cf")
    return tuple(t for t in _SEPARATORS.split(_CAMEL.sub(" ", name).casefold()) if t)


def _qualifies(rest: str, words: dict[str, str]) -> bool:
    """Whether *rest*, what follows a deny-listed word inside one token, makes it PII."""
    return rest in _QUALIFIERS or rest in words or _singular(rest) in words


def _singular(token: str) -> str:
    return token[:-1] if len(token) >= 3 and token.endswith("s") else token


class _PiiMatcher:
    """The compiled deny- and allow-lists of one configuration."""

    def __init__(self, deny: frozenset[str], allow: frozenset[str]) -> None:
        self.deny, self.allow_src = deny, allow
        self.words: dict[str, str] = {}
        self.seqs: dict[tuple[str, ...], str] = {}
        for entry in deny:
            tokens = pii_tokens(entry)
            if len(tokens) == 1:
                self.words[tokens[0]] = entry
            elif tokens:
                self.seqs[tokens] = entry
                self.words.setdefault("".join(tokens), entry)  # "apikey", "userid"
        self.affixes = tuple(w for w in _AFFIX_WORDS if w in self.words)
        self.lengths = sorted({len(t) for t in self.seqs})
        self.allow = frozenset(pii_tokens(a) for a in allow)

    def match(self, name: str) -> str | None:
        tokens = pii_tokens(name)
        if tokens in self.allow:
            return None
        words = self.words
        for t in tokens:
            entry = words.get(t) or words.get(_singular(t))
            if entry is not None:
                return entry
            for w in self.affixes:
                if t.endswith(w) or (t.startswith(w) and _qualifies(t[len(w) :], words)):
                    return words[w]
        for a, b in itertools.pairwise(tokens):  # a word split by its capitals: "PassWord"
            entry = words.get(a + b) or words.get(_singular(a + b))
            if entry is not None:
                return entry
        if self.seqs:
            singular = tuple(_singular(t) for t in tokens)
            for n in self.lengths:
                for i in range(len(tokens) - n + 1):
                    entry = self.seqs.get(tokens[i : i + n]) or self.seqs.get(singular[i : i + n])
                    if entry is not None:
                        return entry
        return None


_matcher: _PiiMatcher | None = None


def _pii_matcher() -> _PiiMatcher:
    global _matcher
    m = _matcher
    cfg = get_config()
    if m is None or m.deny is not cfg.pii_deny or m.allow_src is not cfg.pii_allow:
        m = _matcher = _PiiMatcher(cfg.pii_deny, cfg.pii_allow)
    return m


def _config_changed() -> None:
    global _matcher
    _matcher = None
    KNOWN_CLEAN_NAMES.clear()


on_config_change(_config_changed)


def pii_match(name: str) -> str | None:
    """The deny-list entry *name* matches (``None``: it passes the PII guard).

    Example::

        >>> pii_match("user_email"), pii_match("Access-Token"), pii_match("user id")
        ('email', 'token', 'user id')
        >>> pii_match("name"), pii_match("key_type"), pii_match("user")
        (None, None, None)
    """
    return _pii_matcher().match(name)


def is_pii_name(name: str) -> bool:
    """True if the PII guard refuses *name* (see ``meterhub._config.DEFAULT_PII_DENY``).

    Example::

        >>> is_pii_name("User-ID"), is_pii_name("userId"), is_pii_name("status")
        (True, True, False)
    """
    return _pii_matcher().match(name) is not None


def set_pii_labels(names: Iterable[str]) -> None:
    """Replace the PII deny-list (the same as ``configure(pii_deny=names)``, other settings
    kept); ``meterhub.reset_defaults()`` puts the default back."""
    update(pii_deny=frozenset(names))


def remember_clean_name(name: str) -> bool:
    """Whether *name* is clean (passes the PII guard); clean names are cached (bounded)."""
    if name in KNOWN_CLEAN_NAMES:
        return True
    matcher = _pii_matcher()
    if matcher.match(name) is not None:
        return False
    # Not cached if the configuration changed meanwhile: the check used the old one.
    if len(KNOWN_CLEAN_NAMES) < _CLEAN_NAMES_MAX and matcher is _matcher:
        KNOWN_CLEAN_NAMES.add(name)
    return True


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
        entry = pii_match(label) if check_pii else None
        if entry is not None:
            raise DefinitionError(
                f"metric {metric!r}: label name {label!r} is on the PII deny-list (it matches "
                f"{entry!r}; personal data, secrets and unbounded ids must not become labels; "
                f"rename it, or change {PII_SETTINGS})"
            )
        seen.add(label)
    return names
