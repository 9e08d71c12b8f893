"""Event → metric rules: their definition, validation and the YAML file format.

A :class:`Rule` says "when event *event_type* happens, update metric *metric*": a counter
increment (by 1, or by the payload field *value*), a histogram observation of the payload
field *value*, or a gauge set to it. Label names are fixed per rule; each label value is
read from the payload field of the same name, falling back to the label's default.

The rules file (``EventRouter.from_file``) has this shape::

    max_per_minute: 60000          # optional, router-wide rate limit per event type
    events:
      user_logged_in:
        - counter: user_logins_total
          help: User logins by method and account type.
          labels: {auth_method: unknown, account_type: normal}
      game_completed:
        - counter: games_completed_total
          labels: {game_mode: unknown, result: unknown}
        - histogram: game_duration_seconds
          value: duration          # the payload field observed
          default: 0.0             # observed when the field is missing (else: skipped)
          buckets: [1, 10, 60, 600]
          labels: {game_mode: unknown}
          switch: games            # optional named switch
          max_per_minute: 1000     # optional: limits the whole event type

A mistake raises :class:`~meterhub.errors.DefinitionError` naming the file, the rule
(``events.game_completed[1]``) and the field.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DefinitionError
from ..naming import is_pii_name

__all__ = ["Rule", "RuleKind", "load_rules_file", "parse_rules"]

_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_RULE_KEYS = frozenset(
    {"counter", "histogram", "gauge", "help", "labels", "value", "default", "buckets"}
    | {"switch", "max_per_minute"}
)


class RuleKind(enum.Enum):
    """What a rule does to its metric."""

    COUNTER = "counter"
    HISTOGRAM = "histogram"
    GAUGE = "gauge"


@dataclass(frozen=True)
class Rule:
    """One event → metric update.

    Example::

        >>> r = Rule("user_logged_in", RuleKind.COUNTER, "user_logins_total",
        ...          labels={"auth_method": "unknown", "account_type": "normal"})
        >>> r.labelnames
        ('auth_method', 'account_type')
    """

    event_type: str
    kind: RuleKind
    metric: str
    labels: Mapping[str, str] = field(default_factory=dict)
    value: str | None = None
    default: float | None = None
    help: str | None = None
    buckets: tuple[float, ...] | None = None
    switch: str | None = None
    max_per_minute: int | None = None
    where: str = ""  # "file, rule" prefix for error messages

    def __post_init__(self) -> None:
        where = self.where or f"rule for event {self.event_type!r}"
        if not isinstance(self.event_type, str) or not self.event_type:
            raise DefinitionError(f"{where}: event type must be a non-empty str")
        if not isinstance(self.kind, RuleKind):
            raise DefinitionError(f"{where}: kind must be a RuleKind, got {self.kind!r}")
        if not isinstance(self.metric, str) or not _METRIC_RE.match(self.metric):
            raise DefinitionError(
                f"{where}, field {self.kind.value!r}: invalid metric name {self.metric!r}"
            )
        if not isinstance(self.labels, Mapping):
            raise DefinitionError(f"{where}, field 'labels': expected a mapping of name: default")
        for name, default in self.labels.items():
            if not isinstance(name, str) or not _LABEL_RE.match(name) or name.startswith("__"):
                raise DefinitionError(f"{where}, field 'labels': invalid label name {name!r}")
            if is_pii_name(name):
                raise DefinitionError(
                    f"{where}, field 'labels': label {name!r} is on the PII deny-list "
                    "(store it with the event instead; it never becomes a label)"
                )
            if not isinstance(default, (str, int, float, bool)):
                raise DefinitionError(
                    f"{where}, field 'labels': default of {name!r} must be a scalar, "
                    f"got {default!r}"
                )
        object.__setattr__(self, "labels", {k: str(v) for k, v in self.labels.items()})
        if self.value is not None and (not isinstance(self.value, str) or not self.value):
            raise DefinitionError(f"{where}, field 'value': expected a payload field name")
        if self.kind is not RuleKind.COUNTER and self.value is None:
            raise DefinitionError(
                f"{where}, field 'value': a {self.kind.value} rule needs the payload field "
                "to record"
            )
        if self.default is not None and (
            isinstance(self.default, bool)
            or not isinstance(self.default, (int, float))
            or math.isnan(self.default)
        ):
            raise DefinitionError(f"{where}, field 'default': expected a number")
        if self.help is not None and not isinstance(self.help, str):
            raise DefinitionError(f"{where}, field 'help': expected a str")
        if self.buckets is not None:
            if self.kind is not RuleKind.HISTOGRAM:
                raise DefinitionError(f"{where}, field 'buckets': only histogram rules have them")
            ok = isinstance(self.buckets, Sequence) and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) for b in self.buckets
            )
            if not ok or not self.buckets:
                raise DefinitionError(f"{where}, field 'buckets': expected a list of numbers")
            object.__setattr__(self, "buckets", tuple(float(b) for b in self.buckets))
        if self.switch is not None and (not isinstance(self.switch, str) or not self.switch):
            raise DefinitionError(f"{where}, field 'switch': expected a non-empty str")
        check_limit(self.max_per_minute, f"{where}, field 'max_per_minute'")

    @property
    def labelnames(self) -> tuple[str, ...]:
        return tuple(self.labels)


def check_limit(value: Any, where: str) -> None:
    """Refuse a rate limit that is not a positive int (None: no limit)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise DefinitionError(f"{where}: expected a positive int, got {value!r}")


