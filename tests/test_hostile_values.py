"""Hostile values: every recording method against every numeric kind (issue 15, "Values").

The rule (design.md §5, ``meterhub._definition.values.checked_number``): exact
``float``/``int`` take the lock-free fast path; every other real scalar (bool, int/float
subclasses, numpy scalars and 0-d arrays, ``Decimal``, ``Fraction``) is converted once to an
exact ``float``; anything else (complex, arrays, strings, ``__float__`` raising or returning
a non-float, ints too large for a float, ``Decimal("sNaN")``) is refused - counted in
lenient mode, ``RecordingError`` in strict mode. A cell never holds anything but a ``float``.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families

import meterhub
from meterhub import (
    Counter,
    Gauge,
    Histogram,
    Hub,
    RecordingError,
    Registry,
    Summary,
    generate_latest,
)
from meterhub._definition.values import safe_repr
from meterhub.exposition.openmetrics import generate_latest_openmetrics
from meterhub.samples import format_le

np: Any
try:
    import numpy as np
except ImportError:  # numpy is in the test extra; the matrix runs without its kinds too
    np = None


# -- hostile kinds ----------------------------------------------------------------------


class RaisingFloat:
    def __float__(self) -> float:
        raise RuntimeError("no float for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


class FloatReturnsStr:
    def __float__(self) -> Any:
        return "1.0"


class RaisingStr:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        return "RaisingStr()"


class SlyFloat(float):
    """A float subclass whose Python-level ``__radd__`` would run inside ``cell[0] += x``."""

    def __radd__(self, other: Any) -> Any:
        return complex(float(other) + float(self), 1)

    def __ge__(self, other: Any) -> bool:
        return True


class MyInt(int):
    pass


FIXED: list[Any] = [
    0,
    1,
    -3,
    2**53 + 1,
    10**400,
    -(10**400),
    True,
    False,
    0.5,
    -0.25,
    math.inf,
    -math.inf,
    math.nan,
    Decimal("2.5"),
    Decimal("NaN"),
    Decimal("-NaN"),
    Decimal("sNaN"),
    Decimal("Infinity"),
    Decimal("1e400"),
    Fraction(1, 3),
    Fraction(10**400),
    complex(1, 1),
    complex(2, 0),
    "3",
    b"3",
    None,
    [1.0],
    object(),
    RaisingFloat(),
    FloatReturnsStr(),
    SlyFloat(2.0),
    MyInt(4),
]
if np is not None:
    FIXED += [
        np.float64(1.5),
        np.float32(0.25),
        np.float16(-2.0),
        np.int64(7),
        np.int8(-1),
        np.uint64(2**64 - 1),
        np.bool_(True),
        np.complex128(1 + 1j),
        np.complex64(3 + 0j),
        np.array(2.0),  # 0-d: a scalar
        np.array(1 + 1j),  # 0-d but complex
        np.array("3"),  # 0-d but a string
        np.array([1.0]),  # size 1 but an array: refused (pass arr.item())
        np.array([1.0, 2.0]),
        np.zeros((2, 2)),
        np.array([]),
        np.float64("nan"),
    ]


def expected(value: Any) -> float | None:
    """The float a value records as, or None if it is refused (the documented rule)."""
    if isinstance(value, (str, bytes, complex, list)) or value is None:
        return None
    if np is not None and isinstance(value, (np.ndarray, np.complexfloating)):
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biuf":
            return float(value)
        return None
    try:
        result = float(value)
    except Exception:
        return None
    return result if type(result) is float else None


def same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


numeric = (
    st.integers()
    | st.floats()
    | st.booleans()
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.fractions()
    | st.complex_numbers()
    | st.sampled_from(FIXED)
)
if np is not None:
    numeric |= st.floats(width=32).map(np.float32) | st.integers(-(2**63), 2**63 - 1).map(np.int64)
label_values = (
    st.text(max_size=5)
    | st.integers()
    | st.floats()
    | st.sampled_from([RaisingStr(), None, Decimal("1.5"), Fraction(1, 2)])
)


# -- the metrics under test, with a model of what they must hold ---------------------------


class Rig:
    """One registry with every type and a float model of what each series must hold."""

    def __init__(self) -> None:
        self.reg = Registry()
        r = self.reg
        self.counter = Counter("c", "C.", registry=r)
        self.lcounter = Counter("lc", "LC.", ["k"], registry=r)
        self.gauge = Gauge("g", "G.", registry=r)
        self.recent = Gauge("gr", "GR.", registry=r, multiprocess_mode="mostrecent")
        self.hist = Histogram("h", "H.", buckets=(0.5, 10), registry=r)
        self.neg_hist = Histogram("hn", "HN.", buckets=(-1, 0, 1), registry=r)
        self.summary = Summary("s", "S.", registry=r)
        self.hub = Hub(registry=r)
        self.model: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def add(self, sample: str, labels: dict[str, str], amount: float) -> None:
        key = (sample, tuple(sorted(labels.items())))
        self.model[key] = self.model.get(key, 0.0) + amount

    def put(self, sample: str, labels: dict[str, str], value: float) -> None:
        self.model[(sample, tuple(sorted(labels.items())))] = value

    def ops(self) -> dict[str, Callable[[Any, Any], int]]:
        """Each method: records *v* (label value *k*), updates the model, and returns how
        many errors it expects to be counted (0: the value must be recorded)."""

        def label_key(k: Any) -> str | None:
            try:
                key = k if type(k) is str else str(k)
            except Exception:
                return None
            return key if type(key) is str else None

        def counter_ok(x: float | None) -> bool:
            return x is not None and not math.isnan(x) and x >= 0

        def counter(record: Callable[[Any], None], sample: str) -> Any:
            def op(v: Any, k: Any) -> int:
                x = expected(v)
                record(v)
                if not counter_ok(x):
                    return 1
                self.add(sample, {}, x)  # type: ignore[arg-type]
                return 0

            return op

        def labeled_counter(record: Callable[[Any, Any], None], sample: str) -> Any:
            def op(v: Any, k: Any) -> int:
                key, x = label_key(k), expected(v)
                record(k, v)  # a refused label value records into a no-op child
                if key is None:
                    return 1 + (not counter_ok(x))
                if not counter_ok(x):
                    return 1
                self.add(sample, {"k": key}, x)  # type: ignore[arg-type]
                return 0

            return op

        def gauge(record: Callable[[Any], None], name: str, how: str) -> Any:
            def op(v: Any, k: Any) -> int:
                x = expected(v)
                record(v)
                if x is None:
                    return 1
                old = self.model.get((name, ()), 0.0)
                self.put(name, {}, {"set": x, "inc": old + x, "dec": old - x}[how])
                return 0

            return op

        def observe(record: Callable[[Any], None], name: str, buckets: tuple[float, ...]) -> Any:
            def op(v: Any, k: Any) -> int:
                x = expected(v)
                record(v)
                if x is None or math.isnan(x):
                    return 1
                self.add(name + "_sum", {}, x)
                self.add(name + "_count", {}, 1.0)
                for b in buckets:
                    self.add(name + "_bucket", {"le": format_le(b)}, 1.0 if x <= b else 0.0)
                return 0

            return op

        def exemplar(v: Any) -> None:
            self.counter.inc(v, exemplar={"trace_id": "abc"})

        return {
            "Counter.inc": counter(self.counter.inc, "c_total"),
            "Counter.inc(exemplar=)": counter(exemplar, "c_total"),
            "Counter.labels().inc": labeled_counter(
                lambda k, v: self.lcounter.labels(k).inc(v), "lc_total"
            ),
            "Gauge.inc": gauge(self.gauge.inc, "g", "inc"),
            "Gauge.dec": gauge(self.gauge.dec, "g", "dec"),
            "Gauge.set": gauge(self.gauge.set, "g", "set"),
            "Gauge(mostrecent).set": gauge(self.recent.set, "gr", "set"),
            "Gauge(mostrecent).inc": gauge(self.recent.inc, "gr", "inc"),
            "Histogram.observe": observe(self.hist.observe, "h", (0.5, 10.0, math.inf)),
            "Histogram(negative buckets).observe": observe(
                self.neg_hist.observe, "hn", (-1.0, 0.0, 1.0, math.inf)
            ),
            "Summary.observe": observe(self.summary.observe, "s", ()),
            "hub.inc_counter": labeled_counter(
                lambda k, v: self.hub.inc_counter("hc", {"k": k}, v), "hc_total"
            ),
            "hub.set_gauge": gauge(lambda v: self.hub.set_gauge("hg", None, v), "hg", "set"),
            "hub.observe": observe(lambda v: self.hub.observe("ho", None, v), "ho", ()),
        }

    def check(self) -> None:
        """Cells hold floats only; samples match the model; both formats render and parse."""
        for metric in (self.counter, self.lcounter, self.gauge, self.recent, self.hist,
                       self.neg_hist, self.summary):  # fmt: skip
            for child in metric._children.values():
                assert all(type(x) is float for x in child._cell), child._cell
        for (sample, labels), value in self.model.items():
            got = self.reg.get_sample_value(sample, dict(labels))
            assert same(got, value), (sample, labels, got, value)
        text = generate_latest(self.reg)
        promtool_accepts(text)
        om = generate_latest_openmetrics(self.reg).decode()
        families = list(text_string_to_metric_families(om))  # raises on invalid output
        assert families


def promtool_accepts(body: bytes) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        return  # the parse by prometheus_client still ran; promtool is checked elsewhere
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert r.returncode == 0, (r.stdout + r.stderr).decode() + body.decode()


METHODS = list(Rig().ops())


# -- lenient: nothing raises, every refusal is counted, the scrape stays valid -----------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(METHODS), numeric, label_values), max_size=25))
def test_type_matrix_lenient(calls: list[tuple[str, Any, Any]]) -> None:
    meterhub.configure(strict=False)
    rig = Rig()
    ops = rig.ops()
    refused = 0
    for method, value, label in calls:
        refused += ops[method](value, label)
    rig.check()
    errors = rig.reg.self_metrics.collect()
    counted = sum(v for fam in errors if fam.name == "meterhub_errors" for s in fam.series
                  for v in s.values)  # fmt: skip
    assert counted == refused


def test_every_fixed_kind_through_every_method_lenient() -> None:
    meterhub.configure(strict=False)
    rig = Rig()
    ops = rig.ops()
    for method in METHODS:
        for value in FIXED:
            for label in ("x", 3, RaisingStr()):
                ops[method](value, label)
    rig.check()


# -- strict: the documented error, and nothing stored for a refused value ---------------------


@pytest.mark.parametrize("method", METHODS)
def test_type_matrix_strict(method: str) -> None:
    rig = Rig()
    ops = rig.ops()
    for value in FIXED:
        for label in ("x", RaisingStr()):
            before = dict(rig.model)
            try:
                errors = ops[method](value, label)
            except RecordingError:
                rig.model = before
                continue
            assert errors == 0, f"{method}({safe_repr(value)}) should have raised"
    rig.check()


def test_strict_message_names_the_value_and_the_reason(registry: Registry) -> None:
    g = Gauge("g", "G.", registry=registry)
    with pytest.raises(RecordingError, match=r"complex number"):
        g.inc(complex(1, 1))
    with pytest.raises(RecordingError, match=r"RaisingFloat object \(repr\(\) failed\)"):
        g.set(RaisingFloat())
    c = Counter("c", "C.", ["k"], registry=registry)
    with pytest.raises(RecordingError, match=r"str\(\) failed: RuntimeError"):
        c.labels(RaisingStr())
    if np is not None:
        with pytest.raises(RecordingError, match=r"array is not a scalar"):
            c.labels("a").inc(np.array([1.0]))


def test_refused_values_are_counted_by_reason(lenient: None) -> None:
    reg = Registry()
    g = Gauge("g", "G.", registry=reg)
    c = Counter("c", "C.", ["k"], registry=reg)
    g.inc(complex(1, 1))
    g.set(RaisingFloat())
    c.labels(RaisingStr()).inc()
    c.remove(RaisingStr())
    assert reg.self_metrics.errors("g", "not_a_number") == 2
    assert reg.self_metrics.errors("c", "label_value") == 2
    assert reg.get_sample_value("g") == 0.0
    generate_latest(reg)  # the scrape renders


def test_hostile_exemplar_labels_are_refused_value_kept(lenient: None) -> None:
    reg = Registry()
    c = Counter("c", "C.", registry=reg)
    h = Histogram("h", "H.", registry=reg)
    c.inc(2, exemplar={"trace_id": RaisingStr()})  # type: ignore[dict-item]
    h.observe(Fraction(1, 2), exemplar={RaisingStr(): "x"})  # type: ignore[dict-item]
    assert reg.get_sample_value("c_total") == 2.0
    assert reg.get_sample_value("h_sum") == 0.5
    assert reg.self_metrics.errors("c", "exemplar") == 1
    assert reg.self_metrics.errors("h", "exemplar") == 1
    list(text_string_to_metric_families(generate_latest_openmetrics(reg).decode()))


def test_a_float_subclass_with_its_own_radd_is_converted(registry: Registry) -> None:
    c = Counter("c", "C.", registry=registry)
    g = Gauge("g", "G.", registry=registry)
    c.inc(SlyFloat(2.0))
    g.inc(SlyFloat(2.0))
    assert registry.get_sample_value("c_total") == 2.0
    assert registry.get_sample_value("g") == 2.0


# -- concurrency: the checked path loses nothing --------------------------------------------

THREADS = 8
PER_THREAD = 4_000


def _hammer(fn: Callable[[], None]) -> None:
    start = threading.Barrier(THREADS)

    def work() -> None:
        start.wait()
        for _ in range(PER_THREAD):
            fn()

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.mark.parametrize(
    "value", [Fraction(1), Decimal(1), True, MyInt(1), SlyFloat(1.0)], ids=repr
)
def test_concurrent_totals_stay_exact(registry: Registry, value: Any) -> None:
    c = Counter("c", "C.", ["k"], registry=registry)
    h = Histogram("h", "H.", buckets=(0.5, 2), registry=registry)
    g = Gauge("g", "G.", registry=registry)
    child = c.labels("a")

    def record() -> None:
        child.inc(value)
        h.observe(value)
        g.inc(value)

    _hammer(record)
    total = float(THREADS * PER_THREAD)
    assert registry.get_sample_value("c_total", {"k": "a"}) == total
    assert registry.get_sample_value("h_count") == total
    assert registry.get_sample_value("h_sum") == total
    assert registry.get_sample_value("g") == total


@pytest.mark.skipif(np is None, reason="numpy not installed")
def test_concurrent_numpy_scalars_stay_exact(registry: Registry) -> None:
    c = Counter("c", "C.", registry=registry)
    s = Summary("s", "S.", registry=registry)
    one, int_one = np.float64(1.0), np.int64(1)

    def record() -> None:
        c.inc(one)
        s.observe(int_one)

    _hammer(record)
    assert registry.get_sample_value("c_total") == float(THREADS * PER_THREAD)
    assert registry.get_sample_value("s_sum") == float(THREADS * PER_THREAD)


# -- events: payload values follow the same rule ------------------------------------------


def test_event_payload_values_are_floats_or_refused(lenient: None) -> None:
    from meterhub.events import EventRouter

    reg = Registry()
    router = EventRouter(hub=Hub(registry=reg))
    router.counter("e", "points_total", value="points")
    router.gauge("e", "level", value="level")
    router.histogram("e", "play_seconds", value="duration", buckets=(1.0, 10.0))
    for value in FIXED:
        router.emit("e", {"points": value, "level": value, "duration": value})
    for metric in reg.collect():
        for series in metric.series:
            assert all(type(x) is float for x in series.values), (metric.name, series)
    promtool_accepts(generate_latest(reg))
    list(text_string_to_metric_families(generate_latest_openmetrics(reg).decode()))
