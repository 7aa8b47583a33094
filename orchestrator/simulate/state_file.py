"""The final states of a simulation as one JSON file (``orchestrator simulate --state-out FILE``).

Format (``"format": 1``)::

    {"format": 1, "clock_ms": <simulation clock>,
     "customers": {<canonical key>: <CustomerState.to_dict()>, ...},
     "identity": <IdentityGraph.to_dict()>,
     "decisions": {<customer key>: [<decision>, ...], ...},
     "segments": {<segment id>: {"version", "status", "name", "time_dependent", "reads"}, ...},
     "campaigns": {<campaign id>: {"version", "status", "name", "segment", "counts": {<outcome>: n}}, ...}}

``decisions``: each customer's last :data:`DECISIONS_KEPT` policy decisions (the decision contract), for
the timeline of ``inspect``; files written before it have none. ``segments``: the segments in force at the
end (``orchestrator segments --from-simulate``); omitted without segments. ``campaigns``: every campaign
deployed, its version in force at the end (or its last one) and what it did to its members, counted as
``simulate`` prints them (``orchestrator campaigns --from-simulate``); omitted without campaigns.

``orchestrator inspect CUSTOMER --from-simulate FILE`` reads it back. The file holds personal data
(profiles, addresses) exactly like the runtime's tables: treat it like them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from orchestrator.core.engine.state import CustomerState
from orchestrator.core.identity import IdentityGraph
from orchestrator.exceptions import SimulationError

__all__ = ["DECISIONS_KEPT", "STATE_FORMAT", "SimulatedState", "read_state_file", "write_state_file"]

STATE_FORMAT = 1
DECISIONS_KEPT = 20


@dataclass(slots=True)
class SimulatedState:
    clock_ms: int | None
    customers: dict[str, CustomerState] = field(default_factory=dict)
    graph: IdentityGraph = field(default_factory=IdentityGraph)
    decisions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Customer key -> its last decisions (decision contract, JSON), oldest first."""
    segments: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Segment id -> what ``orchestrator segments`` shows of it (version, status, name, ...)."""
    campaigns: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Campaign id -> its version, status, name, segment and ``counts`` (outcome -> members)."""

    def segment_sizes(self) -> dict[str, int]:
        """Segment id -> its members at the end, counted from every customer's profile."""
        sizes: dict[str, int] = {}
        for state in self.customers.values():
            for segment in state.profile.segments:
                sizes[segment] = sizes.get(segment, 0) + 1
        return sizes

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "clock_ms": self.clock_ms,
            "customers": {k: s.to_dict() for k, s in sorted(self.customers.items())},
            "identity": self.graph.to_dict(),
            "decisions": dict(sorted(self.decisions.items())),
            **({"segments": dict(sorted(self.segments.items()))} if self.segments else {}),
            **({"campaigns": dict(sorted(self.campaigns.items()))} if self.campaigns else {}),
        }


def write_state_file(path: Path | str, state: SimulatedState) -> None:
    try:
        Path(path).write_bytes(orjson.dumps(state.to_dict()) + b"\n")
    except OSError as exc:
        raise SimulationError(f"{path}: cannot write states: {exc}") from None


def read_state_file(path: Path | str) -> SimulatedState:
    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise SimulationError(f"{path}: cannot read states: {exc}") from None
    except orjson.JSONDecodeError as exc:
        raise SimulationError(f"{path}: not a state file (not JSON: {exc})") from None
    if isinstance(data, dict) and "format" not in data and "events_read" in data:
        raise SimulationError(
            f"{path}: this is the report of orchestrator simulate (--report), not its state file: "
            "give the file of --state-out"
        )
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise SimulationError(
            f"{path}: not a state file of format {STATE_FORMAT} (orchestrator simulate --state-out)"
        )
    return SimulatedState(
        clock_ms=data.get("clock_ms"),
        customers={k: CustomerState.from_dict(v) for k, v in data.get("customers", {}).items()},
        graph=IdentityGraph.from_dict(data.get("identity", {})),
        decisions={k: list(v) for k, v in (data.get("decisions") or {}).items()},
        segments={k: dict(v) for k, v in (data.get("segments") or {}).items()},
        campaigns={k: dict(v) for k, v in (data.get("campaigns") or {}).items()},
    )
