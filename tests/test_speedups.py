"""The timer cores in C (``meterhub._speedups``) and in Python
(``meterhub._definition.timercore``) side by side: the same buckets, the same sums, the
same errors, for every kind of cell and bounds a series can hold; no reference leaked or
kept; exact under threads; the fallback chosen by ``METERHUB_NO_EXTENSIONS=1`` or a
build without a compiler, and required where ``METERHUB_REQUIRE_SPEEDUPS=1`` says the
build must have it (``.ci/run``)."""

from __future__ import annotations

import array
import gc
import math
import os
import subprocess
import sys
import threading
import tracemalloc
import weakref
from bisect import bisect_left
from collections.abc import MutableSequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterhub import Histogram, Registry
from meterhub._config import extensions_disabled
from meterhub._definition import scope, timercore
from meterhub._definition.timercore import PyHistogramTimerCore, PyTimerCore

ROOT = Path(__file__).resolve().parent.parent
INF = math.inf

try:
    from meterhub import _speedups
except ImportError:  # built without a compiler
    _speedups = None  # type: ignore[assignment]

REQUIRED = bool(os.environ.get("METERHUB_REQUIRE_SPEEDUPS"))
IMPLEMENTATIONS = ["python", "c"]


def cores(name: str) -> tuple[type[Any], type[Any]]:
    if name == "python":
        return PyTimerCore, PyHistogramTimerCore
    if _speedups is None:
        if REQUIRED:
            pytest.fail("METERHUB_REQUIRE_SPEEDUPS=1 but meterhub._speedups is not built")
        pytest.skip("meterhub._speedups is not built here (no C compiler or Python headers)")
    return _speedups.TimerCore, _speedups.HistogramTimerCore


@pytest.fixture(params=IMPLEMENTATIONS)
def histogram_core(request: pytest.FixtureRequest) -> type[Any]:
    return cores(request.param)[1]


@pytest.fixture(params=IMPLEMENTATIONS)
def timer_core(request: pytest.FixtureRequest) -> type[Any]:
    return cores(request.param)[0]


class Series:
    """What a histogram timer reads from its series: ``_bounds`` and ``_v``."""

    def __init__(self, bounds: Any, v: Any) -> None:
        self._bounds = bounds
        self._v = v


def timed(core: type[Any], series: Any, seconds: float) -> Any:
    """Exit a timer of *core* on *series* as if its block had run *seconds* (a past
    ``_t0``; negative: a future one); returns the timer, whose ``_duration`` is exact."""
    timer = core()
    timer._series = series
    timer._t0 = timercore.now() - seconds
    assert timer.__exit__(None, None, None) is None
    return timer


def expected_cell(bounds: Any, durations: list[float]) -> list[float]:
    """The cell HistogramChild.observe leaves after *durations*: sum, then the counts."""
    v = [0.0] * (len(bounds) + 2)
    for d in durations:
        v[0] += d
        v[bisect_left(bounds, d) + 1] += 1.0
    return v


# -- the same recording -------------------------------------------------------------------

bounds_strategy = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=0, max_size=20
).map(lambda bs: (*sorted(set(bs)), INF))
seconds_strategy = st.lists(
    st.one_of(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
        st.sampled_from([0.0, 1e-9, 0.005, 0.1, 10.0]),
    ),
    min_size=1,
    max_size=12,
)


@given(bounds=bounds_strategy, seconds=seconds_strategy)
def test_both_cores_record_what_observe_records(
    bounds: tuple[float, ...], seconds: list[float]
) -> None:
    for name in IMPLEMENTATIONS:
        core = cores(name)[1]
        series = Series(bounds, [0.0] * (len(bounds) + 2))
        durations = [timed(core, series, s)._duration for s in seconds]
        assert series._v == expected_cell(bounds, durations), name


