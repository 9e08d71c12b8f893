"""``meterhub.tools.lint``: each rule on its own, a file with every kind of finding, clean input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from meterhub import Counter, Gauge, Histogram, Registry, generate_latest
from meterhub.errors import ParseError
from meterhub.tools.lint import Finding, lint_families, lint_text

EVERY_KIND = """\
# HELP request_latency_milliseconds Latency.
# TYPE request_latency_milliseconds histogram
request_latency_milliseconds_bucket{le="+Inf"} 1
request_latency_milliseconds_count 1
request_latency_milliseconds_sum 3
# HELP queue_total Items queued now.
# TYPE queue_total gauge
queue_total 4
# HELP jobs Jobs run.
# TYPE jobs counter
jobs 3
# HELP hits_total Hits.
# TYPE hits_total counter
hits_total{route="/users/12345/orders"} 1
hits_total{route="/users/{id}/orders"} 1
hits_total{user="ada@example.org"} 1
hits_total{request="0b5f6c1e-2c7a-4c55-9f3e-51b1d2b7a9e1"} 1
hits_total{order="9876543"} 1
# HELP wide_total Many series.
# TYPE wide_total counter
wide_total{shard="a"} 1
wide_total{shard="b"} 1
wide_total{shard="c"} 1
"""


def _codes(findings: list[Finding]) -> list[tuple[int, str, str]]:
    return [(f.line, f.severity, f.code) for f in findings]


def test_a_file_with_every_kind_reports_exactly_those() -> None:
    findings = lint_text(EVERY_KIND, "every.prom", max_series=4)
    # Family findings sit on the family's first line (its HELP), label findings on the sample.
    assert _codes(findings) == [
        (1, "error", "base-unit"),
        (6, "error", "total-suffix"),
        (9, "warning", "counter-suffix"),
        (12, "error", "cardinality"),
        (14, "warning", "label-path"),
        (16, "error", "label-email"),
        (17, "error", "label-uuid"),
        (18, "warning", "label-id"),
    ]


def test_each_finding_is_one_line_with_its_location() -> None:
    for finding in lint_text(EVERY_KIND, "every.prom", max_series=4):
        text = str(finding)
        assert "\n" not in text
        assert text.startswith(f"every.prom:{finding.line}: {finding.severity} {finding.code}: ")


def test_base_unit_suggests_the_base_name() -> None:
    (finding,) = lint_text("# TYPE payload_kilobytes gauge\npayload_kilobytes 1\n", "x")
    assert "use bytes (payload_bytes)" in finding.message


@pytest.mark.parametrize(
    "name",
    ["db_query_ms", "upload_megabytes", "cpu_percent", "uptime_hours", "gc_pause_microseconds"],
)
def test_scaled_units_are_errors(name: str) -> None:
    findings = lint_text(f"# TYPE {name} gauge\n{name} 1\n")
    assert [f.code for f in findings] == ["base-unit"]


@pytest.mark.parametrize(
    "value",
    ["200", "GET", "/users/{id}", "/health", "3.11.2", "eu-west-1", "abcdef", "2024", ""],
)
def test_bounded_label_values_are_not_flagged(value: str) -> None:
    text = f'# TYPE x_total counter\nx_total{{v="{value}"}} 1\n'
    assert lint_text(text) == []


def test_raw_path_with_query_string_is_flagged() -> None:
    findings = lint_text('# TYPE x_total counter\nx_total{path="/search?q=a"} 1\n')
    assert [f.code for f in findings] == ["label-path"]


def test_one_finding_per_label_and_kind() -> None:
    lines = "".join(f'x_total{{order="{10000 + i}"}} 1\n' for i in range(5))
    findings = lint_text("# TYPE x_total counter\n" + lines)
    assert [(f.code, f.line) for f in findings] == [("label-id", 2)]


def test_clean_registry_has_no_findings(registry: Registry) -> None:
    Counter("orders", "Orders.", ["country"], registry=registry).labels("fr").inc()
    Histogram("checkout_seconds", "Checkout.", registry=registry).observe(0.2)
    Gauge("basket_bytes", "Basket.", registry=registry).set(10)
    assert lint_text(generate_latest(registry).decode()) == []
    assert lint_families(registry.collect()) == []


def test_lint_families_reports_ordinals(registry: Registry) -> None:
    Gauge("latency_ms", "Latency.", registry=registry).set(1)
    (finding,) = lint_families(registry.collect(), "app:REGISTRY")
    assert str(finding) == (
        "app:REGISTRY:1: error base-unit: latency_ms uses unit 'ms'; use seconds (latency_seconds)"
    )


def test_hostile_label_values_do_not_break_lint() -> None:
    text = '# TYPE x_total counter\nx_total{v="a\\"b\\\\c\\nd \u2603"} 1\n'
    assert lint_text(text) == []


def test_garbage_raises_parse_error() -> None:
    with pytest.raises(ParseError):
        lint_text("this is not { exposition\n")


# A real scrape of the default registry in multi-process mode with every kind of meterhub
# self-metric present (a fresh process: the store is chosen at start-up).
EVERY_SELF_METRIC = """
import os, sys, urllib.request
root = sys.argv[1]
os.environ["METERHUB_MULTIPROC_DIR"] = os.path.join(root, "mp")
os.makedirs(os.environ["METERHUB_MULTIPROC_DIR"])
import meterhub
from meterhub import Counter, Gauge, Hub
from meterhub.events import EventRouter, SQLiteEventStore
from meterhub.export.http import start_http_server
from meterhub.export.textfile import TextfileExporter
from meterhub.health import HealthChecks
from meterhub.oplog import OperationLog

