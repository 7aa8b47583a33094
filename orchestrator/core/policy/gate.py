"""The policy's decision logic: every send a journey makes passes here before it leaves the core.

:func:`evaluate` is the pure verdict on one send (policy, profile, send log, time in; a
:class:`Verdict` out). :class:`PolicyGate` applies verdicts to one customer's state during one engine
call: it emits the action, records the :class:`~orchestrator.contracts.decision.Decision`, counts the
send for the caps, or stores the send as held until quiet hours end.

Order of the rules for one send on channel C (docs/policy.md):

1. **address and consent**, on C then on each fallback channel of C in order: the first channel with an
   address and consent for the send's category is chosen. None: ``suppressed`` (the reason of C:
   ``no_address`` or ``no_consent``). A marketing send never goes out without marketing consent.
   A send that names a **subscription group** tries C only (the group belongs to one channel), and
   the customer must be in the group (:func:`~orchestrator.core.policy.subscriptions.is_subscribed`):
   else ``suppressed`` (``not_subscribed``; a group the policy does not define on C:
   ``unknown_subscription_group``).
2. **transactional** sends stop here: sent (``transactional``), never capped, held or engagement-suppressed.
3. **engagement suppression**: a rule for the chosen channel whose engagement happened within its
   window (of the same campaign, by default): ``suppressed`` (``engaged``).
4. **frequency caps**: a cap covering the chosen channel already reached in its rolling window:
   ``suppressed`` (``frequency_cap``). Only marketing sends count, on all journeys.
5. **quiet hours** in the customer's time zone on the chosen channel: ``held`` until they end (then
   every rule is checked again) or ``dropped``.
6. otherwise ``sent`` (or ``redirected`` when the chosen channel is a fallback).

A send whose step says ``send_time: optimal`` is judged once when made (a suppression ends it then)
and, unless the chosen moment is now, ``held`` (reason ``send_time``) until that moment, when every
rule is checked again, quiet hours included (:meth:`PolicyGate.schedule`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.contracts.actions import ChannelAction, make_action_id, trusted_model
from orchestrator.contracts.decision import Decision, DecisionKind, make_decision_id
from orchestrator.core.engine.clock import next_local_time, utc_from_ms, zone
from orchestrator.core.engine.state import CustomerState, PendingSend
from orchestrator.core.journey.durations import format_duration
from orchestrator.core.policy.model import Policy
from orchestrator.core.policy.registry import PolicyRegistry
from orchestrator.core.policy.subscriptions import is_subscribed
from orchestrator.core.profile import Profile

__all__ = ["SENT_LOG_MAX", "PolicyGate", "Verdict", "evaluate", "redirected_action_id"]

SENT_LOG_MAX = 1000
"""Hard bound of the per-customer send log (caps never need more than their ``max`` per window)."""


def redirected_action_id(action_id: str, channel: str) -> str:
    """The deterministic id of a send moved to a fallback channel."""
    return make_action_id(action_id, "redirect", channel)


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: DecisionKind
    reason: str
    channel: str
    """The chosen channel (or, when none could be used, the one the journey asked for)."""
    rule: str | None = None
    detail: str = ""
    release_ms: int | None = None


def _choose(
    policy: Policy | None, profile: Profile, send: PendingSend, fallback: bool = True
) -> tuple[str | None, list[str]]:
    """The first usable channel and, for each refused one, ``"<channel>: <reason>"``."""
    refused: list[str] = []
    grouped = send.subscription_group is not None  # a group has one channel: no fallback
    channels = (
        policy.channels_to_try(send.channel) if policy and fallback and not grouped else (send.channel,)
    )
    for ch in channels:
        if not profile.addresses.get(ch):
            refused.append(f"{ch}: no_address")
        elif policy is not None and not profile.has_consent(ch, send.category):
            refused.append(f"{ch}: no_consent")
        else:
            return ch, refused
    return None, refused


def _outside_group(policy: Policy, profile: Profile, send: PendingSend, channel: str) -> Verdict | None:
    """The verdict on a send naming a subscription group whose customer is not in it (None: in it)."""
    gid = send.subscription_group
    if gid is None:
        return None
    group = policy.subscription_groups.get(gid)
    if group is None or group.channel != channel:
        where = f"a group of {group.channel}, not {channel}" if group else "not defined"
        detail = f"subscription group {gid} is {where} in policy {policy.key}"
        return Verdict("suppressed", "unknown_subscription_group", channel, detail=detail)
    if is_subscribed(profile, group, send.category):
        return None
    choice = profile.subscription_choice(gid)
    why = "unsubscribed" if choice is False else "an opt_in group, never subscribed"
    detail = f"not in subscription group {gid} ({channel}): {why}"
    return Verdict("suppressed", "not_subscribed", channel, rule=gid, detail=detail)


def _local_minute(at_ms: int, tz_name: str) -> int:
    tz = zone(tz_name)
    local = utc_from_ms(at_ms).astimezone(tz)
    return local.hour * 60 + local.minute


def evaluate(
    policy: Policy | None,
    profile: Profile,
    sent_log: list[tuple[int, str]],
    send: PendingSend,
    at_ms: int,
    *,
    released: bool = False,
    fallback: bool = True,
) -> Verdict:
    """The verdict on ``send`` at ``at_ms`` (pure; nothing is changed). ``fallback=False``: the send's
    own channel only (what ``channel: auto`` asks of each channel it may choose)."""
    chosen, refused = _choose(policy, profile, send, fallback)
    first_refusal = refused[0].split(": ", 1)[1] if refused else ""
    if chosen is None:
        return Verdict("suppressed", first_refusal, send.channel, detail="; ".join(refused))
    moved = chosen != send.channel
    moved_note = f"{'; '.join(refused)}; sent by {chosen} instead" if moved else ""
    if policy is None:
        return Verdict("sent", "released" if released else "no_policy", chosen)
    outside = _outside_group(policy, profile, send, chosen)
    if outside is not None:
        return outside
    if send.category == "transactional":
        kind: DecisionKind = "redirected" if moved else "sent"
        return Verdict(kind, first_refusal if moved else "transactional", chosen, detail=moved_note)
    for rule in policy.engagement:
        if chosen in rule.channels and profile.engaged_since(
            rule.events, at_ms - rule.within_ms, send.campaign if rule.same_campaign else None
        ):
            scope = f"campaign {send.campaign}" if rule.same_campaign else "any campaign"
            detail = f"{', '.join(sorted(rule.events))} ({scope}) within {format_duration(rule.within_ms)}"
            return Verdict("suppressed", "engaged", chosen, rule=rule.name, detail=detail)
    for cap in policy.caps:
        if chosen in cap.channels:
            since = at_ms - cap.window_ms
            count = sum(1 for t, ch in sent_log if t > since and ch in cap.channels)
            if count >= cap.max:
                channels = ", ".join(sorted(cap.channels))
                detail = (
                    f"{count} of at most {cap.max} sends on {channels} in {format_duration(cap.window_ms)}"
                )
                return Verdict("suppressed", "frequency_cap", chosen, rule=cap.name, detail=detail)
    quiet = policy.quiet_hours
    if quiet is not None and chosen in quiet.channels:
        tz_name = quiet.timezone or (
            quiet.default_timezone
            if quiet.default_timezone and not profile.timezone_known
            else profile.timezone
        )
        if quiet.contains(_local_minute(at_ms, tz_name)):
            if quiet.action == "drop":
                return Verdict("dropped", "quiet_hours", chosen, rule="quiet_hours", detail=tz_name)
            release = next_local_time(at_ms + 1, tz_name, *quiet.end)
            return Verdict(
                "held", "quiet_hours", chosen, rule="quiet_hours", detail=tz_name, release_ms=release
            )
    if moved:
        return Verdict("redirected", first_refusal, chosen, detail=moved_note)
    return Verdict("sent", "released" if released else "allowed", chosen)


class PolicyGate:
    """Judges the sends of one engine call for one customer and applies the verdicts to its state."""

    def __init__(
        self,
        policies: PolicyRegistry | None,
        customer_key: str,
        state: CustomerState,
        actions: list[ChannelAction],
        decisions: list[Decision],
    ) -> None:
        self.policies = policies
        self.customer_key = customer_key
        self.state = state
        self.actions = actions
        self.decisions = decisions

    def submit(
        self, send: PendingSend, at_ms: int, *, released: bool = False, choice: dict[str, Any] | None = None
    ) -> tuple[str, str | None]:
        """Judge ``send``; returns (the action id it goes out under, why it does not go out or None).
        ``choice``: what the run stage chose for it (recorded with the decision)."""
        policy = self.policies.current(at_ms) if self.policies is not None else None
        state = self.state
        verdict = evaluate(policy, state.profile, state.sent_log, send, at_ms, released=released)
        final_id = send.action_id
        if verdict.channel != send.channel:
            final_id = redirected_action_id(send.action_id, verdict.channel)
        self._record(send, verdict, final_id, policy, at_ms, choice)
        if verdict.kind in ("sent", "redirected"):
            self._emit(send, verdict.channel, final_id, at_ms, policy)
            return final_id, None
        if verdict.kind == "held":
            send.release_ms = verdict.release_ms
            state.held = [h for h in state.held if h.action_id != send.action_id]
            state.held.append(send)
            return final_id, None
        return final_id, verdict.reason

    def allows(self, send: PendingSend, at_ms: int) -> bool:
        """Would the policy let ``send`` out on its own channel now, apart from quiet hours (address,
        consent, subscription, engagement suppression, caps)? What ``channel: auto`` chooses among."""
        policy = self.policies.current(at_ms) if self.policies is not None else None
        state = self.state
        verdict = evaluate(policy, state.profile, state.sent_log, send, at_ms, fallback=False)
        return verdict.kind != "suppressed"

    def schedule(
        self, send: PendingSend, release_ms: int, at_ms: int, choice: dict[str, Any]
    ) -> tuple[str, str | None]:
        """Hold ``send`` until ``release_ms``, the moment ``send_time: optimal`` chose; every rule is
        checked again then (:meth:`release_next`), quiet hours included. A send the policy suppresses
        now is suppressed now (the journey goes on as for any unsent message)."""
        policy = self.policies.current(at_ms) if self.policies is not None else None
        state = self.state
        verdict = evaluate(policy, state.profile, state.sent_log, send, at_ms)
        if verdict.kind == "suppressed":
            self._record(send, verdict, send.action_id, policy, at_ms, choice)
            return send.action_id, verdict.reason
        local = f"local hour of week {choice.get('hour_of_week')} ({choice.get('basis')})"
        hold = Verdict(
            "held", "send_time", send.channel, rule="send_time", detail=local, release_ms=release_ms
        )
        self._record(send, hold, send.action_id, policy, at_ms, choice)
        send.release_ms = release_ms
        state.held = [h for h in state.held if h.action_id != send.action_id]
        state.held.append(send)
        return send.action_id, None

    def release_next(self, until_ms: int, *, inclusive: bool) -> int | None:
        """Release the earliest held send due before (or at) ``until_ms``; its time, or None when none."""
        due = [
            h
            for h in self.state.held
            if h.release_ms is not None
            and (h.release_ms <= until_ms if inclusive else h.release_ms < until_ms)
        ]
        if not due:
            return None
        send = min(due, key=lambda h: (h.release_ms, h.action_id))
        at = send.release_ms
        assert at is not None
        self.state.held.remove(send)
        send.release_ms = None
        final_id, _ = self.submit(send, at, released=True)
        for inst in self.state.instances:
            if (
                inst.journey == send.journey_id
                and inst.entry_seq == send.entry_seq
                and send.step_id in inst.sends
            ):
                inst.sends[send.step_id] = final_id
        return at

    def _emit(
        self, send: PendingSend, channel: str, action_id: str, at_ms: int, policy: Policy | None
    ) -> None:
        profile = self.state.profile
        self.actions.append(
            ChannelAction(
                action_id=action_id,
                channel=channel,
                category=send.category,
                customer_id=self.customer_key,
                recipient=profile.addresses[channel],
                journey_id=send.journey_id,
                journey_version=send.journey_version,
                step_id=send.step_id,
                template_id=send.template_id,
                campaign=send.campaign,
                personalization=send.personalization,
                created_at=utc_from_ms(at_ms),
                subscription_group=send.subscription_group,
            )
        )
        if send.category != "marketing" or policy is None or not policy.caps:
            return
        log = self.state.sent_log
        log.append((at_ms, channel))
        log.sort(key=lambda e: e[0])
        horizon = max(t for t, _ in log) - policy.longest_cap_ms
        keep = [e for e in log if e[0] > horizon]
        self.state.sent_log = keep[-SENT_LOG_MAX:]

    def _record(
        self,
        send: PendingSend,
        verdict: Verdict,
        final_id: str,
        policy: Policy | None,
        at_ms: int,
        choice: dict[str, Any] | None = None,
    ) -> None:
        self.decisions.append(
            trusted_model(
                Decision,
                {
                    "decision_id": make_decision_id(send.action_id, verdict.kind, at_ms),
                    "kind": verdict.kind,
                    "reason": verdict.reason,
                    "rule": verdict.rule,
                    "detail": verdict.detail,
                    "customer_id": self.customer_key,
                    "action_id": final_id,
                    "original_action_id": send.action_id,
                    "journey_id": send.journey_id,
                    "journey_version": send.journey_version,
                    "step_id": send.step_id,
                    "campaign": send.campaign,
                    "category": send.category,
                    "channel": verdict.channel,
                    "original_channel": send.channel,
                    "at": utc_from_ms(at_ms),
                    "release_at": utc_from_ms(verdict.release_ms) if verdict.release_ms is not None else None,
                    "policy": policy.key if policy is not None else None,
                    "choice": choice,
                },
            )
        )