class BoundsAtTheDuration:
    """A series whose bounds, read at exit after the clock, are the duration itself and
    its two neighbouring floats: a duration equal to a bound must count in that bound's
    bucket (``le``: bisect_left), one ulp above it in the next."""

    def __init__(self, bound: int) -> None:
        self.timer: Any = None
        self.bound = bound
        self._v = [0.0] * 6

    @property
    def _bounds(self) -> tuple[float, ...]:
        d = self.timer._duration
        around = (math.nextafter(d, -INF), d, math.nextafter(d, INF))
        return (
            (*around[: self.bound], *around[self.bound + 1 :], INF)
            if self.bound < 3
            else (
                *around,
                INF,
            )
        )


@pytest.mark.parametrize("removed", [0, 1, 2, 3])
def test_a_duration_on_a_bound_counts_in_that_bucket(
    histogram_core: type[Any], removed: int
) -> None:
    series = BoundsAtTheDuration(removed)
    series.timer = timer = histogram_core()
    timer._series = series
    with timer:
        pass
    bounds = series._bounds
    want = [0.0] * 6
    want[0] = timer._duration
    want[bisect_left(bounds, timer._duration) + 1] = 1.0
    assert series._v[: len(bounds) + 1] == want[: len(bounds) + 1]
    assert series._v[len(bounds) + 1 :] == [0.0] * (5 - len(bounds))


@pytest.mark.parametrize(
    "make_cell",
    [
        pytest.param(lambda n: [0.0] * n, id="list"),
        pytest.param(lambda n: memoryview(bytearray(8 * n)).cast("d"), id="memoryview-d"),
        pytest.param(
            lambda n: memoryview(bytearray(8 * (n + 4))).cast("d")[2 : n + 2], id="mv-slice"
        ),
        pytest.param(lambda n: array.array("d", [0.0] * n), id="array-d"),
        pytest.param(lambda n: [0] * n, id="list-of-ints"),
        pytest.param(lambda n: memoryview(bytearray(4 * n)).cast("f"), id="memoryview-f"),
    ],
)
@pytest.mark.parametrize(
    "bounds",
    [
        pytest.param((0.01, 0.1, 1.0, INF), id="tuple"),
        pytest.param((0, 1, 10, INF), id="tuple-of-ints"),
        pytest.param([0.01, 0.1, 1.0, INF], id="list"),
    ],
)
def test_every_cell_and_bounds_kind_records_the_same(
    histogram_core: type[Any], make_cell: Any, bounds: Any
) -> None:
    series = Series(bounds, make_cell(len(bounds) + 1))
    durations = [timed(histogram_core, series, s)._duration for s in (0.005, 0.05, 0.5, 5.0, -1.0)]
    want = expected_cell(bounds, durations)[: len(bounds) + 1]
    got = list(series._v)
    if isinstance(series._v, memoryview) and series._v.format == "f":
        assert got == pytest.approx(want, rel=1e-6)
    else:
        assert got == want


class Cell(MutableSequence[float]):
    """A cell of another kind: the item protocol only."""

    def __init__(self, n: int) -> None:
        self.items = [0.0] * n
        self.writes: list[int] = []

    def __getitem__(self, i: Any) -> Any:
        return self.items[i]

    def __setitem__(self, i: Any, value: Any) -> None:
        self.writes.append(i)
        self.items[i] = value

    def __delitem__(self, i: Any) -> None:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.items)

    def insert(self, i: int, value: float) -> None:
        raise NotImplementedError


def test_a_cell_of_another_kind_is_written_through_its_item_protocol(
    histogram_core: type[Any],
) -> None:
    cell = Cell(4)
    d = timed(histogram_core, Series((0.1, INF), cell), 1.0)._duration
    assert cell.items == [d, 0.0, 1.0, 0.0] and cell.writes == [0, 2]


def test_the_series_cell_is_read_at_exit(histogram_core: type[Any]) -> None:
    """``_v`` is read at exit (a switched-off metric or a moved cell swaps it)."""
    series = Series((INF,), [0.0, 0.0, 0.0])
    timer = histogram_core()
    timer._series = series
    timer.__enter__()
    series._v = swapped = [0.0, 0.0, 0.0]
    timer.__exit__(None, None, None)
    assert swapped[1] == 1.0


