"""The per-customer logic both shells call: the streaming runtime and ``orchestrator simulate``.

``CustomerLogic.on_event`` and ``CustomerLogic.on_wakeup`` take one customer's state and an event
or a logical time, and return an :class:`Outcome`: the new state, the actions to emit, the funnel
transitions and the next wake-up. Pure: no Kafka, no wall clock; the same inputs give the same
outputs. The state passed in is updated in place and returned in the Outcome (pass a copy, e.g.
``CustomerState.from_dict(state.to_dict())``, to keep the old one).

Order of one event (logical time ``t`` = the event's time, never later than ``now_ms``):

1. an event id seen within the dedupe window is a duplicate: nothing changes, nothing is sent;
2. the customer's timers due strictly before ``t`` fire, each at its own due time, in time order;
   a timer due exactly at ``t`` fires after the event ("an open at exactly the timeout is in time");
3. the event is applied to the profile (always, even when late), then to the journeys: archived
   journeys and migrations, goals, exit rules, waits, and last the entries. An event older than
   ``lateness_ms`` (relative to ``now_ms``) starts no journey; an event later than ``now_ms`` is
   applied at ``now_ms``. Both are counted in the state and said in the Outcome's ``timing``.
   ``customer.erased`` ends every instance and returns ``state=None`` (delete).

Instances that end are kept in the state's ``finished`` list for ``finished_keep_ms`` (before the
customer's latest event or end), at most ``finished_max`` of them, for ``orchestrator inspect``.

``CustomerLogic.on_merge`` folds a customer the identity graph merged away into the canonical one
(:func:`orchestrator.core.identity.merge_states`): the shells call it before the event that caused
the merge, with the canonical key.

Every send a journey step makes passes the cross-channel policy (:mod:`orchestrator.core.policy`)
before it leaves: the Outcome's ``actions`` are what the policy let through, its ``decisions`` say what
happened to each send and why. Sends held for quiet hours are kept in the state with their release
time, count in :meth:`CustomerState.next_wakeup_ms` and are judged again when a wake-up (or a later
event) reaches that time; held releases and journey timers fire together in time order (a release
first at equal times). Without a policy, sends go out as the journeys make them (decision reason
``no_policy``; without an address: ``suppressed``/``no_address``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from orchestrator.contracts.actions import ChannelAction
from orchestrator.contracts.decision import Decision
from orchestrator.contracts.engine_event import Event
from orchestrator.contracts.events import CustomerEvent
from orchestrator.core.campaign.delivery import CampaignDelivery
from orchestrator.core.engine.records import Transition
from orchestrator.core.engine.run import Run, keyed_entry
from orchestrator.core.engine.state import CustomerState, Instance
from orchestrator.core.identity.merge import merge_states
from orchestrator.core.journey.model import JourneyDefinition, WaitStep
from orchestrator.core.journey.registry import JourneyRegistry
from orchestrator.core.learning.registry import ModelRegistry
from orchestrator.core.policy.model import Policy
from orchestrator.core.policy.registry import PolicyRegistry
from orchestrator.core.profile import DEFAULT_HISTORY_MAX, apply_event
from orchestrator.core.segment.membership import SegmentChange, recheck, segment_event_view
from orchestrator.core.segment.registry import SegmentRegistry

if TYPE_CHECKING:
    from orchestrator.core.campaign.registry import CampaignRegistry

__all__ = ["DAY_MS", "ERASE_EVENT", "CustomerLogic", "CustomerState", "Outcome", "Transition", "event_view"]

DAY_MS = 86_400_000
ERASE_EVENT = "customer.erased"


@dataclass(slots=True)
class Outcome:
    state: CustomerState | None
    """The new state; None means "delete this customer's state"."""
    actions: list[ChannelAction] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    next_wakeup_ms: int | None = None
    """The earliest pending timer of this customer, or None."""
    duplicate: bool = False
    """True when the event was a duplicate and ignored."""
    decisions: list[Decision] = field(default_factory=list)
    """The policy's verdict on every send of this call (sent, redirected, held, dropped, suppressed)."""
    timing: str | None = None
    """``late`` (older than the lateness window: started no journey) or ``future`` (later than now:
    applied now) for an event not applied at its own time; else None."""
    segments: list[SegmentChange] = field(default_factory=list)
    """The customer's segment entries and exits of this call, in order."""
    campaigns: list[tuple[str, int, str]] = field(default_factory=list)
    """(campaign, occurrence, what happened) of this call: scheduled, sent, unsent_<reason>, late, left,
    entered, not_entered, cancelled (:mod:`orchestrator.core.campaign.delivery`)."""


