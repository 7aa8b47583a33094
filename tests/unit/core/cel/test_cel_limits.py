"""No condition can hang a worker (issue 19): ``matches`` is RE2 (linear time, the spec's syntax), and a
cost budget bounds the macro iterations of one evaluation, estimated when the journey loads (refused
over it, with the column) and enforced when it runs."""

from __future__ import annotations

import pytest

from orchestrator.core.cel import CelCompileError, CelEvaluationError, CelType, compile_condition
from orchestrator.core.cel.cost import COST_BUDGET, DATA_ITEMS, MAX_GROWN, estimate
from orchestrator.core.cel.parser import parse
from orchestrator.core.journey import load_journey_text
from orchestrator.exceptions import JourneyValidationError


def _event(**properties: object) -> dict[str, object]:
    return {"event": {"properties": properties}, "profile": {}, "now_ms": 0}


# ---------------------------------------------------------------- RE2
def test_a_backtracking_pattern_runs_in_linear_time() -> None:
    """Python's engine took ~70 s on this (catastrophic backtracking); RE2 does not backtrack."""
    cond = compile_condition('event.properties.s.matches("(a+)+$")')
    assert cond.evaluate(_event(s="a" * 30 + "b")) is False
    assert cond.evaluate(_event(s="a" * 10_000 + "b")) is False
    assert cond.evaluate(_event(s="aaa")) is True


@pytest.mark.parametrize(
    ("pattern", "why"),
    [(r"(a)\\1", "invalid escape sequence"), (r"(?=a)b", "invalid perl operator"), ("[a-", "missing ]")],
)
def test_a_pattern_re2_refuses_is_refused_at_load_time(pattern: str, why: str) -> None:
    with pytest.raises(CelCompileError, match=why) as caught:
        compile_condition(f'event.type.matches("{pattern}")')
    assert caught.value.column == 20  # the pattern's own column
    assert "(RE2 syntax)" in caught.value.reason


def test_re2_semantics() -> None:
    def m(text: str, pattern: str) -> bool:
        return bool(
            compile_condition(f"s.matches({pattern!r})", variables={"s": CelType.STRING}).test({"s": text})
        )

    assert m("abc", "b")  # unanchored, as CEL says
    assert not m("abc", "^b")
    assert m("ab\n", r"b\z") is False  # \z is RE2's end of text
    assert m("ab", r"b\z")
    assert m("é", "^.$")  # one code point
    assert m("user-42", r"^(?P<name>[a-z]+)-\d+$")  # named groups are RE2 too


def test_a_pattern_from_data_is_checked_when_it_runs() -> None:
    cond = compile_condition("event.type.matches(event.properties.p)")
    with pytest.raises(CelEvaluationError, match="invalid regular expression"):
        cond.evaluate({"event": {"type": "x", "properties": {"p": "(a)\\1"}}, "profile": {}})


def test_a_journey_with_a_refused_pattern_names_the_file_line_and_field() -> None:
    text = """
id: j
version: 1
entry:
  event: page.viewed
  condition: 'event.properties.url.matches("(?<=shop)/cart")'
steps:
  done: {type: exit}
"""
    with pytest.raises(JourneyValidationError) as caught:
        load_journey_text(text, "journeys/j.yaml")
    (problem,) = caught.value.problems
    assert problem.startswith(
        "journeys/j.yaml:6: entry.condition: CEL: column 30: invalid regular expression"
    )


# ---------------------------------------------------------------- the cost budget
def test_macros_nested_over_independent_lists_are_refused_at_load_time() -> None:
    with pytest.raises(CelCompileError, match="cost budget") as caught:
        compile_condition("event.properties.a.exists(x, event.properties.b.exists(y, x == y))")
    assert caught.value.column == 20  # the outer macro
    assert f"up to {DATA_ITEMS + DATA_ITEMS * DATA_ITEMS:,} macro iterations" in caught.value.reason


def test_the_hang_of_three_nested_macros_is_refused() -> None:
    """78-146 s per evaluation before the budget."""
    source = (
        "event.properties.items.all(a, event.properties.items.all(b, "
        "event.properties.items.all(c, a + b + c >= 0)))"
    )
    with pytest.raises(CelCompileError, match="cost budget"):
        compile_condition(source)


@pytest.mark.parametrize(
    "source",
    [
        'event.properties.items.exists(i, i.sku == "A1")',  # one list: 1,000 at most
        'event.properties.items.exists(i, i.tags.exists(t, t == "x"))',  # parts of the outer element
        "history.exists(h, history.exists(g, h.at_ms < g.at_ms))",  # 200 x 200
        "[1, 2, 3].all(x, event.properties.items.exists(i, i == x))",  # 3 x 1,000
    ],
)
def test_what_stays_within_the_budget_is_accepted(source: str) -> None:
    cond = compile_condition(source)
    iterations, _ = estimate(parse(source), ["event", "profile", "history", "now", "journey"])
    assert iterations <= COST_BUDGET
    assert cond is not None


def test_the_budget_holds_at_run_time_when_the_data_is_larger_than_the_estimate() -> None:
    """A profile list bigger than an event could carry (merged in over time): the run stops at the
    budget with a run-time error, as a missing key would."""
    cond = compile_condition("profile.xs.exists(a, a.exists(b, b < 0))")
    big = {"profile": {"xs": [[1] * 400 for _ in range(400)]}, "event": {}}
    with pytest.raises(CelEvaluationError, match="cost budget"):
        cond.evaluate(big)
    small = {"profile": {"xs": [[1] * 10 for _ in range(10)]}, "event": {}}
    assert cond.evaluate(small) is False
    assert cond.evaluate(small) is False  # (every evaluation starts with the whole budget)


def test_a_value_grown_by_plus_is_bounded() -> None:
    cond = compile_condition("profile.s + profile.s")
    with pytest.raises(CelEvaluationError, match="more than"):
        cond.evaluate({"profile": {"s": "x" * (MAX_GROWN // 2 + 1)}})
    assert cond.evaluate({"profile": {"s": "ab"}}) == "abab"


class _Trap:
    """An object with __getitem__ that is not a map: field selection must never call it."""

    def __getitem__(self, key: str) -> str:
        raise AssertionError(f"__getitem__ called with {key!r}")


@pytest.mark.parametrize(
    ("source", "x"),
    [("x.a", _Trap()), ("x.a.b", {"a": _Trap()}), ("x.a.b.c", {"a": {"b": _Trap()}})],
    ids=["one level", "two levels", "three levels"],
)
def test_field_selection_reads_maps_only(source: str, x: object) -> None:
    cond = compile_condition(source, variables={"x": CelType.DYN})
    with pytest.raises(CelEvaluationError, match="does not support field selection"):
        cond.evaluate({"x": x})
