"""In multi-process mode a registry serves every metric of the directory (issue 14, item 1):
the metrics only other processes declared, merged once with its own, with no setup."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

import meterhub
from meterhub import Counter, Gauge, Histogram, Hub, Registry, generate_latest
from meterhub.multiprocess import MultiProcessCollector
from meterhub.store.mmap import MultiProcessStore

WORKER = textwrap.dedent(
    """
    import sys
    from meterhub import Counter, Gauge, Histogram, Info, Registry
    from meterhub.store.mmap import MultiProcessStore

    reg = Registry(store=MultiProcessStore(sys.argv[1]), self_metrics=False)
    n = int(sys.argv[2])
    Counter("web_requests", "Requests.", ["path"], registry=reg).labels("/a").inc(n)
    Counter("shared_jobs", "Jobs.", registry=reg).inc(n)
    Histogram("web_latency_seconds", "Latency.", buckets=(0.1, 1.0), registry=reg).observe(0.5)
    Gauge("web_temp", "Temp.", multiprocess_mode="max", registry=reg).set(n)
    Info("web_build", "Build.", registry=reg).info({"version": "1.2"})
    """
)


def _worker(directory: Path, n: int) -> None:
    """A separate process that declares and records, then exits (its file stays)."""
    subprocess.run([sys.executable, "-c", WORKER, str(directory), str(n)], check=True, timeout=60)


def _samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def _families(text: bytes) -> list[str]:
    names = [line.split()[2] for line in text.decode().splitlines() if line.startswith("# TYPE")]
    assert len(names) == len(set(names)), f"duplicate families: {names}"
    return names


def test_a_registry_that_declared_nothing_serves_the_directory(tmp_path: Path) -> None:
    _worker(tmp_path, 3)
    _worker(tmp_path, 4)
    meterhub.configure(strict=True, multiproc_dir=str(tmp_path))
    text = generate_latest(Registry(self_metrics=False))
    s = _samples(text)
    assert s[("web_requests_total", frozenset({("path", "/a")}))] == 7
    assert s[("shared_jobs_total", frozenset())] == 7
    assert s[("web_latency_seconds_count", frozenset())] == 2
    assert s[("web_latency_seconds_bucket", frozenset({("le", "1.0")}))] == 2
    assert s[("web_temp", frozenset())] == 4
    # Info describes live processes: a dead worker's is dropped (the merge rules of the store)
    assert ("web_build_info", frozenset({("version", "1.2")})) not in s


def test_local_metrics_merge_once_with_the_directory(tmp_path: Path) -> None:
    _worker(tmp_path, 5)
    reg = Registry(store=MultiProcessStore(tmp_path), self_metrics=False)
    jobs = Counter("shared_jobs", "Jobs.", registry=reg)
    jobs.inc(2)
    Counter("local_only", "Only here.", registry=reg).inc()
    text = generate_latest(reg)
    names = _families(text)
    assert names[:2] == ["shared_jobs_total", "local_only_total"]  # own collectors first
    s = _samples(text)
    assert s[("shared_jobs_total", frozenset())] == 7  # 5 there + 2 here, counted once
    assert s[("local_only_total", frozenset())] == 1
    assert s[("web_requests_total", frozenset({("path", "/a")}))] == 5
    assert reg.get_sample_value("web_requests_total", {"path": "/a"}) == 5


def test_a_registered_multiprocess_collector_does_not_double(tmp_path: Path) -> None:
    """prometheus_client's idiom on a registry of the same directory: still each family once."""
    _worker(tmp_path, 1)
    meterhub.configure(strict=True, multiproc_dir=str(tmp_path))
    reg = Registry()  # with self-metrics: the store's and the collector's overlap
    reg.register(MultiProcessCollector(tmp_path))
    Counter("shared_jobs", "Jobs.", registry=reg).inc(10)
    text = generate_latest(reg)
    _families(text)
    s = _samples(text)
    assert s[("shared_jobs_total", frozenset())] == 11
    assert s[("web_requests_total", frozenset({("path", "/a")}))] == 1
    assert ("meterhub_multiprocess_collection_duration_seconds", frozenset()) in s


def test_name_filters_reach_the_directory_part(tmp_path: Path) -> None:
    _worker(tmp_path, 2)
    reg = Registry(store=MultiProcessStore(tmp_path), self_metrics=False)
    Gauge("local_g", "G.", registry=reg).set(1)
    only = list(reg.restricted_registry(["web_requests_total", "local_g"]).collect())
    assert sorted(f.name for f in only) == ["local_g", "web_requests"]
    assert [f.name for f in reg.collect(["web_latency_seconds_bucket"])] == ["web_latency_seconds"]


def test_store_self_metrics_once_in_a_process_that_declared_nothing(tmp_path: Path) -> None:
    _worker(tmp_path, 1)
    reg = Registry(store=MultiProcessStore(tmp_path), self_metrics=True)
    s = _samples(generate_latest(reg))
    assert s[("meterhub_multiprocess_files_merged", frozenset())] >= 1
    assert s[("shared_jobs_total", frozenset())] == 1


def test_hub_write_metrics_writes_every_process(tmp_path: Path) -> None:
    mp = tmp_path / "mp"
    mp.mkdir()
    _worker(mp, 6)
    h = Hub(registry=Registry(store=MultiProcessStore(mp), self_metrics=False))
    h.inc_counter("beat_runs_total")
    target = tmp_path / "out.prom"
    h.write_metrics(str(target))
    s = _samples(target.read_bytes())
    assert s[("web_requests_total", frozenset({("path", "/a")}))] == 6
    assert s[("beat_runs_total", frozenset())] == 1


def test_the_default_registry_and_hub_with_only_the_environment(tmp_path: Path) -> None:
    """The seed's beat process: nothing declared, METERHUB_MULTIPROC_DIR set, no setup."""
    mp = tmp_path / "mp"
    mp.mkdir()
    _worker(mp, 9)
    target = tmp_path / "beat.prom"
    code = textwrap.dedent(
        f"""
        import meterhub
        meterhub.hub.write_metrics({str(target)!r})
        import sys; sys.stdout.buffer.write(meterhub.generate_latest())
        """
    )
    env = {**os.environ, "METERHUB_MULTIPROC_DIR": str(mp)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=60
    ).stdout
    for text, scraped in ((out, True), (target.read_bytes(), False)):
        _families(text)
        s = _samples(text)
        assert s[("web_requests_total", frozenset({("path", "/a")}))] == 9
        assert s[("web_latency_seconds_count", frozenset())] == 1
        # the defaults stay in a scrape; a textfile leaves them to node_exporter's own
        assert (("process_cpu_seconds_total", frozenset()) in s) is scraped


def test_histogram_declared_here_and_there_is_summed_once(tmp_path: Path) -> None:
    _worker(tmp_path, 1)
    reg = Registry(store=MultiProcessStore(tmp_path), self_metrics=False)
    h = Histogram("web_latency_seconds", "Latency.", buckets=(0.1, 1.0), registry=reg)
    h.observe(0.05)
    assert reg.get_sample_value("web_latency_seconds_count") == 2
    assert reg.get_sample_value("web_latency_seconds_bucket", {"le": "0.1"}) == 1
