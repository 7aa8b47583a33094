"""Fixtures for engine tests: build events, journeys from YAML text, and drive one customer."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.contracts import ChannelAction, CustomerEvent
from orchestrator.core.customer import CustomerLogic, Outcome, Transition
from orchestrator.core.engine.state import CustomerState
from orchestrator.core.journey import JourneyRegistry, load_journey_text

T0 = int(datetime(2025, 3, 3, 9, 0, tzinfo=UTC).timestamp() * 1000)
H = 3_600_000
M = 60_000
_ids = itertools.count(1)


def make_event(
    type_: str,
    at_ms: int,
    customer: str = "c1",
    props: dict[str, Any] | None = None,
    event_id: str | None = None,
    **extra: Any,
) -> CustomerEvent:
    ids: dict[str, str] = {"customer_id": customer}
    for k in ("email", "phone"):
        if k in extra:
            ids[k] = extra.pop(k)
    return CustomerEvent.model_validate(
        {
            "event_id": event_id or f"e{next(_ids)}",
            "type": type_,
            "identifiers": ids,
            "occurred_at": datetime.fromtimestamp(at_ms / 1000, tz=UTC),
            "source": "test",
            "properties": props or {},
            **extra,
        }
    )


@dataclass
class Driver:
    """One customer fed through CustomerLogic, collecting everything that came out."""

    logic: CustomerLogic
    key: str = "c1"
    state: CustomerState | None = None
    actions: list[ChannelAction] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    wakeup: int | None = None

    def _take(self, out: Outcome) -> Outcome:
        self.state = out.state
        self.actions += out.actions
        self.transitions += out.transitions
        self.wakeup = out.next_wakeup_ms
        return out

    def event(self, type_: str, at_ms: int, props: dict[str, Any] | None = None, **kw: Any) -> Outcome:
        now = kw.pop("now_ms", at_ms)
        ev = make_event(type_, at_ms, self.key, props, **kw)
        return self._take(self.logic.on_event(self.key, self.state, ev, now))

    def send(self, ev: CustomerEvent, now_ms: int | None = None) -> Outcome:
        return self._take(self.logic.on_event(self.key, self.state, ev, now_ms or ev.occurred_ms))

    def wake(self, now_ms: int) -> Outcome:
        return self._take(self.logic.on_wakeup(self.key, self.state, now_ms))

    def kinds(self) -> list[tuple[str, str | None, str | None]]:
        return [(t.kind, t.step_id, t.reason) for t in self.transitions]

    def templates(self) -> list[str]:
        return [a.template_id for a in self.actions]


def registry_of(*texts: str, at_ms: int = 0) -> JourneyRegistry:
    reg = JourneyRegistry()
    for i, text in enumerate(texts):
        reg.deploy(load_journey_text(text, f"j{i}.yaml"), at_ms)
    return reg


@pytest.fixture
def drive() -> Callable[..., Driver]:
    def make(*texts: str, key: str = "c1", **kw: Any) -> Driver:
        return Driver(CustomerLogic(registry_of(*texts), **kw), key=key)

    return make
