"""The token bucket (with a fake clock) and the sandbox connector's message handling, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.config import Settings
from orchestrator.connectors import ChannelLimiter, SandboxConnector, SandboxScript, SeenIds, TokenBucket
from orchestrator.contracts import ChannelAction, parse_event
from orchestrator.core.policy import load_policy_file
from orchestrator.exceptions import ConfigError

ROOT = Path(__file__).resolve().parents[3]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, 5, clock=clock, sleep=clock.sleep)
    assert [bucket.try_take() for _ in range(5)] == [0.0] * 5
    assert bucket.try_take() == pytest.approx(0.1)
    for _ in range(20):
        bucket.take()
    assert clock.now == pytest.approx(2.0)  # 20 more at 10/s
    with pytest.raises(ValueError, match="per_second"):
        TokenBucket(0, 1)


def test_channel_limiter_uses_the_policy_rate_limits() -> None:
    clock = FakeClock()
    limits = load_policy_file(ROOT / "journeys" / "policy.yaml").rate_limits
    limiter = ChannelLimiter(limits, clock=clock, sleep=clock.sleep)
    for _ in range(40):
        limiter.take("sms")  # 20/s, burst 20
    assert clock.now == pytest.approx(1.0)
    assert limiter.waited_s["sms"] == pytest.approx(1.0)
    assert limiter.take("fax") == 0.0


def test_seen_ids_are_bounded() -> None:
    seen = SeenIds(3)
    assert [seen.add(k) for k in "abca"] == [True, True, True, False]
    seen.add("d")  # forgets b, the least recently seen
    assert len(seen) == 3
    assert seen.add("b")


def _action(aid: str = "act_1", channel: str = "email", customer: str = "cust-ada") -> bytes:
    return ChannelAction(
        action_id=aid,
        channel=channel,  # type: ignore[arg-type]
        category="marketing",
        customer_id=customer,
        recipient="ada@example.com",
        journey_id="welcome",
        journey_version=1,
        step_id="mail",
        template_id="t",
        campaign="welcome",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    ).to_json()


def test_handle_drops_duplicates_and_makes_deterministic_valid_events() -> None:
    connector = SandboxConnector(Settings(), script=SandboxScript(customers={"cust-ada": ("opened",)}))
    events = connector.handle(_action())
    assert [e.type for e in events] == ["email.sent", "email.delivered", "email.opened"]
    assert [e.event_id for e in events] == ["sbx-act_1-sent", "sbx-act_1-delivered", "sbx-act_1-opened"]
    for e in events:
        again = parse_event(e.to_json())
        assert (again.action_id, again.campaign, again.journey) == ("act_1", "welcome", "welcome")
        # the action's customer named by its key, no identifier claimed (issue 23)
        assert again.identifiers.items() == [("customer_key", "cust-ada")]
    assert connector.handle(_action()) == []
    assert connector.handle(b"{not json") == []
    assert (connector.stats.duplicates, connector.stats.invalid) == (1, 1)


def test_receipts_of_an_anonymous_customer_name_its_key_not_a_customer_id() -> None:
    """Issue 23: a receipt `{customer_id: "email:ann@x"}` made the anonymous key a known customer, so the
    visitor's sign-in no longer merged. A receipt names the key and claims nothing."""
    events = SandboxConnector(Settings()).handle(_action(customer="email:ann@x"))
    assert [e.identifiers.items() for e in events] == [[("customer_key", "email:ann@x")]] * 2
    assert all(e.identifiers.customer_id is None and e.identifiers.email is None for e in events)


def test_scripted_rates_are_deterministic_by_action_id() -> None:
    script = SandboxScript(open_rate=0.5, click_rate=0.0)
    actions = [ChannelAction.model_validate_json(_action(f"act_{i}")) for i in range(400)]
    first = [script.engagement(a) for a in actions]
    assert first == [script.engagement(a) for a in actions]
    opened = sum(1 for kinds in first if kinds == ["opened"])
    assert 150 < opened < 250
    sms = ChannelAction.model_validate_json(_action("x", "sms"))
    assert SandboxScript(customers={"cust-ada": ("opened", "clicked")}).engagement(sms) == ["clicked"]


def test_script_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"click_rate": 1, "campaigns": {"welcome": ["opened"]}}')
    script = SandboxScript.from_file(path)
    action = ChannelAction.model_validate_json(_action())
    assert script.engagement(action) == ["opened", "clicked"]
    path.write_text('{"customers": {"x": ["bounced"]}}')
    with pytest.raises(ConfigError, match="unknown kind"):
        SandboxScript.from_file(path)
