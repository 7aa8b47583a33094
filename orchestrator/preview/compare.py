"""Matching the actions of two replays by what they are, not by their ids (pure).

Action ids carry the journey version, so the same message sent by v1 and by v2 has two ids. Two actions
are the same send when they go to the same customer from the same journey step, on the same channel,
with the same template, at the same time (``created_at``). Of those:

- the same send with the same content (recipient, category, campaign, personalization, ``not_before``,
  subscription group) is unchanged;
- the same send with other content is **changed** (the fields that differ are said);
- a send left over in both runs for the same customer, step, channel and template, at another time, is
  **moved** (a changed wait): paired in time order, the first left over in one run with the first in
  the other;
- what is left then is **added** (only the new run sends it) or **removed** (only the old run did).

A send counts in one of these only; several sends with the same key (a loop) are matched as multisets.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from orchestrator.contracts.actions import ChannelAction

__all__ = ["CONTENT_FIELDS", "Change", "Send", "StepRow", "compare_sends", "send_of", "step_rows"]

CONTENT_FIELDS = ("recipient", "category", "campaign", "personalization", "not_before", "subscription_group")
"""What a send carries besides its key: differences here make a send ``changed``."""

Kind = Literal["added", "removed", "moved", "changed"]


@dataclass(frozen=True, slots=True)
class Send:
    """One action as the preview compares it."""

    customer: str
    journey: str
    step: str
    channel: str
    template: str
    at_ms: int
    content: bytes = field(compare=True)
    """The :data:`CONTENT_FIELDS` as canonical JSON (sorted keys): equal bytes, equal content."""

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """Who, from which step, on which channel, with which template (not when)."""
        return (self.customer, self.journey, self.step, self.channel, self.template)

    def fields(self) -> dict[str, Any]:
        loaded: dict[str, Any] = orjson.loads(self.content)
        return loaded


def send_of(action: ChannelAction) -> Send:
    """The :class:`Send` of one action (its id and journey version left out)."""
    content = {
        "recipient": action.recipient,
        "category": action.category,
        "campaign": action.campaign,
        "personalization": action.personalization,
        "not_before": action.not_before.isoformat() if action.not_before is not None else None,
        "subscription_group": action.subscription_group,
    }
    return Send(
        customer=action.customer_id,
        journey=action.journey_id,
        step=action.step_id,
        channel=str(action.channel),
        template=action.template_id,
        at_ms=round(action.created_at.timestamp() * 1000),
        content=orjson.dumps(content, option=orjson.OPT_SORT_KEYS),
    )


@dataclass(frozen=True, slots=True)
class Change:
    """One send that differs between the runs: ``old`` is None when added, ``new`` None when removed."""

    kind: Kind
    old: Send | None
    new: Send | None
    fields: tuple[str, ...] = ()
    """The content fields that differ (changed, or moved with other content too)."""

    @property
    def send(self) -> Send:
        """The send this change is about (the new one, else the old one)."""
        found = self.new or self.old
        assert found is not None
        return found

    @property
    def at_ms(self) -> int:
        return (self.old or self.send).at_ms


def _differing(old: Send, new: Send) -> tuple[str, ...]:
    a, b = old.fields(), new.fields()
    return tuple(f for f in CONTENT_FIELDS if a.get(f) != b.get(f))


def compare_sends(old: list[Send], new: list[Send]) -> tuple[list[Change], int]:
    """The changes between the sends of the old run and of the new one, in a stable order (customer,
    time, journey, step, channel, kind), and how many sends are unchanged."""
    by_time_old: dict[tuple[Any, ...], list[Send]] = defaultdict(list)
    by_time_new: dict[tuple[Any, ...], list[Send]] = defaultdict(list)
    for s in old:
        by_time_old[(*s.key, s.at_ms)].append(s)
    for s in new:
        by_time_new[(*s.key, s.at_ms)].append(s)
    changes: list[Change] = []
    unchanged = 0
    left_old: dict[tuple[str, ...], list[Send]] = defaultdict(list)
    left_new: dict[tuple[str, ...], list[Send]] = defaultdict(list)
    for key in sorted({*by_time_old, *by_time_new}):
        olds = sorted(by_time_old.get(key, []), key=lambda s: s.content)
        news = sorted(by_time_new.get(key, []), key=lambda s: s.content)
        rest_new = list(news)
        rest_old: list[Send] = []
        for s in olds:
            if s in rest_new:
                rest_new.remove(s)
                unchanged += 1
            else:
                rest_old.append(s)
        for a, b in zip(rest_old, rest_new, strict=False):
            changes.append(Change("changed", a, b, _differing(a, b)))
        paired = min(len(rest_old), len(rest_new))
        left_old[key[:5]] += rest_old[paired:]
        left_new[key[:5]] += rest_new[paired:]
    for key in sorted({*left_old, *left_new}):
        olds = sorted(left_old.get(key, []), key=lambda s: (s.at_ms, s.content))
        news = sorted(left_new.get(key, []), key=lambda s: (s.at_ms, s.content))
        for a, b in zip(olds, news, strict=False):
            changes.append(Change("moved", a, b, _differing(a, b)))
        paired = min(len(olds), len(news))
        changes += [Change("removed", s, None) for s in olds[paired:]]
        changes += [Change("added", None, s) for s in news[paired:]]
    changes.sort(
        key=lambda c: (c.send.customer, c.at_ms, c.send.journey, c.send.step, c.send.channel, c.kind)
    )
    return changes, unchanged


@dataclass(slots=True)
class StepRow:
    """The sends of one journey step on one channel in both runs, and how they differ."""

    journey: str
    step: str
    channel: str
    old: int = 0
    new: int = 0
    added: int = 0
    removed: int = 0
    moved: int = 0
    changed: int = 0

    @property
    def differs(self) -> bool:
        return bool(self.added or self.removed or self.moved or self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "step": self.step,
            "channel": self.channel,
            "old": self.old,
            "new": self.new,
            "added": self.added,
            "removed": self.removed,
            "moved": self.moved,
            "changed": self.changed,
        }


def step_rows(old: list[Send], new: list[Send], changes: list[Change]) -> list[StepRow]:
    """One row per (journey, step, channel) that sent in either run, sorted."""
    rows: dict[tuple[str, str, str], StepRow] = {}

    def row(s: Send) -> StepRow:
        k = (s.journey, s.step, s.channel)
        found = rows.get(k)
        if found is None:
            found = rows[k] = StepRow(*k)
        return found

    for s in old:
        row(s).old += 1
    for s in new:
        row(s).new += 1
    for c in changes:
        r = row(c.send)
        if c.kind == "added":
            r.added += 1
        elif c.kind == "removed":
            r.removed += 1
        elif c.kind == "moved":
            r.moved += 1
        else:
            r.changed += 1
    return [rows[k] for k in sorted(rows)]
