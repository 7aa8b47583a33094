"""Helpers of the identity tests: events with any identifiers, journeys from text, a simulator feed."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import orjson

from orchestrator.contracts import CustomerEvent
from orchestrator.core.journey import JourneyRegistry, load_journey_text

M = 60_000
H = 60 * M
D = 24 * H
T0 = int(datetime(2025, 3, 3, 9, 0, tzinfo=UTC).timestamp() * 1000)
_ids = itertools.count(1)

CART = """\
id: cart
version: 1
entry: {event: cart.updated}
re_entry: {policy: always, max_concurrent: 1}
goals:
  - {name: purchased, event: order.completed}
steps:
  wait_1h: {type: wait, duration: 1h, next: reminder}
  reminder: {type: send, channel: email, category: transactional, template: cart_v1}
"""

WELCOME = """\
id: welcome
version: 1
entry: {event: account.created}
steps:
  wait_1d: {type: wait, duration: 1d, next: sms_allowed}
  sms_allowed:
    type: branch
    branches:
      - {when: 'profile.consent.sms.marketing && profile.phone != ""', next: sms}
    default: no_sms
  sms: {type: send, channel: sms, category: marketing, template: welcome_sms}
  no_sms: {type: exit, reason: no_sms_consent}
"""


def registry(*texts: str) -> JourneyRegistry:
    reg = JourneyRegistry()
    for i, text in enumerate(texts):
        reg.deploy(load_journey_text(text, f"j{i}.yaml"), 0)
    return reg


def raw(type_: str, at_ms: int, ids: dict[str, str], props: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "event_id": f"e{next(_ids)}",
        "type": type_,
        "identifiers": ids,
        "occurred_at": datetime.fromtimestamp(at_ms / 1000, tz=UTC).isoformat(),
        "source": "test",
        "properties": props or {},
    }


def event(type_: str, at_ms: int, ids: dict[str, str], props: dict[str, Any] | None = None) -> CustomerEvent:
    return CustomerEvent.model_validate(raw(type_, at_ms, ids, props))


def line(type_: str, at_ms: int, ids: dict[str, str], props: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps(raw(type_, at_ms, ids, props))
