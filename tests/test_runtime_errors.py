"""Run-time recording mistakes: raised in strict mode, counted (never raised) otherwise."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

import meterhub
from meterhub import Counter, Enum, Gauge, Histogram, Info, RecordingError, Registry, Summary


def _cases(r: Registry) -> list[tuple[str, str, Callable[[], Any]]]:
    c = Counter("c", "C.", ["a", "b"], registry=r)
    u = Counter("u", "U.", registry=r)
    g = Gauge("g", "G.", registry=r)
    h = Histogram("h", "H.", registry=r)
    s = Summary("s", "S.", registry=r)
    e = Enum("e", "E.", states=["x"], registry=r)
    i = Info("i", "I.", registry=r)
    return [
        ("c", "label_count", lambda: c.labels("only-one").inc()),
        ("c", "label_names", lambda: c.labels(a="1", z="2").inc()),
        ("c", "label_mix", lambda: c.labels("1", b="2")),
        ("c", "labeled_parent", lambda: c.inc()),
        ("u", "negative_increment", lambda: u.inc(-1)),
        ("u", "not_a_number", lambda: u.inc("3")),
        ("u", "not_a_number", lambda: u.inc(10**400)),
        ("u", "nan", lambda: u.inc(math.nan)),
        ("u", "no_labels", lambda: u.labels("x")),
        ("g", "not_a_number", lambda: g.set("high")),
        ("g", "not_a_number", lambda: g.inc(None)),
        ("h", "nan", lambda: h.observe(math.nan)),
        ("h", "not_a_number", lambda: h.observe("1")),
        ("s", "nan", lambda: s.observe(math.nan)),
        ("e", "unknown_state", lambda: e.state("y")),
        ("i", "info", lambda: i.info({"k": 1})),
        ("i", "info", lambda: i.info({"bad key": "v"})),
        ("u", "exemplar", lambda: u.inc(1, exemplar={"trace_id": "x" * 200})),
        ("h", "exemplar", lambda: h.observe(1, exemplar={"": "x"})),
    ]


@pytest.mark.parametrize("index", range(19))
def test_strict_mode_raises(index: int) -> None:
    reg = Registry(self_metrics=False)
    metric, _, call = _cases(reg)[index]
    with pytest.raises(RecordingError, match=repr(metric)):
        call()


@pytest.mark.parametrize("index", range(19))
def test_lenient_mode_counts(index: int, lenient: None) -> None:
    reg = Registry(self_metrics=True)
    metric, reason, call = _cases(reg)[index]
    call()  # must not raise
    assert reg.get_sample_value("meterhub_errors_total", {"metric": metric, "reason": reason}) == 1


def test_lenient_bad_calls_change_nothing(lenient: None) -> None:
    reg = Registry()
    c = Counter("c", "C.", ["a"], registry=reg)
    c.labels("x").inc(5)
    c.labels("x").inc(-2)
    c.labels("x", "y").inc()
    c.inc()
    assert reg.get_sample_value("c_total", {"a": "x"}) == 5
    assert reg.get_sample_value("c_total", {"a": "x", "b": "y"}) is None


def test_strict_is_the_configuration_switch() -> None:
    meterhub.configure(env={"METERHUB_STRICT": "false"})
    Counter("c", "C.", registry=Registry()).inc(-1)  # counted, not raised
    meterhub.configure(env={"METERHUB_STRICT": "true"})
    with pytest.raises(RecordingError):
        Counter("c", "C.", registry=Registry()).inc(-1)


def test_lone_surrogates_never_reach_the_exposition(lenient: None) -> None:
    from meterhub import generate_latest

    reg = Registry(self_metrics=True)
    c = Counter("c", "C.", ["v"], registry=reg)
    c.labels("\ud800").inc()
    Info("i", "I.", registry=reg).info({"k": "\udfff"})
    Counter("e", "E.", registry=reg).inc(1, exemplar={"trace_id": "\ud800"})
    generate_latest(reg)  # must not raise UnicodeEncodeError
    assert (
        reg.get_sample_value("meterhub_errors_total", {"metric": "c", "reason": "label_value"}) == 1
    )
    with pytest.raises(ValueError, match="valid unicode"):
        Counter("d", "\ud800", registry=reg)


def test_only_the_default_registry_exposes_self_metrics(lenient: None) -> None:
    from meterhub import REGISTRY, generate_latest

    reg = Registry()
    assert generate_latest(reg) == b""  # a fresh registry renders only what it was given
    before = REGISTRY.self_metrics.errors("private_c", "negative_increment")
    Counter("private_c", "C.", registry=reg).inc(-1)
    assert reg.self_metrics.errors("private_c", "negative_increment") == 1
    # ... and its errors still reach the /metrics users serve
    assert REGISTRY.self_metrics.errors("private_c", "negative_increment") == before + 1
    assert REGISTRY.get_sample_value(
        "meterhub_errors_total", {"metric": "private_c", "reason": "negative_increment"}
    )
