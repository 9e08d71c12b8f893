"""Alert rule packs: ``promtool check rules`` and ``promtool test rules`` on every pack."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterhub import Counter, DefinitionError, Hub, Registry
from meterhub.ops._yaml import dump_yaml, load_yaml
from meterhub.ops.rule_tests import render_pack_tests
from meterhub.ops.rules import RulePack, render_pack, render_rules, rule_packs, with_for

pytestmark = pytest.mark.extra("yaml")

PACKS = [p.name for p in rule_packs()]


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _write_pack(tmp_path: Path, pack: RulePack) -> Path:
    (tmp_path / "tests").mkdir(exist_ok=True)
    (tmp_path / f"{pack.name}.rules.yml").write_text(render_pack(pack))
    test_file = tmp_path / "tests" / f"{pack.name}.yml"
    test_file.write_text(render_pack_tests(pack))
    return test_file


@pytest.mark.parametrize("namespace", ["", "shop"])
@pytest.mark.parametrize("name", PACKS)
def test_pack_passes_promtool(tmp_path: Path, name: str, namespace: str) -> None:
    pack = next(p for p in rule_packs(namespace=namespace) if p.name == name)
    test_file = _write_pack(tmp_path, pack)
    check = promtool("check", "rules", str(tmp_path / f"{name}.rules.yml"))
    assert check.returncode == 0, check.stdout + check.stderr
    test = promtool("test", "rules", str(test_file))
    assert test.returncode == 0, test.stdout + test.stderr


def test_unit_tests_catch_a_changed_rule(tmp_path: Path) -> None:
    # The unit tests are not vacuous: a pack whose alerts wait too long fails them.
    pack = with_for(rule_packs()[0], "1h")
    (tmp_path / "tests").mkdir()
    (tmp_path / "components.rules.yml").write_text(render_pack(pack))
    (tmp_path / "tests" / "c.yml").write_text(render_pack_tests(rule_packs()[0]))
    result = promtool("test", "rules", str(tmp_path / "tests" / "c.yml"))
    assert result.returncode != 0
    assert "ComponentFailureRatioHigh" in result.stdout + result.stderr


def test_every_alert_is_annotated() -> None:
    doc = load_yaml(render_rules())
    alerts = [r for g in doc["groups"] for r in g["rules"]]
    assert len(alerts) >= 13
    for rule in alerts:
        assert rule["for"]
        assert rule["labels"]["severity"] in ("critical", "warning")
        ann = rule["annotations"]
        assert ann["summary"] and "$value" in ann["description"]
        assert ann["runbook_url"].endswith("/" + rule["alert"])


def test_latency_uses_rate_of_buckets_by_le() -> None:
    # The seed's histogram_quantile(0.95, sync_duration_seconds) was invalid usage.
    text = render_rules()
    for rule in (r for g in load_yaml(text)["groups"] for r in g["rules"]):
        if "histogram_quantile" in rule["expr"]:
            assert "_bucket[5m]" in rule["expr"] and "le)" in rule["expr"]


def test_namespace_and_registry_selection(tmp_path: Path) -> None:
    reg = Registry()
    Hub(registry=reg, namespace="acme").inc_counter(
        "component_calls_total", {"component": "jira", "operation": "x", "status": "failure"}
    )
    Counter("http_server_requests", "Requests.", ["method", "route", "status"], registry=reg)
    packs = rule_packs(reg)
    assert [p.name for p in packs] == ["components", "http", "targets", "meterhub"]
    assert "acme_component_calls_total" in packs[0].rules[0].expr
    text = render_rules(reg)
    (tmp_path / "all.rules.yml").write_text(text)
    result = promtool("check", "rules", str(tmp_path / "all.rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "celery" not in text


def test_bad_inputs() -> None:
    with pytest.raises(DefinitionError):
        rule_packs(namespace="bad-ns")
    with pytest.raises(DefinitionError):
        rule_packs(namespace='x"}) or vector(1) #')
    with pytest.raises(TypeError):
        rule_packs(namespace=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        render_rules(registry="not a registry")


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=60))
def test_yaml_round_trips_hostile_text(text: str) -> None:
    # Quotes, backslashes, newlines, unicode and YAML syntax must survive rendering.
    doc = {"groups": [{"name": text, "rules": [{"alert": "A", "expr": text}]}]}
    assert load_yaml(dump_yaml(doc)) == doc


@settings(max_examples=30, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_runbook_base_is_data_not_yaml(base: str) -> None:
    doc = load_yaml(render_rules(runbook_base=base))
    urls = {r["annotations"]["runbook_url"] for g in doc["groups"] for r in g["rules"]}
    assert all(u.startswith(base.rstrip("/")) for u in urls)
