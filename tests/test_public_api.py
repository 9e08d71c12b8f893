"""The public surface: ``meterhub.__all__`` is sorted, complete and importable."""

from __future__ import annotations

import meterhub


def test_all_is_sorted_and_unique() -> None:
    assert meterhub.__all__ == sorted(set(meterhub.__all__))


def test_every_public_name_resolves() -> None:
    for name in meterhub.__all__:
        assert getattr(meterhub, name) is not None, name


def test_nothing_public_is_missing_from_all() -> None:
    public = {
        n
        for n, v in vars(meterhub).items()
        if not n.startswith("_") and not isinstance(v, type(meterhub))
    }
    public -= {"annotations", "importlib", "register_defaults", "Any"}
    assert public <= set(meterhub.__all__), public - set(meterhub.__all__)


def test_prometheus_client_common_names_exist() -> None:
    import prometheus_client
    import prometheus_client.core

    common = [
        "CONTENT_TYPE_LATEST",
        "REGISTRY",
        "CollectorRegistry",
        "Counter",
        "CounterMetricFamily",
        "Enum",
        "Gauge",
        "GaugeMetricFamily",
        "Histogram",
        "HistogramMetricFamily",
        "Info",
        "InfoMetricFamily",
        "Metric",
        "StateSetMetricFamily",
        "Summary",
        "SummaryMetricFamily",
        "UnknownMetricFamily",
        "delete_from_gateway",
        "generate_latest",
        "make_asgi_app",
        "make_wsgi_app",
        "push_to_gateway",
        "pushadd_to_gateway",
        "start_http_server",
        "write_to_textfile",
    ]
    for name in common:
        assert hasattr(prometheus_client, name) or hasattr(prometheus_client.core, name), name
        assert name in meterhub.__all__, name