def parse_rules(doc: Any, source: str = "<rules>") -> tuple[list[Rule], int | None]:
    """Validate a parsed rules document; return ``(rules, router-wide max_per_minute)``.

    Example::

        >>> rules, limit = parse_rules({"events": {"login": [{"counter": "logins_total"}]}})
        >>> rules[0].metric, limit
        ('logins_total', None)
    """
    if not isinstance(doc, Mapping):
        raise DefinitionError(f"{source}: the top level must be a mapping with an 'events' key")
    unknown = set(doc) - {"events", "max_per_minute"}
    if unknown:
        raise DefinitionError(f"{source}: unknown top-level key(s) {sorted(map(str, unknown))}")
    limit = doc.get("max_per_minute")
    check_limit(limit, f"{source}, field 'max_per_minute'")
    events = doc.get("events")
    if not isinstance(events, Mapping) or not events:
        raise DefinitionError(f"{source}: 'events' must be a non-empty mapping of event types")
    rules: list[Rule] = []
    for event_type, entries in events.items():
        if not isinstance(event_type, str) or not event_type:
            raise DefinitionError(f"{source}: event type {event_type!r} must be a non-empty str")
        if isinstance(entries, Mapping):
            entries = [entries]
        if not isinstance(entries, list) or not entries:
            raise DefinitionError(
                f"{source}, events.{event_type}: expected a non-empty list of rules"
            )
        for i, entry in enumerate(entries):
            rules.append(_parse_rule(event_type, entry, f"{source}, rule events.{event_type}[{i}]"))
    return rules, limit


def _parse_rule(event_type: str, entry: Any, where: str) -> Rule:
    if not isinstance(entry, Mapping):
        raise DefinitionError(f"{where}: expected a mapping, got {entry!r}")
    unknown = set(entry) - _RULE_KEYS
    if unknown:
        raise DefinitionError(f"{where}: unknown field(s) {sorted(map(str, unknown))}")
    kinds = [k for k in RuleKind if k.value in entry]
    if len(kinds) != 1:
        raise DefinitionError(
            f"{where}: exactly one of 'counter', 'histogram', 'gauge' is required "
            f"(got {[k.value for k in kinds]})"
        )
    kind = kinds[0]
    labels = entry.get("labels") or {}
    if isinstance(labels, list):  # a bare list of names: every default is "unknown"
        if not all(isinstance(n, str) for n in labels):
            raise DefinitionError(f"{where}, field 'labels': expected label names")
        labels = dict.fromkeys(labels, "unknown")
    if not isinstance(labels, Mapping):
        raise DefinitionError(
            f"{where}, field 'labels': expected a mapping of label name to default"
        )
    labels = {k: ("unknown" if v is None else v) for k, v in labels.items()}
    return Rule(
        event_type=event_type,
        kind=kind,
        metric=entry[kind.value],
        labels=labels,
        value=entry.get("value"),
        default=entry.get("default"),
        help=entry.get("help"),
        buckets=entry.get("buckets"),
        switch=entry.get("switch"),
        max_per_minute=entry.get("max_per_minute"),
        where=where,
    )


def load_rules_file(path: str | Path) -> tuple[list[Rule], int | None]:
    """Read and validate a YAML rules file (needs PyYAML: ``pip install meterhub[yaml]``)."""
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - PyYAML is installed in the test env
        raise ImportError(
            "reading event rules from YAML needs PyYAML: pip install 'meterhub[yaml]'"
        ) from exc
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError(f"{source}: cannot read the rules file: {exc}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{source}: invalid YAML: {exc}") from exc
    return parse_rules(doc, source)
