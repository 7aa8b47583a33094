"""A valid customer event in the engine's form, and the fast way to read one.

:class:`~orchestrator.contracts.events.CustomerEvent` (pydantic) is the contract: it validates at the
edge and gives the JSON Schema and the error messages. The engine needs none of that once an event is
known to be valid, and building a pydantic model costs more than applying most events, so the hot
paths use :class:`Event`, a plain object:

- :func:`read_event` validates raw bytes (``orchestrator simulate``, the ingest stage): the common
  shapes are checked here in a few microseconds; anything else (an error, or a rarer valid form such as
  an epoch-number ``occurred_at``) goes through the pydantic model, so the result and every error
  message are the model's;
- :meth:`Event.trusted` builds one from a message this orchestrator validated and wrote itself (the
  resolved topic): no validation at all;
- :meth:`Event.of` converts a model.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

import orjson
from pydantic import ValidationError

from orchestrator.contracts.events import (
    CUSTOMER_KEY,
    DEFAULT_LIMITS,
    IDENTIFIER_PRIORITY,
    CustomerEvent,
    EventLimits,
    describe_error,
    load_event_json,
    utc_from_ms,
)
from orchestrator.exceptions import InvalidEventError

__all__ = ["Event", "read_event", "read_event_json"]

_TYPE: Final = re.compile(r"(?!orchestrator\.)[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")
_TIME: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)")
_ALLOWED: Final = frozenset(
    {
        "event_id",
        "type",
        "identifiers",
        "occurred_at",
        "source",
        "properties",
        "action_id",
        "campaign",
        "journey",
    }
)
_IDS: Final = frozenset(IDENTIFIER_PRIORITY)


class Event:
    """One valid event: the fields of :class:`CustomerEvent`, its time in epoch milliseconds, and
    its identifiers as (kind, value) pairs in priority order."""

    __slots__ = (
        "_data",
        "_view",
        "action_id",
        "campaign",
        "event_id",
        "identifiers",
        "journey",
        "occurred_ms",
        "properties",
        "source",
        "type",
    )

    def __init__(
        self,
        *,
        event_id: str,
        type: str,
        identifiers: tuple[tuple[str, str], ...],
        occurred_ms: int,
        source: str,
        properties: dict[str, Any],
        action_id: str | None = None,
        campaign: str | None = None,
        journey: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.event_id = event_id
        self.type = type
        self.identifiers = identifiers
        self.occurred_ms = occurred_ms
        self.source = source
        self.properties = properties
        self.action_id = action_id
        self.campaign = campaign
        self.journey = journey
        self._data = data
        self._view: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Event({self.event_id!r}, {self.type!r}, at {self.occurred_ms})"

    @classmethod
    def of(cls, model: CustomerEvent) -> Event:
        return cls(
            event_id=model.event_id,
            type=model.type,
            identifiers=tuple(model.identifiers.items()),
            occurred_ms=model.occurred_ms,
            source=model.source,
            properties=model.properties,
            action_id=model.action_id,
            campaign=model.campaign,
            journey=model.journey,
        )

    @classmethod
    def trusted(cls, data: dict[str, Any]) -> Event:
        """From the JSON form of an event this orchestrator validated before (``CustomerEvent.to_json``,
        as carried by the resolved topic); ``data`` is kept for :meth:`to_dict`. Not validated: a
        malformed one raises ValueError."""
        try:
            # written by CustomerEvent.to_json: the identifiers present, in priority order
            return cls(
                event_id=data["event_id"],
                type=data["type"],
                identifiers=tuple(data["identifiers"].items()),
                occurred_ms=_ms(datetime.fromisoformat(data["occurred_at"])),
                source=data["source"],
                properties=data.get("properties", {}),
                action_id=data.get("action_id"),
                campaign=data.get("campaign"),
                journey=data.get("journey"),
                data=data,
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"not an event this orchestrator wrote: {exc!r}") from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as ``CustomerEvent.to_json`` writes it."""
        if self._data is None:
            self._data = orjson.loads(self.model().to_json())
        return self._data

    def model(self) -> CustomerEvent:
        """The pydantic model of this event (slow; for the edges)."""
        if self._data is not None:
            return CustomerEvent.model_validate(self._data)
        return CustomerEvent(
            event_id=self.event_id,
            type=self.type,
            identifiers=dict(self.identifiers),
            occurred_at=utc_from_ms(self.occurred_ms),
            source=self.source,
            properties=self.properties,
            action_id=self.action_id,
            campaign=self.campaign,
            journey=self.journey,
        )

    def view(self) -> dict[str, Any]:
        """The ``event`` variable of conditions (made once per event)."""
        view = self._view
        if view is None:
            view = self._view = {
                "id": self.event_id,
                "type": self.type,
                "at_ms": self.occurred_ms,
                "source": self.source,
                "properties": self.properties,
                "campaign": self.campaign or "",
                "action_id": self.action_id or "",
                "journey": self.journey or "",
            }
        return view


