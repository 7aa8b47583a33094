"""`orchestrator actions`: readable lines, filters and masked recipients (the reading itself is tested on
the broker in tests/integration/test_runtime.py)."""

from __future__ import annotations

import orjson

from orchestrator.cli.actions import Filters, Output, describe, mask, matches

ACTION = {
    "action_id": "act_1", "channel": "email", "category": "marketing", "customer_id": "w-ann",
    "recipient": "ann@example.com", "journey_id": "welcome", "journey_version": 1,
    "step_id": "welcome_email", "template_id": "welcome_email_v1", "campaign": "welcome",
    "personalization": {"first_name": "Ann"}, "created_at": "2025-03-03T09:00:00Z",
}  # fmt: skip
DECISION = {
    "decision_id": "dec_1", "kind": "suppressed", "reason": "no_consent", "customer_id": "w-fay",
    "action_id": "act_2", "original_action_id": "act_2", "journey_id": "welcome", "journey_version": 1,
    "step_id": "welcome_email", "category": "marketing", "channel": "email", "original_channel": "email",
    "at": "2025-03-03T14:00:00Z", "detail": "email: no_consent",
}  # fmt: skip


def _action() -> Output:
    return Output("action", "orch.actions.email", 0, 7, ACTION)


def _decision() -> Output:
    return Output("decision", "orch.decisions", 1, 3, DECISION)


def test_an_action_reads_as_one_line_with_the_recipient_masked() -> None:
    line = describe(_action())
    assert line.startswith("2025-03-03T09:00:00Z      action    email  w-ann  welcome v1/welcome_email")
    assert "template welcome_email_v1 to a***@example.com  (act_1)" in line
    assert "ann@example.com" not in line
    assert "ann@example.com" in describe(_action(), show_recipients=True)


def test_a_decision_reads_with_its_reason_in_words() -> None:
    line = describe(_decision())
    assert "decision  email  w-fay  welcome v1/welcome_email  suppressed: no_consent (no consent for" in line
    assert "{" not in line


def test_json_keeps_where_the_record_was_and_masks_unless_asked() -> None:
    doc = orjson.loads(_action().to_json(show_recipients=False))
    assert (doc["kind"], doc["topic"], doc["partition"], doc["offset"]) == (
        "action",
        "orch.actions.email",
        0,
        7,
    )
    assert doc["record"]["recipient"] == "a***@example.com"
    assert doc["record"]["template_id"] == "welcome_email_v1"
    assert orjson.loads(_action().to_json(show_recipients=True))["record"]["recipient"] == "ann@example.com"


def test_filters() -> None:
    assert matches(_action(), Filters())
    assert matches(_action(), Filters(customer="w-ann", journey="welcome", channel="email"))
    assert not matches(_action(), Filters(customer="w-fay"))
    assert not matches(_action(), Filters(journey="winback"))
    assert not matches(_action(), Filters(channel="sms"))
    assert matches(_decision(), Filters(customer="w-fay", channel="email"))


def test_masks() -> None:
    assert mask("ann@example.com") == "a***@example.com"
    assert mask("+15550001001") == "+1555***01"
    assert mask("+123") == "+***"
    assert mask("device-token-abc") == "dev***"
