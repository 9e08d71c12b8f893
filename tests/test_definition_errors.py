"""Definition-time mistakes raise ValueError naming the metric and the rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterhub import Counter, DefinitionError, Enum, Gauge, Histogram, Info, Registry, Summary


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda r: Counter("bad\ud800", "d", registry=r), "invalid metric name"),
        (lambda r: Counter("", "d", registry=r), "non-empty"),
        (lambda r: Counter(42, "d", registry=r), "non-empty str"),
        (lambda r: Counter("ok", 42, registry=r), "documentation must be a"),
        (lambda r: Counter("ok", "d", ["x\udc00"], registry=r), "invalid label name"),
        (lambda r: Counter("ok", "d", [""], registry=r), "invalid label name"),
        (lambda r: Counter("ok", "d", ["__x"], registry=r), "reserved '__' prefix"),
        (lambda r: Counter("ok", "d", ["a", "a"], registry=r), "duplicate label name"),
        (lambda r: Counter("ok", "d", "abc", registry=r), "not a single str"),
        (lambda r: Counter("ok", "d", [1], registry=r), "is not a str"),
        (lambda r: Counter("ok", "d", ["user_id"], registry=r), "PII deny-list"),
        (lambda r: Counter("ok", "d", ["Email"], registry=r), "PII deny-list"),
        (lambda r: Counter("ok", "d", ["api-key".replace("-", "_")], registry=r), "PII"),
        (lambda r: Counter("ok_created", "d", registry=r), "must not end with '_created'"),
        (lambda r: Histogram("h", "d", ["le"], registry=r), "reserved for this metric type"),
        (lambda r: Histogram("h", "d", buckets=[2, 1], registry=r), "strictly increasing"),
        (lambda r: Histogram("h", "d", buckets=[1, 1], registry=r), "strictly increasing"),
        (lambda r: Histogram("h", "d", buckets=[], registry=r), "at least one bucket"),
        (lambda r: Histogram("h", "d", buckets=["x"], registry=r), "must be numbers"),
        (lambda r: Histogram("h", "d", buckets=[float("nan")], registry=r), "NaN"),
        (lambda r: Histogram("h_bucket", "d", registry=r), "must not end with '_bucket'"),
        (lambda r: Summary("s", "d", ["quantile"], registry=r), "reserved for this metric type"),
        (lambda r: Gauge("g", "d", multiprocess_mode="bogus", registry=r), "multiprocess_mode"),
        (lambda r: Enum("e", "d", states=[], registry=r), "states"),
        (lambda r: Enum("e", "d", states=["a", "a"], registry=r), "duplicate states"),
        (lambda r: Enum("e", "d", ["e"], states=["a"], registry=r), "metric's name"),
        (lambda r: Info("i", "d", unit="bytes", registry=r), "no unit"),
        (lambda r: Counter("c", "d", unit="bad unit", registry=r), "invalid unit"),
        (lambda r: Counter("c", "d", max_series=0, registry=r), "max_series"),
        (lambda r: Counter("c", "d", switch="", registry=r), "switch"),
    ],
)
def test_definition_error(registry: Registry, make, fragment: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=fragment) as info:
        make(registry)
    assert isinstance(info.value, DefinitionError)


def test_conflicting_redeclaration_names_both(registry: Registry) -> None:
    Counter("orders", "Orders.", ["shop"], registry=registry)
    with pytest.raises(ValueError, match="already registered") as info:
        Counter("orders", "Orders.", ["country"], registry=registry)
    assert "shop" in str(info.value) and "country" in str(info.value)
    with pytest.raises(ValueError, match="orders"):
        Gauge("orders", "Orders.", ["shop"], registry=registry)
    with pytest.raises(ValueError, match="'orders_total' is already registered"):
        Gauge("orders_total", "Orders.", registry=registry)


_name_chars = st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=12)


@given(_name_chars)
def test_metric_names_accepted_iff_grammar(name: str) -> None:
    # any non-empty UTF-8 name (Prometheus 3); renderers escape what needs it
    reg = Registry(self_metrics=False)
    ok = not name.endswith("_created")
    if ok:
        Gauge(name, "d", registry=reg)
    else:
        with pytest.raises(ValueError):
            Gauge(name, "d", registry=reg)


@given(_name_chars)
def test_label_names_accepted_iff_grammar(label: str) -> None:
    from meterhub.naming import is_pii_name

    reg = Registry(self_metrics=False)
    ok = not label.startswith("__")
    if ok and not is_pii_name(label):
        Gauge("g", "d", [label], registry=reg)
    else:
        with pytest.raises(ValueError):
            Gauge("g", "d", [label], registry=reg)


def test_utf8_names_are_accepted(registry: Registry) -> None:
    c = Counter("http.server.requests", "Requests.", ["http.method"], registry=registry)
    c.labels("GET").inc()
    assert registry.get_sample_value("http.server.requests_total", {"http.method": "GET"}) == 1
