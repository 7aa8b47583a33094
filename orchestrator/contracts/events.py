"""The customer event contract: a CloudEvents-like envelope."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.exceptions import InvalidEventError

__all__ = [
    "ENGAGEMENT_TYPES",
    "IDENTIFIER_PRIORITY",
    "KNOWN_EVENT_TYPES",
    "CustomerEvent",
    "Identifiers",
    "parse_event",
]

KNOWN_EVENT_TYPES: Final = frozenset(
    {
        "email.sent", "email.delivered", "email.opened", "email.clicked", "email.bounced",
        "sms.sent", "sms.delivered", "sms.clicked",
        "push.sent", "push.opened",
        "page.viewed", "cart.updated", "order.completed",
        "profile.updated", "consent.changed", "customer.erased",
    }
)  # fmt: skip
"""Event types the orchestrator knows. Custom types are allowed too (see ``CustomerEvent.type``)."""

ENGAGEMENT_TYPES: Final = frozenset(
    t for t in KNOWN_EVENT_TYPES if t.split(".")[0] in {"email", "sms", "push"}
)
"""Events that answer to a channel action: they may carry action_id, campaign and journey."""

IDENTIFIER_PRIORITY: Final = ("customer_id", "email", "phone", "device_id", "anonymous_id")
"""Which identifier becomes the canonical customer key when no customer_id is given (first present wins)."""

EVENT_TYPE_PATTERN: Final = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
_TYPE_RE = re.compile(EVENT_TYPE_PATTERN)

NonEmpty = Annotated[str, Field(min_length=1, max_length=512)]


class Identifiers(BaseModel):
    """The identifiers an event carries; at least one is required."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: NonEmpty | None = None
    email: NonEmpty | None = None
    phone: NonEmpty | None = None
    device_id: NonEmpty | None = None
    anonymous_id: NonEmpty | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Identifiers:
        if not any(getattr(self, name) for name in IDENTIFIER_PRIORITY):
            raise ValueError(f"at least one identifier is required ({', '.join(IDENTIFIER_PRIORITY)})")
        return self

    def items(self) -> list[tuple[str, str]]:
        """(kind, value) pairs of the identifiers present, in priority order."""
        return [(name, v) for name in IDENTIFIER_PRIORITY if (v := getattr(self, name))]


class CustomerEvent(BaseModel):
    """One thing a customer did or that happened to a customer.

    ``event_id`` is the dedupe key: the same id twice is one event.
    ``action_id``, ``campaign`` and ``journey`` link an engagement event (email.opened, ...) to the
    channel action it answers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Annotated[str, Field(min_length=1, max_length=200)]
    type: Annotated[
        str,
        Field(
            min_length=3,
            max_length=100,
            pattern=EVENT_TYPE_PATTERN,
            description="Dotted lower-case type (email.opened); custom types (app.installed) are allowed.",
        ),
    ]
    identifiers: Identifiers
    occurred_at: AwareDatetime
    source: Annotated[str, Field(min_length=1, max_length=200)]
    properties: dict[str, Any] = Field(default_factory=dict)
    action_id: str | None = None
    campaign: str | None = None
    journey: str | None = None

    @property
    def occurred_ms(self) -> int:
        """occurred_at as epoch milliseconds (the engine's logical time unit)."""
        return int(self.occurred_at.timestamp() * 1000)

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"field '{field}': {err['msg']}")
    return "; ".join(parts)


def parse_event(raw: bytes | str) -> CustomerEvent:
    """Parse raw bytes into a :class:`CustomerEvent`.

    Raises :class:`InvalidEventError` with reason ``not_json`` or ``invalid_event`` and a detail that
    names each offending field.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEventError("not_json", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidEventError("invalid_event", f"an event is a JSON object, got {type(data).__name__}")
    try:
        return CustomerEvent.model_validate(data)
    except ValidationError as exc:
        raise InvalidEventError("invalid_event", _describe(exc)) from None


def event_type_is_valid(value: str) -> bool:
    """True when ``value`` is a well-formed event type (known or custom)."""
    return bool(_TYPE_RE.match(value))


def utc_from_ms(ms: int) -> datetime:
    """Epoch milliseconds to an aware UTC datetime."""
    from datetime import UTC

    return datetime.fromtimestamp(ms / 1000, tz=UTC)
