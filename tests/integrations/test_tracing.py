"""Trace correlation with the real opentelemetry-api (no SDK needed to carry a span)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry")

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from meterhub import Histogram, MetricFamily, Registry
from meterhub.integrations.httpclient import ClientMetrics
from meterhub.integrations.tracing import TraceContextFilter, current_exemplar, current_trace_ids

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7


def span(trace_id: int = TRACE_ID, span_id: int = SPAN_ID) -> NonRecordingSpan:
    ctx = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1))
    return NonRecordingSpan(ctx)


def family(registry: Registry, name: str) -> MetricFamily:
    [fam] = [f for f in registry.collect() if f.name == name]
    return fam


def exemplar_labels(fam: MetricFamily) -> list[dict[str, str]]:
    return [dict(ex.labels) for s in fam.series for ex in s.exemplars if ex is not None]


def test_no_span_no_exemplar() -> None:
    assert current_exemplar() is None
    assert current_trace_ids() is None


def test_active_span_gives_hex_ids() -> None:
    with trace.use_span(span(), end_on_exit=False):
        ex = current_exemplar()
    assert ex == {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}
    assert sum(len(k) + len(v) for k, v in ex.items()) <= 128
    assert current_exemplar() is None  # the span is no longer current


def test_invalid_span_context_gives_none() -> None:
    with trace.use_span(NonRecordingSpan(SpanContext(0, 0, is_remote=False)), end_on_exit=False):
        assert current_exemplar() is None


class _BrokenSpan(NonRecordingSpan):
    """A span whose context cannot be read (a buggy tracer): never breaks the caller."""

    def get_span_context(self) -> SpanContext:
        raise RuntimeError("tracer bug")


def test_broken_tracer_gives_none() -> None:
    with trace.use_span(_BrokenSpan(span().get_span_context()), end_on_exit=False):
        assert current_exemplar() is None


@given(
    trace_id=st.integers(min_value=1, max_value=2**128 - 1),
    span_id=st.integers(min_value=1, max_value=2**64 - 1),
)
def test_ids_are_fixed_width_hex(trace_id: int, span_id: int) -> None:
    with trace.use_span(span(trace_id, span_id), end_on_exit=False):
        ex = current_exemplar()
    assert ex is not None
    assert int(ex["trace_id"], 16) == trace_id and len(ex["trace_id"]) == 32
    assert int(ex["span_id"], 16) == span_id and len(ex["span_id"]) == 16
    # accepted by the core's exemplar validation (128-character limit) in strict mode
    Histogram("h", "h", registry=Registry(self_metrics=False)).observe(1.0, exemplar=ex)


# -- logging ------------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def json_logger() -> Iterator[tuple[logging.Logger, _Collect]]:
    logger = logging.getLogger("meterhub.test.tracing")
    handler = _Collect()
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(
        logging.Formatter(
            '{"msg": "%(message)s", "trace_id": "%(trace_id)s", "span_id": "%(span_id)s"}'
        )
    )
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, handler
    logger.removeHandler(handler)


def test_log_filter_adds_ids(json_logger: tuple[logging.Logger, _Collect]) -> None:
    logger, handler = json_logger
    logger.info("outside")
    with trace.use_span(span(), end_on_exit=False):
        logger.info("inside")
    outside, inside = (json.loads(line) for line in handler.lines)
    assert outside == {"msg": "outside", "trace_id": "", "span_id": ""}
    assert inside == {
        "msg": "inside",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
    }


def test_log_filter_custom_missing_value() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert TraceContextFilter(missing="-").filter(record) is True
    assert (record.trace_id, record.span_id) == ("-", "-")


# -- exemplars in the integrations' histograms --------------------------------------------


def test_http_client_duration_carries_the_trace(registry: Registry) -> None:
    metrics = ClientMetrics("jira", registry=registry)
    with trace.use_span(span(), end_on_exit=False), metrics.measure("GET") as call:
        call.status = 200
    with metrics.measure("POST") as call:  # no span: no exemplar
        call.status = 201
    fam = family(registry, "http_client_request_duration_seconds")
    assert exemplar_labels(fam) == [
        {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}
    ]


def test_celery_duration_carries_the_trace(registry: Registry) -> None:
    celery = pytest.importorskip("celery")
    from meterhub.integrations.celery import instrument

    app = celery.Celery("traced")
    app.conf.task_always_eager = True
    instrument(app, registry=registry)

    @app.task(name="traced.work")
    def work() -> int:
        return 1

    with trace.use_span(span(), end_on_exit=False):
        assert work.delay().get() == 1
    fam = family(registry, "celery_task_duration_seconds")
    assert exemplar_labels(fam) == [
        {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}
    ]


def test_exemplar_reaches_openmetrics(registry: Registry) -> None:
    openmetrics = pytest.importorskip("meterhub.exposition.openmetrics")
    metrics = ClientMetrics("jira", registry=registry)
    with trace.use_span(span(), end_on_exit=False), metrics.measure("GET") as call:
        call.status = 200
    text = openmetrics.generate_latest_openmetrics(registry).decode()
    assert 'trace_id="4bf92f3577b34da6a3ce929d0e0e4736"' in text
