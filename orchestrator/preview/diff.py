"""The impact preview of a new journey version: ``orchestrator diff OLD.yaml NEW.yaml --events FILE``.

The recorded events are replayed twice through the simulator (:class:`~orchestrator.simulate.Simulator`),
each run with a deployment book of its own built in memory the way ``orchestrator simulate --deployments``
builds one (:func:`~orchestrator.kafka.deploy.prepare_deployments` records applied by a
:class:`~orchestrator.core.deployments.DeploymentBook`, the rule of the workers):

- run **old**: OLD in effect all the way;
- run **new**: OLD, then NEW in effect from ``at`` (default: the first event's time, i.e. NEW from
  the start) — what deploying NEW with ``orchestrator deploy --at`` would do.

The other files of ``--journeys`` (journeys, segments, campaigns, models; not the journey previewed,
not policy or template files) and the ``--policy`` file are deployed in both runs alike, from the
beginning. Both runs fire the pending timers up to ``until`` (default: the last event's time plus the
longer version's waits added up, :func:`timer_span_ms`).

A third, shorter pass replays the events before ``at`` (both runs are the same until then) to find the
customers inside the old version at ``at`` and say what the engine will do with them
(:func:`inside_at`): with ``migrate: true`` they move to the same step of NEW (or leave, reason
``migration_no_step_<step>``, when NEW has no step of that id and type) at their next event or timer;
without it they stay on OLD until they finish.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.contracts import JourneyDeployment
from orchestrator.contracts.actions import ChannelAction
from orchestrator.contracts.engine_event import read_event
from orchestrator.core.deployments import DeploymentBook
from orchestrator.core.journey import JourneyDefinition, JourneyRegistry, load_journey_text
from orchestrator.core.journey.loader import DEFAULT_HISTORY_WINDOW_MS
from orchestrator.core.journey.model import SendStep, SplitStep, WaitStep
from orchestrator.core.policy import is_policy_file
from orchestrator.core.template import is_template_file
from orchestrator.exceptions import InvalidEventError, SimulationError
from orchestrator.kafka.deploy import prepare_deployments
from orchestrator.preview.compare import Change, Send, StepRow, compare_sends, send_of, step_rows
from orchestrator.simulate.runner import SimulationResult, Simulator, read_lines

__all__ = ["Inside", "Preview", "inside_at", "preview", "timer_span_ms"]

_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
"""When the old version and the other files take effect (as ``simulate --deployments`` deploys
``--journeys``)."""
_DAY_MS = 86_400_000
_ERASURE_KEY = bytes(32)
"""The identity graph's marker secret: fixed, so that both runs (and every preview) resolve alike; the
markers never leave the run."""


@dataclass(frozen=True, slots=True)
class Inside:
    """A running instance of the old version at ``at``, and what the new version does with it."""

    customer: str
    step: str
    entered_ms: int
    outcome: str
    """``moves`` (to ``to_step`` of the new version), ``leaves`` (``reason``) or ``stays`` (on the old
    version until it finishes)."""
    to_step: str | None = None
    reason: str = ""
    key: str | None = None
    """A keyed journey's key (the appointment this instance is about)."""


@dataclass
class Preview:
    """Everything ``orchestrator diff`` reports."""

    old: JourneyDefinition
    new: JourneyDefinition
    old_path: Path
    new_path: Path
    events_path: Path
    at_ms: int
    at_given: bool
    until_ms: int
    until_given: bool
    first_event_ms: int
    last_event_ms: int
    old_run: SimulationResult
    new_run: SimulationResult
    changes: list[Change]
    unchanged: int
    rows: list[StepRow]
    inside: list[Inside]
    policy_path: Path | None = None
    journeys_path: Path | None = None
    others: list[str] = field(default_factory=list)
    """The other files deployed in both runs (``--journeys``, ``--policy``), as given."""

    @property
    def journey_id(self) -> str:
        return self.old.id

    def by_customer(self) -> dict[str, list[Change]]:
        """The changes of each customer whose sends change, customers sorted."""
        out: dict[str, list[Change]] = defaultdict(list)
        for c in self.changes:
            out[c.send.customer].append(c)
        return dict(sorted(out.items()))

    @property
    def at_rule(self) -> str:
        return (
            "given with --at" if self.at_given else "the first event's time: the new version from the start"
        )

    @property
    def until_rule(self) -> str:
        if self.until_given:
            return "given with --until"
        span = self.until_ms - self.last_event_ms
        return f"the last event's time + {_duration(span)}, the longer version's waits added up"


