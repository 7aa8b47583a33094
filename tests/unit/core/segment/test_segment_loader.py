"""Segment files: what loads, and every refusal with file:line: field."""

from __future__ import annotations

import pytest

from orchestrator.core.segment import is_segment_text, load_segment_text
from orchestrator.exceptions import SegmentValidationError

GOOD = """kind: segment
id: cart_abandoners
version: 2
name: Cart abandoners
condition: >
  seen("cart.updated", duration("24h")) && !seen("order.completed", duration("24h"))
  && profile.consent.email.marketing && !("vip" in profile.segments)
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(SegmentValidationError) as err:
        load_segment_text(text, "s.yaml")
    return err.value.problems


def test_a_segment_loads_with_what_it_reads() -> None:
    seg = load_segment_text(GOOD, "s.yaml")
    assert (seg.id, seg.version, seg.name, seg.status) == ("cart_abandoners", 2, "Cart abandoners", "active")
    assert seg.depends_on == {"vip"}
    assert seg.time_dependent
    assert seg.max_lookback_ms == 24 * 3_600_000
    assert is_segment_text(GOOD)
    assert not is_segment_text("kind: policy\nid: p\n")


def test_a_profile_only_segment_is_not_time_dependent() -> None:
    seg = load_segment_text("kind: segment\nid: vip\nversion: 1\ncondition: profile.tier == 'gold'\n")
    assert not seg.time_dependent
    assert seg.depends_on == frozenset()


@pytest.mark.parametrize(
    "membership",
    ['"vip" in profile.segments', "profile.segments.vip > 0", "has(profile.segments.vip)",
     'profile.segments["vip"] > 0'],
)  # fmt: skip
def test_each_way_of_naming_another_segment_is_a_dependency(membership: str) -> None:
    seg = load_segment_text(
        f"kind: segment\nid: a\nversion: 1\ncondition: '{membership}'\n".replace("'", "'")
    )
    assert seg.depends_on == {"vip"}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("event.type == 'x'", "s.yaml:4: condition: a segment is about the customer, not one event"),
        ("journey.id == 'x'", "s.yaml:4: condition: a segment is not part of a journey"),
        ("now > timestamp('2025-01-01T00:00:00Z')", "s.yaml:4: condition: CEL: column 1: a segment may not"),
        ("size(profile.segments) > 1", "s.yaml:4: condition: CEL: column 14: name the segment"),
        ("'me' in profile.segments", "s.yaml:4: condition: segment 'me' reads its own membership"),
        ("profile.x ==", "s.yaml:4: condition: CEL: column"),
    ],
)  # fmt: skip
def test_refused_conditions_say_where_and_why(condition: str, expected: str) -> None:
    text = f'kind: segment\nid: me\nversion: 1\ncondition: "{condition}"\n'
    problems = _problems(text)
    assert any(p.startswith(expected) for p in problems), problems


def test_structure_problems_are_all_listed() -> None:
    problems = _problems("kind: segment\nid: Bad-Id\nversion: 0\nstatus: paused\ncolour: red\n")
    text = "\n".join(problems)
    assert "s.yaml:2: id: 'Bad-Id' is not a segment id" in text
    assert "s.yaml:3: version:" in text
    assert "s.yaml:4: status:" in text
    assert "colour" in text
    assert "condition" in text  # (required)


def test_history_functions_may_read_now_and_filters() -> None:
    seg = load_segment_text(
        "kind: segment\nid: a\nversion: 1\n"
        """condition: "count('email.opened', duration('168h'), {'campaign': 'news'}) >= 2"\n"""
    )
    assert seg.time_dependent


def test_the_schema_lists_exactly_the_fields_the_loader_accepts() -> None:
    from orchestrator.core.segment.loader import _TOP
    from orchestrator.core.segment.schema import segment_schema

    assert set(segment_schema()["properties"]) == set(_TOP)
