"""Checking values at record time: numbers and exemplars (the slow path of every type).

These run only when the hot path's cheap test fails (a non-float, a negative increment, an
exemplar), so they can afford to be thorough; every refusal goes through the metric's
error policy (:mod:`meterhub.guard`).
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Mapping
from typing import Any

from .._config import get_config
from ..naming import LABEL_NAME_RE
from ..samples import Exemplar
from .base import MetricBase
from .child import encodable

__all__ = ["EXEMPLAR_MAX_CHARS", "checked_exemplar", "checked_number", "safe_repr"]

EXEMPLAR_MAX_CHARS = 128


def checked_exemplar(metric: MetricBase[Any], labels: Any, value: float) -> Exemplar | None:
    """Validate exemplar labels (at most 128 characters of names and values together)."""
    if not isinstance(labels, Mapping):
        metric._error("exemplar", f"exemplar must be a dict of str to str, got {safe_repr(labels)}")
        return None
    pairs = {}
    try:
        items = list(labels.items())
    except Exception as exc:
        metric._error("exemplar", f"exemplar labels could not be read: {type(exc).__name__}")
        return None
    for k, v in items:
        if (
            not isinstance(k, str)
            or not (LABEL_NAME_RE.match(k) or (k and not get_config().legacy_names))
            or not isinstance(v, str)
            or not encodable((k, v))
        ):
            metric._error(
                "exemplar", f"exemplar label {safe_repr(k)}={safe_repr(v)} is not a valid str pair"
            )
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


def safe_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to *limit* characters; never raises (for error messages)."""
    try:
        text = repr(value)
    except Exception:
        try:
            text = f"<{type(value).__name__} object (repr() failed)>"
        except Exception:
            text = "<object (repr() failed)>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def checked_number(metric: MetricBase[Any], value: Any, what: str) -> float | None:
    """*value* as an exact ``float``, or ``None`` after reporting why it is not one.

    The slow path of every recording method (their fast path takes only exact ``float``
    and ``int``). Accepted: ``int``, ``bool``, ``float`` and their subclasses, and any
    other real-number scalar that ``float()`` converts: ``Decimal`` (``Decimal("NaN")``
    gives NaN, which each type then accepts or refuses), ``Fraction``, numpy scalars
    and 0-d arrays. Refused and counted (reason ``not_a_number``): ``str``/``bytes``,
    complex numbers (Python's and numpy's: a dropped imaginary part is a wrong value),
    0-d arrays of a non-numeric dtype, arrays of any other shape (even one element: pass
    ``arr.item()``; numpy itself deprecates that conversion), values too large for a
    float, and objects whose ``__float__`` (or ``__index__``) raises or returns a
    non-float. The result is always an exact ``float``, so a cell never holds anything else.
    """
    cls = value.__class__
    if cls is float:
        return value  # type: ignore[no-any-return]
    try:
        if isinstance(value, (str, bytes, bytearray, memoryview)):
            reason = "a string is not a number"
        elif isinstance(value, complex) or (
            isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real)
        ):
            reason = "a complex number is not a real one"
        elif getattr(value, "ndim", 0) != 0:
            reason = "an array is not a scalar (pass a scalar, e.g. arr.item())"
        elif getattr(getattr(value, "dtype", None), "kind", "f") not in "biuf":
            reason = f"a value of dtype {value.dtype} is not a real number"
        else:
            number = float(value)  # numpy warns only for the cases refused above
            if number.__class__ is float:
                return number
            reason = "float() did not return a float"
    except OverflowError:
        reason = "it does not fit in a float"
    except Exception as exc:
        reason = f"float() failed: {type(exc).__name__}"
    metric._error("not_a_number", f"{what} must be a real number, got {safe_repr(value)}: {reason}")
    return None
