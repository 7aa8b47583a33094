"""Merging one customer's state into another's when the identity graph links them (pure).

Rules (docs/identity.md):

- **profile**: identities are united; on attributes, addresses and time zone the canonical side wins
  and the other fills what it lacks (a known time zone fills an unknown one); first/last seen, counts,
  history and engagement (summary, per-day counts, hour of week) are combined, re-bounded like the
  profile's own; segment memberships are united (the earlier since-time) and checked again on the
  merged profile;
- **consent**: per channel and category, an explicit answer is kept; when both sides answered
  differently the **stricter wins** (not granted);
- **subscription choices**: per group the **latest** choice of either side wins (at equal times:
  unsubscribed), re-bounded like the profile's own;
- **journeys**: when both sides are in the same journey (of a keyed journey: with the same key), the
  canonical side's instance goes on and the other's exits with reason ``merged`` (a funnel
  transition); instances only on the other side move over with their timers and held sends,
  renumbered after the canonical side's entries of that journey so action ids stay unique; entry
  counts add up; the dedupe memory, the send log, the finished instances and the counts of late and
  future events are united;
- **campaigns**: per campaign the entry that keeps the customer from getting an occurrence twice (the
  later occurrence; at the same one, the handled one); a campaign send held for quiet hours moves over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.engine.records import Transition
from orchestrator.core.engine.state import CustomerState, FinishedInstance
from orchestrator.core.learning.timing import merge_timing
from orchestrator.core.profile import (
    ACTIVITY_DAYS,
    CAMPAIGNS_KEPT,
    DEFAULT_HISTORY_MAX,
    DEFAULT_HISTORY_WINDOW_MS,
    Profile,
    remember_subscription,
)

__all__ = ["MERGED_REASON", "MergeResult", "merge_profiles", "merge_states"]

MERGED_REASON = "merged"


@dataclass(slots=True)
class MergeResult:
    state: CustomerState
    transitions: list[Transition] = field(default_factory=list)


def merge_profiles(
    canonical: Profile,
    other: Profile,
    *,
    history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS,
    history_max: int = DEFAULT_HISTORY_MAX,
) -> Profile:
    """Fold ``other`` into ``canonical`` (in place, returned)."""
    for kind, values in other.identities.items():
        seen = canonical.identities.setdefault(kind, [])
        seen.extend(v for v in values if v not in seen)
    for key, value in other.attributes.items():
        canonical.attributes.setdefault(key, value)
    for channel, address in other.addresses.items():
        canonical.addresses.setdefault(channel, address)
    if not canonical.timezone_known and other.timezone_known:  # a known zone fills an unknown one
        canonical.timezone, canonical.timezone_known = other.timezone, True
    firsts = [t for t in (canonical.first_seen_ms, other.first_seen_ms) if t is not None]
    lasts = [t for t in (canonical.last_seen_ms, other.last_seen_ms) if t is not None]
    canonical.first_seen_ms = min(firsts) if firsts else None
    canonical.last_seen_ms = max(lasts) if lasts else None
    for event_type, n in other.counts_by_type.items():
        canonical.counts_by_type[event_type] = canonical.counts_by_type.get(event_type, 0) + n
    for channel, answers in other.consent.items():
        mine = canonical.consent.setdefault(channel, {})
        for category, granted in answers.items():
            mine[category] = granted and mine.get(category, True)
    for segment, since in other.segments.items():  # (re-checked after the merge: CustomerLogic.on_merge)
        canonical.segments[segment] = min(since, canonical.segments.get(segment, since))
    for group, (subscribed, at) in other.subscriptions.items():
        remember_subscription(canonical.subscriptions, group, bool(subscribed), int(at))
    _merge_history(canonical, other, history_window_ms, history_max)
    _merge_engagement(canonical, other)
    return canonical


def _merge_history(canonical: Profile, other: Profile, window_ms: int, max_items: int) -> None:
    rows = sorted([*canonical.history_rows, *other.history_rows], key=lambda r: int(r[1]))
    if rows:
        horizon = int(rows[-1][1]) - window_ms
        rows = [r for r in rows if int(r[1]) >= horizon][-max_items:]
    canonical.set_history_rows(rows)


def _merge_engagement(canonical: Profile, other: Profile) -> None:
    canonical.engagement_changed()
    for event_type, (count, last) in other.engagement.items():
        mine = canonical.engagement.get(event_type)
        canonical.engagement[event_type] = (
            [count, last] if mine is None else [mine[0] + count, max(mine[1], last)]
        )
    for campaign, facts in other.campaign_engagement.items():
        mine_facts = canonical.campaign_engagement.setdefault(campaign, {})
        for event_type, at in facts.items():
            mine_facts[event_type] = max(mine_facts.get(event_type, at), at)
    for event_type, days in other.activity.items():
        mine_days = canonical.activity.setdefault(event_type, {})
        for day, n in days.items():
            mine_days[day] = mine_days.get(day, 0) + n
        newest = max(int(d) for d in mine_days) if mine_days else 0
        for day in [d for d in mine_days if int(d) <= newest - ACTIVITY_DAYS]:
            del mine_days[day]
    for channel, hours in other.hours.items():
        mine_hours = canonical.hours.setdefault(channel, {})
        for how, n in hours.items():
            mine_hours[how] = mine_hours.get(how, 0) + n
    merge_timing(canonical.timing, other.timing)
    if len(canonical.campaign_engagement) > CAMPAIGNS_KEPT:
        ranked = sorted(
            canonical.campaign_engagement,
            key=lambda c: (max(canonical.campaign_engagement[c].values(), default=0), c),
            reverse=True,
        )
        for campaign in ranked[CAMPAIGNS_KEPT:]:
            del canonical.campaign_engagement[campaign]


CAMPAIGN_PREFIX = "campaign:"
_WAITING = ("due", "paused")


def _later_campaign_entry(mine: list[Any] | None, theirs: list[Any]) -> list[Any]:
    """Of two customers' entries for one campaign (``[occurrence, due, status, version]``), the one that
    keeps the merged customer from getting an occurrence twice: the later occurrence; at the same one, a
    handled one over one still waiting, else the earlier due."""
    if mine is None:
        return list(theirs)
    if mine[0] != theirs[0]:
        return list(mine if mine[0] > theirs[0] else theirs)
    if (mine[2] in _WAITING) != (theirs[2] in _WAITING):
        return list(theirs if mine[2] in _WAITING else mine)
    if mine[2] == theirs[2] == "due":
        return list(mine if int(mine[1]) <= int(theirs[1]) else theirs)
    return list(mine)


def _campaign_kept(canonical: CustomerState, send: Any) -> bool:
    """A campaign send held on the merged-away side is kept unless the canonical side holds it too."""
    return all(h.action_id != send.action_id for h in canonical.held)


def merge_states(
    canonical: CustomerState,
    other: CustomerState,
    at_ms: int,
    *,
    history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS,
    history_max: int = DEFAULT_HISTORY_MAX,
) -> MergeResult:
    """Fold ``other`` (merged away) into ``canonical`` at logical time ``at_ms`` (in place)."""
    transitions: list[Transition] = []
    merge_profiles(
        canonical.profile, other.profile, history_window_ms=history_window_ms, history_max=history_max
    )
    running = {(i.journey, i.key) for i in canonical.instances}  # (a keyed journey: per key)
    renumber: dict[tuple[str, int], int] = {}
    for inst in other.instances:
        if (inst.journey, inst.key) in running:
            canonical.finished.append(FinishedInstance.of(inst, "exited", MERGED_REASON, at_ms))
            transitions.append(
                Transition(
                    kind="exited",
                    journey_id=inst.journey,
                    version=inst.version,
                    step_id=inst.step,
                    branch=None,
                    reason=MERGED_REASON,
                    at_ms=at_ms,
                    entry_seq=inst.entry_seq,
                    splits=dict(inst.splits),
                )
            )
            continue
        offset = canonical.entries.get(inst.journey, [0, 0])[0]
        renumber[(inst.journey, inst.entry_seq)] = inst.entry_seq + offset
        inst.entry_seq += offset
        canonical.instances.append(inst)
    for journey, (count, last) in other.entries.items():
        mine = canonical.entries.get(journey)
        canonical.entries[journey] = [count, last] if mine is None else [mine[0] + count, max(mine[1], last)]
    for journey, value in other.conditions.items():
        canonical.conditions[journey] = canonical.conditions.get(journey, False) or value
    for send in other.held:
        seq = renumber.get((send.journey_id, send.entry_seq))
        if seq is not None:
            send.entry_seq = seq
            canonical.held.append(send)
        elif send.journey_id.startswith(CAMPAIGN_PREFIX) and _campaign_kept(canonical, send):
            canonical.held.append(send)  # (a campaign's send: its id names the occurrence, not an entry)
    for campaign, entry in other.campaigns.items():
        canonical.campaigns[campaign] = _later_campaign_entry(canonical.campaigns.get(campaign), entry)
    seen = {**other.seen, **canonical.seen}
    canonical.seen = dict(sorted(seen.items(), key=lambda kv: (kv[1], kv[0])))
    canonical.sent_log = sorted([*canonical.sent_log, *other.sent_log])
    canonical.finished = sorted(
        [*canonical.finished, *other.finished], key=lambda f: (f.finished_ms, f.journey, f.entry_seq)
    )
    for reason, (count, last) in other.timing.items():
        mine = canonical.timing.get(reason)
        canonical.timing[reason] = [count, last] if mine is None else [mine[0] + count, max(mine[1], last)]
    canonical.clock_ms = max(canonical.clock_ms, other.clock_ms, at_ms)
    return MergeResult(canonical, transitions)
