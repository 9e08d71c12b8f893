"""Every metric type in multi-process mode: gauge modes, Info, Enum, live and dead processes."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest

from meterhub import Enum, Gauge, Info, Registry
from meterhub.multiprocess import MultiProcessCollector
from meterhub.store.mmap import MultiProcessStore

ctx = multiprocessing.get_context("fork")


def _registry(path: Path) -> Registry:
    return Registry(store=MultiProcessStore(path), self_metrics=False)


class _Worker:
    """A forked process that runs *action* then stays alive until stopped."""

    def __init__(self, action: Any) -> None:
        self._ready = ctx.Event()
        self._stop = ctx.Event()

        def run() -> None:
            action()
            self._ready.set()
            self._stop.wait(60)
            os._exit(0)

        self.proc = ctx.Process(target=run)
        self.proc.start()
        assert self._ready.wait(30)

    def stop(self) -> None:
        self._stop.set()
        self.proc.join(30)


def _values(reg: Registry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for f in reg.collect()
        for s in f.samples
        if s.name == name
    }


EXPECTED = {
    # mode: (value with the parent's 1 + a live child's 10 + a dead child's 100)
    "sum": 111.0,
    "livesum": 11.0,
    "max": 100.0,
    "livemax": 10.0,
    "min": 1.0,
    "livemin": 1.0,
    "mostrecent": 10.0,
    "livemostrecent": 10.0,
}


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_gauge_modes_merge_live_and_dead_processes(tmp_path: Path, mode: str) -> None:
    reg = _registry(tmp_path)
    g = Gauge("g", "G.", registry=reg, multiprocess_mode=mode)
    g.set(1)

    def dead() -> None:
        g.set(100)
        os._exit(0)

    p = ctx.Process(target=dead)
    p.start()
    p.join(30)
    time.sleep(0.01)  # mostrecent: the live child's write must be strictly later
    live = _Worker(lambda: g.set(10))
    try:
        assert reg.get_sample_value("g") == EXPECTED[mode]
        side = Registry(self_metrics=False)
        side.register(MultiProcessCollector(tmp_path))
        assert side.get_sample_value("g") == EXPECTED[mode]
    finally:
        live.stop()


@pytest.mark.parametrize("mode", ["all", "liveall"])
def test_gauge_all_modes_give_one_series_per_live_process(tmp_path: Path, mode: str) -> None:
    reg = _registry(tmp_path)
    g = Gauge("g", "G.", ["k"], registry=reg, multiprocess_mode=mode)
    g.labels("x").set(1)

    def dead() -> None:
        g.labels("x").set(100)
        os._exit(0)

    p = ctx.Process(target=dead)
    p.start()
    p.join(30)
    live = _Worker(lambda: g.labels("x").set(10))
    try:
        got = _values(reg, "g")
        assert got == {
            (("k", "x"), ("pid", str(os.getpid()))): 1.0,
            (("k", "x"), ("pid", str(live.proc.pid))): 10.0,
        }
    finally:
        live.stop()


def test_info_is_the_union_of_distinct_label_sets(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    i = Info("build", "Build.", registry=reg)
    i.info({"version": "1.0", "note": 'a "quoted"\nline'})
    live = _Worker(lambda: i.info({"version": "2.0", "note": "ü"}))
    try:
        got = _values(reg, "build_info")
        assert got == {
            (("note", 'a "quoted"\nline'), ("version", "1.0")): 1.0,
            (("note", "ü"), ("version", "2.0")): 1.0,
        }
    finally:
        live.stop()
    # Once the worker is dead its info goes (Info describes live processes).
    assert _values(reg, "build_info") == {(("note", 'a "quoted"\nline'), ("version", "1.0")): 1.0}


def test_enum_has_one_series_per_process(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    e = Enum("state", "State.", states=["idle", "busy"], registry=reg)
    e.state("busy")
    live = _Worker(lambda: e.state("idle"))
    try:
        got = _values(reg, "state")
        me, it = str(os.getpid()), str(live.proc.pid)
        assert got[(("pid", me), ("state", "busy"))] == 1.0
        assert got[(("pid", it), ("state", "idle"))] == 1.0
        assert got[(("pid", it), ("state", "busy"))] == 0.0
    finally:
        live.stop()
    assert {k for k, v in _values(reg, "state").items() if v} == {
        (("pid", str(os.getpid())), ("state", "busy"))
    }


def test_gauge_inc_dec_across_processes_with_livesum(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    g = Gauge("inprogress", "In progress.", registry=reg, multiprocess_mode="livesum")
    workers = [_Worker(lambda: g.inc(2)) for _ in range(3)]
    try:
        assert reg.get_sample_value("inprogress") == 6
    finally:
        for w in workers:
            w.stop()
    assert reg.get_sample_value("inprogress") == 0


def test_utf8_names_are_kept_across_processes_and_compaction(tmp_path: Path) -> None:
    # A dotted metric or label name (OpenTelemetry's spelling) was written but refused by
    # the reader, which quarantined the writer's whole file: every value in it was lost.
    from meterhub import Counter, Histogram, generate_latest

    def record() -> None:
        reg = _registry(tmp_path)
        Counter("http.server.requests", "r", ["http.request.method"], registry=reg).labels(
            "GET"
        ).inc(3)
        h = Histogram("http.server.request.duration", "d", ["é"], registry=reg, buckets=[1])
        h.labels("ü").observe(0.5)

    live = _Worker(record)
    dead = _Worker(record)
    dead.stop()
    reg = _registry(tmp_path)
    try:
        text = generate_latest(reg).decode()
        assert 'http_server_requests_total{http_request_method="GET"} 6' in text
        assert 'http_server_request_duration_count{_="ü"} 2' in text
        collected = {s.name: s.value for f in reg.collect() for s in f.samples}
        assert collected["http.server.requests_total"] == 6.0
        assert not (tmp_path / "corrupt").exists()
        samples = [s for f in MultiProcessCollector(str(tmp_path)).collect() for s in f.samples]
        assert not [s for s in samples if "corrupt" in s.name and s.value]
    finally:
        live.stop()
