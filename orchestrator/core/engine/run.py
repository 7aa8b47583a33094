"""The step machine: moves one customer's journey instances through their steps at a logical time.

A :class:`Run` lives for one engine call (one event or one wake-up of one customer). It owns the
outputs of that call (actions, transitions, policy decisions) and the CEL activation, built once per
logical time and per event, not once per condition. Conditions that fail at run time (a missing key, a wrong
type) count as false: one customer's odd data must not stop the stream.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.contracts.actions import ChannelAction
from orchestrator.contracts.decision import Decision
from orchestrator.core.cel.values import Timestamp, parse_timestamp
from orchestrator.core.engine.choices import dispatch
from orchestrator.core.engine.clock import next_local_time
from orchestrator.core.engine.ids import action_id, split_bucket
from orchestrator.core.engine.records import Transition, TransitionKind
from orchestrator.core.engine.state import CustomerState, FinishedInstance, Instance, PendingSend
from orchestrator.core.journey.model import (
    BranchStep,
    Condition,
    ExitStep,
    JourneyDefinition,
    SendStep,
    SplitStep,
    UpdateStep,
    WaitStep,
)
from orchestrator.core.learning.registry import ModelRegistry
from orchestrator.core.learning.splits import adaptive_branch
from orchestrator.core.policy.gate import PolicyGate
from orchestrator.core.policy.model import Policy
from orchestrator.core.policy.registry import PolicyRegistry
from orchestrator.core.policy.subscriptions import subscriptions_view
from orchestrator.exceptions import ConditionError

__all__ = ["MAX_STEPS_PER_MOVE", "Run", "to_json_value"]

MAX_STEPS_PER_MOVE = 200
"""Safety net: an instance taking more steps than this without waiting exits with ``loop_limit``."""


def to_json_value(value: Any) -> Any:
    """A CEL result as a JSON-compatible value (unknown types become their text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _epoch_ms(value: Any) -> int | None:
    """A time from data as epoch ms: a CEL timestamp, an aware datetime, ISO 8601 text, or epoch ms."""
    if isinstance(value, Timestamp):
        return value.ns // 1_000_000
    if isinstance(value, datetime):
        return Timestamp.from_datetime(value).ns // 1_000_000
    if isinstance(value, str):
        try:
            return parse_timestamp(value).ns // 1_000_000
        except ConditionError:
            return None
    if type(value) is int:
        return value
    return None


KEYS_REMEMBERED = 100
"""Per keyed journey, the keys whose entries a customer's state remembers (for ``re_entry``)."""


def keyed_entry(journey_id: str, key: str) -> str:
    """The name a keyed journey's entries are counted under in ``CustomerState.entries``."""
    return f"{journey_id}#{key}"


class Run:
    """One engine call for one customer."""

    def __init__(
        self,
        customer_key: str,
        state: CustomerState,
        policies: PolicyRegistry | None = None,
        models: ModelRegistry | None = None,
    ) -> None:
        self.customer_key = customer_key
        self.state = state
        self.actions: list[ChannelAction] = []
        self.transitions: list[Transition] = []
        self.decisions: list[Decision] = []
        self.segment_changes: list[Any] = []
        self.campaign_events: list[tuple[str, int, str]] = []
        """(campaign, occurrence, what happened: scheduled, sent, unsent_<reason>, late, left, entered,
        not_entered, cancelled) in this call."""
        """The segment entries and exits of this call (:class:`~orchestrator.core.segment.SegmentChange`)."""
        self.policies = policies
        self.models = models
        """The model timeline (``channel: auto``, ``send_time: optimal``, adaptive splits); None: none."""
        self._gate: PolicyGate | None = None
        self._profile_view: dict[str, Any] | None = None
        self._profile_lite: dict[str, Any] | None = None
        self._subscriptions: tuple[Policy | None, dict[str, bool]] | None = None
        self._shared: dict[str, Any] | None = None

    @property
    def gate(self) -> PolicyGate:
        """The policy's gate for this call (made at the first send: most calls send nothing)."""
        gate = self._gate
        if gate is None:
            gate = self._gate = PolicyGate(
                self.policies, self.customer_key, self.state, self.actions, self.decisions
            )
        return gate

    # -- conditions -------------------------------------------------------------------------------
    def profile_changed(self) -> None:
        self._profile_view = None
        self._profile_lite = None
        self._subscriptions = None
        self._shared = None

    def _profile(self, fields: frozenset[str] | None, at_ms: int) -> dict[str, Any]:
        """The profile's view; without its engagement summary when ``fields`` says it is not read, with
        ``subscriptions`` (under the policy in effect at ``at_ms``) when they may be read."""
        if fields is not None and "engagement" not in fields:
            view = self._profile_view
            if view is None:
                view = self._profile_lite
                if view is None:
                    view = self._profile_lite = self.state.profile.cel_view(engagement=False)
        else:
            view = self._profile_view
            if view is None:
                view = self._profile_view = self.state.profile.cel_view()
        if fields is None or "subscriptions" in fields:
            subscriptions = self._subscriptions_at(at_ms)
            if view.get("subscriptions") is not subscriptions:
                view["subscriptions"] = subscriptions
        return view

    def _subscriptions_at(self, at_ms: int) -> dict[str, bool]:
        """``profile.subscriptions`` under the policy in effect at ``at_ms`` (kept while that policy
        and the profile stay the same: the timers of one call may span a policy change)."""
        policy = self.policies.current(at_ms) if self.policies is not None else None
        kept = self._subscriptions
        if kept is not None and kept[0] is policy:
            return kept[1]
        view = subscriptions_view(self.state.profile, policy)
        self._subscriptions = (policy, view)
        return view

    def state_activation(
        self, at_ms: int, fields: frozenset[str] | None = None, records: bool = True
    ) -> dict[str, Any]:
        """The variables of a condition about the customer alone (a segment's) at ``at_ms``, no event:
        the profile's view (``fields``: those read; None: any) and its stored history rows for
        seen()/count(), plus the history's records when ``records`` (a condition reads them)."""
        profile = self.state.profile
        act = {"event": {}, "now_ms": at_ms, "profile": self._profile(fields, at_ms)}
        act["history_rows"] = profile.history_rows
        if records:
            act["history"] = profile.history
        return act

    def activation(
        self,
        event: dict[str, Any],
        at_ms: int,
        inst: Instance | None,
        journey: JourneyDefinition,
        referenced: frozenset[str] | None = None,
        fields: frozenset[str] | None = None,
    ) -> dict[str, Any]:
        """The variables of a condition; ``referenced``: only those it uses (the profile's view, its
        history records and the journey's are made only when asked for); ``fields``: the profile's
        fields it reads (None: any)."""
        if referenced is not None and "journey" not in referenced:
            # the same for every condition of this event at this time: made once, grown as needed
            act = self._shared
            if act is None or act["event"] is not event or act["now_ms"] != at_ms:
                act = self._shared = {"event": event, "now_ms": at_ms}
            if "profile" in referenced:
                act["profile"] = self._profile(fields, at_ms)
            if "history" in referenced:
                act["history"] = self.state.profile.history
            return act
        act = {"event": event, "now_ms": at_ms}
        if referenced is None or "profile" in referenced:
            act["profile"] = self._profile(fields, at_ms)
        if referenced is None or "history" in referenced:
            act["history"] = self.state.profile.history
        if referenced is None or "journey" in referenced:
            act["journey"] = {
                "id": journey.id,
                "version": journey.version,
                "entry_seq": inst.entry_seq if inst else 0,
                "entered_at_ms": inst.entered_ms if inst else at_ms,
                "step": inst.step if inst else "",
                "splits": inst.splits if inst else {},
                "visits": inst.visits if inst else {},
                "entry_event": inst.entry_event if inst else event,
                "key": (inst.key or "") if inst else "",
            }
        return act

    def test(
        self,
        cond: Condition | None,
        event: dict[str, Any],
        at_ms: int,
        inst: Instance | None,
        journey: JourneyDefinition,
    ) -> bool:
        """True when ``cond`` is absent or holds; a run-time error counts as false."""
        if cond is None:
            return True
        compiled = cond.compiled
        try:
            act = self.activation(
                event, at_ms, inst, journey, compiled.referenced, compiled.fields_read("profile")
            )
            return compiled.test(act)
        except ConditionError:
            return False

    def value(
        self, cond: Condition, event: dict[str, Any], at_ms: int, inst: Instance, journey: JourneyDefinition
    ) -> tuple[bool, Any]:
        compiled = cond.compiled
        try:
            act = self.activation(
                event, at_ms, inst, journey, compiled.referenced, compiled.fields_read("profile")
            )
            return True, to_json_value(compiled.evaluate(act))
        except ConditionError:
            return False, None

    # -- records --------------------------------------------------------------------------------
    def record(
        self,
        kind: TransitionKind,
        inst: Instance,
        at_ms: int,
        *,
        step: str | None = None,
        branch: str | None = None,
        reason: str | None = None,
        splits: dict[str, str] | None = None,
        from_step: str | None = None,
    ) -> None:
        self.transitions.append(
            Transition(
                kind=kind,
                journey_id=inst.journey,
                version=inst.version,
                step_id=step,
                branch=branch,
                reason=reason,
                at_ms=at_ms,
                entry_seq=inst.entry_seq,
                splits=dict(splits) if splits else {},
                from_step=from_step,
            )
        )

    def finish(self, inst: Instance, kind: TransitionKind, reason: str, at_ms: int) -> None:
        """End ``inst`` (goal or exited) and drop it from the state."""
        self.record(kind, inst, at_ms, step=inst.step, reason=reason, splits=inst.splits)
        inst.due_ms = None
        if inst in self.state.instances:
            self.state.instances.remove(inst)
            self.state.finished.append(FinishedInstance.of(inst, kind, reason, at_ms))

    # -- moving ---------------------------------------------------------------------------------
    def enter(
        self,
        journey: JourneyDefinition,
        event: dict[str, Any],
        at_ms: int,
        reason: str,
        key: str | None = None,
    ) -> Instance:
        counts = self.state.entries.get(journey.id, [0, 0])
        inst = Instance(
            journey=journey.id,
            version=journey.version,
            entry_seq=counts[0] + 1,
            step=journey.start,
            entered_ms=at_ms,
            entry_event=event,
            key=key,
        )
        self.state.entries[journey.id] = [inst.entry_seq, at_ms]
        if key is not None:
            self._entered_key(journey.id, key, at_ms)
        self.state.instances.append(inst)
        self.record("entered", inst, at_ms, reason=reason)
        self.move(inst, journey, journey.start, event, at_ms)
        return inst

    def move(
        self,
        inst: Instance,
        journey: JourneyDefinition,
        step_id: str | None,
        event: dict[str, Any],
        at_ms: int,
        end_reason: str = "completed",
    ) -> None:
        """Run steps from ``step_id`` until the instance waits or leaves."""
        inst.due_ms = None
        came_from = inst.step if inst.visits else None  # (no visit yet: straight from the entry)
        for _ in range(MAX_STEPS_PER_MOVE):
            if step_id is None:
                self.finish(inst, "exited", end_reason, at_ms)
                return
            step = journey.steps[step_id]
            from_step, came_from = came_from, step_id
            inst.step = step_id
            visit = inst.visits.get(step_id, 0) + 1
            inst.visits[step_id] = visit
            if isinstance(step, WaitStep):
                self.record("step", inst, at_ms, from_step=from_step, step=step_id)
                if step.mode == "condition" and self.test(step.condition, event, at_ms, inst, journey):
                    step_id = step.next  # holds already: no wait
                    continue
                if step.mode == "until":
                    due = self.until_ms(step, inst, journey, event, at_ms)
                    if due is None:
                        self.finish(inst, "exited", "wait_time_unknown", at_ms)
                        return
                    if due > at_ms:
                        inst.due_ms = due
                        return
                    if step.if_past == "exit":
                        self.finish(inst, "exited", "wait_time_past", at_ms)
                        return
                    step_id = step.next  # the time is past already: no wait
                    continue
                if self._start_wait(inst, step, at_ms, journey):
                    return
                step_id = step.next
            elif isinstance(step, SendStep):
                unsent = self._send(inst, journey, step, visit, event, at_ms)
                self.record("step", inst, at_ms, from_step=from_step, step=step_id, reason=unsent)
                if unsent is not None and step.on_unsent == "exit":
                    self.finish(inst, "exited", f"unsent_{unsent}", at_ms)
                    return
                step_id = step.next
            elif isinstance(step, BranchStep):
                self.record("step", inst, at_ms, from_step=from_step, step=step_id)
                step_id = next(
                    (nxt for cond, nxt in step.branches if self.test(cond, event, at_ms, inst, journey)),
                    step.default,
                )
            elif isinstance(step, SplitStep):
                self.record("step", inst, at_ms, from_step=from_step, step=step_id)
                branch = self._pick(step, inst, at_ms)
                inst.splits[step_id] = branch.name
                self.record("split", inst, at_ms, step=step_id, branch=branch.name)
                if branch.next is None:
                    inst.held = True
                    inst.due_ms = at_ms + journey.holdout_window_ms
                    return
                step_id = branch.next
            elif isinstance(step, UpdateStep):
                self.record("step", inst, at_ms, from_step=from_step, step=step_id)
                self._update(inst, journey, step, event, at_ms)
                step_id = step.next
            else:
                assert isinstance(step, ExitStep)
                self.record("step", inst, at_ms, from_step=from_step, step=step_id)
                self.finish(inst, "exited", step.reason, at_ms)
                return
            end_reason = "completed"
        self.finish(inst, "exited", "loop_limit", at_ms)

    def _zone(self, step: WaitStep, journey: JourneyDefinition) -> str:
        """The zone of a local-time wait: the wait's own, else the customer's when known, else the
        journey's ``default_timezone``, else UTC."""
        profile = self.state.profile
        if step.timezone:
            return step.timezone
        if profile.timezone_known or not journey.default_timezone:
            return profile.timezone
        return journey.default_timezone

    def _start_wait(self, inst: Instance, step: WaitStep, at_ms: int, journey: JourneyDefinition) -> bool:
        """Park ``inst`` on ``step``; False when the wait is already over (go on at once)."""
        if step.mode == "duration":
            due = at_ms + step.duration_ms
        elif step.mode == "time_of_day":
            hour, minute = step.time_of_day
            due = next_local_time(at_ms, self._zone(step, journey), hour, minute, step.weekdays)
            if due <= at_ms:
                return False
        else:
            due = at_ms + step.timeout_ms
        inst.due_ms = due
        return True

    def until_ms(
        self, step: WaitStep, inst: Instance, journey: JourneyDefinition, event: dict[str, Any], at_ms: int
    ) -> int | None:
        """The time an ``until`` wait ends (its expression plus the offset), or None when the data gives
        none (a missing field, not a time)."""
        cond = step.until
        assert cond is not None
        compiled = cond.compiled
        try:
            act = self.activation(
                event, at_ms, inst, journey, compiled.referenced, compiled.fields_read("profile")
            )
            value = compiled.evaluate(act)
        except ConditionError:
            return None
        found = _epoch_ms(value)
        return None if found is None else found + step.offset_ms

    def retime(
        self, inst: Instance, journey: JourneyDefinition, step: WaitStep, event: dict[str, Any], at_ms: int
    ) -> None:
        """An event while ``inst`` waits for a time from data: the data may have moved the time."""
        due = self.until_ms(step, inst, journey, event, at_ms)
        if due is None or due == inst.due_ms:
            return  # (data that no longer gives a time keeps the time it gave)
        if due > at_ms:
            inst.due_ms = due
        elif step.if_past == "exit":
            self.finish(inst, "exited", "wait_time_past", at_ms)
        else:
            self.move(inst, journey, step.next, event, at_ms)

    def _entered_key(self, journey_id: str, key: str, at_ms: int) -> None:
        """Count the entry under its key (re-entry rules per key); the oldest keys are let go past
        :data:`KEYS_REMEMBERED` per journey."""
        entries = self.state.entries
        name = keyed_entry(journey_id, key)
        count = entries.pop(name, [0, 0])[0]
        entries[name] = [count + 1, at_ms]  # (re-inserted: the dict keeps the most recent last)
        prefix = keyed_entry(journey_id, "")
        mine = [k for k in entries if k.startswith(prefix)]
        for old in mine[: max(0, len(mine) - KEYS_REMEMBERED)]:
            del entries[old]

    def _pick(self, step: SplitStep, inst: Instance, at_ms: int) -> Any:
        bucket = split_bucket(self.customer_key, inst.journey, step.id, step.salt)
        if step.adaptive:
            model = self.models.current(at_ms) if self.models is not None else None
            stats = model.branch_stats(inst.journey, step.id) if model is not None else {}
            seed = "\x1f".join((self.customer_key, inst.journey, step.id, str(inst.entry_seq)))
            return adaptive_branch(step.branches, bucket, stats, seed)[0]
        edge = 0
        for branch in step.branches:
            edge += branch.basis_points
            if bucket < edge:
                return branch
        return step.branches[-1]

    def _update(
        self, inst: Instance, journey: JourneyDefinition, step: UpdateStep, event: dict[str, Any], at_ms: int
    ) -> None:
        attrs = self.state.profile.attributes
        for name, expr in step.assignments:
            ok, value = self.value(expr, event, at_ms, inst, journey)
            if not ok:
                continue
            if value is None:
                attrs.pop(name, None)
            else:
                attrs[name] = value
        self.profile_changed()

    def _send(
        self,
        inst: Instance,
        journey: JourneyDefinition,
        step: SendStep,
        visit: int,
        event: dict[str, Any],
        at_ms: int,
    ) -> str | None:
        """Make the send of a step and pass it to the policy; returns why it did not go out, or None.

        The policy (:mod:`orchestrator.core.policy.gate`) emits the action, holds it for quiet hours,
        moves it to a fallback channel or suppresses it, and records a decision in every case.
        """
        aid = action_id(
            self.customer_key, journey.id, journey.version, inst.entry_seq, step.id, visit, inst.key
        )
        personalization: dict[str, Any] = {}
        for name, expr in step.personalization:
            ok, value = self.value(expr, event, at_ms, inst, journey)
            if ok:
                personalization[name] = value
        send = PendingSend(
            action_id=aid,
            channel=step.channel,
            category=step.category,
            journey_id=journey.id,
            journey_version=journey.version,
            entry_seq=inst.entry_seq,
            step_id=step.id,
            template_id=step.template,
            campaign=step.campaign or journey.id,
            personalization=personalization,
            created_ms=at_ms,
            subscription_group=step.subscription_group,
        )
        final_id, skipped = dispatch(self, send, step, at_ms, journey.default_timezone)
        inst.sends[step.id] = final_id
        return skipped

    def fire(self, inst: Instance, journey: JourneyDefinition) -> None:
        """The instance's timer is due: end the wait (or the holdout window) at its due time."""
        at_ms = inst.due_ms
        assert at_ms is not None
        inst.due_ms = None
        if inst.held:
            self.finish(inst, "exited", "holdout_window", at_ms)
            return
        step = journey.steps.get(inst.step)
        if not isinstance(step, WaitStep):
            self.finish(inst, "exited", "step_missing", at_ms)
            return
        if step.mode in ("event", "condition"):
            self.move(inst, journey, step.timeout_next, inst.entry_event, at_ms, end_reason="timeout")
        else:
            self.move(inst, journey, step.next, inst.entry_event, at_ms)

    def wait_matches(
        self, inst: Instance, journey: JourneyDefinition, step: WaitStep, event: dict[str, Any], at_ms: int
    ) -> bool:
        """Does ``event`` end ``inst``'s wait-for-event ``step``?"""
        if inst.due_ms is not None and at_ms < inst.due_ms - step.timeout_ms:
            return False  # happened before the wait began (a late event)
        if step.of_step is not None:
            sent = inst.sends.get(step.of_step)
            if sent is None:
                return False
            if event.get("action_id"):
                if event["action_id"] != sent:
                    return False
            else:
                send = journey.steps.get(step.of_step)
                campaign = (send.campaign or journey.id) if isinstance(send, SendStep) else None
                if not event.get("campaign") or event["campaign"] != campaign:
                    return False
        return self.test(step.condition, event, at_ms, inst, journey)
