"""METERHUB_COMPAT=prometheus_client: output byte-identical to prometheus_client's.

Compared against the real prometheus_client (a test dependency), metric for metric.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import prometheus_client as pc
import pytest
from prometheus_client.openmetrics import exposition as pc_om

import meterhub
from meterhub import (
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Registry,
    Summary,
    generate_latest,
    generate_latest_openmetrics,
)


@pytest.fixture
def frozen_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(time, "time", lambda: 1700000000.25)
    yield


def _define(mod: object, reg: object) -> None:
    c = mod.Counter("jobs", "Jobs run.", ["queue", "kind"], registry=reg)  # type: ignore[attr-defined]
    c.labels("mail", "x").inc(3)
    c.labels("sms", "y").inc(0.5)
    mod.Gauge("temp", "Temperature.", registry=reg).set(21)  # type: ignore[attr-defined]
    h = mod.Histogram("lat_seconds", "Latency.", ["route"], buckets=(0.1, 1, 10), registry=reg)  # type: ignore[attr-defined]
    h.labels("/a").observe(0.05)
    h.labels("/a").observe(2)
    mod.Summary("size_bytes", "Sizes.", registry=reg).observe(1234567)  # type: ignore[attr-defined]
    mod.Info("build", "Build.", registry=reg).info({"version": "1.2", "commit": "abc"})  # type: ignore[attr-defined]
    e = mod.Enum("state", "State.", ["zone"], states=["up", "down"], registry=reg)  # type: ignore[attr-defined]
    e.labels("eu").state("down")
    mod.Gauge("http.latency", "UTF-8 name.", ["http.route"], registry=reg).labels("/").set(1)  # type: ignore[attr-defined]


def test_compat_output_is_byte_identical(frozen_time: None) -> None:
    meterhub.configure(compat="prometheus_client")
    ours, theirs = Registry(), pc.CollectorRegistry()
    _define(meterhub, ours)
    _define(pc, theirs)
    assert generate_latest(ours) == pc.generate_latest(theirs)
    for escaping in ("allow-utf-8", "underscores", "dots", "values"):
        assert generate_latest(ours, escaping) == pc.generate_latest(theirs, escaping)
        assert generate_latest_openmetrics(ours, escaping) == pc_om.generate_latest(
            theirs, escaping
        )


def test_compat_mode_defaults_and_errors() -> None:
    cfg = meterhub.configure(compat="prometheus_client", strict=False)
    assert cfg.created and not cfg.strict  # explicit settings win
    cfg = meterhub.configure(env={"METERHUB_COMPAT": "prometheus_client"})
    assert cfg.created and cfg.strict
    reg = Registry()
    Counter("c", "C.", registry=reg)
    with pytest.raises(meterhub.DuplicateTimeseries):
        Counter("c", "C.", registry=reg)  # prometheus_client refuses a second definition
    with pytest.raises(ValueError, match="METERHUB_COMPAT"):
        meterhub.configure(compat="statsd")


def test_default_mode_keeps_meterhubs_output(frozen_time: None) -> None:
    reg = Registry()
    Counter("jobs", "Jobs.", registry=reg).inc(3)
    Gauge("g", "G.", registry=reg).set(2)
    assert generate_latest(reg) == (
        b"# HELP jobs_total Jobs.\n# TYPE jobs_total counter\njobs_total 3\n"
        b"# HELP g G.\n# TYPE g gauge\ng 2\n"
    )
    c = Counter("jobs", "Jobs.", registry=reg)  # an identical re-declaration returns it
    c.inc()
    assert reg.get_sample_value("jobs_total") == 4


def test_legacy_names_setting() -> None:
    from meterhub.naming import disable_legacy_validation, enable_legacy_validation

    reg = Registry()
    enable_legacy_validation()
    with pytest.raises(ValueError, match="invalid metric name"):
        Counter("a.b", "A.", registry=reg)
    with pytest.raises(ValueError, match="invalid label name"):
        Counter("a", "A.", ["x.y"], registry=reg)
    disable_legacy_validation()
    Counter("a.b", "A.", ["x.y"], registry=reg)
    assert meterhub.configure(env={"METERHUB_LEGACY_NAMES": "true"}).legacy_names


def test_unused_names_of_the_module_are_real() -> None:
    # the compatibility names are the same objects as meterhub's own
    assert meterhub.start_wsgi_server is meterhub.start_http_server
    assert meterhub.UntypedMetricFamily is meterhub.UnknownMetricFamily
    assert Enum and Histogram and Info and Summary


def test_compat_sorts_labels_like_prometheus_client(frozen_time: None) -> None:
    meterhub.configure(compat="prometheus_client")
    ours, theirs = Registry(), pc.CollectorRegistry()
    for mod, reg in ((meterhub, ours), (pc, theirs)):
        c = mod.Counter("requests", "R.", ["route", "code"], registry=reg)  # type: ignore[attr-defined]
        c.labels("/a", "200").inc()
        h = mod.Histogram("lat", "L.", ["zone", "app"], buckets=(1,), registry=reg)  # type: ignore[attr-defined]
        h.labels("eu", "web").observe(0.5)
    assert generate_latest(ours) == pc.generate_latest(theirs)
    assert generate_latest_openmetrics(ours) == pc_om.generate_latest(theirs)