# -- the same state and errors ------------------------------------------------------------


def test_state_reads_as_slots(timer_core: type[Any]) -> None:
    timer = timer_core()
    for name in ("_series", "_t0", "_duration"):
        with pytest.raises(AttributeError):
            getattr(timer, name)
    assert timer.__enter__() is timer
    assert isinstance(timer._t0, float) and timer._t0 <= timercore.now()
    timer._series = series = object()
    assert timer._series is series
    del timer._t0, timer._series
    with pytest.raises(AttributeError):
        timer._t0  # noqa: B018
    with pytest.raises(AttributeError):
        del timer._t0
    with pytest.raises(AttributeError):
        timer.anything = 1  # slotted: no other attribute


def test_the_clock_is_perf_counter(timer_core: type[Any]) -> None:
    """The C entry reads ``time.perf_counter``'s clock: a Python exit subtracts from it."""
    before = timercore.now()
    timer = timer_core().__enter__()
    assert before <= timer._t0 <= timercore.now()


def raised(call: Any) -> tuple[type[BaseException], str] | None:
    try:
        call()
    except Exception as exc:
        return type(exc), str(exc)
    return None


def exit_of(core: type[Any], series: Any = None, enter: bool = True, args: int = 3) -> Any:
    def run() -> None:
        timer = core()
        if series is not None:
            timer._series = series
        if enter:
            timer.__enter__()
        timer.__exit__(*[None] * args)

    return run


def released() -> memoryview:
    view = memoryview(bytearray(8 * 3)).cast("d")
    view.release()
    return view


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("not entered", AttributeError),
        ("no series", AttributeError),
        ("no _bounds", AttributeError),
        ("no _v", AttributeError),
        ("cell too short", IndexError),
        ("memoryview too short", IndexError),
        ("released memoryview", ValueError),
        ("read-only memoryview", TypeError),
        ("bounds not a sequence", TypeError),
        ("bounds not comparable", TypeError),
        ("wrong argument count", TypeError),
    ],
)
def test_errors_are_the_python_cores_errors(case: str, expected: type[BaseException]) -> None:
    def run(core: type[Any]) -> Any:
        one = (INF,)
        return {
            "not entered": exit_of(core, Series(one, [0.0] * 3), enter=False),
            "no series": exit_of(core),
            "no _bounds": exit_of(core, object()),
            "no _v": exit_of(core, type("S", (), {"_bounds": one})()),
            "cell too short": exit_of(core, Series(one, [0.0])),
            "memoryview too short": exit_of(core, Series(one, memoryview(bytearray(8)).cast("d"))),
            "released memoryview": exit_of(core, Series(one, released())),
            "read-only memoryview": exit_of(core, Series(one, memoryview(bytes(24)).cast("d"))),
            "bounds not a sequence": exit_of(core, Series(3, [0.0] * 3)),
            "bounds not comparable": exit_of(core, Series(("a", "b"), [0.0] * 4)),
            "wrong argument count": exit_of(core, Series(one, [0.0] * 3), args=1),
        }[case]

    results = {name: raised(run(cores(name)[1])) for name in IMPLEMENTATIONS}
    for name, result in results.items():
        assert result is not None and issubclass(result[0], expected), (name, result)


def test_a_failed_c_exit_leaves_the_cell_as_it_was() -> None:
    """The C exit checks the cell's size before writing: no sum without its count (the
    Python exit writes the sum first, as HistogramChild.observe does)."""
    cell = [0.0]
    with pytest.raises(IndexError):
        exit_of(cores("c")[1], Series((INF,), cell))()
    assert cell == [0.0]


# -- no reference leaked or kept ------------------------------------------------------------