def event_view(event: Event | CustomerEvent, at_ms: int | None = None) -> dict[str, Any]:
    """The ``event`` variable of conditions (also kept as an instance's entry event)."""
    if type(event) is Event and at_ms is None:
        return event.view()
    return {
        "id": event.event_id,
        "type": event.type,
        "at_ms": event.occurred_ms if at_ms is None else at_ms,
        "source": event.source,
        "properties": event.properties,
        "campaign": event.campaign or "",
        "action_id": event.action_id or "",
        "journey": event.journey or "",
    }


class CustomerLogic:
    """Applies events and timers to one customer's state against the deployed journeys."""

    def __init__(
        self,
        registry: JourneyRegistry,
        *,
        history_window_ms: int = 30 * DAY_MS,
        lateness_ms: int | None = None,
        dedupe_window_ms: int = 3 * DAY_MS,
        history_max: int = DEFAULT_HISTORY_MAX,
        policy: PolicyRegistry | Policy | None = None,
        finished_keep_ms: int = 7 * DAY_MS,
        finished_max: int = 5,
        segments: SegmentRegistry | None = None,
        campaigns: CampaignRegistry | None = None,
        models: ModelRegistry | None = None,
    ) -> None:
        self.registry = registry
        self.segments = segments
        """The segment timeline (deploy live on it); None: no segments."""
        self.campaigns = campaigns
        """The campaign timeline (deploy live on it); None: no campaigns."""
        self._delivery = None if campaigns is None else CampaignDelivery(campaigns, self._campaign_entry)
        self.policies = PolicyRegistry(policy) if isinstance(policy, Policy) else policy
        """The policy timeline (deploy live on it); None: no policy, sends go out as made."""
        self.models = models
        """The model timeline (deploy live on it): priors of the run stage's choices; None: none."""
        self.history_window_ms = history_window_ms
        self.lateness_ms = lateness_ms
        self.dedupe_window_ms = dedupe_window_ms
        self.history_max = history_max
        self.finished_keep_ms = finished_keep_ms
        self.finished_max = finished_max

    # -- public ---------------------------------------------------------------------------------
    def on_event(
        self, customer_key: str, state: CustomerState | None, event: Event | CustomerEvent, now_ms: int
    ) -> Outcome:
        if type(event) is not Event:
            event = Event.of(event)  # type: ignore[arg-type]
        if state is not None and event.event_id in state.seen:
            return Outcome(state=state, next_wakeup_ms=self.next_wakeup_ms(state), duplicate=True)
        if state is None:
            state = CustomerState.new(customer_key)
        occurred = event.occurred_ms
        at = min(occurred, now_ms)
        run = Run(customer_key, state, self.policies, self.models)
        self._fire_due(run, at, inclusive=False)
        apply_event(
            state.profile,
            event,
            history_window_ms=self.history_window_ms,
            history_max=self.history_max,
            at_ms=occurred,
        )
        run.profile_changed()  # (timers that fired before the event may have made a view of the profile)
        state.clock_ms = max(state.clock_ms, at)
        if event.type == ERASE_EVENT:
            for inst in list(state.instances):
                run.finish(inst, "exited", "erased", at)
            left = [SegmentChange(sid, False, at) for sid in state.profile.segments]
            return Outcome(
                state=None,
                actions=run.actions,
                transitions=run.transitions,
                decisions=run.decisions,
                segments=[*run.segment_changes, *left],
            )
        view = event.view()
        self._to_instances(run, event.type, view, at)
        late = self.lateness_ms is not None and now_ms - occurred > self.lateness_ms
        if not late:
            self._entries(run, event.type, view, at)
        # memberships are the customer's state now: judged at its clock (an event older than the clock
        # must not drop the events after it from seen()/count()); a campaign's delivery window is judged
        # by the worker's clock (an event arriving late must not send a campaign past its window)
        self._segments(run, state.clock_ms, started=not late)
        self._campaigns(run, max(state.clock_ms, now_ms))
        self._remember(state, event.event_id, at)
        timing = "late" if late else "future" if occurred > now_ms else None
        if timing is not None:
            count = state.timing.get(timing)
            state.timing[timing] = [1, occurred] if count is None else [count[0] + 1, max(count[1], occurred)]
        outcome = self._outcome(state, run)
        outcome.timing = timing
        return outcome

    def on_wakeup(self, customer_key: str, state: CustomerState | None, now_ms: int) -> Outcome:
        """Fire every timer due at or before ``now_ms``; a timer that no longer matters does nothing."""
        if state is None:
            return Outcome(state=None)
        run = Run(customer_key, state, self.policies, self.models)
        self._fire_due(run, now_ms, inclusive=True)
        state.clock_ms = max(state.clock_ms, now_ms)
        self._campaigns(run, now_ms)
        return self._outcome(state, run)

    def on_merge(
        self,
        customer_key: str,
        canonical: CustomerState | None,
        other: CustomerState | None,
        at_ms: int,
    ) -> Outcome:
        """Fold ``other`` (the state of a key merged away) into ``canonical`` (of ``customer_key``).

        No journey step runs: instances that move keep their step and timer; an instance of a journey
        the canonical side also runs exits with reason ``merged``. Nothing is sent.
        """
        if canonical is None:
            canonical = CustomerState.new(customer_key)
        if other is None:
            return Outcome(state=canonical, next_wakeup_ms=self.next_wakeup_ms(canonical))
        merged = merge_states(
            canonical,
            other,
            at_ms,
            history_window_ms=self.history_window_ms,
            history_max=self.history_max,
        )
        self._let_go(merged.state)
        # memberships follow the merged profile (no journey step runs: nothing starts or ends on them)
        changes = recheck(Run(customer_key, merged.state, self.policies, self.models), self.segments, at_ms)
        return Outcome(
            state=merged.state,
            transitions=merged.transitions,
            next_wakeup_ms=self.next_wakeup_ms(merged.state),
            segments=changes,
        )

    # -- timers ---------------------------------------------------------------------------------
    def _fire_due(self, run: Run, until_ms: int, *, inclusive: bool) -> None:
        """Fire the customer's timers due before ``until_ms`` (or at it, ``inclusive``), each at its own
        time, in time order; at equal times: held sends released first, then the segment check, then
        campaign sends, then journey timers (by journey and entry), then a campaign release.

        A campaign **release** (:meth:`CampaignRegistry.releases`: an occurrence's release starts) after
        the customer's clock is one of its timers: the customer is looked at for the campaigns at that
        time, before anything later happens to it. The workers wake every member up at a release, but
        whether that wake-up comes before or after the customer's next event or timer, the customer is
        scheduled as of the release time: the same sends as simulate, whenever the worker gets there."""
        state = run.state
        delivery = self._delivery
        releases: list[int] = []
        if delivery is not None and state.clock_ms > 0:  # (a new customer has nothing to catch up on)
            end = until_ms if inclusive else until_ms - 1
            releases = self.campaigns.release_times(state.clock_ms, end) if self.campaigns else []
        next_release = 0
        while True:
            soonest: tuple[int, int, Any] | None = None
            for h in state.held:
                if h.release_ms is not None and (soonest is None or (h.release_ms, 0) < soonest[:2]):
                    soonest = (h.release_ms, 0, None)
            if state.segment_due_ms is not None and (
                soonest is None or (state.segment_due_ms, 1) < soonest[:2]
            ):
                soonest = (state.segment_due_ms, 1, None)
            if delivery is None and state.campaigns:
                _drop_campaigns(state.campaigns)  # (no campaigns here: nothing may stay due)
            send = delivery.next_due(state.campaigns) if delivery is not None else None
            if send is not None and (soonest is None or (send[0], 2) < soonest[:2]):
                soonest = (send[0], 2, send[1])
            for i in state.instances:
                if i.due_ms is not None and (
                    soonest is None or (i.due_ms, 3, i.journey, i.entry_seq) < (*soonest[:2], *_rest(soonest))
                ):
                    soonest = (i.due_ms, 3, i)
            if next_release < len(releases) and (soonest is None or releases[next_release] < soonest[0]):
                soonest = (releases[next_release], 4, None)
            if soonest is None or not (soonest[0] <= until_ms if inclusive else soonest[0] < until_ms):
                return
            at, kind, what = soonest
            if kind == 0:
                run.gate.release_next(until_ms, inclusive=inclusive)
            elif kind == 1:
                changes = len(run.segment_changes)
                self._segments(run, at, started=True, time_only=True)  # (a counted event left its window)
                if len(run.segment_changes) != changes:
                    self._campaigns(run, at)  # (an audience entered or left at that time, not later)
            elif kind == 4:
                next_release += 1
                self._campaigns(run, at)  # (a release: looked at for the campaigns as of its time)
            elif kind == 2:
                assert delivery is not None
                delivery.fire(run, what)  # (this customer's send time of a campaign)
            else:
                journey = self._resolve(run, what, at)
                if journey is not None:
                    run.fire(what, journey)

    def _resolve(self, run: Run, inst: Instance, at_ms: int) -> JourneyDefinition | None:
        """The definition ``inst`` runs on at ``at_ms``; ends it (and returns None) when archived or gone."""
        current = self.registry.current(inst.journey, at_ms)
        if current is None or current.status == "archived":
            run.finish(inst, "exited", "archived", at_ms)
            return None
        if current.version != inst.version and current.migrate:
            step = current.steps.get(inst.step)
            old = self.registry.version(inst.journey, inst.version)
            old_step = old.steps.get(inst.step) if old else None
            if step is None or (old_step is not None and step.kind != old_step.kind):
                run.finish(inst, "exited", f"migration_no_step_{inst.step}", at_ms)
                return None
            if (
                isinstance(step, WaitStep)
                and isinstance(old_step, WaitStep)
                and step.mode in ("event", "condition")
                and old_step.mode == step.mode
                and inst.due_ms is not None
                and not inst.held
            ):
                # the wait began at due - timeout: with the new version's timeout, from that same start
                # (else an event in the wait would be judged as from before it began)
                inst.due_ms += step.timeout_ms - old_step.timeout_ms
            inst.version = current.version
            return current
        journey = (
            current if current.version == inst.version else self.registry.version(inst.journey, inst.version)
        )
        if journey is None:
            run.finish(inst, "exited", "version_missing", at_ms)
        return journey

    # -- the event on journeys ------------------------------------------------------------------
    def _to_instances(self, run: Run, event_type: str, view: dict[str, Any], at: int) -> None:
        for inst in list(run.state.instances):
            if inst not in run.state.instances:
                continue
            journey = self._resolve(run, inst, at)
            if journey is None:
                continue
            if event_type not in journey.event_types and not journey.condition_rules:
                continue
            if inst.key is not None and journey.entry.key is not None:
                key = _key_of(run, journey, view, at)
                if key is not None and key != inst.key:
                    continue  # another key's event (another appointment): not for this instance
            if self._ends(run, inst, journey, event_type, view, at):
                continue
            if inst.held:
                continue
            step = journey.steps.get(inst.step)
            if not isinstance(step, WaitStep):
                continue
            if (
                step.mode == "event"
                and event_type in step.event_types
                and run.wait_matches(inst, journey, step, view, at)
            ) or (step.mode == "condition" and run.test(step.condition, view, at, inst, journey)):
                run.move(inst, journey, step.next, view, at)
            elif step.mode == "until":
                run.retime(inst, journey, step, view, at)

    def _ends(
        self,
        run: Run,
        inst: Instance,
        journey: JourneyDefinition,
        event_type: str,
        view: dict[str, Any],
        at: int,
    ) -> bool:
        for goal in journey.goals:
            if goal.segment is not None and view["properties"].get("segment") != goal.segment:
                continue
            if (not goal.events or event_type in goal.events) and run.test(
                goal.condition, view, at, inst, journey
            ):
                run.finish(inst, "goal", goal.name, at)
                return True
        for rule in journey.exits:
            if rule.segment is not None and view["properties"].get("segment") != rule.segment:
                continue
            if (not rule.events or event_type in rule.events) and run.test(
                rule.condition, view, at, inst, journey
            ):
                run.finish(inst, "exited", rule.name, at)
                return True
        return False

    def _entries(self, run: Run, event_type: str, view: dict[str, Any], at: int) -> None:
        by_event = self.registry.entry_candidates(event_type, view)
        by_condition = self.registry.condition_entries()
        candidates = by_event if not by_condition else tuple(dict.fromkeys((*by_event, *by_condition)))
        state = run.state
        for jid in candidates:
            journey = self.registry.current(jid, at)
            if journey is None or journey.status != "active":
                continue
            entry = journey.entry
            if entry.becomes_true is not None:
                if entry.events and event_type not in entry.events:
                    continue
                now_true = run.test(entry.becomes_true, view, at, None, journey)
                was_true = state.conditions.pop(jid, False)
                if now_true:
                    state.conditions[jid] = True
                if not now_true or was_true:
                    continue
                reason = "condition"
            elif entry.segment is not None:
                if view["properties"].get("segment") != entry.segment or not run.test(
                    entry.condition, view, at, None, journey
                ):
                    continue
                reason = f"segment {entry.segment}"
            elif event_type in entry.events and run.test(entry.condition, view, at, None, journey):
                reason = event_type
            else:
                continue
            key = None
            if entry.key is not None:
                key = _key_of(run, journey, view, at)
                if key is None:
                    continue  # (a keyed journey is entered only on events that carry a key)
            if self._may_enter(state, journey, at, key):
                run.enter(journey, view, at, reason, key)

    @staticmethod
    def _may_enter(state: CustomerState, journey: JourneyDefinition, at: int, key: str | None = None) -> bool:
        rule = journey.re_entry
        if key is None:
            count, last = state.entries.get(journey.id, (0, 0))
            running = state.active(journey.id)
        else:
            count, last = state.entries.get(keyed_entry(journey.id, key), (0, 0))
            mine = [i for i in state.instances if i.journey == journey.id]
            running = sum(1 for i in mine if i.key == key)
            if not running and len({i.key for i in mine}) >= journey.entry.max_keys:
                return False  # as many keys open as allowed
        if count:
            if rule.policy == "never":
                return False
            if rule.policy == "cooldown" and at - last < rule.cooldown_ms:
                return False
        return running < rule.max_concurrent

    # -- segments -------------------------------------------------------------------------------
    def _segments(self, run: Run, at: int, *, started: bool, time_only: bool = False) -> None:
        """Check the customer's memberships at ``at``; each change reaches the journeys as an event of
        the engine's (``orchestrator.segment.entered`` / ``.left``): goals, exit rules and waits of the
        running instances, then (``started``: not for a late event) the journeys entered on it."""
        changes = recheck(run, self.segments, at, time_only=time_only)
        if not changes:
            return
        run.segment_changes += changes
        for change in changes:
            view = segment_event_view(change)
            kind = view["type"]
            self._to_instances(run, kind, view, at)
            if change.entered and started:
                self._entries(run, kind, view, at)

    # -- campaigns ------------------------------------------------------------------------------
    def _campaigns(self, run: Run, at: int) -> None:
        """Schedule the customer for the campaigns' open occurrences; send those due by ``at``."""
        delivery = self._delivery
        if delivery is None:
            return
        while True:  # (a recurrence's next occurrence waits for the one still due: fire, then look again)
            before = [list(e) for e in run.state.campaigns.values()]
            delivery.schedule(run, at)
            send = delivery.next_due(run.state.campaigns)
            if send is not None and send[0] <= at:
                delivery.fire(run, send[1])
            elif before == list(run.state.campaigns.values()):
                return

    def _campaign_entry(self, run: Run, journey_id: str, view: dict[str, Any], at: int, reason: str) -> bool:
        """A campaign enters the customer into a journey (active at ``at``, its re-entry rules)."""
        journey = self.registry.current(journey_id, at)
        if journey is None or journey.status != "active" or not self._may_enter(run.state, journey, at):
            return False
        run.enter(journey, view, at, reason)
        return True

    def _remember(self, state: CustomerState, event_id: str, at: int) -> None:
        seen = state.seen
        seen[event_id] = at
        # Relative to event time, not to the state's clock: a wake-up can move the clock far ahead
        # (a worker catching up fires timers at the wall clock), and a duplicate delivered after
        # that must still be recognised.
        horizon = at - self.dedupe_window_ms
        stale = []
        for key, when in seen.items():
            if when >= horizon:
                break
            stale.append(key)
        for key in stale:
            del seen[key]

    def _outcome(self, state: CustomerState, run: Run) -> Outcome:
        """What one call made: the state, the run's actions, transitions and decisions, the next
        wake-up: the earliest of its timers and, for a member of a campaign's audience, the campaign's
        next release after its clock (so that a member is looked at as of the release even when its
        events came after the worker's release of its partition, which then did not see it a member)."""
        self._let_go(state)
        out = _outcome(state, run)
        out.next_wakeup_ms = self.next_wakeup_ms(state)
        return out

    def next_wakeup_ms(self, state: CustomerState) -> int | None:
        """When the customer must be woken up next: its earliest timer, or, for a member of a campaign's
        audience, the campaign's next release after its clock, if sooner."""
        wake = state.next_wakeup_ms()
        campaigns = self.campaigns
        if campaigns is not None and state.profile.segments:
            release = campaigns.next_release_for(state.profile.segments, state.clock_ms)
            if release is not None and (wake is None or release < wake):
                return release
        return wake

    def _let_go(self, state: CustomerState) -> None:
        """Finished instances past ``finished_keep_ms`` or ``finished_max`` are let go. The time is
        counted back from the customer's latest activity (its last event, or the last end), not from
        its clock: a worker catching up on recorded events moves clocks to the wall clock at once, and
        the story of those events must still be there to inspect."""
        finished = state.finished
        if finished:
            latest = max(state.profile.last_seen_ms or 0, max(f.finished_ms for f in finished))
            horizon = latest - self.finished_keep_ms
            keep = [f for f in finished if f.finished_ms >= horizon]
            keep = keep[max(0, len(keep) - self.finished_max) :] if self.finished_max > 0 else []
            if len(keep) != len(finished):
                state.finished = keep


