"""deploy/: generated configs pass ``promtool check config`` / ``amtool check-config``, and
the committed directory equals what the generators produce."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from meterhub.ops._yaml import dump_yaml, load_yaml
from meterhub.ops.deploy import (
    alertmanager_config,
    compose_config,
    deploy_files,
    prometheus_config,
    write_deploy,
)

pytestmark = pytest.mark.extra("yaml")

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def run(tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which(tool)
    if binary is None:
        pytest.skip(
            f"{tool} is not installed (Debian packages prometheus, prometheus-alertmanager)"
        )
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_committed_deploy_dir_is_in_sync() -> None:
    expected = deploy_files()
    for rel, text in expected.items():
        path = DEPLOY / rel
        assert path.is_file(), f"deploy/{rel} is missing: run `python -m meterhub.ops.deploy`"
        assert path.read_text(encoding="utf-8") == text, f"deploy/{rel} is stale: regenerate it"


def test_generated_tree_passes_every_tool(tmp_path: Path) -> None:
    write_deploy(tmp_path)
    # Point rule_files at the written packs so check config also loads and checks them.
    cfg = load_yaml((tmp_path / "prometheus.yml").read_text())
    cfg["rule_files"] = [str(tmp_path / "rules" / "*.rules.yml")]
    (tmp_path / "prometheus.local.yml").write_text(dump_yaml(cfg))
    result = run("promtool", "check", "config", str(tmp_path / "prometheus.local.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "rules found" in result.stdout
    result = run("amtool", "check-config", str(tmp_path / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    rule_files = sorted(str(p) for p in (tmp_path / "rules").glob("*.rules.yml"))
    result = run("promtool", "check", "rules", *rule_files)
    assert result.returncode == 0, result.stdout + result.stderr
    tests = sorted(str(p) for p in (tmp_path / "rules" / "tests").glob("*.yml"))
    assert len(tests) == 6
    result = run("promtool", "test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
    json.loads((tmp_path / "grafana/dashboards/meterhub.json").read_text())


def test_prometheus_config_shape(tmp_path: Path) -> None:
    cfg = prometheus_config(app_targets=["127.0.0.1:8000"], scrape_interval="1s")
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["pushgateway"]["honor_labels"] is True
    assert "honor_labels" not in jobs["app"]
    assert cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    no_push = prometheus_config(pushgateway_targets=[], node_targets=[], alertmanagers=[])
    assert [j["job_name"] for j in no_push["scrape_configs"]] == ["app"]
    assert "alerting" not in no_push
    (tmp_path / "p.yml").write_text(dump_yaml(no_push))
    result = run("promtool", "check", "config", str(tmp_path / "p.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_routes_critical_to_pager(tmp_path: Path) -> None:
    cfg = alertmanager_config("http://127.0.0.1:9/hook", group_wait="1s")
    assert cfg["route"]["routes"][0] == {"receiver": "pager", "matchers": ['severity="critical"']}
    (tmp_path / "am.yml").write_text(dump_yaml(cfg))
    result = run("amtool", "check-config", str(tmp_path / "am.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    (tmp_path / "bad.yml").write_text(dump_yaml(alertmanager_config("not a url")))
    assert run("amtool", "check-config", str(tmp_path / "bad.yml")).returncode != 0


def test_compose_stack() -> None:
    services = compose_config()["services"]
    assert set(services) == {
        "prometheus",
        "alertmanager",
        "grafana",
        "node-exporter",
        "pushgateway",
    }
    assert "--collector.textfile.directory=/textfile" in services["node-exporter"]["command"]
    assert any(v.endswith(":/textfile:ro") for v in services["node-exporter"]["volumes"])
    grafana = " ".join(services["grafana"]["volumes"])
    assert "provisioning" in grafana and "dashboards" in grafana
    files = deploy_files()
    ds = load_yaml(files["grafana/provisioning/datasources/prometheus.yml"])
    assert ds["datasources"][0]["type"] == "prometheus"
    prov = load_yaml(files["grafana/provisioning/dashboards/meterhub.yml"])
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
