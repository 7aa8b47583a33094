"""The per-journey funnel: entries, steps, the edges taken between them, where customers are now, goals,
exits, split groups, conversions (pure).

``orchestrator simulate`` counts one for its report; each worker counts one per customer partition and
keeps it in a row of its counts table (``funnel:<partition>``), so that any worker (and ``orchestrator
graph --worker``) can add up the cluster's. Both count the same transitions the same way:

- ``steps[s]``: arrivals at step ``s``; ``edges["a>b"]``: moves from ``a`` to ``b`` (``">s"``: from the
  entry to the first step);
- ``occupancy[s]``: customers at ``s`` now (waiting, held in a holdout, ...): an arrival adds one, the
  next move, goal or exit of the same customer takes it away again.
"""

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
    edges: dict[str, int] = field(default_factory=dict)
    """``"<from>><to>"`` -> moves (from ``""``: the entry)."""
    occupancy: dict[str, int] = field(default_factory=dict)
    """step -> customers there now."""

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
            "edges": dict(sorted(self.edges.items())),
            "occupancy": {s: n for s, n in sorted(self.occupancy.items()) if n},
        }

    def add_counts(self, data: dict[str, Any]) -> None:
        """Add the counts of a :meth:`to_dict` (another partition's, a stored row) to these."""
        self.entered += int(data.get("entered", 0))
        self.actions += int(data.get("actions", 0))
        for mine, theirs in (
            (self.steps, data.get("steps")),
            (self.goals, data.get("goals")),
            (self.exits, data.get("exits")),
            (self.skipped, data.get("skipped_sends")),
            (self.decisions, data.get("decisions")),
            (self.edges, data.get("edges")),
            (self.occupancy, data.get("occupancy")),
        ):
            for k, n in (theirs or {}).items():
                mine[k] = mine.get(k, 0) + int(n)
        for step, branches in (data.get("splits") or {}).items():
            for name, counts in branches.items():
                own = self.splits.setdefault(step, {}).setdefault(name, {"entered": 0, "converted": 0})
                own["entered"] += int(counts.get("entered", 0))
                own["converted"] += int(counts.get("converted", 0))


def _leave(occupancy: dict[str, int], step: str) -> None:
    n = occupancy.get(step, 0) - 1
    if n > 0:
        occupancy[step] = n
    else:
        occupancy.pop(step, None)  # (never below zero: a customer counted before the counts existed)


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
        if t.kind in ("goal", "exited") and t.step_id is not None:
            _leave(f.occupancy, t.step_id)
        if t.kind == "entered":
            f.entered += 1
        elif t.kind == "step" and t.step_id is not None:
            f.steps[t.step_id] = f.steps.get(t.step_id, 0) + 1
            edge = f"{t.from_step or ''}>{t.step_id}"
            f.edges[edge] = f.edges.get(edge, 0) + 1
            if t.from_step is not None:
                _leave(f.occupancy, t.from_step)
            f.occupancy[t.step_id] = f.occupancy.get(t.step_id, 0) + 1
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

    @classmethod
    def from_dict(cls, data: Any) -> Funnel:
        """A funnel from :meth:`to_dict` (a stored row; anything else: empty)."""
        funnel = cls()
        funnel.add_counts(data)
        return funnel

    def add_counts(self, data: Any) -> None:
        """Add another funnel's :meth:`to_dict` (another partition's) to this one."""
        if not isinstance(data, dict):
            return
        for jid, counts in data.items():
            if isinstance(counts, dict):
                self._of(str(jid)).add_counts(counts)

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