def _duration(ms: int) -> str:
    parts = []
    for unit, size in (("d", _DAY_MS), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    if ms or not parts:
        parts.append(f"{ms}ms")
    return "".join(parts)


def timer_span_ms(definition: JourneyDefinition) -> int:
    """How long the journey's timers can keep one customer, added up over its steps: each wait's duration
    or timeout (and offset), a day for a wait until a time of day (a week when only on some weekdays), an
    optimal send's window, the holdout window when a split has a holdout. The default ``--until`` adds
    the larger of both versions' to the last event's time, so that a customer entering at the last event
    can finish (a wait for a time from data cannot be known: only its offset counts)."""
    total = 0
    for step in definition.steps.values():
        if isinstance(step, WaitStep):
            if step.mode == "time_of_day":
                total += 7 * _DAY_MS if step.weekdays is not None else _DAY_MS
            else:
                total += max(step.duration_ms, step.timeout_ms) + max(0, step.offset_ms)
        elif isinstance(step, SendStep):
            total += step.within_ms
        elif isinstance(step, SplitStep) and any(b.holdout for b in step.branches):
            total += definition.holdout_window_ms
    return total


# -- the inputs ------------------------------------------------------------------------------------
def _journey(path: Path, history_window_ms: int) -> tuple[JourneyDefinition, JourneyDeployment]:
    """The journey of ``path`` and its deployment record (validated as ``orchestrator deploy`` does)."""
    if not path.is_file():
        raise SimulationError(f"{path}: no such journey file")
    (record,) = prepare_deployments([path], _BEGINNING)
    if record.kind != "journey":
        raise SimulationError(
            f"{path}: a {record.kind} file, not a journey: give two versions of one journey"
        )
    return load_journey_text(record.text, str(path), history_window_ms=history_window_ms), record


def _other_files(journeys: Path | None, policy: Path | None) -> list[Path]:
    """The files of ``--journeys`` deployed in both runs (policy and template files left out, as
    ``orchestrator simulate`` leaves them out), then the ``--policy`` file."""
    paths: list[Path] = []
    if journeys is not None:
        if journeys.is_file():
            paths.append(journeys)
        elif journeys.is_dir():
            found = sorted([*journeys.glob("*.yaml"), *journeys.glob("*.yml")])
            paths += [p for p in found if not is_policy_file(p) and not is_template_file(p)]
        else:
            raise SimulationError(f"{journeys}: no such journey file or directory")
    if policy is not None:
        if not policy.is_file():
            raise SimulationError(f"{policy}: no such policy file")
        paths.append(policy)
    return paths


def _event_span(path: Path) -> tuple[int, int]:
    """The first and the last event time of the events file (valid lines)."""
    if not path.is_file():
        raise SimulationError(f"{path}: events file not found")
    first: int | None = None
    last: int | None = None
    for _, raw in read_lines(path):
        if not raw.strip():
            continue
        try:
            at = read_event(raw).occurred_ms
        except InvalidEventError:
            continue
        first = at if first is None else min(first, at)
        last = at if last is None else max(last, at)
    if first is None or last is None:
        raise SimulationError(f"{path}: no valid event to replay")
    return first, last


def _instant(ms: int) -> datetime:
    """``ms`` as a datetime whose deployment record says ``effective_from_ms == ms`` (the record rounds
    down its float timestamp: a microsecond more keeps it from landing a millisecond early)."""
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    while int(at.timestamp() * 1000) < ms:
        at += timedelta(microseconds=1)
    return at


def _book(records: list[JourneyDeployment], history_window_ms: int) -> DeploymentBook:
    """A deployment book with ``records`` applied in order; a refusal (as a worker would refuse) is an
    error, since the run would then not be the one asked for."""
    book = DeploymentBook(JourneyRegistry(history_window_ms=history_window_ms))
    problems: list[str] = []
    for record in records:
        refusal = book.apply(record.key.encode(), record.to_json(), where=record.source_name)
        if refusal is not None:
            problems.extend(refusal.problems)
    if problems:
        raise SimulationError("a deployment was refused, as a worker would refuse it: " + "; ".join(problems))
    return book


def _simulator(
    book: DeploymentBook, history_window_ms: int, on_action: Callable[[ChannelAction], None] | None = None
) -> Simulator:
    return Simulator(
        book.registry,
        on_action=on_action,
        history_window_ms=history_window_ms,
        policy=book.policies,
        erasure_key=_ERASURE_KEY,
        segments=book.segment_registry,
        campaigns=book.campaign_registry,
        models=book.models,
    )


def _run(
    book: DeploymentBook, events: Path, until_ms: int, history_window_ms: int
) -> tuple[SimulationResult, list[Send]]:
    sends: list[Send] = []
    sim = _simulator(book, history_window_ms, lambda action: sends.append(send_of(action)))
    for n, raw in read_lines(events):
        sim.feed_line(n, raw)
    return sim.finish(until_ms), sends


def inside_at(
    book: DeploymentBook,
    events: Path,
    at_ms: int,
    old: JourneyDefinition,
    new: JourneyDefinition,
    history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS,
) -> list[Inside]:
    """The instances of the old version running at ``at_ms`` (the events read until the first at or after
    ``at_ms``, the timers due before it fired) and what the new version does with each, by the engine's
    rule (``CustomerLogic._resolve``)."""
    sim = _simulator(book, history_window_ms)
    for n, raw in read_lines(events):
        if raw.strip():
            try:
                if read_event(raw).occurred_ms >= at_ms:
                    break
            except InvalidEventError:
                continue
        sim.feed_line(n, raw)
    sim.finish(at_ms - 1)
    found: list[Inside] = []
    for customer in sorted(sim.states):
        for inst in sim.states[customer].instances:
            if inst.journey != old.id or inst.version != old.version:
                continue
            step, old_step = new.steps.get(inst.step), old.steps.get(inst.step)
            if new.status == "archived":
                outcome, to_step, reason = "leaves", None, "archived"
            elif not new.migrate:
                outcome, to_step, reason = "stays", None, f"finishes on version {old.version}"
            elif step is None or (old_step is not None and step.kind != old_step.kind):
                outcome, to_step, reason = "leaves", None, f"migration_no_step_{inst.step}"
            else:
                outcome, to_step, reason = "moves", inst.step, f"to version {new.version}"
            found.append(Inside(customer, inst.step, inst.entered_ms, outcome, to_step, reason, inst.key))
    return found


def preview(
    old_path: Path | str,
    new_path: Path | str,
    events_path: Path | str,
    *,
    policy_path: Path | str | None = None,
    journeys: Path | str | None = None,
    at_ms: int | None = None,
    until_ms: int | None = None,
    history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS,
) -> Preview:
    """Replay the events with the old version and with the new one from ``at_ms``; compare."""
    old_file, new_file, events = Path(old_path), Path(new_path), Path(events_path)
    old, old_record = _journey(old_file, history_window_ms)
    new, new_record = _journey(new_file, history_window_ms)
    if new.id != old.id:
        raise SimulationError(
            f"{new_file} is journey {new.id!r}, {old_file} is journey {old.id!r}: "
            "the preview compares two versions of one journey"
        )
    if new.version <= old.version:
        raise SimulationError(
            f"{new_file} has version {new.version}, not higher than version {old.version} of {old_file}: "
            "the new version needs a higher number"
        )
    policy_file = Path(policy_path) if policy_path is not None else None
    journeys_path = Path(journeys) if journeys is not None else None
    others = _other_files(journeys_path, policy_file)
    first, last = _event_span(events)
    at = first if at_ms is None else at_ms
    until = until_ms
    if until is None:
        until = max(last, at) + max(timer_span_ms(old), timer_span_ms(new))
    records = prepare_deployments(others, _BEGINNING)
    mine = {r.source_name for r in records if r.kind == "journey" and r.journey_id == old.id}
    shared = [r for r in records if r.source_name not in mine]  # (the journey previewed: OLD and NEW)
    new_from_at = new_record.model_copy(update={"effective_from": _instant(at)})
    old_book = _book([*shared, old_record], history_window_ms)
    new_book = _book([*shared, old_record, new_from_at], history_window_ms)
    old_run, old_sends = _run(old_book, events, until, history_window_ms)
    new_run, new_sends = _run(new_book, events, until, history_window_ms)
    changes, unchanged = compare_sends(old_sends, new_sends)
    inside = inside_at(old_book, events, at, old, new, history_window_ms) if at > first else []
    return Preview(
        old=old,
        new=new,
        old_path=old_file,
        new_path=new_file,
        events_path=events,
        at_ms=at,
        at_given=at_ms is not None,
        until_ms=until,
        until_given=until_ms is not None,
        first_event_ms=first,
        last_event_ms=last,
        old_run=old_run,
        new_run=new_run,
        changes=changes,
        unchanged=unchanged,
        rows=step_rows(old_sends, new_sends, changes),
        inside=inside,
        policy_path=policy_file,
        journeys_path=journeys_path,
        others=[str(p) for p in others if str(p) not in mine],
    )
