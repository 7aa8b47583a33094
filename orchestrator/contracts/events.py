"""The customer event contract: a CloudEvents-like envelope."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from orchestrator.exceptions import InvalidEventError

__all__ = [
    "CAMPAIGN_RELEASED",
    "CUSTOMER_KEY",
    "DEFAULT_LIMITS",
    "ENGAGEMENT_TYPES",
    "EVENT_TYPE_PATTERN",
    "EVENT_TYPE_RULE",
    "IDENTIFIER_NAMES",
    "IDENTIFIER_PRIORITY",
    "KNOWN_EVENT_TYPES",
    "RESERVED_TYPE_PREFIX",
    "SEGMENT_ENTERED",
    "SEGMENT_LEFT",
    "CustomerEvent",
    "EventLimits",
    "Identifiers",
    "describe_error",
    "load_event_json",
    "parse_event",
]

KNOWN_EVENT_TYPES: Final = frozenset(
    {
        "email.sent", "email.delivered", "email.opened", "email.clicked", "email.bounced",
        "sms.sent", "sms.delivered", "sms.failed", "sms.clicked",
        "push.sent", "push.delivered", "push.opened",
        "page.viewed", "cart.updated", "order.completed",
        "profile.updated", "consent.changed", "subscription.changed", "customer.erased",
    }
)  # fmt: skip
"""Event types the orchestrator knows. Custom types are allowed too (see ``CustomerEvent.type``)."""

ENGAGEMENT_TYPES: Final = frozenset(
    t for t in KNOWN_EVENT_TYPES if t.split(".")[0] in {"email", "sms", "push"}
)
"""Events that answer to a channel action (a connector's receipts: docs/connectors.md, "Receipts"): they
may carry action_id, campaign and journey, and the profile counts each per channel and campaign
(``profile.engagement.sms.failed``, ``profile.engagement.push.delivered``, ...)."""

IDENTIFIER_PRIORITY: Final = ("customer_id", "email", "phone", "device_id", "anonymous_id")
"""Which identifier becomes the canonical customer key when no customer_id is given (first present wins)."""
CUSTOMER_KEY: Final = "customer_key"
"""Names a customer by its canonical key without claiming any identifier (docs/identity.md, "Receipts"):
what a connector puts on the events it reports for an action (``ChannelAction.customer_id``). It
carries no identity: it is never attached to a customer, never makes a key known and never merges
anything; the graph resolves it to the customer the key stands for now (following merges). Alone:
an event naming a customer key carries no other identifier."""
IDENTIFIER_NAMES: Final = (*IDENTIFIER_PRIORITY, CUSTOMER_KEY)
"""Every name allowed under ``identifiers``."""

RESERVED_TYPE_PREFIX: Final = "orchestrator."
"""Event types the engine makes itself (a customer entering or leaving a segment): no producer may send
them."""
SEGMENT_ENTERED: Final = "orchestrator.segment.entered"
SEGMENT_LEFT: Final = "orchestrator.segment.left"
CAMPAIGN_RELEASED: Final = "orchestrator.campaign.released"
"""The event a journey entered by a campaign starts on."""
EVENT_TYPE_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}(\.[a-z][a-z0-9_]{0,63}){0,7}$"
EVENT_TYPE_RULE: Final = (
    "lowercase words of letters, digits and _, each starting with a letter, optionally joined by dots, "
    "like 'back_in_stock', 'page.viewed' or 'app.trial.started'"
)
"""What an event type is (docs/contracts.md): custom names need no dot."""
_TYPE_RE = re.compile(EVENT_TYPE_PATTERN)

NonEmpty = Annotated[str, Field(min_length=1, max_length=512)]
CustomerKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=512,
        description="The canonical customer key of the action a receipt answers (the action's customer_id, "
        "e.g. 'email:ann@example.com' for an anonymous customer): resolved to that customer as it is now, "
        "without claiming any identifier. Alone: no other identifier with it.",
    ),
]


class Identifiers(BaseModel):
    """The identifiers an event carries; at least one is required. ``customer_key`` (receipts: the
    events a connector reports for an action) names a customer by its canonical key instead, alone."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        # the JSON Schema says "alone" too: with a customer_key, every other identifier absent or null
        json_schema_extra={
            "if": {"required": [CUSTOMER_KEY], "properties": {CUSTOMER_KEY: {"type": "string"}}},
            "then": {"properties": {name: {"type": "null"} for name in IDENTIFIER_PRIORITY}},
        },
    )

    customer_id: NonEmpty | None = None
    email: NonEmpty | None = None
    phone: NonEmpty | None = None
    device_id: NonEmpty | None = None
    anonymous_id: NonEmpty | None = None
    customer_key: CustomerKey | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Identifiers:
        if not any(getattr(self, name) for name in IDENTIFIER_NAMES):
            raise ValueError(f"at least one identifier is required ({', '.join(IDENTIFIER_PRIORITY)})")
        if self.customer_key and any(getattr(self, name) for name in IDENTIFIER_PRIORITY):
            raise ValueError(
                f"{CUSTOMER_KEY} names the customer alone: it carries no identity, so no other identifier "
                "may come with it (send those on an event of their own)"
            )
        return self

    def items(self) -> list[tuple[str, str]]:
        """(kind, value) pairs of the identifiers present, in priority order (a customer_key: alone)."""
        return [(name, v) for name in IDENTIFIER_NAMES if (v := getattr(self, name))]


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

    @field_validator("type")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.startswith(RESERVED_TYPE_PREFIX):
            raise ValueError(
                f"event types starting with {RESERVED_TYPE_PREFIX!r} are the engine's own (a customer "
                "entering or leaving a segment); a producer may not send them"
            )
        return value

    @property
    def occurred_ms(self) -> int:
        """occurred_at as epoch milliseconds (the engine's logical time unit)."""
        return int(self.occurred_at.timestamp() * 1000)

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))


