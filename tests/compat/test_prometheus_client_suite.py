"""prometheus_client 0.26.0's own test suite passes against meterhub (issue 18).

Both modes: meterhub's defaults, and ``METERHUB_COMPAT=prometheus_client``. A test that
fails without being on the expected-failure lists of ``docs/compat.md`` fails this test,
and so does a listed test that passes (the list must stay honest). Skips, with pip's
reason, when the sdist is not cached and the package index cannot be reached.
"""

from __future__ import annotations

import pytest
import run_prometheus_client_suite as suite


@pytest.fixture(scope="module")
def tree():  # type: ignore[no-untyped-def]
    try:
        return suite.fetch()
    except suite.FetchError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("mode", sorted(suite.MODES))
def test_suite_outcome_matches_the_documented_list(tree, mode: str) -> None:  # type: ignore[no-untyped-def]
    sections = suite.expected_failures()
    result = suite.run(mode, tree)
    unexpected, fixed, stale = suite.compare(result, suite.expected_in(mode, sections))
    lines = [f"{t}: {result.details.get(t, '')}" for t in unexpected]
    lines += [f"{t}: passes, remove it from docs/compat.md" for t in fixed]
    lines += [f"{t}: listed in docs/compat.md but not in the suite" for t in stale]
    assert not lines, f"{mode} mode, {result.counts()}:\n" + "\n".join(lines)


def test_expected_failures_have_reasons() -> None:
    sections = suite.expected_failures()
    assert set(sections) == {"both", "default"}  # nothing else may fail
    assert not set(sections["both"]) & set(sections["default"])
    for section in sections.values():
        for nodeid, reason in section.items():
            assert nodeid.startswith("tests/test_") and "::" in nodeid, nodeid
            assert len(reason) > 10, f"{nodeid}: give a one-line reason"
