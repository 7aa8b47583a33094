"""What one engine call returns besides the state: funnel transitions (and, in customer.py, the Outcome)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Transition", "TransitionKind"]

TransitionKind = Literal["entered", "step", "goal", "exited", "split"]


@dataclass(slots=True)
class Transition:
    """One funnel record.

    - ``entered``: the customer entered the journey (``reason`` is the entry event type or ``condition``);
    - ``step``: the customer reached ``step_id`` from ``from_step`` (``reason``: why a send was skipped,
      e.g. ``no_address``);
    - ``split``: put into ``branch`` of the split ``step_id``;
    - ``goal``: converted (``reason`` is the goal name; ``splits`` the groups the customer was in);
    - ``exited``: left without converting (``reason``: exit step reason, exit rule name, ``completed``,
      ``timeout``, ``holdout_window``, ``archived``, ``erased``, ...).
    """

    kind: TransitionKind
    journey_id: str
    version: int
    step_id: str | None
    branch: str | None
    reason: str | None
    at_ms: int
    entry_seq: int = 0
    splits: dict[str, str] = field(default_factory=dict)
    from_step: str | None = None
    """``step``: the step the customer came from (None: straight from the entry); the funnel's edges and
    where customers are now (:mod:`orchestrator.core.funnel`)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "journey_id": self.journey_id,
            "version": self.version,
            "entry_seq": self.entry_seq,
            "at_ms": self.at_ms,
        }
        for name in ("step_id", "branch", "reason", "from_step"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.splits:
            out["splits"] = self.splits
        return out
