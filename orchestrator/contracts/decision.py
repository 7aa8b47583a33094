"""The decision contract: what the cross-channel policy did with one send, and why.

Every send a journey makes passes the policy (docs/policy.md) inside the pure core; each verdict is a
:class:`Decision`. The runtime publishes them, keyed by customer, on the decisions topic; ``orchestrator
simulate --decisions FILE`` writes them as JSONL. They answer "why did (or didn't) this customer get
the SMS?".

Kinds:

- ``sent``: the action left on the channel the journey asked for;
- ``redirected``: sent, but on a fallback channel (``original_channel`` -> ``channel``); ``reason`` says
  why the original channel could not be used (``no_address``, ``no_consent``);
- ``held``: quiet hours in the customer's time zone, or the moment ``send_time: optimal`` chose (reason
  ``send_time``); released at ``release_at`` (a later decision);
- ``dropped``: quiet hours with ``action: drop``;
- ``suppressed``: a rule said no (``no_consent``, ``no_address``, ``not_subscribed``,
  ``unknown_subscription_group``, ``frequency_cap``, ``engaged``).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from orchestrator.contracts.actions import Category, Channel

__all__ = ["DECISION_KINDS", "DECISION_REASONS", "Decision", "DecisionKind", "make_decision_id"]

DecisionKind = Literal["sent", "suppressed", "held", "dropped", "redirected"]
DECISION_KINDS: tuple[DecisionKind, ...] = ("sent", "suppressed", "held", "dropped", "redirected")
DECISION_REASONS: dict[str, str] = {
    "allowed": "every rule passed (marketing)",
    "transactional": "transactional: not capped, not held, not suppressed by engagement",
    "released": "held (quiet hours, or until the chosen send time), released when due and every rule passed "
    "again",
    "send_time": "held until the moment send_time: optimal chose (the likeliest hour in its window)",
    "no_policy": "no policy was in effect: sent as the journey asked",
    "no_address": "no address on the channel (and no usable fallback channel)",
    "no_consent": "no consent for the category on the channel (and no usable fallback channel)",
    "not_subscribed": "the customer is not in the send's subscription group (rule)",
    "unknown_subscription_group": "the policy in effect defines no such subscription group on the channel",
    "frequency_cap": "a frequency cap (rule) is reached",
    "engaged": "an engagement suppression rule (rule) matched",
    "quiet_hours": "inside quiet hours in the customer's time zone",
}
"""Every reason a decision can give, with its meaning (docs/policy.md)."""


def make_decision_id(action_id: str, kind: str, at_ms: int) -> str:
    """Deterministic: a replay of the same input gives the same decision id."""
    raw = "\x1f".join((action_id, kind, str(at_ms))).encode()
    return "dec_" + hashlib.blake2b(raw, digest_size=12).hexdigest()


class Decision(BaseModel):
    """One verdict of the cross-channel policy on one send."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision_id: str = Field(min_length=1, description="Deterministic: action id, kind and time.")
    kind: DecisionKind
    reason: str = Field(min_length=1, description="Why (see DECISION_REASONS).")
    rule: str | None = Field(
        None, description="The cap, suppression rule or subscription group that decided, by name."
    )
    detail: str = Field("", description="The verdict in words, for `orchestrator inspect`.")
    customer_id: str = Field(min_length=1, description="Canonical customer key.")
    action_id: str = Field(min_length=1, description="The action's id (for a redirect: the new action's).")
    original_action_id: str = Field(min_length=1, description="The id the journey's send step made.")
    journey_id: str
    journey_version: int
    step_id: str
    campaign: str | None = None
    category: Category
    channel: Channel = Field(description="The final channel (the one sent on, or the one refused).")
    original_channel: Channel = Field(description="The channel the journey asked for.")
    at: AwareDatetime = Field(description="Logical time of the decision, never the wall clock.")
    release_at: AwareDatetime | None = Field(None, description="For `held`: when it will be re-checked.")
    policy: str | None = Field(None, description="`<policy id>@<version>` in effect, None without one.")
    choice: dict[str, Any] | None = Field(
        None,
        description="What the run stage chose for the send (docs/optimization.md): with `channel: auto`, "
        "the channel, the rates compared and the draws; with `send_time: optimal`, the moment, the local "
        "hour of the week and its basis; the model in force. Left out for other sends.",
    )

    def to_json(self) -> bytes:
        # The same bytes as orjson.dumps(self.model_dump(mode="json", exclude_none=True)) (a unit test
        # holds them equal), without the dump.
        return orjson.dumps(
            {k: v for k, v in self.__dict__.items() if v is not None}, option=orjson.OPT_UTC_Z
        )
