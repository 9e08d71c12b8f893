"""EventRouter.from_file: every kind of mistake fails at load time naming file, rule, field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterhub import DefinitionError, Hub, Registry
from meterhub.events import EventRouter, parse_rules

pytestmark = pytest.mark.extra("yaml")


def hub() -> Hub:
    return Hub(registry=Registry(self_metrics=False))


GOOD_FIRST = "events:\n  login:\n    - counter: logins_total\n"


def rule_file(tmp_path: Path, second_rule: str) -> Path:
    """A file whose rule events.game[1] is *second_rule* (indented YAML mapping lines)."""
    body = "\n".join("      " + line for line in second_rule.strip().splitlines())
    text = GOOD_FIRST + "  game:\n    - counter: games_total\n    - " + body.lstrip() + "\n"
    path = tmp_path / "events.yaml"
    path.write_text(text)
    return path


# (the bad rule, the field the error must name, a phrase of the message)
RULE_MISTAKES = [
    ("counter: games_total\nlables: {mode: unknown}", "lables", "unknown field"),
    ("labels: {mode: unknown}", "counter", "exactly one of"),
    ("counter: a_total\nhistogram: b_seconds\nvalue: d", "histogram", "exactly one of"),
    ("counter: bad-name", "counter", "invalid metric name"),
    ("counter: c_total\nlabels: [1, 2]", "labels", "expected label names"),
    ("counter: c_total\nlabels: 5", "labels", "expected a mapping"),
    ("counter: c_total\nlabels: {2fast: x}", "labels", "invalid label name"),
    ("counter: c_total\nlabels: {__x: x}", "labels", "invalid label name"),
    ("counter: c_total\nlabels: {user_id: unknown}", "labels", "PII"),
    ("counter: c_total\nlabels: {email: unknown}", "labels", "PII"),
    ("counter: c_total\nlabels: {mode: [a, b]}", "labels", "must be a scalar"),
    ("histogram: d_seconds", "value", "needs the payload field"),
    ("gauge: g\nvalue: 5", "value", "payload field name"),
    ("histogram: d_seconds\nvalue: d\ndefault: fast", "default", "expected a number"),
    ("histogram: d_seconds\nvalue: d\ndefault: .nan", "default", "expected a number"),
    ("counter: c_total\nbuckets: [1, 2]", "buckets", "only histogram"),
    ("histogram: d_seconds\nvalue: d\nbuckets: [a, b]", "buckets", "list of numbers"),
    ("histogram: d_seconds\nvalue: d\nbuckets: []", "buckets", "list of numbers"),
    ("histogram: d_seconds\nvalue: d\nbuckets: [5, 1]", "buckets", "strictly increasing"),
    ("counter: c_total\nswitch: ''", "switch", "non-empty"),
    ("counter: c_total\nmax_per_minute: 0", "max_per_minute", "positive int"),
    ("counter: c_total\nmax_per_minute: lots", "max_per_minute", "positive int"),
    ("counter: c_total\nhelp: [no]", "help", "expected a str"),
    ("histogram: logins_total\nvalue: d", "histogram", "logins"),  # type conflict with rule 0
]


@pytest.mark.parametrize(("rule", "field", "phrase"), RULE_MISTAKES)
def test_rule_mistakes_name_file_rule_field(
    tmp_path: Path, rule: str, field: str, phrase: str
) -> None:
    path = rule_file(tmp_path, rule)
    with pytest.raises(DefinitionError) as info:
        EventRouter.from_file(path, hub=hub())
    message = str(info.value)
    assert str(path) in message
    assert "events.game[1]" in message
    assert field in message
    assert re.search(re.escape(phrase), message, re.IGNORECASE), message


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("events: [\n", "invalid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("", "top level must be a mapping"),
        ("events: {}\n", "non-empty mapping"),
        ("rules:\n  a: []\n", "unknown top-level key"),
        ("events:\n  login: counter\n", "events.login: expected a non-empty list"),
        ("events:\n  login: []\n", "events.login: expected a non-empty list"),
        ("events:\n  login:\n    - just a string\n", "events.login[0]: expected a mapping"),
        ("events:\n  1: [{counter: a_total}]\n", "event type 1"),
        ("max_per_minute: -5\nevents:\n  a: [{counter: a_total}]\n", "field 'max_per_minute'"),
    ],
)
def test_file_level_mistakes(tmp_path: Path, text: str, phrase: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(DefinitionError) as info:
        EventRouter.from_file(path, hub=hub())
    assert str(path) in str(info.value)
    assert phrase in str(info.value)


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read the rules file"):
        EventRouter.from_file(tmp_path / "nope.yaml", hub=hub())
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DefinitionError, match=r"bin\.yaml"):
        EventRouter.from_file(binary, hub=hub())


def test_a_failed_load_registers_nothing_it_should_not(tmp_path: Path) -> None:
    """The error is raised at load time: no router is returned, emit never sees bad rules."""
    path = rule_file(tmp_path, "counter: bad-name")
    with pytest.raises(DefinitionError):
        EventRouter.from_file(path, hub=hub())


def test_bare_label_list_and_single_mapping_forms(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("events:\n  login:\n    counter: logins_total\n    labels: [method]\n")
    h = hub()
    router = EventRouter.from_file(path, hub=h)
    router.emit("login", {})
    assert h.registry.get_sample_value("logins_total", {"method": "unknown"}) == 1


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(["events", "counter", "labels", "value", "a", "histogram"]),
                children,
                max_size=3,
            )
        ),
        max_leaves=12,
    )
)
def test_arbitrary_documents_raise_definition_error_or_parse(doc: object) -> None:
    try:
        parse_rules(doc, "fuzz.yaml")
    except DefinitionError as exc:
        assert "fuzz.yaml" in str(exc)
