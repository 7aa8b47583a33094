"""``orchestrator fit``'s logic: a recorded history -> an :class:`EngagementModel` (``kind: model``).

Rates are **per send**, never per event: an action is *answered* when an open or a click event carries
its ``action_id`` within the attribution window after the send (a second open of the same send counts
once; an open of no known send counts for nothing). Per channel: sends, answered sends, sends opened and
sends clicked. Per channel and **local hour of the week** of the send (0 = Monday 00:00 in the customer's
zone: the latest ``profile.updated`` timezone of the customer before the send, UTC when none): sends and
answered sends. Per split branch of the journeys given: the customers who entered it (a decision, or
without decisions an action, of a send step reached from the branch before another split) and those who
then reached one of the journey's goals within the conversion window.

Only what happened in ``[from, to)`` is counted; a customer's zone set before ``from`` still applies
(it is the customer's state, not a count).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.journey import JourneyDefinition, SendStep, SplitStep, load_journey_file
from orchestrator.core.journey.graph import edges
from orchestrator.core.learning.loader import dump_model, load_model_text
from orchestrator.core.learning.model import (
    HOURS_OF_WEEK,
    MODEL_CHANNELS,
    BranchStats,
    ChannelStats,
    EngagementModel,
    HourStats,
)
from orchestrator.core.learning.timing import local_hour_of_week
from orchestrator.exceptions import JourneyValidationError
from orchestrator.learning.history import History, Send, customer_of, event_customer

__all__ = [
    "DEFAULT_ATTRIBUTION_MS",
    "FitOptions",
    "branch_send_steps",
    "fit_model",
    "load_journeys",
    "zone_book",
]

DEFAULT_ATTRIBUTION_MS = 3 * 86_400_000
_ANSWER_KINDS = ("opened", "clicked")
_ENTERED_KINDS = frozenset({"sent", "redirected", "held", "dropped", "suppressed"})
"""Every decision says the customer went down the branch (whatever the policy then did)."""


@dataclass(frozen=True, slots=True)
class FitOptions:
    model_id: str = "engagement"
    version: int = 1
    prior_weight: float = 10.0
    attribution_ms: int = DEFAULT_ATTRIBUTION_MS
    conversion_ms: int | None = None
    """The window after entering a branch in which a goal counts (None: the attribution window)."""


def load_journeys(paths: Iterable[Path]) -> list[JourneyDefinition]:
    """The journey files among ``paths`` (a folder stands for its ``*.yaml``/``*.yml``; files of another
    kind, like the policy or a model, are left out). Raises JourneyValidationError with every problem."""
    files: list[Path] = []
    problems: list[str] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        elif p.is_file():
            files.append(p)
        else:
            problems.append(f"{p}:1: (root): no such file or directory")
    found: list[JourneyDefinition] = []
    for path in files:
        if not _is_journey(path):
            continue
        try:
            found.append(load_journey_file(path))
        except JourneyValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise JourneyValidationError(problems)
    latest: dict[str, JourneyDefinition] = {}
    for d in found:  # several versions of one journey: the step graph of each counts
        latest.setdefault(f"{d.id}@{d.version}", d)
    return [latest[k] for k in sorted(latest)]


def _is_journey(path: Path) -> bool:
    from orchestrator.core.campaign import is_campaign_file
    from orchestrator.core.learning.loader import is_model_file
    from orchestrator.core.policy import is_policy_file
    from orchestrator.core.segment import is_segment_file
    from orchestrator.core.template import is_template_file

    others = (is_policy_file, is_segment_file, is_campaign_file, is_template_file, is_model_file)
    return not any(check(path) for check in others)


def branch_send_steps(journey: JourneyDefinition, split: SplitStep) -> dict[str, frozenset[str]]:
    """For each non-holdout branch of ``split``: the send steps reachable from its ``next`` before another
    split. A send step reachable from two branches (the branches meet again) tells nothing about the
    branch and is left out of both."""
    reach: dict[str, set[str]] = {}
    for branch in split.branches:
        if branch.holdout or branch.next is None:
            continue
        sends: set[str] = set()
        seen: set[str] = set()
        todo = [branch.next]
        while todo:
            sid = todo.pop()
            if sid in seen or sid not in journey.steps:
                continue
            seen.add(sid)
            step = journey.steps[sid]
            if isinstance(step, SplitStep):
                continue
            if isinstance(step, SendStep):
                sends.add(sid)
            todo.extend(target for _, target in edges(step))
        reach[branch.name] = sends
    shared = {s for name, steps in reach.items() for s in steps for other in reach if other != name
              and s in reach[other]}  # fmt: skip
    return {name: frozenset(steps - shared) for name, steps in reach.items()}


def zone_book(history: History) -> dict[str, tuple[list[int], list[str]]]:
    """Per customer (named by customer_id or customer_key): the times their zone was set, and the zones."""
    book: dict[str, tuple[list[int], list[str]]] = {}
    for event in history.events:  # (in time order)
        if event.type != "profile.updated":
            continue
        props = event.properties
        attrs = props.get("attributes", props)
        zone = attrs.get("timezone") if isinstance(attrs, dict) else None
        who = customer_of(event)
        if not isinstance(zone, str) or not zone or who is None:
            continue
        times, zones = book.setdefault(who, ([], []))
        times.append(event.occurred_ms)
        zones.append(zone)
    return book


def _zone_at(book: dict[str, tuple[list[int], list[str]]], customer: str, at_ms: int) -> str | None:
    found = book.get(customer)
    if found is None:
        return None
    i = bisect.bisect_left(found[0], at_ms)  # (set strictly before the send)
    return found[1][i - 1] if i > 0 else None


def fit_model(history: History, from_ms: int, to_ms: int, options: FitOptions = FitOptions(),
              journeys: Iterable[JourneyDefinition] = ()) -> EngagementModel:  # fmt: skip
    """The model of what happened in ``[from_ms, to_ms)`` (see the module's docs), as its file reads
    back (:func:`~orchestrator.core.learning.loader.load_model_text` of what ``dump_model`` writes)."""
    inside = history.within(from_ms, to_ms)
    answers = _answers(inside)
    book = zone_book(history)
    channels: dict[str, list[int]] = {}
    hour_sends: dict[str, list[int]] = {}
    hour_engaged: dict[str, list[int]] = {}
    for send in inside.sends:
        if send.channel not in MODEL_CHANNELS:
            continue
        kinds = _answered(send, answers.get(send.action_id, ()), options.attribution_ms)
        engaged = 1 if kinds else 0
        stats = channels.setdefault(send.channel, [0, 0, 0, 0])
        stats[0] += 1
        stats[1] += engaged
        stats[2] += 1 if "opened" in kinds else 0
        stats[3] += 1 if "clicked" in kinds else 0
        how = local_hour_of_week(send.at_ms, _zone_at(book, send.customer, send.at_ms))
        hour_sends.setdefault(send.channel, [0] * HOURS_OF_WEEK)[how] += 1
        hour_engaged.setdefault(send.channel, [0] * HOURS_OF_WEEK)[how] += engaged
    window = options.conversion_ms if options.conversion_ms is not None else options.attribution_ms
    customers = {s.customer for s in inside.sends} | {d.customer for d in inside.decisions}
    customers |= {event_customer(e) for e in inside.events}
    model = EngagementModel(
        id=options.model_id,
        version=options.version,
        fitted_from_ms=from_ms,
        fitted_to_ms=to_ms,
        counts={
            "events": len(inside.events),
            "actions": len(inside.sends),
            "decisions": len(inside.decisions),
            "customers": len(customers),
        },
        prior_weight=options.prior_weight,
        channels={ch: ChannelStats(*s) for ch, s in channels.items()},
        hours={ch: HourStats(tuple(hour_sends[ch]), tuple(hour_engaged[ch])) for ch in hour_sends},
        splits=_splits(inside, list(journeys), window),
    )
    return load_model_text(dump_model(model))  # (as the file holds it: name and content hash set, checked)


def _answers(history: History) -> dict[str, list[tuple[int, str, str]]]:
    """action id -> (time, channel, kind) of every open or click carrying it."""
    out: dict[str, list[tuple[int, str, str]]] = {}
    for event in history.events:
        if event.action_id is None:
            continue
        channel, _, kind = event.type.partition(".")
        if kind in _ANSWER_KINDS:
            out.setdefault(event.action_id, []).append((event.occurred_ms, channel, kind))
    return out


def _answered(send: Send, found: Iterable[tuple[int, str, str]], window_ms: int) -> set[str]:
    """The kinds of answer (opened, clicked) of ``send`` within the window (each counted once)."""
    return {
        kind
        for at, channel, kind in found
        if channel == send.channel and send.at_ms <= at <= send.at_ms + window_ms
    }


def _splits(
    inside: History, journeys: list[JourneyDefinition], window_ms: int
) -> dict[str, dict[str, dict[str, BranchStats]]]:
    if not journeys:
        return {}
    # (journey, send step) -> [(split step, branch)]
    branch_of: dict[tuple[str, str], list[tuple[str, str]]] = {}
    goals: dict[str, frozenset[str]] = {}
    out: dict[str, dict[str, dict[str, BranchStats]]] = {}
    for journey in journeys:
        goal_types = frozenset(t for g in journey.goals for t in g.events)
        goals[journey.id] = goals.get(journey.id, frozenset()) | goal_types
        for sid, step in journey.steps.items():
            if not isinstance(step, SplitStep):
                continue
            reach = branch_send_steps(journey, step)
            out.setdefault(journey.id, {}).setdefault(sid, {})
            for branch, sends in reach.items():
                for send_step in sends:
                    pairs = branch_of.setdefault((journey.id, send_step), [])
                    if (sid, branch) not in pairs:
                        pairs.append((sid, branch))
    if not branch_of:
        return {}
    # the first entry of each customer into each branch
    entered: dict[tuple[str, str, str], dict[str, int]] = {}
    records: Iterable[tuple[str, str, str, int]]
    if inside.decisions_given:
        kept = (d for d in inside.decisions if d.kind in _ENTERED_KINDS)
        records = ((d.customer, d.journey_id, d.step_id, d.at_ms) for d in kept)
    else:
        records = ((s.customer, s.journey_id, s.step_id, s.at_ms) for s in inside.sends)
    for customer, journey_id, step_id, at in records:
        for split, branch in branch_of.get((journey_id, step_id), ()):
            first = entered.setdefault((journey_id, split, branch), {})
            if customer not in first or at < first[customer]:
                first[customer] = at
    goal_times: dict[tuple[str, str], list[int]] = {}
    wanted = frozenset(t for types in goals.values() for t in types)
    for event in inside.events:
        if event.type in wanted:
            goal_times.setdefault((event_customer(event), event.type), []).append(event.occurred_ms)
    for journey_id, steps in out.items():
        for split in steps:
            names = sorted({b for (j, s, b) in entered if j == journey_id and s == split}
                           | {b for (j, s), pairs in branch_of.items() if j == journey_id
                              for (sp, b) in pairs if sp == split})  # fmt: skip
            for branch in names:
                first = entered.get((journey_id, split, branch), {})
                converted = sum(
                    1
                    for customer, at in first.items()
                    if _reached(goal_times, customer, goals.get(journey_id, frozenset()), at, window_ms)
                )
                steps[split][branch] = BranchStats(len(first), converted)
    return {j: {s: b for s, b in steps.items() if b} for j, steps in out.items() if any(steps.values())}


def _reached(
    goal_times: dict[tuple[str, str], list[int]], customer: str, types: frozenset[str], at: int, window: int
) -> bool:
    for event_type in types:
        times = goal_times.get((customer, event_type), [])
        i = bisect.bisect_left(times, at)
        if i < len(times) and times[i] <= at + window:
            return True
    return False