_TIME_EXAMPLE = "an ISO 8601 time with its time zone, like 2025-03-01T10:00:00Z or 2025-03-01T11:00:00+01:00"
_PLAIN_BY_FIELD: Final = {
    ("type", "string_pattern_mismatch"): f"an event type is {EVENT_TYPE_RULE}",
}
_PLAIN_BY_TYPE: Final = {
    "missing": "is required",
    "extra_forbidden": "is not a field of an event (its fields: event_id, type, identifiers, occurred_at, "
    "source, properties, and action_id, campaign, journey on engagement events); custom data goes under "
    "'properties'",
    "timezone_aware": f"needs a time zone: {_TIME_EXAMPLE}",
    "datetime_parsing": f"must be {_TIME_EXAMPLE}",
    "datetime_from_date_parsing": f"must be {_TIME_EXAMPLE}",
    "datetime_type": f"must be {_TIME_EXAMPLE}",
    "string_too_short": "must not be empty",
    "string_type": "must be a string",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
}


def describe_error(exc: ValidationError) -> str:
    """A pydantic error as one line naming each offending field, what is expected, and what was given
    (the words of ``orchestrator validate``, not pydantic's: ``produce``, simulate and dead letters)."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(root)"
        kind = err["type"]
        plain = _PLAIN_BY_FIELD.get((field, kind)) or _PLAIN_BY_TYPE.get(kind)
        if kind == "extra_forbidden" and field.startswith("identifiers."):
            plain = f"is not an identifier (the identifiers: {', '.join(IDENTIFIER_NAMES)})"
        elif plain is None and kind == "string_too_long":
            plain = f"is too long: at most {err.get('ctx', {}).get('max_length', '?')} characters"
        elif plain is None and kind == "value_error":
            plain = str(err["msg"]).removeprefix("Value error, ")
        elif plain is None:
            plain = str(err["msg"])
        given = err.get("input")
        if kind not in ("missing", "extra_forbidden") and isinstance(given, str | int | float | bool):
            shown = repr(given) if len(repr(given)) <= 60 else repr(given)[:57] + "..."
            plain += f" (got {shown})"
        parts.append(f"field '{field}': {plain}")
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class EventLimits:
    """Bounds every event must respect (docs/contracts.md); checked once, at ingest.

    An event over a bound is dead-lettered with reason ``over_limit`` naming the field and the bound.
    The defaults keep an event, wrapped for the identify stage, well under Kafka's default 1 MB.
    """

    max_bytes: int = 256 * 1024
    """The whole message, as bytes."""
    max_depth: int = 16
    """Nesting of objects and arrays, the event itself being level 1."""
    max_properties: int = 1000
    """Keys and array items under ``properties``, counted at every level."""
    max_string_chars: int = 32 * 1024
    """Any one string (or object key)."""

    def check_size(self, raw: bytes | str) -> None:
        size = len(raw)
        if size > self.max_bytes:
            raise InvalidEventError(
                "over_limit", f"message of {size} bytes, over the limit of {self.max_bytes} (max_event_bytes)"
            )

    def check(self, raw: bytes | str, data: dict[str, Any]) -> None:
        """Depth, property count and string length of the parsed ``data`` (``raw``: its bytes)."""
        text = raw.encode() if isinstance(raw, str) else raw
        # Cheap bounds first: no walk when the bytes cannot hold a violation (the usual case).
        may_nest = text.count(b"{") + text.count(b"[") > self.max_depth
        may_count = text.count(b",") + text.count(b":") >= self.max_properties
        may_long = len(text) > self.max_string_chars
        if not (may_nest or may_count or may_long):
            return
        if self._within(data):
            return
        self._name_violation(data)  # walks again, with paths, to say where
        raise InvalidEventError("over_limit", "over a bound of max_event_* (docs/contracts.md)")

    def _within(self, data: dict[str, Any]) -> bool:
        """True when ``data`` respects every bound (a walk without paths: fast on large events)."""
        max_depth, max_chars = self.max_depth, self.max_string_chars
        stack: list[tuple[Any, int]] = [(data, 1)]
        while stack:
            value, depth = stack.pop()
            if depth > max_depth:
                return False
            items = value.items() if type(value) is dict else enumerate(value)
            for key, item in items:
                if type(key) is str and len(key) > max_chars:
                    return False
                kind = type(item)
                if kind is dict or kind is list:
                    stack.append((item, depth + 1))
                elif kind is str and len(item) > max_chars:
                    return False
        counted = 0
        props = data.get("properties")
        stack2: list[Any] = [props] if type(props) is dict or type(props) is list else []
        while stack2:
            value = stack2.pop()
            counted += len(value)
            if counted > self.max_properties:
                return False
            children = value.values() if type(value) is dict else value
            stack2.extend(c for c in children if type(c) is dict or type(c) is list)
        return True

    def _name_violation(self, data: dict[str, Any]) -> None:
        """Raise for the first bound ``data`` breaks, naming the field (a walk with paths)."""
        stack: list[tuple[Any, tuple[str, ...], int]] = [(data, (), 1)]
        counted = 0
        while stack:
            value, path, depth = stack.pop()
            where = ".".join(path) or "(root)"
            if isinstance(value, dict | list):
                if depth > self.max_depth:
                    raise _over(where, f"nested deeper than {self.max_depth} levels", "depth")
                if path and path[0] == "properties":
                    counted += len(value)
                items = value.items() if isinstance(value, dict) else enumerate(value)
                for k, v in items:
                    if isinstance(k, str) and len(k) > self.max_string_chars:
                        raise _over(
                            where,
                            f"a key of {len(k)} characters, over {self.max_string_chars}",
                            "string_chars",
                        )
                    stack.append((v, (*path, str(k)), depth + 1))
                if counted > self.max_properties:
                    raise _over("properties", f"more than {self.max_properties} keys and items", "properties")
            elif isinstance(value, str) and len(value) > self.max_string_chars:
                raise _over(where, f"{len(value)} characters, over {self.max_string_chars}", "string_chars")


def _over(where: str, what: str, setting: str) -> InvalidEventError:
    return InvalidEventError("over_limit", f"field '{where}': {what} (max_event_{setting})")


DEFAULT_LIMITS: Final = EventLimits()


def load_event_json(raw: bytes | str, limits: EventLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The JSON object of a raw event within ``limits``; raises :class:`InvalidEventError` with reason
    ``over_limit``, ``not_json`` or ``invalid_event`` (not an object). The fields are not checked."""
    limits.check_size(raw)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEventError("not_json", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidEventError("invalid_event", f"an event is a JSON object, got {type(data).__name__}")
    limits.check(raw, data)
    return data


def parse_event(raw: bytes | str, limits: EventLimits = DEFAULT_LIMITS) -> CustomerEvent:
    """Parse raw bytes into a :class:`CustomerEvent`.

    Raises :class:`InvalidEventError` with reason ``not_json``, ``over_limit`` (``limits``) or
    ``invalid_event`` and a detail that names each offending field.
    """
    data = load_event_json(raw, limits)
    try:
        return CustomerEvent.model_validate(data)
    except ValidationError as exc:
        raise InvalidEventError("invalid_event", describe_error(exc)) from None


def event_type_is_valid(value: str) -> bool:
    """True when ``value`` is a well-formed event type (known or custom)."""
    return bool(_TYPE_RE.match(value))


def utc_from_ms(ms: int) -> datetime:
    """Epoch milliseconds to an aware UTC datetime."""
    from datetime import UTC

    return datetime.fromtimestamp(ms / 1000, tz=UTC)
