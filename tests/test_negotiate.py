"""Content negotiation: Accept headers as real scrapers send them, gzip, ``name[]``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterhub import CONTENT_TYPE_PLAIN_0_0_4, Counter, Registry
from meterhub.exposition.negotiate import (
    accepts_gzip,
    choose_encoder,
    choose_renderer,
    name_filter,
    negotiate,
)
from meterhub.exposition.openmetrics import CONTENT_TYPE_OPENMETRICS, render_openmetrics
from meterhub.exposition.text import render_text

PROMETHEUS_2 = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        (PROMETHEUS_2, True),
        ("application/openmetrics-text", True),
        ("application/openmetrics-text; version=0.0.1", True),
        ('Application/OpenMetrics-Text; Version="1.0.0"', True),
        ("text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5", False),
        ("text/plain,application/openmetrics-text", False),  # tie: the first listed
        ("application/openmetrics-text,text/plain", True),
        ("application/openmetrics-text;q=0", False),
        ("application/openmetrics-text;version=2.0.0", False),
        ("application/openmetrics-text;q=banana", False),
        ("application/openmetrics-text;q=7", False),
        ("text/plain", False),
        ("*/*", False),
        ("", False),
        (None, False),
        (",,;;==,", False),
    ],
)
def test_choose_renderer(accept: str | None, openmetrics: bool) -> None:
    render, content_type = choose_renderer(accept)
    if openmetrics:
        assert (render, content_type) == (render_openmetrics, CONTENT_TYPE_OPENMETRICS)
    else:
        assert (render, content_type) == (render_text, CONTENT_TYPE_PLAIN_0_0_4)


@pytest.mark.parametrize(
    ("header", "gzip"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("deflate, GZIP;q=0.5", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("*", True),
        ("*;q=0", False),
        ("*, gzip;q=0", False),
        ("x-gzip", True),
        ("", False),
        (None, False),
    ],
)
def test_accepts_gzip(header: str | None, gzip: bool) -> None:
    assert accepts_gzip(header) is gzip


def test_name_filter() -> None:
    assert name_filter(None) is None
    assert name_filter("") is None
    assert name_filter("foo=bar") is None
    assert name_filter("name[]=a_total&name[]=b&x=1") == ("a_total", "b")
    assert name_filter("name%5B%5D=a") == ("a",)
    assert name_filter("name[]=") is None


def test_negotiate_combines_everything() -> None:
    n = negotiate(PROMETHEUS_2, "gzip", "name[]=up")
    assert n.content_type == CONTENT_TYPE_OPENMETRICS and n.gzip and n.names == ("up",)
    assert not negotiate(PROMETHEUS_2, "gzip", disable_compression=True).gzip


def test_choose_encoder_is_prometheus_client_shaped(registry: object) -> None:
    generate, content_type = choose_encoder(PROMETHEUS_2)
    # prometheus_client 0.26 names the escaping of UTF-8 names for versioned requests
    assert content_type == CONTENT_TYPE_OPENMETRICS + "; escaping=underscores"
    assert generate(registry) == b"# EOF\n"
    assert choose_encoder(None)[1] == CONTENT_TYPE_PLAIN_0_0_4


def test_escaping_is_negotiated(registry: Registry) -> None:
    Counter("http.requests", "Requests.", registry=registry).inc()
    accept = "text/plain;version=1.0.0;escaping=allow-utf-8"
    n = negotiate(accept)
    assert n.content_type == "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
    assert '{"http.requests_total"} 1\n' in n.render(registry.collect())
    plain = negotiate(None).render(registry.collect())
    assert "http_requests_total 1\n" in plain
    om = negotiate("application/openmetrics-text;version=1.0.0;escaping=dots")
    assert om.content_type.endswith("; escaping=dots")
    assert "http_dot_requests__total 1\n" in om.render(registry.collect())


@given(st.text(), st.text(), st.text())
def test_never_raises_on_garbage(accept: str, encoding: str, query: str) -> None:
    n = negotiate(accept, encoding, query)
    assert n.content_type.startswith((CONTENT_TYPE_OPENMETRICS, "text/plain"))
