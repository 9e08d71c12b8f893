"""End to end: generated rules and configs in a real Prometheus and Alertmanager.

An application whose Jira component keeps failing is scraped every second by a Prometheus
started with the generated ``prometheus.yml`` and the generated component rule pack (its
``for`` shortened to 2 s). The component-failure alert must become *firing* in
``/api/v1/alerts`` and a real Alertmanager, started with the generated ``alertmanager.yml``,
must deliver it (critical → the ``pager`` route) to a local webhook receiver.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meterhub import Hub, Registry
from meterhub.export.http import start_http_server
from meterhub.ops._yaml import dump_yaml
from meterhub.ops.deploy import alertmanager_config, prometheus_config
from meterhub.ops.rules import render_pack, rule_packs, with_for
from support.promstack import (
    PrometheusServer,
    Server,
    WebhookReceiver,
    _api,
    _start,
    wait_for,
)

pytestmark = [pytest.mark.realstack, pytest.mark.timeout(180)]


def _record_failures(hub: Hub) -> None:
    """Jira calls that fail, through the Component API."""
    component = hub.component("jira")
    for _ in range(3):
        with pytest.raises(ConnectionError), component.call("create_issue"):
            raise ConnectionError("jira unreachable")


@pytest.fixture
def app() -> Iterator[tuple[Hub, str]]:
    hub = Hub(registry=Registry(), namespace="shop")
    server = start_http_server(0, registry=hub.registry)
    try:
        yield hub, f"127.0.0.1:{server.port}"
    finally:
        server.shutdown()


def _start_or_skip(name: str, base: Path, cmd: Any, cls: type[Server] = Server) -> Server:
    try:
        return _start(name, base, cmd, cls)
    except RuntimeError as exc:
        if "binary not found" in str(exc):
            pytest.skip(str(exc))
        raise


def test_component_failure_alert_fires_and_is_delivered(
    tmp_path: Path, app: tuple[Hub, str], webhook_receiver: WebhookReceiver
) -> None:
    hub, target = app
    _record_failures(hub)

    def am_cmd(port: int, d: Path) -> list[str]:
        cfg = alertmanager_config(webhook_receiver.url, group_wait="1s", group_interval="1s")
        (d / "alertmanager.yml").write_text(dump_yaml(cfg))
        return [
            f"--config.file={d / 'alertmanager.yml'}",
            f"--storage.path={d / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ]

    alertmanager = _start_or_skip("alertmanager", tmp_path, am_cmd)
    try:
        pack = with_for(next(p for p in rule_packs(hub.registry) if p.name == "components"), "2s")
        rules = tmp_path / "components.rules.yml"
        rules.write_text(render_pack(pack))

        def prom_cmd(port: int, d: Path) -> list[str]:
            cfg = prometheus_config(
                app_targets=[target],
                node_targets=[],
                pushgateway_targets=[],
                alertmanagers=[f"127.0.0.1:{alertmanager.port}"],
                rule_files=[str(rules)],
                scrape_interval="1s",
                evaluation_interval="1s",
            )
            (d / "prometheus.yml").write_text(dump_yaml(cfg))
            return [
                f"--config.file={d / 'prometheus.yml'}",
                f"--storage.tsdb.path={d / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--rules.alert.resend-delay=1s",
            ]

        prometheus = _start_or_skip("prometheus", tmp_path, prom_cmd, PrometheusServer)
        try:
            _assert_alert_flow(prometheus, hub, webhook_receiver)
        finally:
            prometheus.stop()
    finally:
        alertmanager.stop()


def _assert_alert_flow(prometheus: Server, hub: Hub, receiver: WebhookReceiver) -> None:
    def firing() -> list[dict[str, Any]]:
        _record_failures(hub)  # keep the failure rate above zero while we wait
        alerts = _api(prometheus.url, "/api/v1/alerts", {})["alerts"]
        return [
            a
            for a in alerts
            if a["labels"]["alertname"] == "ComponentFailureRatioHigh" and a["state"] == "firing"
        ]

    alerts = wait_for(firing, timeout=90, what="ComponentFailureRatioHigh firing", interval=0.5)
    labels = alerts[0]["labels"]
    assert labels["component"] == "jira" and labels["operation"] == "create_issue"
    assert labels["severity"] == "critical" and labels["job"] == "app"
    assert "of jira create_issue calls failed" in alerts[0]["annotations"]["description"]

    deadline = time.monotonic() + 60
    delivered: list[dict[str, Any]] = []
    while not delivered and time.monotonic() < deadline:
        receiver.wait(len(receiver.bodies) + 1, timeout=max(0.1, deadline - time.monotonic()))
        delivered = [
            b
            for b in receiver.json_bodies()
            if b["commonLabels"].get("alertname") == "ComponentFailureRatioHigh"
        ]
    assert delivered, json.dumps(receiver.json_bodies())[:2000]
    body = delivered[0]
    assert body["status"] == "firing" and body["receiver"] == "pager"
    alert = body["alerts"][0]
    assert alert["labels"]["component"] == "jira"
    assert alert["annotations"]["runbook_url"].endswith("/ComponentFailureRatioHigh")
