"""The impact preview on the example journeys: which customers' sends change, the sends per step and
channel, both funnels, who is inside the old version at --at and whether they move or stay."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli.simulate import parse_until
from orchestrator.core.engine.clock import iso_from_ms
from orchestrator.exceptions import JourneyValidationError, SimulationError
from orchestrator.preview import Preview, preview, timer_span_ms
from orchestrator.preview.report import report_dict
from tests.unit.preview.preview_helpers import (
    JOURNEYS,
    WELCOME,
    WELCOME_EVENTS,
    WINBACK,
    WINBACK_EVENTS,
    more_offer_20,
    no_sms,
    renamed_wait,
    shorter_timeout,
    write_version,
)

AT_13H = parse_until("2025-03-03T13:00:00Z")


def _changes(p: Preview) -> dict[str, list[tuple[str, str, str | None, str | None]]]:
    """customer -> [(kind, step, old time, new time)]."""
    return {
        customer: [
            (
                c.kind,
                c.send.step,
                iso_from_ms(c.old.at_ms) if c.old else None,
                iso_from_ms(c.new.at_ms) if c.new else None,
            )
            for c in changes
        ]
        for customer, changes in p.by_customer().items()
    }


def _rows(p: Preview) -> dict[tuple[str, str, str], tuple[int, ...]]:
    return {
        (r.journey, r.step, r.channel): (r.old, r.new, r.added, r.removed, r.moved, r.changed) for r in p.rows
    }


def _funnel(p: Preview, run: str, journey: str = "welcome") -> dict[str, object]:
    result = p.old_run if run == "old" else p.new_run
    found: dict[str, object] = result.funnel.to_dict()[journey]
    return found


def test_a_shorter_timeout_sends_sooner_and_to_one_more_customer(tmp_path: Path) -> None:
    p = preview(WELCOME, write_version(tmp_path, WELCOME, shorter_timeout), WELCOME_EVENTS, journeys=JOURNEYS)
    assert _changes(p) == {
        "w-ann": [("moved", "welcome_sms", "2025-03-04T09:00:00.000Z", "2025-03-03T21:00:00.000Z")],
        # Dan opened the email 24 h after it: in time for v1, 12 h too late for v2
        "w-dan": [("added", "welcome_sms", None, "2025-03-04T00:00:00.000Z")],
        "w-eve": [("moved", "welcome_sms", "2025-03-04T13:00:00.000Z", "2025-03-04T01:00:00.000Z")],
    }
    assert _rows(p) == {
        ("post_purchase", "ask_review", "email"): (2, 2, 0, 0, 0, 0),  # (--journeys: another journey, alike)
        ("welcome", "welcome_email", "email"): (6, 6, 0, 0, 0, 0),
        ("welcome", "welcome_sms", "sms"): (2, 3, 1, 0, 2, 0),
    }
    assert p.unchanged == 8
    old, new = _funnel(p, "old"), _funnel(p, "new")
    assert (old["entered"], new["entered"]) == (6, 6)
    assert (old["exits"], new["exits"]) == (
        {"completed": 2, "no_sms_consent": 1, "opened_email": 2},
        {"completed": 3, "no_sms_consent": 1, "opened_email": 1},
    )
    assert (old["goals"], new["goals"]) == ({"first_order": 1}, {"first_order": 1})
    assert p.old_run.funnel.to_dict()["post_purchase"] == p.new_run.funnel.to_dict()["post_purchase"]
    assert p.at_ms == p.first_event_ms  # (default: v2 from the start)
    assert p.inside == []  # nobody is inside at the first event
    assert p.until_ms == parse_until("2025-03-10T13:00:00Z") + 86_400_000  # last event + the 24 h timeout


def test_a_removed_sms_step_removes_its_sends(tmp_path: Path) -> None:
    p = preview(WELCOME, write_version(tmp_path, WELCOME, no_sms), WELCOME_EVENTS)
    assert _changes(p) == {
        "w-ann": [("removed", "welcome_sms", "2025-03-04T09:00:00.000Z", None)],
        "w-eve": [("removed", "welcome_sms", "2025-03-04T13:00:00.000Z", None)],
    }
    assert _rows(p) == {
        ("welcome", "welcome_email", "email"): (6, 6, 0, 0, 0, 0),
        ("welcome", "welcome_sms", "sms"): (2, 0, 0, 2, 0, 0),
    }
    old, new = _funnel(p, "old"), _funnel(p, "new")
    assert (old["exits"], new["exits"]) == (
        {"completed": 2, "no_sms_consent": 1, "opened_email": 2},
        {"no_sms_consent": 3, "opened_email": 2},
    )
    assert (old["actions"], new["actions"]) == (8, 6)


def test_a_changed_split_moves_customers_between_branches(tmp_path: Path) -> None:
    p = preview(WINBACK, write_version(tmp_path, WINBACK, more_offer_20), WINBACK_EVENTS)
    changes = _changes(p)
    assert sorted(changes) == [f"wb-{n:02d}" for n in (3, 5, 9, 10, 11, 12, 14, 15, 20)]
    for customer, found in changes.items():  # the same moment, the other offer
        assert [(kind, step) for kind, step, _, _ in found] == [
            ("removed", "email_10"),
            ("added", "email_20"),
        ]
        assert found[0][2] == found[1][3], customer
    assert _rows(p) == {
        ("winback", "email_10", "email"): (12, 3, 0, 9, 0, 0),
        ("winback", "email_20", "email"): (6, 15, 9, 0, 0, 0),
    }
    old, new = _funnel(p, "old", "winback"), _funnel(p, "new", "winback")
    branches = {
        name: (old["splits"]["ab"][name]["entered"], new["splits"]["ab"][name]["entered"])  # type: ignore[index]
        for name in ("offer_10", "offer_20", "holdout")
    }
    assert branches == {"offer_10": (12, 3), "offer_20": (6, 15), "holdout": (2, 2)}
    converted = {
        name: (old["splits"]["ab"][name]["converted"], new["splits"]["ab"][name]["converted"])  # type: ignore[index]
        for name in ("offer_10", "offer_20", "holdout")
    }
    assert converted == {"offer_10": (5, 1), "offer_20": (0, 4), "holdout": (1, 1)}
    assert (old["converted"], new["converted"]) == (6, 6)


def test_changed_personalization_is_a_changed_send_with_the_field_named(tmp_path: Path) -> None:
    def plain(doc: dict[str, object]) -> None:
        doc["steps"]["welcome_email"]["personalization"]["first_name"] = '"friend"'  # type: ignore[index]

    p = preview(WELCOME, write_version(tmp_path, WELCOME, plain), WELCOME_EVENTS)
    assert _rows(p)[("welcome", "welcome_email", "email")] == (6, 6, 0, 0, 0, 6)
    assert {c.kind for c in p.changes} == {"changed"}
    assert {c.fields for c in p.changes} == {("personalization",)}
    ann = next(c for c in p.changes if c.send.customer == "w-ann")
    assert ann.old is not None
    assert ann.new is not None
    assert (ann.old.fields()["personalization"], ann.new.fields()["personalization"]) == (
        {"first_name": "Ann"},
        {"first_name": "friend"},
    )


@pytest.mark.parametrize("migrate", [False, True])
def test_who_is_inside_at_the_deploy_moves_with_migrate_and_stays_without(
    tmp_path: Path, migrate: bool
) -> None:
    new = write_version(tmp_path, WELCOME, shorter_timeout, migrate=migrate)
    p = preview(WELCOME, new, WELCOME_EVENTS, at_ms=AT_13H)
    inside = [(i.customer, i.step, i.outcome, i.to_step) for i in p.inside]
    if migrate:
        assert inside == [(c, "wait_open", "moves", "wait_open") for c in ("w-ann", "w-cat", "w-dan")]
    else:
        assert inside == [(c, "wait_open", "stays", None) for c in ("w-ann", "w-cat", "w-dan")]
    # Eve signs up at 13:00, on v2: her SMS 12 h sooner. Of the three inside, with migrate, the wait
    # takes v2's timeout from when it began: Ann (no open, SMS consent) gets hers 12 h after 09:00
    eve = [("moved", "welcome_sms", "2025-03-04T13:00:00.000Z", "2025-03-04T01:00:00.000Z")]
    if migrate:
        ann = [("moved", "welcome_sms", "2025-03-04T09:00:00.000Z", "2025-03-03T21:00:00.000Z")]
        assert _changes(p) == {"w-ann": ann, "w-eve": eve}
    else:
        assert _changes(p) == {"w-eve": eve}


def test_migrating_to_a_version_without_the_step_makes_them_leave(tmp_path: Path) -> None:
    new = write_version(tmp_path, WELCOME, renamed_wait, migrate=True)
    p = preview(WELCOME, new, WELCOME_EVENTS, at_ms=AT_13H)
    assert [(i.customer, i.outcome, i.reason) for i in p.inside] == [
        (c, "leaves", "migration_no_step_wait_open") for c in ("w-ann", "w-cat", "w-dan")
    ]
    # what the engine did in the new run agrees with what the preview said
    assert _funnel(p, "new")["exits"]["migration_no_step_wait_open"] == 3  # type: ignore[index]
    assert _changes(p) == {"w-ann": [("removed", "welcome_sms", "2025-03-04T09:00:00.000Z", None)]}


def test_the_same_run_twice_gives_the_same_report(tmp_path: Path) -> None:
    new = write_version(tmp_path, WINBACK, more_offer_20)
    first = report_dict(preview(WINBACK, new, WINBACK_EVENTS, journeys=JOURNEYS), limit=0)
    again = report_dict(preview(WINBACK, new, WINBACK_EVENTS, journeys=JOURNEYS), limit=0)
    assert first == again


def test_the_default_until_adds_up_the_waits_of_the_longer_version(tmp_path: Path) -> None:
    assert timer_span_ms(preview(WELCOME, write_version(tmp_path, WELCOME), WELCOME_EVENTS).new) == 86_400_000
    p = preview(WINBACK, write_version(tmp_path, WINBACK, more_offer_20), WINBACK_EVENTS)
    assert timer_span_ms(p.old) == 28 * 86_400_000  # the 14 d wait, and the holdout window of 14 d
    assert p.until_ms == p.last_event_ms + 28 * 86_400_000
    assert "28d" in p.until_rule
    given = preview(WINBACK, p.new_path, WINBACK_EVENTS, until_ms=p.last_event_ms)
    assert (given.until_ms, given.until_rule) == (p.last_event_ms, "given with --until")


# -- bad input -------------------------------------------------------------------------------------
def test_another_journey_is_refused_naming_both_files() -> None:
    with pytest.raises(
        SimulationError, match=r"winback\.yaml is journey 'winback', .*welcome\.yaml is journey"
    ):
        preview(WELCOME, WINBACK, WELCOME_EVENTS)


def test_a_version_not_higher_is_refused(tmp_path: Path) -> None:
    v2 = write_version(tmp_path, WELCOME, shorter_timeout)
    with pytest.raises(
        SimulationError, match=r"welcome\.yaml has version 1, not higher than version 2 of .*v2"
    ):
        preview(v2, WELCOME, WELCOME_EVENTS)
    same = write_version(tmp_path, WELCOME, shorter_timeout, name="same.yaml", version=1)
    with pytest.raises(SimulationError, match="not higher than version 1"):
        preview(WELCOME, same, WELCOME_EVENTS)


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(SimulationError, match=r"nope\.yaml: no such journey file"):
        preview(WELCOME, tmp_path / "nope.yaml", WELCOME_EVENTS)
    with pytest.raises(SimulationError, match=r"none\.jsonl: events file not found"):
        preview(WELCOME, write_version(tmp_path, WELCOME), tmp_path / "none.jsonl")
    with pytest.raises(SimulationError, match=r"p\.yaml: no such policy file"):
        preview(WELCOME, write_version(tmp_path, WELCOME), WELCOME_EVENTS, policy_path=tmp_path / "p.yaml")


def test_a_policy_file_is_not_a_journey() -> None:
    with pytest.raises(SimulationError, match=r"policy\.yaml: a policy file, not a journey"):
        preview(JOURNEYS / "policy.yaml", WELCOME, WELCOME_EVENTS)


def test_an_invalid_new_version_reports_its_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        WELCOME.read_text().replace("version: 1", "version: 2").replace("next: wait_open", "next: x")
    )
    with pytest.raises(JourneyValidationError) as caught:
        preview(WELCOME, bad, WELCOME_EVENTS)
    assert any("bad.yaml" in p for p in caught.value.problems)


def test_events_without_a_valid_line_are_refused(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("not json\n")
    with pytest.raises(SimulationError, match="no valid event"):
        preview(WELCOME, write_version(tmp_path, WELCOME), events)


def test_an_open_within_a_migrated_wait_still_counts(tmp_path: Path) -> None:
    # Bob signs up at 10:00 on v1 and opens the email at 12:00; v2 (timeout 12 h, migrate) from 11:30:
    # he moves into v2's wait_open, which began when v1's did (its timeout now v2's), and his open
    # ends it (the preview found the engine judging it as from before the wait: fixed in customer.py)
    new = write_version(tmp_path, WELCOME, shorter_timeout, migrate=True)
    p = preview(WELCOME, new, WELCOME_EVENTS, at_ms=parse_until("2025-03-03T11:30:00Z"))
    assert [(i.customer, i.outcome) for i in p.inside][1] == ("w-bob", "moves")
    assert _funnel(p, "new")["exits"]["opened_email"] >= 1  # type: ignore[index]
