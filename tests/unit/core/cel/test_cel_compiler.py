"""Unit tests of the CEL compiler: errors and columns, typing, history functions, time and timezones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.core.cel import (
    CelCompileError,
    CelEvaluationError,
    CelType,
    Duration,
    Timestamp,
    UInt,
    compile_condition,
)
from orchestrator.exceptions import ConditionError

NOW_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z
HOUR_MS = 3_600_000


def act(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "profile": {"country": "US", "consent": {"sms": True}, "attributes": {"tier": "gold", "age": 41}},
        "event": {"type": "order.placed", "properties": {"total": 72.5, "items": 3, "sku": ["a", "b"]}},
        "history": [],
        "now_ms": NOW_MS,
        "journey": {"id": "welcome"},
    }
    base.update(extra)
    return base


def ev(source: str, **extra: Any) -> Any:
    return compile_condition(source).evaluate(act(**extra))


# ---------------------------------------------------------------- compile errors
def test_unknown_variable_has_column_and_suggestion() -> None:
    with pytest.raises(CelCompileError) as info:
        compile_condition('event.type == "x" && profil.country == "US"')
    err = info.value
    assert isinstance(err, ConditionError)
    assert err.column == 22
    assert str(err).startswith("column 22: unknown variable 'profil' (did you mean 'profile'?)")
    assert str(err).splitlines()[-1] == " " * 4 + " " * 21 + "^"


@pytest.mark.parametrize(
    ("source", "column", "fragment"),
    [
        ('"a" > 1', 5, "no matching overload for '>' applied to (string, int)"),
        ('1 + "x"', 3, "(int, string)"),
        ("size(1)", 1, "'size' applied to (int)"),
        ("1 + 2.0", 3, "(int, double)"),
        ("profile.country ==", 19, "unexpected end"),
        ("profile.country = 'US'", 17, "unexpected"),
        ("event.properties.total > 5 && 'x'", 31, "'&&' needs a bool, not string"),
        ("frobnicate(1)", 1, "unknown function 'frobnicate'"),
        ("'abc'.startWith('a')", 7, "did you mean 'startsWith'"),
        ("1 == 'a'", 3, "always"),
        ("9223372036854775808", 1, "out of range"),
        ("'\\q'", 1, "invalid escape"),
        ("duration('7d') > duration('1h')", 1, "invalid duration"),
        ("'x'.matches('(a')", 13, "invalid regular expression"),
        ("has(profile)", 1, "has()"),
        ("[1].all(1, true)", 5, "variable name"),
        ("if", 1, "reserved"),
    ],
)
def test_compile_errors(source: str, column: int, fragment: str) -> None:
    with pytest.raises(CelCompileError) as info:
        compile_condition(source)
    assert info.value.column == column, str(info.value)
    assert fragment in str(info.value)


def test_custom_variables_and_referenced() -> None:
    cond = compile_condition(
        "x > 3 && name.startsWith('a')", variables={"x": CelType.INT, "name": CelType.STRING}
    )
    assert cond.referenced == frozenset({"x", "name"})
    assert cond.test({"x": 4, "name": "ab"}) is True
    with pytest.raises(CelCompileError, match="unknown variable 'profile'"):
        compile_condition("profile.x", variables={"x": CelType.INT})
    with pytest.raises(CelCompileError, match="'<' applied to \\(string, int\\)"):
        compile_condition("name < 3", variables={"name": CelType.STRING})


def test_dyn_values_checked_at_runtime() -> None:
    cond = compile_condition("event.properties.sku + 1 == 2")  # dyn: compiles
    with pytest.raises(CelEvaluationError, match="no matching overload"):
        cond.evaluate(act())


# ---------------------------------------------------------------- evaluation
def test_benchmark_condition() -> None:
    cond = compile_condition(
        'profile.country in ["US","CA"] && event.properties.total > 50.0 && profile.consent.sms == true'
    )
    assert cond.test(act()) is True
    assert cond.test(act(profile={"country": "FR", "consent": {"sms": True}})) is False
    assert cond.referenced == frozenset({"profile", "event"})
    assert cond.max_lookback_ms == 0


def test_missing_key_is_an_error_that_logic_can_absorb() -> None:
    with pytest.raises(CelEvaluationError, match="no such key"):
        ev("profile.nope == 1")
    assert ev("profile.nope == 1 || true") is True
    assert ev("profile.nope == 1 && false") is False
    assert ev("false && profile.nope == 1") is False
    assert ev("has(profile.nope)") is False
    assert ev("has(profile.consent.sms)") is True
    assert ev("!has(profile.nope) || profile.nope > 1") is True


def test_test_requires_bool() -> None:
    cond = compile_condition("event.properties.total")
    with pytest.raises(CelEvaluationError, match="not a bool"):
        cond.test(act())
    with pytest.raises(CelEvaluationError):
        compile_condition("1 / 0 == 1").test(act())


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("9223372036854775807 + 1", None),
        ("-9223372036854775807 - 2", None),
        ("1 / 0", None),
        ("5 % 0", None),
        ("18446744073709551615u + 1u", None),
        ("1u - 2u", None),
        ("7 / 2", 3),
        ("-7 / 2", -3),
        ("-7 % 3", -1),
        ("1 == 1.0", True),
        ("1u == 1", True),
        ("2 < 2.5", True),
        ("[1, 2] + [3]", [1, 2, 3]),
        ("'ab' + 'c'", "abc"),
        ("{'a': 1}['a']", 1),
        ("[1, 2][1]", 2),
        ("[1, 2][2]", None),
        ("'ABc'.lowerAscii()", "abc"),
        ("'abÇ'.upperAscii()", "ABÇ"),
        ("int('42') + int(2.9)", 44),
        ("uint(3)", UInt(3)),
        ("double(2)", 2.0),
        ("string(1.5)", "1.5"),
        ("bool('true')", True),
        ("[1, 2, 3].map(x, x > 1, x * 10)", [20, 30]),
        ("[1, 2, 3].filter(x, x != 2)", [1, 3]),
        ("event.properties.sku.exists(s, s == 'b')", True),
        ("event.properties.sku.exists_one(s, s.size() == 1)", False),
        ("{'a': 1, 'b': 2}.all(k, k in ['a', 'b'])", True),
        ("'x' in {'x': 1}", True),
        ("profile.attributes.tier.matches('^g[a-z]+d$')", True),
        ("matches('abc', 'b')", True),
        ("true ? 1 : 1 / 0", 1),
        ("duration('1h30m') == duration('90m')", True),
        ("duration('1.5s') == duration('1500ms')", True),
        ("string(duration('1h30m'))", "5400s"),
        ("size(event.properties.sku)", 2),
    ],
)
def test_values(source: str, expected: Any) -> None:
    if expected is None:
        with pytest.raises(CelEvaluationError):
            ev(source)
    else:
        result = ev(source)
        assert result == expected
        assert type(result) is type(expected)


def test_bool_is_not_a_number() -> None:
    assert ev("event.properties.flag == 1", event={"properties": {"flag": True}}) is False
    with pytest.raises(CelEvaluationError):
        ev("event.properties.flag + 1 == 2", event={"properties": {"flag": True}})


def test_no_eval_of_python() -> None:
    with pytest.raises(CelCompileError):
        compile_condition("__import__('os').system('true')")
    with pytest.raises(CelEvaluationError, match="no such key"):  # a map key, never a Python attribute
        compile_condition("profile.__class__").evaluate(act())


# ---------------------------------------------------------------- time
def test_now_is_a_timestamp() -> None:
    assert ev("now == timestamp('2023-11-14T22:13:20Z')") is True
    assert ev("now - duration('1h') < now") is True
    aware = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    cond = compile_condition("now.getHours() == 22")
    assert cond.test({"now": aware}) is True
    assert isinstance(compile_condition("now").evaluate({"now_ms": 0}), Timestamp)
    assert isinstance(ev("duration('24h')"), Duration)
    with pytest.raises(CelEvaluationError, match="now_ms"):
        cond.evaluate({})


def test_datetimes_in_the_activation_are_timestamps() -> None:
    signup = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    profile = {"signed_up": signup}
    assert (
        ev("now - profile.signed_up > duration('24h')", profile=profile, now_ms=NOW_MS) is False
    )  # 2023 < 2024
    assert ev("profile.signed_up.getFullYear() == 2024", profile=profile) is True
    assert ev("profile.signed_up == timestamp('2024-01-02T03:04:05Z')", profile=profile) is True
    assert ev("profile.signed_up < timestamp('2024-01-02T03:04:06Z')", profile=profile) is True


def test_get_hours_across_dst_in_new_york() -> None:
    # 2024-03-10 07:30Z is 03:30 EDT (just after the spring-forward); 06:30Z is 01:30 EST.
    before, after = "timestamp('2024-03-10T06:30:00Z')", "timestamp('2024-03-10T07:30:00Z')"
    assert ev(f"{before}.getHours('America/New_York')") == 1
    assert ev(f"{after}.getHours('America/New_York')") == 3
    assert ev(f"{after}.getHours()") == 7
    # 2024-11-03: 05:30Z is 01:30 EDT, 06:30Z is 01:30 EST (the hour repeats)
    assert ev("timestamp('2024-11-03T05:30:00Z').getHours('America/New_York')") == 1
    assert ev("timestamp('2024-11-03T06:30:00Z').getHours('America/New_York')") == 1
    assert ev("timestamp('2024-11-03T06:30:00Z').getDayOfWeek('America/New_York')") == 0  # Sunday
    assert ev("timestamp('2024-02-29T12:00:00Z').getMonth()") == 1  # 0-based
    assert ev("timestamp('2024-02-29T12:00:00Z').getDate()") == 29
    now_ms = 1_710_055_800_000  # 2024-03-10T07:30:00Z
    assert ev("now.getHours('America/New_York') >= 3", now_ms=now_ms) is True
    with pytest.raises(CelEvaluationError, match="unknown timezone"):
        ev("now.getHours(profile.country)")


# ---------------------------------------------------------------- history
def rec(type_: str, minutes_ago: int, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "at_ms": NOW_MS - minutes_ago * 60_000, **extra}


HISTORY = [
    rec("email.opened", 60 * 30, campaign="spring"),
    rec("email.opened", 60 * 20, campaign="spring"),
    rec("email.opened", 60 * 5, campaign="winter"),
    rec("email.opened", 30, campaign="spring"),
    rec("sms.sent", 10, channel="sms"),
    rec("email.opened", -5, campaign="spring"),  # after now: ignored
]


def test_history_functions() -> None:
    assert ev('seen("email.opened", duration("24h"), {"campaign": "spring"})', history=HISTORY) is True
    assert ev('seen("email.opened", duration("10m"))', history=HISTORY) is False
    assert ev('count("email.opened", duration("24h"))', history=HISTORY) == 3
    assert ev('count("email.opened", duration("48h"), {"campaign": "spring"})', history=HISTORY) == 3
    assert ev('count("email.opened", duration("48h"), {"campaign": "winter", "x": 1})', history=HISTORY) == 0
    assert ev('seen(event.type, duration("1h"))', history=[rec("order.placed", 59)]) is True
    assert ev('seen("sms.sent", duration("10m"))', history=HISTORY) is True  # the window includes its start
    assert ev("!seen('sms.sent', duration('9m'))", history=HISTORY) is True
    assert ev("count('x', duration('1h')) == 0", history=()) is True


def test_history_lookback_and_referenced() -> None:
    cond = compile_condition(
        'seen("email.opened", duration("24h"))'
        ' || count("order.placed", duration("1h30m"), {"channel": "web"}) > 2'
    )
    assert cond.max_lookback_ms == 24 * HOUR_MS
    assert cond.referenced == frozenset({"history", "now"})
    assert compile_condition("count('a', duration('1ms')) > 0").max_lookback_ms == 1
    assert compile_condition("count('a', duration('1us')) > 0").max_lookback_ms == 1  # rounded up


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("seen('a', profile.window)", "literal duration"),
        ("seen('a', duration(profile.w))", "literal duration"),
        ("seen('a')", "takes (type, within)"),
        ("seen('a', duration('1h'), profile.where)", "map literal"),
        ("seen('a', duration('-1h'))", "positive"),
        ("seen(1, duration('1h'))", "must be a string"),
        ("count('a', duration('1h'), {1: 2})", "string literals"),
    ],
)
def test_history_compile_errors(source: str, fragment: str) -> None:
    with pytest.raises(CelCompileError) as info:
        compile_condition(source)
    assert fragment in str(info.value)


def test_history_needs_the_variable() -> None:
    with pytest.raises(CelCompileError, match="needs the 'history' variable"):
        compile_condition("seen('a', duration('1h'))", variables={"now": CelType.TIMESTAMP})


def test_bad_history_record() -> None:
    with pytest.raises(CelEvaluationError, match="at_ms"):
        ev("seen('a', duration('1h'))", history=[{"type": "a"}])
