"""One customer's recent story for ``orchestrator inspect``: events, journey entries and ends, the
policy's decisions with their reasons, and what is due next, in time order and in the customer's time
zone.

Built from what the state keeps (the event history, running and lately finished journey instances,
held sends) and the customer's decisions (the decisions topic, live; the state file, offline). Each
entry is ``{"at": ISO UTC, "local": time in the customer's zone, "what": words}``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orchestrator.contracts.decision import DECISION_REASONS
from orchestrator.core.engine.clock import zone
from orchestrator.core.engine.state import TIMING_MEANING, CustomerState

__all__ = ["DEFAULT_ENTRIES", "local_time", "out_of_time_lines", "timeline"]

DEFAULT_ENTRIES = 30
"""How many of the latest entries ``inspect`` shows."""

# at equal times: the event first, then what it started, what was decided, what ended, what is due
_EVENT, _ENTERED, _DECIDED, _ENDED, _DUE = range(5)


def local_time(ms: int, timezone: str | None) -> str:
    """``2025-03-03 10:00:00 CET``: the time in the customer's zone (UTC for an unknown zone)."""
    tz = zone(timezone)
    at = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(tz)
    return at.strftime("%Y-%m-%d %H:%M:%S %Z")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ms(iso: str) -> int | None:
    try:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _path(visits: dict[str, int]) -> str:
    return " → ".join(step if n == 1 else f"{step} (x{n})" for step, n in visits.items())


def _event(row: dict[str, Any]) -> str:
    about = [str(row[k]) for k in ("journey", "campaign", "channel") if row.get(k)]
    return f"event {row['type']}" + (f" ({', '.join(dict.fromkeys(about))})" if about else "")


def _decision(d: dict[str, Any]) -> str:
    channel = str(d.get("channel", "?"))
    if d.get("original_channel") and d.get("original_channel") != channel:
        channel = f"{d['original_channel']} → {channel}"
    where = f"{d.get('journey_id')}/{d.get('step_id')}"
    reason = str(d.get("reason", ""))
    why = DECISION_REASONS.get(reason, "")
    rule = f" {d['rule']!s}" if d.get("rule") and d.get("rule") != "quiet_hours" else ""
    text = f"{where}: {channel} {d.get('kind')} — {reason}{rule}" + (f": {why}" if why else "")
    if d.get("release_at"):
        text += f" (until {d['release_at']})"
    detail = str(d.get("detail") or "")
    if detail and d.get("kind") in ("suppressed", "redirected") and detail != f"{channel}: {reason}":
        text += f" ({detail})"
    return text


def timeline(
    state: CustomerState, decisions: list[dict[str, Any]] | None = None, last: int = DEFAULT_ENTRIES
) -> list[dict[str, str]]:
    """The latest ``last`` entries of the customer's story, oldest first."""
    tz = state.profile.timezone
    items: list[tuple[int, int, str]] = []
    for row in state.profile.history:
        items.append((int(row["at_ms"]), _EVENT, _event(row)))
    for f in state.finished:
        name = f"{f.journey} v{f.version} #{f.entry_seq}"
        items.append((f.entered_ms, _ENTERED, f"entered {name}"))
        ended = f"reached the goal {f.reason}" if f.kind == "goal" else f"exited: {f.reason}"
        items.append((f.finished_ms, _ENDED, f"{name} {ended} at step {f.step} (steps: {_path(f.visits)})"))
    for i in state.instances:
        name = f"{i.journey} v{i.version} #{i.entry_seq}"
        items.append((i.entered_ms, _ENTERED, f"entered {name}"))
        if i.due_ms is not None:
            items.append((i.due_ms, _DUE, f"{name} wakes at step {i.step} (due)"))
    for h in state.held:
        if h.release_ms is not None:
            what = f"{h.journey_id}/{h.step_id}: the held {h.channel} send is looked at again"
            items.append((h.release_ms, _DUE, what))
    for d in decisions or ():
        at = _ms(str(d.get("at", "")))
        if at is not None:
            items.append((at, _DECIDED, _decision(d)))
    items.sort(key=lambda item: (item[0], item[1]))
    return [{"at": _iso(at), "local": local_time(at, tz), "what": what} for at, _, what in items[-last:]]


def out_of_time_lines(state: CustomerState) -> list[str]:
    """``3 events applied as late: no journey entry (the last of ...)``, one line per reason."""
    lines = []
    for reason, (count, last) in sorted(state.timing.items()):
        what = "applied as late: no journey entry" if reason == "late" else "from the future: applied now"
        plural = "event" if count == 1 else "events"
        lines.append(
            f"{count} {plural} {what} (the last of {local_time(last, state.profile.timezone)}; "
            f"{TIMING_MEANING.get(reason, reason)})"
        )
    return lines
