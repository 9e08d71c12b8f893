"""Deployment configuration for the monitoring stack around a meterhub application.

``deploy_files()`` returns every file of the ``deploy/`` directory (path → text):
``prometheus.yml`` (the app, node_exporter's textfile collector, the Pushgateway with
``honor_labels``, rule files, Alertmanager), ``alertmanager.yml``, ``docker-compose.yml``
(Prometheus, Alertmanager, Grafana with provisioned datasource and dashboards,
node_exporter with the textfile directory mounted, Pushgateway), the rule packs with their
``promtool`` tests, an example SLO and the Grafana dashboard. ``write_deploy(dir)`` writes
them; the repository's ``deploy/`` is kept equal to it by a test.

Example::

    >>> from meterhub.ops.deploy import prometheus_config
    >>> prometheus_config(app_targets=["127.0.0.1:8000"])["scrape_configs"][0]["job_name"]
    'app'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._yaml import dump_yaml

__all__ = [
    "EXAMPLE_SLO",
    "alertmanager_config",
    "compose_config",
    "deploy_files",
    "prometheus_config",
    "write_deploy",
]

EXAMPLE_SLO: dict[str, Any] = {
    "slos": [
        {
            "name": "http-availability",
            "objective": 99.9,
            "window": "30d",
            "sli": {
                "good": 'http_server_requests_total{status!~"5.."}',
                "total": "http_server_requests_total",
            },
        },
        {
            "name": "http-latency",
            "objective": 99.0,
            "window": "30d",
            "sli": {
                "latency": {"metric": "http_server_request_duration_seconds", "threshold": 0.5}
            },
        },
    ]
}


def _static(job: str, targets: Sequence[str], **extra: Any) -> dict[str, Any]:
    return {"job_name": job, **extra, "static_configs": [{"targets": list(targets)}]}


def prometheus_config(
    *,
    app_targets: Sequence[str] = ("host.docker.internal:8000",),
    node_targets: Sequence[str] = ("node-exporter:9100",),
    pushgateway_targets: Sequence[str] = ("pushgateway:9091",),
    alertmanagers: Sequence[str] = ("alertmanager:9093",),
    rule_files: Sequence[str] = ("/etc/prometheus/rules/*.rules.yml",),
    scrape_interval: str = "15s",
    evaluation_interval: str = "15s",
) -> dict[str, Any]:
    """``prometheus.yml`` as a dict; an empty target list leaves that job out."""
    jobs = [
        _static("app", app_targets),
        _static("node", node_targets),
        # Pushed series carry their own job/instance labels: keep them.
        _static("pushgateway", pushgateway_targets, honor_labels=True),
    ]
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": list(rule_files),
        "scrape_configs": [j for j in jobs if j["static_configs"][0]["targets"]],
    }
    if alertmanagers:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
        }
    return config


def alertmanager_config(
    webhook_url: str = "http://host.docker.internal:8000/alerts",
    *,
    group_wait: str = "30s",
    group_interval: str = "5m",
    repeat_interval: str = "4h",
) -> dict[str, Any]:
    """``alertmanager.yml``: alerts grouped by alert and component/route/task, critical ones
    to the ``pager`` receiver, everything else to ``default`` (both webhooks here: replace
    them with your Slack/PagerDuty/e-mail receivers)."""

    def receiver(name: str) -> dict[str, Any]:
        return {"name": name, "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}

    return {
        "route": {
            "receiver": "default",
            "group_by": ["alertname", "job", "component", "route", "task", "slo"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
            "routes": [{"receiver": "pager", "matchers": ['severity="critical"']}],
        },
        "inhibit_rules": [
            {
                "source_matchers": ['alertname="TargetDown"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["job", "instance"],
            }
        ],
        "receivers": [receiver("default"), receiver("pager")],
    }


def compose_config() -> dict[str, Any]:
    """``docker-compose.yml`` for the stack (the application runs on the host, port 8000)."""
    host = ["host.docker.internal:host-gateway"]
    return {
        "services": {
            "prometheus": {
                "image": "prom/prometheus:v2.53.0",
                "command": [
                    "--config.file=/etc/prometheus/prometheus.yml",
                    "--storage.tsdb.retention.time=15d",
                    "--web.enable-lifecycle",
                ],
                "volumes": [
                    "./prometheus.yml:/etc/prometheus/prometheus.yml:ro",
                    "./rules:/etc/prometheus/rules:ro",
                    "prometheus-data:/prometheus",
                ],
                "ports": ["9090:9090"],
                "extra_hosts": host,
                "restart": "unless-stopped",
            },
            "alertmanager": {
                "image": "prom/alertmanager:v0.27.0",
                "command": ["--config.file=/etc/alertmanager/alertmanager.yml"],
                "volumes": ["./alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro"],
                "ports": ["9093:9093"],
                "extra_hosts": host,
                "restart": "unless-stopped",
            },
            "grafana": {
                "image": "grafana/grafana:11.1.0",
                "environment": [
                    "GF_AUTH_ANONYMOUS_ENABLED=true",
                    "GF_AUTH_ANONYMOUS_ORG_ROLE=Viewer",
                ],
                "volumes": [
                    "./grafana/provisioning:/etc/grafana/provisioning:ro",
                    "./grafana/dashboards:/var/lib/grafana/dashboards:ro",
                ],
                "ports": ["3000:3000"],
                "depends_on": ["prometheus"],
                "restart": "unless-stopped",
            },
            "node-exporter": {
                "image": "prom/node-exporter:v1.8.1",
                "command": ["--collector.textfile.directory=/textfile"],
                # Point METERHUB_TEXTFILE_PATH of the application into this directory.
                "volumes": ["${METERHUB_TEXTFILE_DIR:-./textfile}:/textfile:ro"],
                "ports": ["9100:9100"],
                "restart": "unless-stopped",
            },
            "pushgateway": {
                "image": "prom/pushgateway:v1.9.0",
                "ports": ["9091:9091"],
                "restart": "unless-stopped",
            },
        },
        "volumes": {"prometheus-data": {}},
    }


def _grafana_datasource() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "type": "prometheus",
                "uid": "prometheus",
                "access": "proxy",
                "url": "http://prometheus:9090",
                "isDefault": True,
            }
        ],
    }


def _grafana_dashboards() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "meterhub",
                "folder": "meterhub",
                "type": "file",
                "disableDeletion": False,
                "updateIntervalSeconds": 30,
                "options": {"path": "/var/lib/grafana/dashboards"},
            }
        ],
    }


def deploy_files(registry: Any = None, namespace: str = "") -> dict[str, str]:
    """Every file of the ``deploy/`` directory, relative path → content."""
    from . import registry_of
    from .dashboards import render_dashboard
    from .rule_tests import render_pack_tests
    from .rules import render_pack, rule_packs
    from .slo import render_slo

    reg = None if registry is None else registry_of(registry)
    files = {
        "prometheus.yml": dump_yaml(prometheus_config()),
        "alertmanager.yml": dump_yaml(alertmanager_config()),
        "docker-compose.yml": dump_yaml(compose_config()),
        "grafana/provisioning/datasources/prometheus.yml": dump_yaml(_grafana_datasource()),
        "grafana/provisioning/dashboards/meterhub.yml": dump_yaml(_grafana_dashboards()),
        "grafana/dashboards/meterhub.json": render_dashboard(reg, slos=EXAMPLE_SLO),
        "slo.yml": dump_yaml(EXAMPLE_SLO),
        "rules/slo.rules.yml": render_slo(EXAMPLE_SLO),
    }
    for pack in rule_packs(reg, namespace):
        files[f"rules/{pack.name}.rules.yml"] = render_pack(pack)
        files[f"rules/tests/{pack.name}.yml"] = render_pack_tests(pack)
    header = "# Generated by meterhub.ops.deploy - regenerate, do not edit by hand.\n"
    return {k: (v if k.endswith(".json") else header + v) for k, v in files.items()}


def write_deploy(directory: str | Path, registry: Any = None, namespace: str = "") -> list[Path]:
    """Write :func:`deploy_files` under *directory*; returns the written paths."""
    root = Path(directory)
    written = []
    for rel, text in deploy_files(registry, namespace).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # python -m meterhub.ops.deploy [DIR]: regenerate deploy/
    import sys

    for written in write_deploy(sys.argv[1] if len(sys.argv) > 1 else "deploy"):
        print(written)
