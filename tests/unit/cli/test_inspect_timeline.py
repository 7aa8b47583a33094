"""`orchestrator inspect`: the journeys a customer finished, the events that came too late, and the
timeline with each decision's reason, in the customer's time zone (issue 18, traps 2 and 6)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from orchestrator.cli import main
from orchestrator.cli._timeline import local_time, timeline
from orchestrator.core.engine.state import CustomerState, FinishedInstance

ROOT = Path(__file__).resolve().parents[3]


def _line(event_id: str, type_: str, at: str, props: dict[str, object] | None = None) -> bytes:
    ids = {"customer_id": "paris", "email": "p@example.com", "phone": "+33600000000"}
    body = {"event_id": event_id, "type": type_, "identifiers": ids, "occurred_at": at, "source": "t"}
    return orjson.dumps({**body, "properties": props or {}})


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b"\n".join(
            [
                _line("p1", "profile.updated", "2025-03-03T08:00:00Z", {"timezone": "Europe/Paris"}),
                _line("p2", "consent.changed", "2025-03-03T08:01:00Z", {"channel": "email", "granted": True}),
                _line("p3", "account.created", "2025-03-03T09:00:00Z", {"first_name": "Pia"}),
                # recorded a week before the others came: late under --lateness 24h
                _line("p0", "page.viewed", "2025-02-20T09:00:00Z"),
            ]
        )
    )
    out = tmp_path / "state.json"
    code = main(
        [
            "simulate", "--journeys", str(ROOT / "journeys"), "--events", str(events),
            "--policy", str(ROOT / "journeys" / "policy.yaml"), "--state-out", str(out),
            "--until", "2025-03-05T00:00:00Z", "--lateness", "24h",
        ]
    )  # fmt: skip
    assert code == 0
    return out


def test_the_text_tells_the_story_in_the_customers_time_zone(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["inspect", "paris", "--from-simulate", str(state_file)]) == 0
    text = capsys.readouterr().out
    assert "finished lately (1):" in text
    assert "welcome v1 #1: exited: no_sms_consent at no_sms" in text
    assert "timeline (last " in text
    assert "time zone Europe/Paris" in text
    assert "2025-03-03 10:00:00 CET  event account.created" in text
    assert "2025-03-03 10:00:00 CET  entered welcome v1 #1" in text
    assert "2025-03-03 10:00:00 CET  welcome/welcome_email: email sent — allowed: every rule passed" in text
    assert "2025-03-04 10:00:00 CET  welcome v1 #1 exited: no_sms_consent at step no_sms" in text
    assert "(steps: welcome_email → wait_open → sms_allowed → no_sms)" in text
    assert "note: 1 event applied as late: no journey entry (the last of 2025-02-20 10:00:00 CET" in text
    assert "{" not in text.split("timeline")[1]  # no dict reprs in the story


def test_the_json_has_the_finished_journeys_the_late_events_and_the_timeline(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["inspect", "email:p@example.com", "--from-simulate", str(state_file), "--json"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    (done,) = doc["finished"]
    assert done == {
        "journey": "welcome",
        "version": 1,
        "entry_seq": 1,
        "outcome": "exited",
        "reason": "no_sms_consent",
        "step": "no_sms",
        "steps": {"welcome_email": 1, "wait_open": 1, "sms_allowed": 1, "no_sms": 1},
        "splits": {},
        "entered_at": "2025-03-03T09:00:00Z",
        "finished_at": "2025-03-04T09:00:00Z",
    }
    assert doc["out_of_time"] == {"late": {"count": 1, "last_event_at": "2025-02-20T09:00:00Z"}}
    assert [d["kind"] for d in doc["decisions"]] == ["sent"]
    local = [t["local"] for t in doc["timeline"]]
    assert local == sorted(local)
    assert all(t["at"].endswith("Z") for t in doc["timeline"])
    assert main(["inspect", "paris", "--from-simulate", str(state_file), "--json", "--timeline", "2"]) == 0
    assert len(orjson.loads(capsys.readouterr().out)["timeline"]) == 2


def test_local_time_follows_daylight_saving_and_falls_back_to_utc() -> None:
    winter, summer = 1_740_992_400_000, 1_751_533_200_000  # 2025-03-03 and 2025-07-03, 09:00 UTC
    assert local_time(winter, "Europe/Paris") == "2025-03-03 10:00:00 CET"
    assert local_time(summer, "Europe/Paris") == "2025-07-03 11:00:00 CEST"
    assert local_time(winter, "Not/AZone") == "2025-03-03 09:00:00 UTC"


def test_a_goal_and_a_held_send_read_as_words() -> None:
    state = CustomerState.new("c")
    state.finished.append(
        FinishedInstance("cart", 2, 3, 1_000, 61_000, "goal", "bought", "wait", {"mail": 1, "wait": 2})
    )
    decisions = [
        {
            "at": "1970-01-01T00:00:30Z", "kind": "redirected", "reason": "no_consent", "channel": "email",
            "original_channel": "sms", "journey_id": "cart", "step_id": "mail",
            "detail": "sms: no_consent; sent by email instead",
        },
    ]  # fmt: skip
    whats = [t["what"] for t in timeline(state, decisions)]
    assert whats == [
        "entered cart v2 #3",
        "cart/mail: sms → email redirected — no_consent: no consent for the category on the channel "
        "(and no usable fallback channel) (sms: no_consent; sent by email instead)",
        "cart v2 #3 reached the goal bought at step wait (steps: mail → wait (x2))",
    ]