def _ms(at: datetime) -> int:
    # the same arithmetic as CustomerEvent.occurred_ms: the same milliseconds, to the last one
    return int(at.timestamp() * 1000)


_TYPES_SEEN: dict[str, bool] = {}
"""Event types checked already (a stream carries few): the pattern runs once per type."""


def _type_ok(kind: str) -> bool:
    ok = _TYPES_SEEN.get(kind)
    if ok is None:
        ok = _TYPE.fullmatch(kind) is not None
        if len(_TYPES_SEEN) < 10_000:
            _TYPES_SEEN[kind] = ok
    return ok


def _fast(data: dict[str, Any]) -> tuple[Event, datetime] | None:
    """The event (and its time as written) when ``data`` has one of the common valid shapes; None: ask
    the model."""
    get = data.get
    event_id, kind, ids, when, source = (
        get("event_id"), get("type"), get("identifiers"), get("occurred_at"), get("source")
    )  # fmt: skip
    if (
        type(event_id) is not str
        or type(kind) is not str
        or type(source) is not str
        or type(when) is not str
        or type(ids) is not dict
        or not (0 < len(event_id) <= 200 and 3 <= len(kind) <= 100 and 0 < len(source) <= 200)
        or (len(data) > 5 and not data.keys() <= _ALLOWED)
        or not _type_ok(kind)
        or _TIME.fullmatch(when) is None
    ):
        return None
    properties = get("properties", {})
    action_id, campaign, journey = get("action_id"), get("campaign"), get("journey")
    if (
        type(properties) is not dict
        or (action_id is not None and type(action_id) is not str)
        or (campaign is not None and type(campaign) is not str)
        or (journey is not None and type(journey) is not str)
    ):
        return None
    pairs = []
    named = ids.get(CUSTOMER_KEY)
    if named is not None:  # a receipt's customer key: alone (the model says why otherwise)
        if type(named) is not str or not 0 < len(named) <= 512 or len(ids) != 1:
            return None
        pairs.append((CUSTOMER_KEY, named))
    else:
        for name in IDENTIFIER_PRIORITY:
            value = ids.get(name)
            if value is None:
                continue
            if type(value) is not str or not 0 < len(value) <= 512:
                return None
            pairs.append((name, value))
        if not pairs or len(ids) > len(_IDS) or not ids.keys() <= _IDS:
            return None
    try:
        at = datetime.fromisoformat(when)
    except ValueError:
        return None
    event = Event(
        event_id=event_id,
        type=kind,
        identifiers=tuple(pairs),
        occurred_ms=_ms(at),
        source=source,
        properties=properties,
        action_id=action_id,
        campaign=campaign,
        journey=journey,
    )
    return event, at


def read_event(raw: bytes | str, limits: EventLimits = DEFAULT_LIMITS) -> Event:
    """Validate raw bytes into an :class:`Event`: the same events and the same errors as
    :func:`~orchestrator.contracts.events.parse_event` (``not_json``, ``over_limit``, ``invalid_event``)."""
    data = load_event_json(raw, limits)
    found = _fast(data)
    if found is not None:
        return found[0]
    try:
        return Event.of(CustomerEvent.model_validate(data))
    except ValidationError as exc:
        raise InvalidEventError("invalid_event", describe_error(exc)) from None


def read_event_json(raw: bytes | str, limits: EventLimits = DEFAULT_LIMITS) -> tuple[Event, bytes]:
    """:func:`read_event`, and the event's JSON exactly as ``CustomerEvent.to_json`` writes it (the form
    the identify and resolved topics carry; a unit test holds the bytes equal), without the model for
    the common shapes."""
    data = load_event_json(raw, limits)
    found = _fast(data)
    if found is None:
        try:
            model = CustomerEvent.model_validate(data)
        except ValidationError as exc:
            raise InvalidEventError("invalid_event", describe_error(exc)) from None
        return Event.of(model), model.to_json()
    event, at = found
    form: dict[str, Any] = {
        "event_id": event.event_id,
        "type": event.type,
        "identifiers": dict(event.identifiers),  # the model's field order is the priority order
        "occurred_at": at,
        "source": event.source,
        "properties": event.properties,
    }
    if event.action_id is not None:
        form["action_id"] = event.action_id
    if event.campaign is not None:
        form["campaign"] = event.campaign
    if event.journey is not None:
        form["journey"] = event.journey
    return event, orjson.dumps(form, option=orjson.OPT_UTC_Z)
