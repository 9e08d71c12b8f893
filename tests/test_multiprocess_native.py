"""Native histograms in multi-process mode: exact merges across processes of different
schemas, compaction of dead workers, and reads that never see a window mid-rewrite."""

from __future__ import annotations

import multiprocessing
import os
import random
from pathlib import Path
from typing import Any

from meterhub import Histogram, Registry, generate_latest
from meterhub._native import bucket_key, decode_buckets
from meterhub.exposition.protobuf import generate_latest_protobuf
from meterhub.multiprocess import MultiProcessCollector
from meterhub.samples import NativeHistogram
from meterhub.store.mmap import MultiProcessStore
from support.client_model import parse_delimited

ctx = multiprocessing.get_context("fork")
ZT = 2.0**-128


def _registry(path: Path) -> Registry:
    return Registry(store=MultiProcessStore(path), self_metrics=False)


def _sidecar(path: Path) -> Registry:
    reg = Registry(self_metrics=False)
    reg.register(MultiProcessCollector(path))
    return reg


def _hist(reg: Registry, cap: int = 40) -> Any:
    return Histogram(
        "lat", "Latency.", ["op"], registry=reg, native_histogram_bucket_factor=1.01,
        native_histogram_max_buckets=cap,
    )  # fmt: skip


def _native(reg: Registry) -> NativeHistogram:
    for fam in reg.collect():
        if fam.name == "lat":
            (s,) = fam.series
            assert s.native is not None
            # A copy from another process may fall between an observation's updates of the
            # classic +Inf count and of its native bucket (one observation), never more (a
            # window copied mid-rewrite would be off by much more).
            assert abs(s.values[-1] - s.native.count_value) <= 1
            return s.native
    raise AssertionError("no lat family")


def _expected(values: list[float], schema: int) -> tuple[dict[int, float], dict[int, float]]:
    pos: dict[int, float] = {}
    neg: dict[int, float] = {}
    for v in values:
        if abs(v) > ZT:
            side = pos if v > 0 else neg
            k = bucket_key(v, schema)
            side[k] = side.get(k, 0.0) + 1
    return pos, neg


def _buckets(nh: NativeHistogram) -> tuple[dict[int, float], dict[int, float]]:
    return (
        decode_buckets(nh.pos_spans or (), nh.pos_deltas or ()),
        decode_buckets(nh.neg_spans or (), nh.neg_deltas or ()),
    )


def _worker(path: Path, values: list[float]) -> None:
    def work() -> None:
        h = _hist(_registry(path)).labels("get")
        for v in values:
            h.observe(v)
        os._exit(0)

    p = ctx.Process(target=work)
    p.start()
    p.join(60)
    assert p.exitcode == 0


def _streams() -> list[list[float]]:
    rng = random.Random(5)
    narrow = [rng.uniform(1.0, 1.05) for _ in range(300)]  # stays at schema 7
    wide = [rng.lognormvariate(0, 4) for _ in range(300)]  # lowered a lot
    mixed = [rng.gauss(0, 2) for _ in range(300)] + [0.0] * 5  # negatives and zeros
    return [narrow, wide, mixed]


def _check(reg: Registry, values: list[float], cap: int = 40) -> NativeHistogram:
    nh = _native(reg)
    assert nh.count_value == len(values)
    assert nh.zero_count == sum(1 for v in values if abs(v) <= ZT)
    assert abs(nh.sum_value - sum(values)) < 1e-6
    pos, neg = _expected(values, nh.schema)
    assert _buckets(nh) == (pos, neg)
    # the finest schema with room for all processes' buckets
    finer = _expected(values, nh.schema + 1)
    spans = sum(max(b) - min(b) + 1 for b in finer if b)
    assert nh.schema == 7 or spans > cap
    return nh


def test_processes_with_different_schemas_merge_exactly(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    mine = _hist(reg).labels("get")
    streams = _streams()
    for values in streams[:2]:
        _worker(tmp_path, values)
    for v in streams[2]:
        mine.observe(v)  # this (live) process has its own cell too
    everything = [v for s in streams for v in s]
    nh = _check(reg, everything)
    # the sidecar (definitions read from the files) renders the same
    side = _sidecar(tmp_path)
    assert _native(side) == nh
    # and the protobuf scrape carries it
    (fam,) = [f for f in parse_delimited(generate_latest_protobuf(reg)) if f.name == "lat"]
    assert fam.metric[0].histogram.sample_count == len(everything)
    assert b'lat_count{op="get"} 905' in generate_latest(reg)


def test_dead_workers_compact_into_the_archive_exactly(tmp_path: Path) -> None:
    streams = _streams()
    everything: list[float] = []
    side = _sidecar(tmp_path)
    for round_ in range(3):
        for values in streams:
            _worker(tmp_path, [v * (round_ + 1) for v in values])
            everything += [v * (round_ + 1) for v in values]
        _check(side, everything)  # collection compacts the dead workers' files
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".db"))
    assert files == ["archive_3.db"]


