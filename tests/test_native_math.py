"""Native-histogram bucket math against exact arithmetic, at every schema."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterhub._native import (
    _BOUNDS,
    MAX_SCHEMA,
    MIN_SCHEMA,
    bucket_key,
    decode_buckets,
    encode_buckets,
    encode_window,
    reduce_buckets,
    reduce_key,
    schema_for_factor,
    upper_bound,
)
from meterhub.samples import BucketSpan

SCHEMAS = range(MIN_SCHEMA, MAX_SCHEMA + 1)
positive = st.floats(min_value=5e-324, max_value=1.7976931348623157e308, allow_nan=False)


def _exact_side(v: float, key: int, schema: int) -> int:
    """-1 if v <= base**(key-1), +1 if v > base**key, 0 if inside bucket key (exact)."""
    x = Fraction(v)
    if schema >= 0:
        # v in (2**((k-1)/2**s), 2**(k/2**s)]  <=>  v**(2**s) in (2**(k-1), 2**k]
        p = x ** (2**schema)
        lo, hi = Fraction(2) ** (key - 1), Fraction(2) ** key
    else:
        p = x
        lo, hi = Fraction(2) ** ((key - 1) << -schema), Fraction(2) ** (key << -schema)
    if p <= lo:
        return -1
    if p > hi:
        return 1
    return 0


@pytest.mark.parametrize("schema", range(1, MAX_SCHEMA + 1))
def test_bounds_are_the_nearest_doubles(schema: int) -> None:
    n = 2**schema
    for j, b in enumerate(_BOUNDS[schema]):
        target = Fraction(2) ** (j - n)  # (2**(j/n - 1)) ** n
        below, above = math.nextafter(b, 0), math.nextafter(b, 1)
        lo_mid, hi_mid = (Fraction(below) + Fraction(b)) / 2, (Fraction(b) + Fraction(above)) / 2
        assert lo_mid**n <= target <= hi_mid**n, (schema, j)


@pytest.mark.parametrize("schema", SCHEMAS)
def test_powers_of_the_base_are_upper_inclusive(schema: int) -> None:
    for key in range(-40, 41):
        bound = upper_bound(key, schema)
        if bound in (0.0, math.inf):
            continue
        assert bucket_key(bound, schema) == key
        assert bucket_key(math.nextafter(bound, math.inf), schema) == key + 1


@settings(max_examples=300, deadline=None)
@given(v=positive, schema=st.integers(MIN_SCHEMA, MAX_SCHEMA))
def test_key_matches_exact_math(v: float, schema: int) -> None:
    key = bucket_key(v, schema)
    side = _exact_side(v, key, schema)
    if side != 0:
        # Only possible within one ulp of a bucket bound, where the correctly rounded bound
        # (what client_golang compares against too) and the exact one differ.
        bound = upper_bound(key if side > 0 else key - 1, schema)
        assert abs(v - bound) <= math.ulp(bound), (v, schema, key, side)
    assert bucket_key(-v, schema) == key  # negatives mirror by |v|


@settings(max_examples=300, deadline=None)
@given(v=positive, schema=st.integers(MIN_SCHEMA + 1, MAX_SCHEMA))
def test_reduction_equals_observing_at_the_lower_schema(v: float, schema: int) -> None:
    assert reduce_key(bucket_key(v, schema)) == bucket_key(v, schema - 1)


def test_reduction_merges_pairs() -> None:
    assert [reduce_key(k) for k in (-3, -2, -1, 0, 1, 2, 3, 4)] == [-1, -1, 0, 0, 1, 1, 2, 2]
    assert reduce_buckets({1: 1.0, 2: 2.0, 3: 4.0}) == {1: 3.0, 2: 4.0}
    assert reduce_buckets({1: 1.0, 2: 2.0, 3: 4.0}, by=2) == {1: 7.0}


@settings(max_examples=200, deadline=None)
@given(st.lists(positive, min_size=1, max_size=50), st.integers(MIN_SCHEMA + 2, MAX_SCHEMA))
def test_reducing_a_histogram_equals_building_it_lower(values: list[float], schema: int) -> None:
    def build(s: int) -> dict[int, float]:
        out: dict[int, float] = {}
        for v in values:
            k = bucket_key(v, s)
            out[k] = out.get(k, 0.0) + 1
        return out

    assert reduce_buckets(build(schema), by=2) == build(schema - 2)


def test_infinity_lands_in_the_top_bucket() -> None:
    for s in SCHEMAS:
        assert bucket_key(math.inf, s) == bucket_key(1.7976931348623157e308, s)
        assert upper_bound(bucket_key(math.inf, s), s) >= 1.7976931348623157e308


@pytest.mark.parametrize(
    ("factor", "schema"),
    [(1.0001, 8), (1.003, 8), (1.006, 7), (1.01, 7), (1.011, 6), (1.1, 3), (1.2, 2),
     (1.5, 1), (2, 0), (3, 0), (4, -1), (16, -2), (256, -3), (65536, -4), (1e300, -4),
     (math.inf, -4)],
)  # fmt: skip
def test_schema_for_factor(factor: float, schema: int) -> None:
    assert schema_for_factor(factor) == schema
    # the coarsest schema whose growth factor is still at most the one asked for
    if schema < MAX_SCHEMA:
        assert 2 ** (2.0**-schema) <= factor
    if schema > MIN_SCHEMA:
        assert 2 ** (2.0 ** -(schema - 1)) > factor


@pytest.mark.parametrize("factor", [1.0, 0.5, -2.0, math.nan])
def test_schema_for_factor_refuses(factor: float) -> None:
    with pytest.raises(ValueError, match="factor"):
        schema_for_factor(factor)


def test_encode_buckets_spans_and_deltas() -> None:
    assert encode_buckets({}) == ([], [])
    assert encode_buckets({-2: 1.0}) == ([BucketSpan(-2, 1)], [1])
    # a gap of 2 is filled with zeros, a gap of 3 starts a new span
    assert encode_buckets({0: 1, 3: 1}) == ([BucketSpan(0, 4)], [1, -1, 0, 1])
    assert encode_buckets({0: 1, 4: 1}) == ([BucketSpan(0, 1), BucketSpan(3, 1)], [1, 0])
    assert encode_buckets({0: 1, 4: 1}, fill_gaps=0) == encode_buckets({0: 1, 4: 1})
    assert encode_buckets({5: 0.0, 6: 2.0}) == ([BucketSpan(6, 1)], [2])


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.integers(-300, 300), st.integers(1, 10**6), max_size=40),
    st.integers(0, 3),
)
def test_encode_decode_round_trip(buckets: dict[int, int], fill: int) -> None:
    as_float = {k: float(v) for k, v in buckets.items()}
    spans, deltas = encode_buckets(as_float, fill_gaps=fill)
    assert sum(s.length for s in spans) == len(deltas)
    assert all(s.offset >= 0 for s in spans[1:])
    assert decode_buckets(spans, deltas) == as_float


@settings(max_examples=300, deadline=None)
@given(
    st.integers(-300, 300),
    st.lists(st.sampled_from([0.0, 0.0, 0.0, 1.0, 7.0, 1e6]), max_size=60),
    st.integers(0, 3),
)
def test_encode_window_is_encode_buckets_of_the_window(
    lo: int, counts: list[float], fill: int
) -> None:
    # a cell's window encoded in place: the same spans and deltas as from its mapping
    as_map = {lo + j: c for j, c in enumerate(counts)}
    assert encode_window(lo, counts, fill) == encode_buckets(as_map, fill)
    assert encode_window(lo, tuple(counts), fill) == encode_buckets(as_map, fill)
