"""Contracts of the orchestrator's internal topics: resolved events and dead letters."""

from __future__ import annotations

import base64
import hashlib
from typing import Final, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from orchestrator.contracts.events import CustomerEvent

__all__ = [
    "ACTION_DEAD_LETTER_REASONS",
    "DEAD_LETTER_KEEP_BYTES",
    "DEAD_LETTER_REASONS",
    "EVENT_DEAD_LETTER_REASONS",
    "DeadLetter",
    "DeadLetterReason",
    "JourneyDeployment",
    "ResolvedEvent",
]

DeadLetterReason = Literal[
    "not_json",
    "invalid_event",
    "over_limit",
    "processing_error",
    "invalid_action",
    "render_failed",
    "rejected",
    "unregistered",
    "retries_exhausted",
    "unconfirmed",
]
EVENT_DEAD_LETTER_REASONS: Final = ("not_json", "invalid_event", "over_limit", "processing_error")
"""Why a worker sets a message aside (raw events, resolved events)."""
ACTION_DEAD_LETTER_REASONS: Final = (
    "invalid_action",
    "render_failed",
    "rejected",
    "unregistered",
    "retries_exhausted",
    "unconfirmed",
)
"""Why a connector sets an action aside (docs/connectors.md): not a valid action, its message could not be
rendered, the provider refused it for good, the recipient's address is gone for good (a push token the
device no longer has), refused it for now too many times, or it may have been sent (a crash or a lost
answer between the mark ``sending`` and the provider's answer: never sent twice)."""
DEAD_LETTER_REASONS: Final = EVENT_DEAD_LETTER_REASONS + ACTION_DEAD_LETTER_REASONS
DEAD_LETTER_KEEP_BYTES: Final = 64 * 1024
"""Original bytes kept in a dead letter; a longer original keeps this prefix, its length and SHA-256,
so that a dead letter always fits Kafka's message limit."""
KEY_KEEP_BYTES: Final = 1024
"""Original key bytes kept in a dead letter (and used as its key)."""
ERROR_KEEP_CHARS: Final = 4000


class ResolvedEvent(BaseModel):
    """A valid event with the canonical customer key it was resolved to.

    Published keyed by ``customer_key`` to the resolved-events topic, which is co-partitioned with
    all per-customer state.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_key: str = Field(min_length=1)
    event: CustomerEvent
    source_partition: int | None = Field(None, description="Raw-topic partition the event was read from.")
    source_offset: int | None = Field(
        None, description="Its raw-topic offset: a re-resolved copy (after a crash) is recognised by it."
    )
    order_ms: int | None = Field(
        None,
        description="Its order time: the running maximum of the event times read in its raw partition up "
        "to it (docs/runtime.md): events are ordered by (order time, raw partition, raw offset).",
    )
    merged_from: list[str] | None = Field(
        None,
        description=(
            "Customer keys merged into customer_key by this event: it is applied once their state "
            "has arrived (docs/identity.md)."
        ),
    )

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))


class DeadLetter(BaseModel):
    """A message the orchestrator could not take, kept with everything needed to look at it again.

    It always fits a Kafka message: an original over :data:`DEAD_LETTER_KEEP_BYTES` keeps its first
    bytes (``value_truncated``), with its length and SHA-256 to find it on the source topic.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: DeadLetterReason
    error: str = Field(description="What is wrong and where (field names).")
    topic: str
    partition: int
    offset: int
    key_b64: str | None = Field(None, description="The original key, base64 (its first 1 KiB).")
    value_b64: str = Field(description="The original bytes, base64, exactly as read (or their first 64 KiB).")
    value_bytes: int = Field(0, description="Length of the original value.")
    value_sha256: str = Field("", description="SHA-256 of the original value, hex.")
    value_truncated: bool = Field(False, description="True when value_b64 holds only the first bytes.")
    dead_lettered_at: AwareDatetime
    action_id: str | None = Field(None, description="A connector's dead letter: the action's id.")
    attempts: int = Field(0, ge=0, description="A connector's dead letter: the provider calls made.")

    @classmethod
    def of(
        cls,
        *,
        reason: DeadLetterReason,
        error: str,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes,
        at: AwareDatetime,
        action_id: str | None = None,
        attempts: int = 0,
    ) -> DeadLetter:
        kept = value[:DEAD_LETTER_KEEP_BYTES]
        return cls(
            reason=reason,
            error=error if len(error) <= ERROR_KEEP_CHARS else error[:ERROR_KEEP_CHARS] + " …(cut)",
            topic=topic,
            partition=partition,
            offset=offset,
            key_b64=base64.b64encode(key[:KEY_KEEP_BYTES]).decode() if key is not None else None,
            value_b64=base64.b64encode(kept).decode(),
            value_bytes=len(value),
            value_sha256=hashlib.sha256(value).hexdigest(),
            value_truncated=len(kept) < len(value),
            dead_lettered_at=at,
            action_id=action_id,
            attempts=attempts,
        )

    @staticmethod
    def key_of(key: bytes | None) -> bytes | None:
        """The key a dead letter is published with: the original's first :data:`KEY_KEEP_BYTES`."""
        return None if key is None else key[:KEY_KEEP_BYTES]

    def original_value(self) -> bytes:
        """The original bytes (only their first part when ``value_truncated``)."""
        return base64.b64decode(self.value_b64)

    def to_json(self) -> bytes:
        # a worker's dead letters (events) stay as they were: without the connectors' two fields
        unset = {"action_id", "attempts"} if self.action_id is None else set()
        return orjson.dumps(self.model_dump(mode="json", exclude=unset))


class JourneyDeployment(BaseModel):
    """One deployment of one journey version, as published on the (compacted) journeys topic.

    Keyed ``<journey_id>@<version>@<effective_from_ms>`` so that every deployment (a new version,
    a pause, an archive) is kept: a worker that starts later rebuilds the same timeline.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["journey", "policy", "segment", "campaign", "template", "model"] = Field(
        "journey",
        description="A journey file, the policy file, a segment file, a campaign file, a template file or "
        "a model file.",
    )
    journey_id: str = Field(
        min_length=1,
        description="The journey's id (for a policy, a segment, a campaign, a template or a model: its own "
        "id).",
    )
    version: int = Field(ge=1)
    effective_from: AwareDatetime = Field(description="Logical time from which this deployment applies.")
    source_name: str = Field(description="The file it came from, for error messages.")
    text: str = Field(description="The journey file's YAML, exactly as validated.")
    content_hash: str = ""
    deployed_by: str = ""

    @property
    def key(self) -> str:
        prefix = "" if self.kind == "journey" else f"{self.kind}:"
        return f"{prefix}{self.journey_id}@{self.version}@{int(self.effective_from.timestamp() * 1000)}"

    @property
    def effective_from_ms(self) -> int:
        return int(self.effective_from.timestamp() * 1000)

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))
