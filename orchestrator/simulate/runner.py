"""Offline replay of recorded events through the same per-customer logic as the runtime.

Rules: events are read in file order (streamed, never all in memory); each is resolved to its
customer by the identity graph (:class:`~orchestrator.core.identity.IdentityGraph`, docs/identity.md):
merges it reports are applied first (:meth:`CustomerLogic.on_merge`), an event of a recently erased
identifier is dropped, and a ``customer.erased`` event erases the customer from the graph too. The
clock is event time (the latest event time read so far). Before an event at time ``t`` is applied,
every customer's timers due strictly before ``t`` fire, in time order; at the end, pending timers due
at or before ``until`` fire. Invalid lines are skipped and reported with their line number and reason, like
the runtime's dead letters.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from orchestrator.contracts.actions import ChannelAction
from orchestrator.contracts.decision import Decision
from orchestrator.contracts.engine_event import read_event
from orchestrator.core.campaign import CampaignRegistry, is_campaign_file, load_campaign_file
from orchestrator.core.customer import ERASE_EVENT, CustomerLogic, Outcome, Transition
from orchestrator.core.engine.state import CustomerState
from orchestrator.core.funnel import Funnel
from orchestrator.core.identity import IdentityGraph
from orchestrator.core.journey.loader import DEFAULT_HISTORY_WINDOW_MS, load_journey_file
from orchestrator.core.journey.registry import JourneyRegistry
from orchestrator.core.learning.loader import is_model_file, load_model_file
from orchestrator.core.learning.registry import ModelRegistry
from orchestrator.core.policy import Policy, PolicyRegistry, is_policy_file, load_policy_file
from orchestrator.core.segment import SegmentRegistry, is_segment_file, load_segment_file
from orchestrator.core.template import is_template_file
from orchestrator.exceptions import (
    CampaignValidationError,
    InvalidEventError,
    JourneyValidationError,
    ModelValidationError,
    SegmentValidationError,
    SimulationError,
)
from orchestrator.simulate.state_file import DECISIONS_KEPT, SimulatedState, write_state_file
from orchestrator.simulate.timeline import read_timeline

__all__ = [
    "EARLIEST_MS",
    "InvalidLine",
    "SimulationResult",
    "Simulator",
    "load_campaigns",
    "load_registry",
    "load_segments",
    "read_lines",
    "simulate_file",
    "timeline_paths",
]

EARLIEST_MS = -(2**53)
"""Journeys loaded from a directory are effective from the beginning of time."""


@dataclass(frozen=True, slots=True)
class InvalidLine:
    line: int
    reason: str
    """``not_json`` or ``invalid_event`` (the dead-letter reasons)."""
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason, "error": self.error}


@dataclass(slots=True)
class SimulationResult:
    events_read: int = 0
    events_applied: int = 0
    duplicates: int = 0
    actions: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    """``kind: reason`` -> count, over all journeys (``sent: allowed``, ``suppressed: frequency_cap``)."""
    customers: int = 0
    merges: int = 0
    """Customers merged into another by identity stitching."""
    erased: int = 0
    """customer.erased events applied."""
    dropped_erased: int = 0
    """Events dropped because they carried an identifier erased shortly before."""
    dropped_unknown: int = 0
    """Events dropped because the customer key they named (``customer_key``: receipts) is not a customer:
    never seen, or erased long ago."""
    invalid: list[InvalidLine] = field(default_factory=list)
    funnel: Funnel = field(default_factory=Funnel)
    clock_ms: int | None = None
    waiting: int = 0
    """Customers still waiting on a timer at the end (a wait, a timeout not reached)."""
    next_wakeup_ms: int | None = None
    """The earliest of their wake-ups: what ``--until`` must reach for anything more to happen."""
    refused_deployments: list[str] = field(default_factory=list)
    """Deployments of the timeline a worker would refuse (file:line: field: why), each kept out."""
    campaigns: dict[str, dict[str, int]] = field(default_factory=dict)
    """Campaign id -> what happened to its members, counted (scheduled, sent, unsent_<reason>, late,
    left, entered, not_entered, cancelled)."""

    def report(self) -> dict[str, Any]:
        return {
            "events_read": self.events_read,
            "events_applied": self.events_applied,
            "duplicates": self.duplicates,
            "invalid_lines": [i.to_dict() for i in self.invalid],
            "actions": self.actions,
            "decisions": dict(sorted(self.decisions.items())),
            "customers": self.customers,
            "waiting": {"customers": self.waiting, "next_wakeup_ms": self.next_wakeup_ms},
            "identity": {
                "merges": self.merges,
                "erased": self.erased,
                "dropped_erased": self.dropped_erased,
                "dropped_unknown": self.dropped_unknown,
            },
            "journeys": self.funnel.to_dict(),
            "refused_deployments": list(self.refused_deployments),
            "campaigns": {c: dict(sorted(n.items())) for c, n in sorted(self.campaigns.items())},
        }


def _journey_paths(journeys: Path | str | Iterable[Path | str] | None) -> list[Path]:
    """The journey files of a folder (policy, segment, campaign and template files left out), or the one
    file, or the files given."""
    if journeys is None:
        return []
    if isinstance(journeys, str | Path):
        root = Path(journeys)
        if root.is_file():
            return [root]
        if root.is_dir():
            found = sorted([*root.glob("*.yaml"), *root.glob("*.yml")])
            return [p for p in found if not _other_kind(p)]
        raise SimulationError(f"{root}: no such journey file or directory")
    paths = [Path(p) for p in journeys]
    return [p for p in paths if not _other_kind(p)]


def timeline_paths(journeys: Path | str | Iterable[Path | str] | None) -> list[Path]:
    """What ``--journeys`` deploys before a deployment timeline: its journey, segment, campaign and model
    files (as without a timeline: the policy comes from ``--policy``, templates are the connectors')."""
    if journeys is None:
        return []
    if isinstance(journeys, str | Path):
        root = Path(journeys)
        if root.is_file():
            return [root]
        if not root.is_dir():
            raise SimulationError(f"{root}: no such journey file or directory")
        paths = sorted([*root.glob("*.yaml"), *root.glob("*.yml")])
    else:
        paths = [Path(p) for p in journeys]
    return [p for p in paths if not (is_policy_file(p) or is_template_file(p))]


def _has_campaign(journeys: Path | str | Iterable[Path | str]) -> bool:
    """A folder with a campaign file."""
    root = Path(journeys) if isinstance(journeys, str | Path) else None
    return root is not None and root.is_dir() and any(is_campaign_file(p) for p in root.glob("*.y*ml"))


def _other_kind(path: Path) -> bool:
    """A policy, segment, campaign or template file: not a journey."""
    return (
        is_policy_file(path)
        or is_segment_file(path)
        or is_campaign_file(path)
        or is_template_file(path)
        or is_model_file(path)
    )


def load_registry(
    journeys: Path | str | Iterable[Path | str], *, history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS
) -> JourneyRegistry:
    """Every ``*.yaml``/``*.yml`` journey in a directory (or one file, or the files given), effective always.

    Policy, segment, campaign and template files (``kind: policy``, ``kind: segment``, ``kind:
    campaign``, ``kind: template``) are not journeys and are left out (a folder or files with a campaign
    and no journey: a campaign may run alone). Several versions of one journey: all are deployed, the
    highest version is in effect. Raises JourneyValidationError with the problems of all files.
    """
    paths = _journey_paths(journeys)
    if not paths and (isinstance(journeys, str | Path) or not list(journeys)) and not _has_campaign(journeys):
        raise SimulationError(f"{journeys}: no journey or campaign files (*.yaml) found")
    problems: list[str] = []
    definitions = []
    for path in paths:
        try:
            definitions.append(load_journey_file(path, history_window_ms=history_window_ms))
        except JourneyValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise JourneyValidationError(problems)
    registry = JourneyRegistry(history_window_ms=history_window_ms)
    for d in sorted(definitions, key=lambda d: (d.id, d.version)):
        registry.deploy(d, EARLIEST_MS)
    return registry


def load_segments(
    journeys: Path | str | Iterable[Path | str] | None,
    *,
    history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS,
) -> SegmentRegistry:
    """The segment files (``kind: segment``) of a journeys folder (or of the files given), effective
    always; raises SegmentValidationError with the problems of all files (and a cycle)."""
    registry = SegmentRegistry(history_window_ms=history_window_ms)
    load = functools.partial(load_segment_file, history_window_ms=history_window_ms)
    _deploy_kind(journeys, is_segment_file, load, registry, SegmentValidationError)
    return registry


def load_campaigns(
    journeys: Path | str | Iterable[Path | str] | None,
    *,
    history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS,
) -> CampaignRegistry:
    """The campaign files (``kind: campaign``) of a journeys folder (or of the files given), effective
    always; raises CampaignValidationError with the problems of all files."""
    registry = CampaignRegistry(history_window_ms=history_window_ms)
    load = functools.partial(load_campaign_file, history_window_ms=history_window_ms)
    _deploy_kind(journeys, is_campaign_file, load, registry, CampaignValidationError)
    return registry


def load_models(journeys: Path | str | Iterable[Path | str] | None) -> ModelRegistry:
    """The model files (``kind: model``) of a journeys folder (or of the files given), effective always
    (several: by id and version, the last in force); raises ModelValidationError with every problem."""
    registry = ModelRegistry()
    _deploy_kind(journeys, is_model_file, load_model_file, registry, ModelValidationError)
    return registry


def _deploy_kind(
    journeys: Path | str | Iterable[Path | str] | None,
    is_kind: Callable[[Path], bool],
    load: Callable[[Path], Any],
    registry: SegmentRegistry | CampaignRegistry | ModelRegistry,
    error: type[SegmentValidationError] | type[CampaignValidationError] | type[ModelValidationError],
) -> None:
    """Deploy the files of one kind among ``journeys`` (a folder's ``*.yaml``/``*.yml``, or the files
    given; a single file: none) into ``registry``, effective always; raise ``error`` with every problem."""
    if isinstance(journeys, str | Path):
        root = Path(journeys)
        paths = sorted([*root.glob("*.yaml"), *root.glob("*.yml")]) if root.is_dir() else []
    else:
        paths = [Path(p) for p in journeys] if journeys is not None else []
    problems: list[str] = []
    found = []
    for path in paths:
        if not is_kind(path):
            continue
        try:
            found.append(load(path))
        except error as exc:
            problems.extend(exc.problems)
    for definition in sorted(found, key=lambda d: (d.id, d.version)):
        try:
            registry.deploy(definition, EARLIEST_MS)
        except error as exc:
            problems.extend(exc.problems)
    if problems:
        raise error(problems)


class Simulator:
    """Feeds events and timers to :class:`CustomerLogic`, keeping every customer's state in memory."""

    def __init__(
        self,
        registry: JourneyRegistry,
        *,
        on_action: Callable[[ChannelAction], None] | None = None,
        history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS,
        lateness_ms: int | None = None,
        policy: Policy | PolicyRegistry | None = None,
        on_decision: Callable[[Decision], None] | None = None,
        erasure_key: bytes | None = None,
        on_transition: Callable[[str, Transition], None] | None = None,
        segments: SegmentRegistry | None = None,
        campaigns: CampaignRegistry | None = None,
        models: ModelRegistry | None = None,
    ) -> None:
        """``erasure_key``: the secret of the graph's erased-identifier markers; by default a random
        key of this run alone (the markers only serve within the run, and a ``--state-out`` file then
        holds markers nobody can test identifiers against; docs/identity.md)."""
        self.logic = CustomerLogic(
            registry,
            history_window_ms=history_window_ms,
            lateness_ms=lateness_ms,
            policy=policy,
            segments=segments,
            campaigns=campaigns,
            models=models,
        )
        self._on_decision = on_decision
        self._on_transition = on_transition
        """Called with (customer key, transition) for every funnel transition: the steps one by one."""
        self.states: dict[str, CustomerState] = {}
        self.graph = IdentityGraph(secrets.token_bytes(32) if erasure_key is None else erasure_key)
        self.result = SimulationResult()
        self._on_action = on_action
        self._timers: list[tuple[int, str]] = []
        self._wake: dict[str, int] = {}
        self._clock: int | None = None
        for at in _scan_times(campaigns):
            heapq.heappush(self._timers, (at, _SCAN))

    def feed_line(self, line_no: int, raw: bytes | str) -> None:
        """One JSONL line: parse, resolve, fire earlier timers, apply. Blank lines are skipped."""
        if not raw.strip():
            return
        self.result.events_read += 1
        try:
            event = read_event(raw)
        except InvalidEventError as exc:
            self.result.invalid.append(InvalidLine(line_no, exc.reason, exc.detail))
            return
        at = event.occurred_ms
        resolution = self.graph.resolve(event.identifiers, at)
        if resolution.erased:
            self.result.dropped_erased += 1
            return
        if resolution.unknown:
            self.result.dropped_unknown += 1
            return
        key = resolution.customer_key
        if self._clock is None or at > self._clock:
            self._fire_until(at, inclusive=False)
            self._clock = at
        for merge in resolution.merges:
            other = self.states.pop(merge.from_key, None)
            self._wake.pop(merge.from_key, None)
            self.result.merges += 1
            into = merge.into_key
            self._take(into, self.logic.on_merge(into, self.states.get(into), other, self._clock))
        outcome = self.logic.on_event(key, self.states.get(key), event, self._clock)
        if outcome.duplicate:
            self.result.duplicates += 1
        else:
            self.result.events_applied += 1
        self._take(key, outcome)
        if event.type == ERASE_EVENT and outcome.state is None:
            self.graph.erase(key, at)
            self.result.erased += 1

    def finish(self, until_ms: int | None = None) -> SimulationResult:
        """Fire the pending timers due at or before ``until_ms`` (none when None); return the result."""
        if until_ms is not None:
            self._fire_until(until_ms, inclusive=True)
            self._clock = until_ms if self._clock is None else max(self._clock, until_ms)
        self.result.customers = len(self.states)
        self.result.clock_ms = self._clock
        self.result.waiting = len(self._wake)
        self.result.next_wakeup_ms = min(self._wake.values(), default=None)
        return self.result

    def pending_timers(self) -> int:
        return len(self._wake)

    def _fire_until(self, until_ms: int, *, inclusive: bool) -> None:
        timers = self._timers
        while timers and (timers[0][0] <= until_ms if inclusive else timers[0][0] < until_ms):
            due, key = heapq.heappop(timers)
            if key == _SCAN:  # a campaign's release starts: every customer is looked at (the runtime's scan)
                for customer in list(self.states):
                    self._take(customer, self.logic.on_wakeup(customer, self.states.get(customer), due))
                continue
            if self._wake.get(key) != due:
                continue  # stale: the customer's next wake-up moved
            del self._wake[key]
            self._take(key, self.logic.on_wakeup(key, self.states.get(key), due))

    def _take(self, key: str, outcome: Outcome) -> None:
        if outcome.state is None:
            self.states.pop(key, None)
            self._wake.pop(key, None)
        else:
            self.states[key] = outcome.state
        for t in outcome.transitions:
            self.result.funnel.add(t)
            if self._on_transition is not None:
                self._on_transition(key, t)
        for d in outcome.decisions:
            verdict = f"{d.kind}: {d.reason}"
            self.result.decisions[verdict] = self.result.decisions.get(verdict, 0) + 1
            self.result.funnel.add_decision(d.journey_id, verdict)
            if self._on_decision is not None:
                self._on_decision(d)
        for campaign, _, what in outcome.campaigns:
            counts = self.result.campaigns.setdefault(campaign, {})
            counts[what] = counts.get(what, 0) + 1
        for action in outcome.actions:
            self.result.actions += 1
            self.result.funnel.add_action(action.journey_id)
            if self._on_action is not None:
                self._on_action(action)
        wake = outcome.next_wakeup_ms
        if outcome.state is not None and wake is not None and self._wake.get(key) != wake:
            self._wake[key] = wake
            heapq.heappush(self._timers, (wake, key))
        elif wake is None:
            self._wake.pop(key, None)


_SCAN = ""
"""The timer key of a campaign scan (customer keys are never empty)."""


def _scan_times(campaigns: CampaignRegistry | None) -> list[int]:
    """When the simulator looks at every customer for the campaigns: each release
    (:meth:`CampaignRegistry.releases`), as each worker's scan does in the runtime."""
    if campaigns is None:
        return []
    return sorted({r.at_ms for r in campaigns.releases()})


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) of a JSONL file, streamed."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise SimulationError(f"{path}: cannot read events: {exc}") from None
    with handle:
        yield from enumerate(handle, 1)


