"""Policy files: every problem with file, line and field; the example; the schema; the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from policy_helpers import POLICY_HEAD, policy

from orchestrator.core.policy import PolicyRegistry, is_policy_text, load_policy_file, load_policy_text
from orchestrator.core.policy.loader import _CAP, _ENGAGEMENT, _GROUP, _QUIET, _TOP
from orchestrator.exceptions import PolicyError, PolicyValidationError

ROOT = Path(__file__).resolve().parents[4]


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyValidationError) as info:
        load_policy_text(text, "p.yaml")
    return info.value.problems


def test_the_example_policy_loads() -> None:
    p = load_policy_file(ROOT / "journeys" / "policy.yaml")
    assert p.key == "default@1"
    assert [c.name for c in p.caps] == ["sms_daily", "marketing_weekly"]
    assert p.fallback == {"sms": ("push", "email"), "push": ("email",)}
    assert p.quiet_hours is not None
    assert p.quiet_hours.start == (21, 0)
    assert p.rate_limits["sms"].per_second == 20


def test_every_problem_names_file_line_and_field() -> None:
    text = POLICY_HEAD + (
        "fallback: {sms: [sms, fax]}\n"  # 4
        "frequency_caps:\n"
        "  - {name: a, max: 1, per: 1 day}\n"  # 6
        "  - {name: a, channels: [sms], max: -1, per: 1d}\n"  # 7
        "quiet_hours: {start: '25:00', end: '08:00', action: wait, timezone: Mars/Base}\n"  # 8
        "engagement_suppression:\n"
        "  - {name: e, channels: [sms], events: [page.viewed], within: 48h}\n"  # 10
        "rate_limits: {sms: 0, email: {per_second: 5, burts: 1}}\n"  # 11
        "colour: blue\n"  # 12
    )
    found = problems(text)
    expected = [
        "p.yaml:4: fallback.sms: a channel cannot fall back to itself (sms)",
        "p.yaml:4: fallback.sms[1]: unknown channel 'fax'",
        "p.yaml:6: frequency_caps[0].per: '1 day' is not a duration",
        "p.yaml:7: frequency_caps[1].name: another rule is already named 'a'",
        "p.yaml:7: frequency_caps[1].max: must be at least 0",
        "p.yaml:8: quiet_hours.start: '25:00' is not a time of day",
        "p.yaml:8: quiet_hours.action: unknown value 'wait'",
        "p.yaml:8: quiet_hours.timezone: unknown time zone 'Mars/Base'",
        "p.yaml:10: engagement_suppression[0].events[0]: 'page.viewed' is not an engagement event",
        "p.yaml:11: rate_limits.sms.per_second: must be more than zero",
        "p.yaml:11: rate_limits.email.burts: unknown field (did you mean 'burst'?)",
        "p.yaml:12: colour: unknown field",
    ]
    for e in expected:
        assert any(p.startswith(e) for p in found), (e, found)


def test_required_fields_and_kind() -> None:
    found = problems("kind: journey\nversion: 0\n")
    assert "p.yaml:1: kind: expected 'policy', got 'journey'" in found
    assert any(p.startswith("p.yaml:1: id: required field is missing") for p in found)
    assert "p.yaml:2: version: must be at least 1" in found
    assert problems("")[0].startswith("p.yaml:1: (root)")
    assert issubclass(PolicyValidationError, PolicyError)


def test_policy_files_are_told_from_journeys() -> None:
    assert is_policy_text(POLICY_HEAD)
    assert is_policy_text("# comment\nkind: 'policy'  # the policy\n")
    assert not is_policy_text("id: welcome\nsteps:\n  a:\n    kind: policy\n")


def test_same_version_with_other_content_is_refused_and_the_timeline_is_kept() -> None:
    book = PolicyRegistry()
    first = policy("frequency_caps: [{name: a, max: 1, per: 1d}]\n")
    book.deploy(first, 100)
    book.deploy(first, 200)  # the same content again: fine
    with pytest.raises(PolicyValidationError, match="new version number"):
        book.deploy(policy("frequency_caps: [{name: a, max: 2, per: 1d}]\n"), 300)
    assert book.current(99) is None
    assert book.current(100) is first
    book.withdraw(400)
    assert book.current(450) is None
    assert len(book.deployments()) == 3


def test_schema_lists_exactly_the_fields_the_loader_accepts() -> None:
    schema = json.loads((ROOT / "schemas" / "policy.schema.json").read_text())
    props = schema["properties"]
    assert set(props) == set(_TOP)
    assert set(props["frequency_caps"]["items"]["properties"]) == set(_CAP)
    assert set(props["quiet_hours"]["properties"]) == set(_QUIET)
    assert set(props["engagement_suppression"]["items"]["properties"]) == set(_ENGAGEMENT)
    assert set(props["subscription_groups"]["items"]["properties"]) == set(_GROUP)


def test_subscription_groups_load_in_the_files_order() -> None:
    p = policy(
        "subscription_groups:\n"
        "  - {id: product_news, channel: email, default: opt_out, description: Product news}\n"
        "  - {id: sms-offers, channel: sms, default: opt_in}\n"
    )
    assert list(p.subscription_groups) == ["product_news", "sms-offers"]
    news = p.subscription_groups["product_news"]
    assert (news.channel, news.default, news.description) == ("email", "opt_out", "Product news")
    assert p.subscription_groups["sms-offers"].default == "opt_in"


def test_a_policy_without_groups_still_loads_with_the_same_content_hash() -> None:
    text = (ROOT / "journeys" / "policy.yaml").read_text()
    without = text[: text.index("subscription_groups:")] + text[text.index("rate_limits:") :]
    p = load_policy_text(without, "old.yaml")
    assert p.subscription_groups == {}
    again = load_policy_text(without, "again.yaml")
    assert again.content_hash == p.content_hash
    assert list(load_policy_text(text, "policy.yaml").subscription_groups) == [
        "product_news",
        "weekly_digest",
    ]


def test_every_group_problem_names_file_line_and_field() -> None:
    text = POLICY_HEAD + (
        "subscription_groups:\n"  # 4
        "  - {id: news, channel: email, default: opt_out}\n"  # 5
        "  - {id: news, channel: sms, default: opt_in}\n"  # 6
        "  - {id: offers, channel: fax, default: opt_in}\n"  # 7
        "  - {id: promos, channel: [sms, email], default: opt_in}\n"  # 8
        "  - {id: alerts, channel: push, default: maybe}\n"  # 9
        "  - {id: Bad Name, channel: push, default: opt_in}\n"  # 10
        "  - {id: tips, channel: email, default: opt_in, colour: blue}\n"  # 11
        "  - {id: digest, channel: email}\n"  # 12
        f"  - {{id: {'x' * 65}, channel: email, default: opt_in}}\n"  # 13
    )
    found = problems(text)
    expected = [
        "p.yaml:6: subscription_groups[1].id: another group is already named 'news'",
        "p.yaml:7: subscription_groups[2].channel: unknown value 'fax'",
        "p.yaml:8: subscription_groups[3].channel: a group belongs to one channel",
        "p.yaml:9: subscription_groups[4].default: unknown value 'maybe'",
        "p.yaml:10: subscription_groups[5].id: 'Bad Name' is not a valid name",
        "p.yaml:11: subscription_groups[6].colour: unknown field",
        "p.yaml:12: subscription_groups[7].default: required field is missing",
        "p.yaml:13: subscription_groups[8].id: a group id may have at most 64 characters",
    ]
    for e in expected:
        assert any(p.startswith(e) for p in found), (e, found)
    assert len(found) == len(expected), found
    assert problems(POLICY_HEAD + "subscription_groups: {news: email}\n") == [
        "p.yaml:4: subscription_groups: expected a list of groups"
    ]
