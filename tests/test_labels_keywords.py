"""``labels(**kw)``'s fast path (issue 19): the same child, errors and conversions as the
positional call, for every arity and every kind of value."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import meterhub
from meterhub import Counter, Gauge, RecordingError, Registry, generate_latest


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")


class NotAStr:
    def __str__(self) -> Any:
        return 42


@pytest.mark.parametrize("names", [("a",), ("a", "b"), ("a", "b", "c")])
def test_keywords_find_the_positional_child(registry: Registry, names: tuple[str, ...]) -> None:
    c = Counter("c", "C.", names, registry=registry)
    values = tuple(f"v{i}" for i in range(len(names)))
    child = c.labels(*values)
    assert c.labels(**dict(zip(names, values))) is child
    assert c.labels(**dict(reversed(list(zip(names, values))))) is child
    converted = c.labels(**{n: i for i, n in enumerate(names)})  # ints: str() as positional
    assert converted is c.labels(*(str(i) for i in range(len(names))))


def test_wrong_missing_extra_and_mixed_names_raise_in_strict_mode(registry: Registry) -> None:
    c = Counter("c", "C.", ["a", "b"], registry=registry)
    c.labels("1", "2")
    with pytest.raises(RecordingError, match="expected"):
        c.labels(a="1")
    with pytest.raises(RecordingError, match="expected"):
        c.labels(a="1", b="2", c="3")
    with pytest.raises(RecordingError, match="expected"):
        c.labels(a="1", c="2")
    with pytest.raises(RecordingError, match="positional or keyword"):
        c.labels("1", b="2")
    with pytest.raises(RecordingError, match="without label names"):
        Counter("u", "U.", registry=registry).labels(a="1")
    for bad in (Unprintable(), NotAStr(), "\ud800"):  # the positional call's very error
        with pytest.raises(RecordingError) as by_position:
            c.labels("1", bad)
        with pytest.raises(RecordingError) as by_keyword:
            c.labels(b=bad, a="1")
        assert type(by_keyword.value) is type(by_position.value)
        assert str(by_keyword.value) == str(by_position.value)


def test_lenient_mode_counts_and_returns_the_null_child(lenient: None) -> None:
    reg = Registry(self_metrics=True)
    c = Counter("c", "C.", ["a", "b"], registry=reg)
    c.labels(a="1", b="2").inc()
    for _ in range(2):
        c.labels(a="1").inc()
        c.labels(a="1", b="2", c="3").inc()
        c.labels(a="1", b=[1]).inc()  # unhashable: converted to "[1]", as positional
    assert reg.get_sample_value("c_total", {"a": "1", "b": "2"}) == 1
    assert reg.get_sample_value("c_total", {"a": "1", "b": "[1]"}) == 2
    errors = {"metric": "c", "reason": "label_names"}
    assert reg.get_sample_value("meterhub_errors_total", errors) == 4


def test_the_series_cap_applies_to_keywords(lenient: None) -> None:
    reg = Registry(self_metrics=True)
    g = Gauge("g", "G.", ["k"], registry=reg, max_series=2)
    for i in range(4):
        g.labels(k=str(i)).inc()
        g.labels(k=str(i)).inc()
    assert reg.get_sample_value("g", {"k": "__overflow__"}) == 4
    assert reg.get_sample_value("meterhub_series_dropped_total", {"metric": "g"}) == 4


VALUES = st.one_of(
    st.text(max_size=3), st.integers(-3, 3), st.booleans(), st.floats(allow_nan=False)
)


@settings(max_examples=100, deadline=None)
@given(calls=st.lists(st.tuples(VALUES, VALUES, st.booleans()), max_size=30))
def test_keyword_and_positional_calls_record_the_same(calls: list[tuple[Any, Any, bool]]) -> None:
    meterhub.reset_defaults()
    meterhub.configure(strict=False)
    by_kw, by_pos = Registry(self_metrics=True), Registry(self_metrics=True)
    kw = Counter("c", "C.", ["a", "b"], registry=by_kw, max_series=5)
    pos = Counter("c", "C.", ["a", "b"], registry=by_pos, max_series=5)
    try:
        for a, b, reverse in calls:
            (kw.labels(b=b, a=a) if reverse else kw.labels(a=a, b=b)).inc()
            pos.labels(a, b).inc()
        assert generate_latest(by_kw) == generate_latest(by_pos)
    finally:
        meterhub.reset_defaults()


@pytest.mark.parametrize(
    "names",
    [("a", "b"), ("http.method", "code"), ("class", "for"), ("_mh_get", "b"), ("é", "ß")],
    ids=["identifiers", "dotted", "python-keywords", "generator-internal", "unicode"],
)
def test_every_kind_of_label_name_takes_keywords_alike(
    registry: Registry, names: tuple[str, ...]
) -> None:
    # Identifier names get a generated labels(); the rest keep the general method: both
    # must find, convert and refuse exactly alike.
    c = Counter("c", "C.", names, registry=registry)
    assert ("labels" in vars(c)) == (names in (("a", "b"), ("é", "ß")))  # which path runs
    child = c.labels("1", "2")
    assert c.labels(**{names[0]: "1", names[1]: "2"}) is child
    assert c.labels(**{names[1]: "2", names[0]: "1"}) is child
    assert c.labels(**{names[0]: 1, names[1]: 2}) is child  # str() as positional
    unhashable = c.labels(**{names[0]: ["x"], names[1]: "2"})
    assert unhashable is c.labels("['x']", "2")
    with pytest.raises(RecordingError, match="positional or keyword"):
        c.labels("1", "2", **{names[0]: "1"})  # mixed, although "1", "2" exists
    with pytest.raises(RecordingError, match="expected"):
        c.labels(**{names[0]: "1", names[1]: "2", "zz": "3"})  # extra, although it exists
    with pytest.raises(RecordingError, match="expected"):
        c.labels(**{names[0]: "1"})
    c.remove("1", "2")
    fresh = c.labels(**{names[0]: "1", names[1]: "2"})
    assert fresh is not child and fresh is c.labels("1", "2")
    fresh.inc(2)
    assert registry.get_sample_value("c_total", dict(zip(names, ("1", "2")))) == 2.0
