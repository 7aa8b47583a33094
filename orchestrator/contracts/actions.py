"""The channel action contract: what the orchestrator asks a connector to send."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = ["CHANNELS", "Category", "Channel", "ChannelAction", "make_action_id"]

Channel = Literal["email", "sms", "push"]
Category = Literal["marketing", "transactional"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "push")


def make_action_id(*parts: object) -> str:
    """A deterministic idempotency key from the parts that identify one send.

    The engine passes customer, journey, version, entry sequence, step and visit sequence; never an
    offset or the wall clock, so a replay yields the same id and connectors can drop duplicates.
    """
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=16).hexdigest()
    return f"act_{digest}"


class ChannelAction(BaseModel):
    """One message to send on one channel to one customer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action_id: str = Field(min_length=1, description="Deterministic idempotency key; duplicates share it.")
    channel: Channel
    category: Category
    customer_id: str = Field(min_length=1, description="Canonical customer key.")
    recipient: str = Field(min_length=1, description="Address on the channel: email, phone, push token.")
    journey_id: str
    journey_version: int
    step_id: str
    template_id: str
    campaign: str | None = None
    personalization: dict[str, Any] = Field(default_factory=dict)
    created_at: AwareDatetime = Field(description="The engine's logical time, never the wall clock.")
    not_before: AwareDatetime | None = Field(None, description="Do not deliver before this instant.")

    def to_json(self) -> bytes:
        # The same bytes as orjson.dumps(self.model_dump(mode="json")) (a unit test holds them equal),
        # without the dump: the fields in order, datetimes in ISO 8601 with Z.
        return orjson.dumps(self.__dict__, option=orjson.OPT_UTC_Z)
