"""The per-journey funnel of a simulation: entries, steps, goals, exits, split groups, conversions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.engine.records import Transition

__all__ = ["Funnel", "JourneyFunnel"]


@dataclass(slots=True)
class JourneyFunnel:
    journey_id: str
    entered: int = 0
    steps: dict[str, int] = field(default_factory=dict)
    goals: dict[str, int] = field(default_factory=dict)
    exits: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    """Send steps that made no action, by ``step: reason`` (e.g. ``welcome_sms: no_address``)."""
    actions: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    """The policy's decisions on this journey's sends, by ``kind: reason``."""
    splits: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    """split step -> branch -> {"entered": n, "converted": n}."""

    @property
    def converted(self) -> int:
        return sum(self.goals.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "journey_id": self.journey_id,
            "entered": self.entered,
            "steps": self.steps,
            "actions": self.actions,
            "goals": self.goals,
            "converted": self.converted,
            "exits": self.exits,
            "skipped_sends": self.skipped,
            "decisions": dict(sorted(self.decisions.items())),
            "splits": {
                step: {
                    name: {**counts, "conversion_rate": _rate(counts["converted"], counts["entered"])}
                    for name, counts in branches.items()
                }
                for step, branches in self.splits.items()
            },
        }


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


class Funnel:
    """Counts transitions and actions by journey."""

    def __init__(self) -> None:
        self.journeys: dict[str, JourneyFunnel] = {}

    def _of(self, journey_id: str) -> JourneyFunnel:
        found = self.journeys.get(journey_id)
        if found is None:
            found = self.journeys[journey_id] = JourneyFunnel(journey_id)
        return found

    def add_decision(self, journey_id: str, kind_reason: str) -> None:
        d = self._of(journey_id).decisions
        d[kind_reason] = d.get(kind_reason, 0) + 1

    def add_action(self, journey_id: str) -> None:
        self._of(journey_id).actions += 1

    def add(self, t: Transition) -> None:
        f = self._of(t.journey_id)
        if t.kind == "entered":
            f.entered += 1
        elif t.kind == "step" and t.step_id is not None:
            f.steps[t.step_id] = f.steps.get(t.step_id, 0) + 1
            if t.reason:
                key = f"{t.step_id}: {t.reason}"
                f.skipped[key] = f.skipped.get(key, 0) + 1
        elif t.kind == "split" and t.step_id is not None and t.branch is not None:
            counts = f.splits.setdefault(t.step_id, {}).setdefault(t.branch, {"entered": 0, "converted": 0})
            counts["entered"] += 1
        elif t.kind == "goal":
            name = t.reason or "goal"
            f.goals[name] = f.goals.get(name, 0) + 1
            for step, branch in t.splits.items():
                counts = f.splits.setdefault(step, {}).setdefault(branch, {"entered": 0, "converted": 0})
                counts["converted"] += 1
        elif t.kind == "exited":
            reason = t.reason or "exited"
            f.exits[reason] = f.exits.get(reason, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {jid: self.journeys[jid].to_dict() for jid in sorted(self.journeys)}

    def table(self) -> str:
        """A plain-text table per journey, for the terminal."""
        lines: list[str] = []
        for jid in sorted(self.journeys):
            f = self.journeys[jid]
            lines.append(f"journey {jid}")
            rows: list[tuple[str, str]] = [("entered", str(f.entered))]
            rows += [(f"  step {s}", str(n)) for s, n in f.steps.items()]
            rows += [(f"  skipped {k}", str(n)) for k, n in sorted(f.skipped.items())]
            rows.append(("actions", str(f.actions)))
            rows += [(f"  decision {k}", str(n)) for k, n in sorted(f.decisions.items())]
            rows += [(f"goal {g}", str(n)) for g, n in sorted(f.goals.items())]
            rows += [(f"exit {r}", str(n)) for r, n in sorted(f.exits.items())]
            for step, branches in f.splits.items():
                for name, c in branches.items():
                    rate = _rate(c["converted"], c["entered"]) * 100
                    rows.append(
                        (
                            f"split {step}/{name}",
                            f"{c['entered']} entered, {c['converted']} converted ({rate:.1f} %)",
                        )
                    )
            width = max(len(r[0]) for r in rows)
            lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
            lines.append("")
        return "\n".join(lines) if lines else "no journey was entered\n"
