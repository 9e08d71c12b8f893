"""Checking values at record time: numbers and exemplars (the slow path of every type).

These run only when the hot path's cheap test fails (a non-float, a negative increment, an
exemplar), so they can afford to be thorough; every refusal goes through the metric's
error policy (:mod:`meterhub.guard`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..naming import LABEL_NAME_RE
from ..samples import Exemplar
from .base import MetricBase, encodable

__all__ = ["EXEMPLAR_MAX_CHARS", "checked_exemplar", "checked_number"]

EXEMPLAR_MAX_CHARS = 128


def checked_exemplar(metric: MetricBase[Any], labels: Any, value: float) -> Exemplar | None:
    """Validate exemplar labels (at most 128 characters of names and values together)."""
    if not isinstance(labels, Mapping):
        metric._error("exemplar", f"exemplar must be a dict of str to str, got {labels!r}")
        return None
    pairs = {}
    for k, v in labels.items():
        if (
            not isinstance(k, str)
            or not LABEL_NAME_RE.match(k)
            or not isinstance(v, str)
            or not encodable((v,))
        ):
            metric._error("exemplar", f"exemplar label {k!r}={v!r} is not a valid str pair")
            return None
        pairs[k] = v
    length = sum(len(k) + len(v) for k, v in pairs.items())
    if length > EXEMPLAR_MAX_CHARS:
        metric._error(
            "exemplar",
            f"exemplar labels are {length} characters long; the limit is {EXEMPLAR_MAX_CHARS}",
        )
        return None
    return Exemplar(pairs, float(value), time.time())


def checked_number(metric: MetricBase[Any], value: Any, what: str) -> float | None:
    """*value* as a float, or ``None`` after reporting why it is not one."""
    if isinstance(value, (str, bytes)):
        metric._error("not_a_number", f"{what} must be a number, got {value!r}")
        return None
    if not isinstance(value, (int, float)):
        try:
            value = float(value)  # numpy scalars, Decimal, Fraction
        except (TypeError, ValueError):
            metric._error("not_a_number", f"{what} must be a number, got {value!r}")
            return None
    try:
        return float(value)
    except OverflowError:
        metric._error("not_a_number", f"{what} {value!r} does not fit in a float")
        return None