def test_a_reader_never_sees_a_window_mid_rewrite(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    _hist(reg, cap=30)
    n = 30_000
    values = [1.0007**i for i in range(n)]  # a new bucket almost every time: rewrites
    ready = ctx.Event()

    def work() -> None:
        h = _hist(_registry(tmp_path), cap=30).labels("get")
        h.observe(1.0)
        ready.set()
        for v in values:
            h.observe(v)
        os._exit(0)

    p = ctx.Process(target=work)
    p.start()
    assert ready.wait(30)
    reads = 0
    stream = [1.0, *values]
    while p.is_alive() or reads == 0:
        nh = _native(reg)
        # Observations land in order: a copy holds the first count_value of them, give or
        # take the few the writer made while the copy was read (slot by slot, in order).
        # A window copied mid-rewrite (counts at the old places) is off by hundreds.
        done = int(nh.count_value)
        got, want = _buckets(nh)[0], _expected(stream[:done], nh.schema)[0]
        off = sum(abs(got.get(k, 0.0) - want.get(k, 0.0)) for k in set(got) | set(want))
        assert off <= 6, (off, nh.schema)
        assert not _buckets(nh)[1]
        reads += 1
    p.join(60)
    assert p.exitcode == 0
    nh = _native(reg)
    assert nh.count_value == n + 1
    assert _buckets(nh)[0] == _expected([1.0, *values], nh.schema)[0]
    assert reads >= 1  # how many fall during the writes depends on the machine


def test_stable_copy_waits_for_an_even_unchanged_gen() -> None:
    from meterhub.store.nativecell import stable_copy

    start = 1  # gen at index 1
    seq = [[0.0, 1.0, 5.0], [0.0, 1.0, 6.0], [0.0, 2.0, 7.0], [0.0, 2.0, 8.0]]
    # gen 1 (odd: mid-rewrite) twice, then 2 twice: the first copy of the stable pair
    assert stable_copy(iter(seq), start) == [0.0, 2.0, 7.0]
    # a rewrite finishing between two copies (gen 2 -> 4) is not trusted either
    seq = [[0.0, 2.0, 1.0], [0.0, 4.0, 2.0], [0.0, 4.0, 3.0]]
    assert stable_copy(iter(seq), start) == [0.0, 4.0, 2.0]
    assert stable_copy(iter([[0.0, 1.0], [0.0, 1.0]]), start) is None  # never settles


def test_merge_native_lowers_to_the_common_schema() -> None:
    from meterhub.samples import MetricType
    from meterhub.store.base import MetricDesc, NativeSpec
    from meterhub.store.nativecell import merge_native, write_native

    desc = MetricDesc("h", "H.", MetricType.HISTOGRAM, buckets=(float("inf"),),
                      native=NativeSpec(3, ZT, 8))  # fmt: skip
    fine = {bucket_key(v, 3): 1.0 for v in (1.5, 2.0)}  # schema 3
    coarse = {bucket_key(v, 1): 1.0 for v in (1.5, 10.0)}  # lowered twice: schema 1
    a = [5.5, 2.0, 0.0, 1.0, *write_native(0, fine, {}, 8), 10.0]
    b = [11.5, 2.0, 0.0, 0.0, *write_native(2, coarse, {}, 8), 7.0]
    merged = merge_native(desc, [a, b])
    assert merged[0] == 17.0 and merged[1] == 4.0 and merged[3] == 1.0  # sum, count, zero
    assert merged[-1] == 7.0  # the earliest created
    from meterhub.store.nativecell import read_native

    reduced, pos, neg = read_native(merged, 2, 8)
    assert (reduced, neg) == (2, {})
    assert pos == _expected([1.5, 2.0, 1.5, 10.0], 1)[0]
    # more than max_buckets at the common schema (1): lowered until it fits (-1)
    wide = [11.5, 2.0, 0.0, 0.0, *write_native(2, {bucket_key(v, 1): 1.0 for v in (1.5, 8.0)},
                                                {}, 8), 7.0]  # fmt: skip
    far = [0.0] * 18
    far[4:17] = write_native(2, {bucket_key(1000.0, 1): 1.0}, {}, 8)
    far[1] = 1.0
    reduced, pos, _ = read_native(merge_native(desc, [wide, far]), 2, 8)
    assert reduced == 4 and pos == _expected([1.5, 8.0, 1000.0], -1)[0]  # 20 -> 10 -> 5 wide


def test_a_fork_while_a_window_lock_is_held_does_not_hang_the_child(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    child = _hist(reg).labels("get")
    child.observe(1.0)
    child._lock.acquire()  # as if another thread were moving the window at fork time
    try:

        def work() -> None:
            child.observe(1000.0)  # a new bucket: the slow path, under the lock
            os._exit(0)

        p = ctx.Process(target=work)
        p.start()
        p.join(30)
        assert p.exitcode == 0
    finally:
        child._lock.release()
    assert _native(reg).count_value == 2


def test_a_window_mid_rewrite_is_waited_for_and_a_dead_one_read_as_it_is(
    tmp_path: Path,
) -> None:
    from meterhub.store.layout import N_GEN, NATIVE_HISTOGRAM

    reg = _registry(tmp_path)
    h = _hist(reg)
    mine = h.labels("get")
    mine.observe(2.0)
    gen = NATIVE_HISTOGRAM.start(h.desc) + N_GEN
    side = _sidecar(tmp_path)
    mine._cell[gen] += 1  # as if this process were rewriting its window right now
    try:
        fams = [f for f in side.collect() if f.name == "lat"]
        assert not fams or not fams[0].series  # not read half-written: left for next time
    finally:
        mine._cell[gen] += 1
    assert _native(side).count_value == 1

    def killed_mid_rewrite() -> None:
        c = _hist(_registry(tmp_path)).labels("get")
        c.observe(3.0)
        c._cell[gen] += 1
        os._exit(0)

    p = ctx.Process(target=killed_mid_rewrite)
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert _native(side).count_value == 2  # the dead file's cell counts, and is archived
    assert _native(side).count_value == 2
