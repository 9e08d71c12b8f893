"""Beyond one machine: two demo instances, one Prometheus scraping both and remote-writing
into VictoriaMetrics; a global ``sum(...)`` from VictoriaMetrics equals the sum of both
instances' counters. Everything is real: two ``meterhub demo`` processes (each with its own
worker process and multi-process directory), Debian ``prometheus`` and ``victoria-metrics``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from meterhub.exposition.parser import parse_text
from support.promstack import PromStack, free_port, wait_for, wait_query

pytestmark = pytest.mark.realstack

ALERTS = {"a": 7, "b": 11}


class Instance:
    """One ``meterhub demo --rate 0`` process: no built-in load, we post the alerts."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory.with_suffix(".log")
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        env.pop("METERHUB_MULTIPROC_DIR", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "meterhub.cli",
                "demo",
                "--dir",
                str(directory),
                "--port",
                str(self.port),
                "--rate",
                "0",
                "--workers",
                "1",
                "--duration",
                "600",
                "--jira-failure-rate",
                "0",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            env=env,
        )

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def counter(self, family: str) -> float:
        for fam in parse_text(self.metrics()):
            if fam.name == family:
                return sum(s.values[0] for s in fam.series)
        return 0.0

    def post_alert(self, severity: str) -> None:
        request = urllib.request.Request(
            self.url + "/alerts",
            data=json.dumps({"severity": severity}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.status == 202

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def instances(tmp_path: Path) -> Iterator[dict[str, Instance]]:
    started = {name: Instance(tmp_path / name) for name in ALERTS}
    try:
        yield started
    finally:
        codes = {name: inst.stop() for name, inst in started.items()}
        logs = {
            name: inst.log_path.read_text(errors="replace")[-2000:]
            for name, inst in started.items()
        }
        assert codes == {name: 0 for name in started}, logs


def test_global_sum_in_victoriametrics_equals_both_instances(
    promstack: PromStack, instances: dict[str, Instance]
) -> None:
    for inst in instances.values():
        wait_for(inst.metrics, 60, f"{inst.url}/metrics")
    for name, count in ALERTS.items():
        for i in range(count):
            instances[name].post_alert(("critical", "minor", "info")[i % 3])
    for name, count in ALERTS.items():
        inst = instances[name]
        wait_for(
            lambda inst=inst, count=count: inst.counter("alertdesk_alerts_processed") == count,
            60,
            f"{name} processed its alerts",
        )
    local_total = sum(inst.counter("alertdesk_alerts_received") for inst in instances.values())
    assert local_total == sum(ALERTS.values())

    vm = promstack.victoria_metrics()
    prom = promstack.prometheus(
        targets={"alertdesk": [f"127.0.0.1:{inst.port}" for inst in instances.values()]},
        remote_write_url=vm.url + "/api/v1/write",
    )
    # Both instances are scraped by the one Prometheus...
    wait_query(
        prom.url,
        'count(up{job="alertdesk"} == 1)',
        timeout=60,
        predicate=lambda r: float(r[0]["value"][1]) == 2,
    )
    # ...and the global view in VictoriaMetrics adds them up exactly.
    result = wait_query(
        vm.url,
        'sum(alertdesk_alerts_received_total{job="alertdesk"})',
        timeout=90,
        predicate=lambda r: float(r[0]["value"][1]) == local_total,
    )
    assert float(result[0]["value"][1]) == local_total
    per_instance = wait_query(
        vm.url,
        'sum by (instance) (alertdesk_alerts_processed_total{job="alertdesk"})',
        timeout=60,
        predicate=lambda r: len(r) == 2,
    )
    by_port = {
        r["metric"]["instance"].rsplit(":", 1)[1]: float(r["value"][1]) for r in per_instance
    }
    assert by_port == {str(instances[n].port): float(c) for n, c in ALERTS.items()}