def test_no_reference_is_leaked(histogram_core: type[Any]) -> None:
    sentinel_sum, sentinel_count = float("1.5"), float("2.5")
    series = Series((INF,), [sentinel_sum, sentinel_count, 0.0])
    series_refs = sys.getrefcount(series)
    sum_refs, count_refs = sys.getrefcount(sentinel_sum), sys.getrefcount(sentinel_count)
    for _ in range(3):
        timer = histogram_core()
        timer._series = series
        with timer:
            pass
        del timer
    assert sys.getrefcount(series) == series_refs
    assert sys.getrefcount(sentinel_sum) == sum_refs - 1  # the cell let go of it
    assert sys.getrefcount(sentinel_count) == count_refs - 1
    assert series._v[1] == 5.5


def test_many_blocks_keep_no_memory(histogram_core: type[Any]) -> None:
    series = Series((0.1, INF), [0.0] * 4)

    def blocks(n: int) -> None:
        for _ in range(n):
            timer = histogram_core()
            timer._series = series
            with timer:
                pass

    blocks(1000)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        blocks(50_000)
        gc.collect()
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, grown
    assert series._v[1] + series._v[2] == 51_000


def test_a_cycle_through_a_timer_is_collected(timer_core: type[Any]) -> None:
    class Holder:
        timer: Any

    holder = Holder()
    holder.timer = timer = timer_core()
    timer._series = holder
    gone = weakref.ref(holder)
    del holder, timer
    gc.collect()
    assert gone() is None


# -- the timers built on the cores ----------------------------------------------------------


def test_histogram_time_runs_on_the_chosen_core() -> None:
    reg = Registry(self_metrics=False)
    timer = Histogram("t", "T.", registry=reg).time()
    assert isinstance(timer, timercore.HistogramTimerCore)
    assert isinstance(timer, scope.SeriesTimer)
    assert (timercore.HistogramTimerCore is not PyHistogramTimerCore) == timercore.ACCELERATED


@pytest.mark.usefixtures("switch_often")
def test_threads_timing_one_series_lose_nothing() -> None:
    reg = Registry(self_metrics=False)
    latency = Histogram("latency_seconds", "L.", buckets=(1e-6, 1e-5, 1e-4), registry=reg)
    per_thread, threads = 20_000, 4

    def work() -> None:
        time = latency.time
        for _ in range(per_thread):
            with time():
                pass

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert reg.get_sample_value("latency_seconds_count") == per_thread * threads
    assert reg.get_sample_value("latency_seconds_bucket", {"le": "+Inf"}) == per_thread * threads


def python_in(env: dict[str, str], code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.strip()


CHOSEN = (
    "from meterhub._definition import timercore as t;"
    "print(t.ACCELERATED, t.HistogramTimerCore.__module__)"
)


def test_no_extensions_chooses_the_python_cores() -> None:
    assert python_in({"METERHUB_NO_EXTENSIONS": "1"}, CHOSEN) == (
        "False meterhub._definition.timercore"
    )


def test_no_extensions_is_a_boolean_setting() -> None:
    assert not extensions_disabled({})
    assert extensions_disabled({"METERHUB_NO_EXTENSIONS": "true"})
    assert not extensions_disabled({"METERHUB_NO_EXTENSIONS": "0"})
    with pytest.raises(ValueError, match="METERHUB_NO_EXTENSIONS='sometimes'"):
        extensions_disabled({"METERHUB_NO_EXTENSIONS": "sometimes"})


def test_the_c_cores_are_chosen_when_built() -> None:
    cores("c")  # skips (or fails where required) when not built
    env = {k: v for k, v in os.environ.items() if k != "METERHUB_NO_EXTENSIONS"}
    for setting in ({}, {"METERHUB_NO_EXTENSIONS": "0"}):
        out = subprocess.run(
            [sys.executable, "-c", CHOSEN],
            env={**env, **setting},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert out == "True meterhub._speedups", setting


def test_the_timer_tests_pass_on_the_python_cores() -> None:
    """tests/test_scopes.py (nesting, threads, asyncio, generators, decorators, the
    multi-process store) once more on the fallback the C cores stand in for."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_scopes.py"],
        env={**os.environ, "METERHUB_NO_EXTENSIONS": "1"},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
