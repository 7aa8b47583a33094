"""One customer's journeys told step by step, with the reason of each turn (pure).

From the funnel transitions of the journey engine (every step reached, with its logical time), the
policy's decisions and the journey definitions: when a customer entered and on which event, what
each send did and why, how a wait ended (the awaited event came, or the time ran out), which branch a
decision step took and on which condition, how the journey ended. One line per step, with its ISO
time (UTC).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from orchestrator.contracts.decision import DECISION_REASONS, Decision
from orchestrator.core.engine.records import Transition
from orchestrator.core.journey.model import (
    BranchStep,
    JourneyDefinition,
    SendStep,
    UpdateStep,
    WaitStep,
)
from orchestrator.core.journey.registry import JourneyRegistry

__all__ = ["duration", "iso", "story"]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def duration(ms: int) -> str:
    """``24 h``, ``90 min``, ``3 days``."""
    minutes = ms // 60_000
    if minutes == 0 or ms % 60_000:
        return f"{ms // 1000} s" if ms % 1000 == 0 else f"{ms} ms"
    if minutes % (24 * 60) == 0 and minutes >= 2 * 24 * 60:
        return f"{minutes // (24 * 60)} days"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def _waits_for(step: WaitStep) -> str:
    if step.mode == "duration":
        return f"waits {duration(step.duration_ms)}"
    if step.mode == "time_of_day":
        hour, minute = step.time_of_day
        where = step.timezone or "in the customer's time zone"
        return f"waits until {hour:02d}:{minute:02d} {where}"
    events = " or ".join(sorted(step.event_types))
    of = f" of {step.of_step}" if step.of_step else ""
    return f"waits for {events}{of}, at most {duration(step.timeout_ms)}"


def _wait_ended(step: WaitStep, next_step: str | None) -> str:
    events = " or ".join(sorted(step.event_types))
    if step.mode != "event":
        return "the wait is over"
    if next_step == step.timeout_next and next_step != step.next:
        return f"no {events} within {duration(step.timeout_ms)}"
    return f"{events} came in time"


def _branch_taken(step: BranchStep, next_step: str | None) -> str:
    for cond, nxt in step.branches:
        if nxt == next_step:
            return f"{cond.source} holds → {nxt}"
    return f"no condition holds ({'; '.join(c.source for c, _ in step.branches)}) → {step.default}"


def _ms(d: Decision) -> int:
    return round(d.at.timestamp() * 1000)


def _decided(d: Decision) -> str:
    channel = d.channel if d.channel == d.original_channel else f"{d.original_channel} → {d.channel}"
    why = DECISION_REASONS.get(d.reason, "")
    return f"{channel} {d.kind} — {d.reason}" + (f": {why}" if why else "")


def _instance_lines(
    journey: JourneyDefinition | None, steps: list[Transition], decisions: list[Decision]
) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    name = steps[0].journey_id
    for i, t in enumerate(steps):
        step = journey.steps.get(t.step_id or "") if journey is not None else None
        later = next((s for s in steps[i + 1 :] if s.kind == "step"), None)
        if t.kind == "entered":
            on = "a condition became true" if t.reason == "condition" else f"event {t.reason}"
            out.append((t.at_ms, f"entered {name} v{t.version} on {on}"))
        elif t.kind == "goal":
            out.append((t.at_ms, f"left {name}: goal {t.reason} reached"))
        elif t.kind == "exited":
            out.append((t.at_ms, f"left {name}: {t.reason}"))
        elif t.kind == "split":
            out.append((t.at_ms, f"{t.step_id}: put in group {t.branch}"))
        elif isinstance(step, SendStep):
            mine = [d for d in decisions if d.step_id == step.id and _ms(d) == t.at_ms]
            for d in mine:
                decisions.remove(d)
            said = "; ".join(_decided(d) for d in mine) or (
                f"{step.channel} skipped ({t.reason})" if t.reason else f"{step.channel} sent (no policy)"
            )
            out.append((t.at_ms, f"{step.id}: {said}"))
        elif isinstance(step, WaitStep):
            out.append((t.at_ms, f"{step.id}: {_waits_for(step)}"))
            ended = next((s for s in steps[i + 1 :] if s.kind != "split"), None)
            if ended is not None and ended.kind == "step":
                out.append((ended.at_ms, f"{step.id}: {_wait_ended(step, ended.step_id)}"))
        elif isinstance(step, BranchStep):
            out.append((t.at_ms, f"{step.id}: {_branch_taken(step, later.step_id if later else None)}"))
        elif isinstance(step, UpdateStep):
            out.append((t.at_ms, f"{step.id}: profile updated"))
        elif step is None:  # (a step of a version no longer known)
            out.append((t.at_ms, f"{t.step_id}"))
    return out


def story(
    transitions: Iterable[Transition],
    decisions: Iterable[Decision],
    registry: JourneyRegistry,
    journeys: Iterable[str] | None = None,
) -> list[str]:
    """``2025-03-03T09:00:00Z  welcome · welcome_email: email sent — allowed: ...``, one line per step
    of every journey instance the transitions name (only ``journeys``' when given), in time order;
    decisions no step claimed come as their own lines (a held send released later). Exit steps and
    split steps are said by the line of their end and of their group."""
    only = None if journeys is None else set(journeys)
    by_instance: dict[tuple[str, int], list[Transition]] = {}
    for t in transitions:
        if only is None or t.journey_id in only:
            by_instance.setdefault((t.journey_id, t.entry_seq), []).append(t)
    decisions = [d for d in decisions if only is None or d.journey_id in only]
    left = sorted(decisions, key=lambda d: d.at)
    lines: list[tuple[int, str]] = []
    for (journey_id, _), steps in by_instance.items():
        version = steps[0].version
        journey = registry.version(journey_id, version)
        mine = [d for d in left if d.journey_id == journey_id]
        lines += [(at, f"{journey_id} · {text}") for at, text in _instance_lines(journey, steps, mine)]
        left = [d for d in left if d.journey_id != journey_id or d in mine]
    lines += [(_ms(d), f"{d.journey_id} · {d.step_id}: {_decided(d)}") for d in left]
    lines.sort(key=lambda line: line[0])
    return [f"{iso(at)}  {text}" for at, text in lines]