meterhub.configure(strict=False, max_series=2)
wide = Counter("wide", "Over its series limit.", ["shard"])
for shard in "abc":
    wide.labels(shard).inc()
Counter("bad", "Refused an increment.").inc(-1)
Gauge("per_process", "One series per process (multiprocess_mode all).").set(1)
os.makedirs(os.path.join(root, "1000"))  # a numeric segment in the textfile's path
TextfileExporter(os.path.join(root, "1000", "app.prom"), interval=60).write()
log = OperationLog(os.path.join(root, "oplog"), flush_interval_seconds=0.05)
log.start_sync()
log.record_operation_nowait("api", "GET /x", 1.0)
log.stop_sync()
router = EventRouter(hub=Hub(), store=SQLiteEventStore(os.path.join(root, "events.db")))
router.counter("user_logged_in", "user_logins_total")
router.emit("user_logged_in", {})
router.emit("unknown_event", {})
router.close()
checks = HealthChecks()
checks.add("db", lambda: True)
checks.run()
server = start_http_server(0)
with urllib.request.urlopen(server.url + "/metrics", timeout=60) as resp:
    sys.stdout.write(resp.read().decode())
server.shutdown()
"""

SELF_FAMILIES = (
    "meterhub_errors_total",
    "meterhub_series_dropped_total",
    "meterhub_multiprocess_files_merged",
    "meterhub_operations_total",
    "meterhub_oplog_queue_size",
    "meterhub_oplog_persisted_total",
    "meterhub_events_unmapped_total",
    "meterhub_event_store_written_total",
    "meterhub_health_check_up",
    "meterhub_http_connections_open",
    "meterhub_textfile_writes_total",
)


def test_meterhub_own_metrics_lint_clean(tmp_path: Path) -> None:
    """meterhub's own output passes its own lint: the per-process gauges' ``pid`` and the
    textfile exporter's file ``path`` are bounded, not ids."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERHUB_")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    proc = subprocess.run(
        [sys.executable, "-c", EVERY_SELF_METRIC, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    scrape = proc.stdout
    for family in SELF_FAMILIES:
        assert f"# TYPE {family} " in scrape, family
    assert 'meterhub_oplog_queue_size{pid="' in scrape
    assert "/1000/app.prom" in scrape
    assert lint_text(scrape, "scrape") == []
    # The rules still hold for the same values under other names.
    # (a pid may have fewer digits than an id needs: the rule only sees 5 or more)
    renamed = re.sub(r'\{pid="\d+"', '{worker="4194301"', scrape)
    assert {f.code for f in lint_text(renamed)} == {"label-id"}
    moved = scrape.replace("meterhub_textfile_writes_total", "writes_total")
    assert [f.code for f in lint_text(moved)] == ["label-path"]