def _drop_campaigns(campaigns: dict[str, list[Any]]) -> None:
    """Campaign sends still due in a state this logic cannot deliver (no campaign timeline): cancelled."""
    for entry in campaigns.values():
        if entry[2] == "due":
            entry[1], entry[2] = 0, "cancelled"


def _rest(soonest: tuple[int, int, Any]) -> tuple[str, int]:
    """The tie-breakers of an instance timer (journey, entry), for comparing with another one."""
    what = soonest[2]
    return (what.journey, what.entry_seq) if isinstance(what, Instance) else ("", 0)


def _key_of(run: Run, journey: JourneyDefinition, view: dict[str, Any], at: int) -> str | None:
    """The key an event gives for a keyed journey (its ``entry.key`` over the event), or None when it
    gives none (the field is missing, empty or null)."""
    key = journey.entry.key
    assert key is not None
    ok, value = run.value(key, view, at, None, journey)  # type: ignore[arg-type]
    if not ok or value is None or value == "":
        return None
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _outcome(state: CustomerState, run: Run) -> Outcome:
    return Outcome(
        state=state,
        actions=run.actions,
        transitions=run.transitions,
        next_wakeup_ms=state.next_wakeup_ms(),
        decisions=run.decisions,
        segments=run.segment_changes,
        campaigns=run.campaign_events,
    )
