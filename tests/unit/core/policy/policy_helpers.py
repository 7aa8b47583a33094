"""Helpers of the policy tests: journeys and policies from YAML text, one customer driven through the core."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.contracts import ChannelAction, CustomerEvent, Decision
from orchestrator.core.customer import CustomerLogic, Outcome
from orchestrator.core.engine.state import CustomerState
from orchestrator.core.journey import JourneyRegistry, load_journey_text
from orchestrator.core.policy import Policy, PolicyRegistry, load_policy_text

H = 3_600_000
D = 24 * H
_ids = itertools.count(1)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


T0 = ms("2025-03-03T12:00:00Z")

POLICY_HEAD = "kind: policy\nid: test\nversion: 1\n"


def policy(body: str = "") -> Policy:
    return load_policy_text(POLICY_HEAD + body, "p.yaml")


def send_journey(
    jid: str, entry: str, channel: str, *, campaign: str = "", category: str = "marketing", group: str = ""
) -> str:
    camp = f"\n    campaign: {campaign}" if campaign else ""
    camp += f"\n    subscription_group: {group}" if group else ""
    return f"""\
id: {jid}
version: 1
entry: {{event: {entry}}}
re_entry: {{policy: always}}
steps:
  msg:
    type: send
    channel: {channel}
    category: {category}
    template: t_{jid}{camp}
"""


def registry(*texts: str) -> JourneyRegistry:
    reg = JourneyRegistry()
    for i, text in enumerate(texts):
        reg.deploy(load_journey_text(text, f"j{i}.yaml"), 0)
    return reg


def event(
    type_: str, at_ms: int, customer: str = "c1", props: dict[str, Any] | None = None, **extra: Any
) -> CustomerEvent:
    return CustomerEvent.model_validate(
        {
            "event_id": extra.pop("event_id", f"e{next(_ids)}"),
            "type": type_,
            "identifiers": {"customer_id": customer},
            "occurred_at": datetime.fromtimestamp(at_ms / 1000, tz=UTC),
            "source": "test",
            "properties": props or {},
            **extra,
        }
    )


@dataclass
class Customer:
    """One customer fed through CustomerLogic, collecting actions and decisions."""

    logic: CustomerLogic
    key: str = "c1"
    state: CustomerState | None = None
    actions: list[ChannelAction] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    wakeup: int | None = None

    @classmethod
    def of(cls, reg: JourneyRegistry, pol: Policy | PolicyRegistry | None, key: str = "c1") -> Customer:
        return cls(CustomerLogic(reg, policy=pol), key)

    def _take(self, out: Outcome) -> Outcome:
        self.state = out.state
        self.actions += out.actions
        self.decisions += out.decisions
        self.wakeup = out.next_wakeup_ms
        return out

    def on(self, type_: str, at_ms: int, props: dict[str, Any] | None = None, **extra: Any) -> Outcome:
        ev = event(type_, at_ms, self.key, props, **extra)
        return self._take(self.logic.on_event(self.key, self.state, ev, at_ms))

    def wake(self, now_ms: int) -> Outcome:
        return self._take(self.logic.on_wakeup(self.key, self.state, now_ms))

    def profile(self, at_ms: int, **attrs: Any) -> None:
        self.on("profile.updated", at_ms, attrs)

    def consent(self, at_ms: int, channel: str, granted: bool, category: str = "marketing") -> None:
        self.on("consent.changed", at_ms, {"channel": channel, "category": category, "granted": granted})

    def reachable(self, at_ms: int, *channels: str, timezone: str = "UTC") -> None:
        """Addresses and marketing consent on ``channels``."""
        addresses = {"email": "a@example.com", "sms": "+15550001", "push": "tok-1"}
        fields = {"email": "email", "sms": "phone", "push": "push_token"}
        self.profile(at_ms, timezone=timezone, **{fields[ch]: addresses[ch] for ch in channels})
        for ch in channels:
            self.consent(at_ms, ch, True)

    def verdicts(self) -> list[tuple[str, str, str]]:
        """(kind, reason, channel) of every decision so far."""
        return [(d.kind, d.reason, d.channel) for d in self.decisions]