def simulate_file(
    journeys: Path | str | Iterable[Path | str] | None,
    events_path: Path | str,
    *,
    out_path: Path | str | None = None,
    until_ms: int | None = None,
    progress: bool = False,
    history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS,
    lateness_ms: int | None = None,
    policy_path: Path | str | None = None,
    decisions_path: Path | str | None = None,
    state_out: Path | str | None = None,
    deployments_path: Path | str | None = None,
) -> SimulationResult:
    """Replay a JSONL events file through the journeys; write actions as JSONL to ``out_path``.

    ``policy_path``: a policy file applied to every send (docs/policy.md); ``decisions_path``: write
    the policy's decisions there as JSONL (the decision contract); ``state_out``: write every
    customer's final state and the identity graph there (:mod:`orchestrator.simulate.state_file`);
    ``deployments_path``: a deployment timeline (:mod:`orchestrator.simulate.timeline`), applied after
    the ``journeys`` and ``policy_path`` (then in effect from the beginning; both may be empty).
    """
    refused: list[str] = []
    policy: Policy | PolicyRegistry | None
    if deployments_path is not None:
        first = [*timeline_paths(journeys), *([Path(policy_path)] if policy_path is not None else [])]
        timeline = read_timeline(deployments_path, history_window_ms=history_window_ms, before=first)
        registry, policy, refused = timeline.registry, timeline.policies, timeline.refused
        segments, campaigns, models = timeline.segments, timeline.campaigns, timeline.book.models
    else:
        if journeys is None:
            raise SimulationError("no journeys: give a journeys folder or a deployment timeline")
        registry = load_registry(journeys, history_window_ms=history_window_ms)
        segments = load_segments(journeys, history_window_ms=history_window_ms)
        campaigns = load_campaigns(journeys, history_window_ms=history_window_ms)
        models = load_models(journeys)
        policy = load_policy_file(policy_path) if policy_path is not None else None
    path = Path(events_path)
    if not path.is_file():
        raise SimulationError(f"{path}: events file not found")
    with contextlib.ExitStack() as stack:
        sink: BinaryIO | None = None
        if out_path is not None:
            try:
                sink = stack.enter_context(Path(out_path).open("wb"))
            except OSError as exc:
                raise SimulationError(f"{out_path}: cannot write actions: {exc}") from None
        on_action = None
        if sink is not None:
            out = sink

            def on_action(action: ChannelAction) -> None:
                out.write(action.to_json() + b"\n")

        sinks: list[Callable[[Decision], object]] = []
        if decisions_path is not None:
            try:
                decision_sink = stack.enter_context(Path(decisions_path).open("wb"))
            except OSError as exc:
                raise SimulationError(f"{decisions_path}: cannot write decisions: {exc}") from None
            sinks.append(lambda decision: decision_sink.write(decision.to_json() + b"\n"))
        kept: dict[str, deque[Decision]] = {}
        if state_out is not None:  # each customer's last decisions, for inspect's timeline
            sinks.append(lambda d: kept.setdefault(d.customer_id, deque(maxlen=DECISIONS_KEPT)).append(d))

        def on_decision(decision: Decision) -> None:
            for sink in sinks:
                sink(decision)

        sim = Simulator(
            registry,
            on_action=on_action,
            history_window_ms=history_window_ms,
            lateness_ms=lateness_ms,
            policy=policy,
            on_decision=on_decision if sinks else None,
            segments=segments,
            campaigns=campaigns,
            models=models,
        )
        bar = _progress(path, progress)
        stack.callback(bar, -1)
        pending = 0
        for n, raw in read_lines(path):
            sim.feed_line(n, raw)
            pending += len(raw)
            if pending >= 1 << 20:
                bar(pending)
                pending = 0
        bar(pending)
        result = sim.finish(until_ms)
        result.refused_deployments = refused
        if state_out is not None:
            decisions: dict[str, list[dict[str, Any]]] = {}
            for key, found in kept.items():  # under the key the customer has now (merges)
                mine = decisions.setdefault(sim.graph.lookup(key) or key, [])
                mine += (orjson.loads(d.to_json()) for d in found)
            for mine in decisions.values():
                mine.sort(key=lambda d: str(d["at"]))
                del mine[: max(0, len(mine) - DECISIONS_KEPT)]
            shown = {
                d.id: {
                    "version": d.version,
                    "status": d.status,
                    "name": d.name,
                    "time_dependent": d.time_dependent,
                    "reads": sorted(d.depends_on),
                }
                for d in segments.in_force(result.clock_ms or 0)
            }
            state = SimulatedState(result.clock_ms, sim.states, sim.graph, decisions, shown)
            state.campaigns = _campaigns_shown(campaigns, result.campaigns, result.clock_ms or 0)
            write_state_file(state_out, state)
        return result


def _campaigns_shown(
    campaigns: CampaignRegistry, counts: dict[str, dict[str, int]], at_ms: int
) -> dict[str, dict[str, Any]]:
    """What ``orchestrator campaigns`` shows of each campaign deployed (and counted): the version in force
    at ``at_ms`` (else its last one), status, name, segment, and what it did to its members."""
    shown: dict[str, dict[str, Any]] = {}
    for cid in sorted({*campaigns.campaign_ids(), *counts}):
        d = campaigns.current(cid, at_ms)
        if d is None:
            deployed = campaigns.deployments(cid)
            d = deployed[-1].definition if deployed else None
        shown[cid] = {
            "version": d.version if d else None,
            "status": d.status if d else "not deployed",
            "name": d.name if d else "",
            "segment": d.segment if d else "",
            "counts": dict(sorted(counts.get(cid, {}).items())),
        }
    return shown


def _progress(path: Path, enabled: bool) -> Callable[[int], None]:
    """A byte-counting progress callback (tqdm on stderr when enabled); ``-1`` closes it."""
    if not enabled:
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc="events", leave=False)

    def update(n: int) -> None:
        if n < 0:
            bar.close()
        else:
            bar.update(n)

    return update
