"""Delivering campaigns to one customer: scheduling them for an occurrence, and sending at their time.

Everything here runs inside the customer's own engine call (an event, a wake-up, a merge), so a
campaign's send is decided by the customer's logic at the customer's send time, like a journey's:

- **schedule** (every call): for each campaign in force and each of its occurrences whose release window
  holds the call's time, a customer in the audience (the segment, and the campaign's condition) who has
  not been scheduled for it gets its send time (the occurrence's local time in its zone, or the absolute
  time) as a due time; past the delivery window already: ``late`` (skipped, counted);
- **fire** (at the due time, with the customer's other timers): the campaign's version in force then
  decides — cancelled: nothing (``cancelled``); paused: the customer waits (scheduled again when the
  campaign is active, within the window); out of the audience by then: ``left``; else the message goes
  through the cross-channel policy (its decision says what happened), or the customer enters the journey.

The state keeps one entry per campaign (:attr:`CustomerState.campaigns`): ``[occurrence, due, status,
version]``; an occurrence is handled once: a replay, a duplicate wake-up or a second scan changes nothing.
The action id is deterministic: customer, campaign, version, occurrence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orchestrator.contracts.events import CAMPAIGN_RELEASED
from orchestrator.core.campaign.model import CampaignDefinition
from orchestrator.core.campaign.occurrences import open_occurrences, send_time_ms
from orchestrator.core.engine.choices import dispatch
from orchestrator.core.engine.ids import action_id
from orchestrator.core.engine.run import Run, to_json_value
from orchestrator.core.engine.state import PendingSend
from orchestrator.exceptions import ConditionError

if TYPE_CHECKING:
    from orchestrator.core.campaign.registry import CampaignRegistry

__all__ = ["CampaignDelivery", "campaign_event_view"]

EnterJourney = Callable[[Run, str, dict[str, Any], int, str], bool]
"""(run, journey id, event view, time, reason) -> whether the customer entered it."""
_WAITING = ("due", "paused")


def campaign_event_view(campaign: CampaignDefinition, n: int, at_ms: int) -> dict[str, Any]:
    """The ``event`` a journey entered by a campaign starts on (``journey.entry_event``)."""
    return {
        "id": f"{CAMPAIGN_RELEASED}:{campaign.id}:{n}",
        "type": CAMPAIGN_RELEASED,
        "at_ms": at_ms,
        "source": "orchestrator",
        "properties": {"campaign": campaign.id, "version": campaign.version, "occurrence": n},
        "campaign": campaign.id,
        "action_id": "",
        "journey": "",
    }


class CampaignDelivery:
    def __init__(self, registry: CampaignRegistry, enter: EnterJourney) -> None:
        self.registry = registry
        self._enter = enter

    # -- scheduling -----------------------------------------------------------------------------
    def schedule(self, run: Run, at_ms: int) -> None:
        """Schedule the customer for the open occurrences of the campaigns in force at ``at_ms``."""
        state = run.state
        segments = state.profile.segments
        for campaign in self.registry.in_force(at_ms):
            if campaign.status == "cancelled" or campaign.segment not in segments:
                continue  # (out of the audience: nothing to schedule, whatever the occurrence)
            entry = state.campaigns.get(campaign.id)
            for n in open_occurrences(campaign, at_ms):
                if entry is not None and (entry[0] > n or (entry[0] == n and entry[2] != "paused")):
                    continue  # (handled, or scheduled already)
                if entry is not None and entry[2] == "due":
                    break  # an earlier occurrence is still due: this one after it is sent

                if not self._in_audience(run, campaign, at_ms):
                    continue
                send_at = send_time_ms(campaign.schedule, n, self._zone(run, campaign))
                if at_ms > send_at + campaign.deliver_within_ms:
                    entry = self._record(run, campaign, n, 0, "late")
                elif campaign.status == "paused":
                    entry = state.campaigns[campaign.id] = [n, 0, "paused", campaign.version]
                else:
                    entry = self._record(run, campaign, n, max(send_at, at_ms), "due", "scheduled")

    def next_due(self, campaigns: dict[str, list[Any]]) -> tuple[int, str] | None:
        """The earliest scheduled send (time, campaign id), or None."""
        found = [(int(e[1]), cid) for cid, e in campaigns.items() if e[2] == "due"]
        return min(found) if found else None

    # -- sending --------------------------------------------------------------------------------
    def fire(self, run: Run, campaign_id: str) -> None:
        """The customer's send time for the campaign is due: send it (or say why not)."""
        entry = run.state.campaigns[campaign_id]
        n, at_ms = int(entry[0]), int(entry[1])
        campaign = self.registry.current(campaign_id, at_ms)
        if campaign is None or campaign.status == "cancelled":
            entry[1], entry[2] = 0, "cancelled"
            run.campaign_events.append((campaign_id, n, "cancelled"))
            return
        if campaign.status == "paused":
            entry[1], entry[2] = 0, "paused"  # (scheduled again once active, within the window)
            return
        if not self._in_audience(run, campaign, at_ms):
            self._record(run, campaign, n, 0, "left")
            return
        send_at = send_time_ms(campaign.schedule, n, self._zone(run, campaign))
        if at_ms > send_at + campaign.deliver_within_ms:
            self._record(run, campaign, n, 0, "late")
            return
        if campaign.send is None:
            assert campaign.journey is not None
            view = campaign_event_view(campaign, n, at_ms)
            entered = self._enter(run, campaign.journey, view, at_ms, f"campaign {campaign.id}")
            self._record(run, campaign, n, 0, "entered" if entered else "not_entered")
            return
        step = campaign.send
        act = run.state_activation(at_ms)
        personalization: dict[str, Any] = {}
        for name, expr in step.personalization:
            try:
                personalization[name] = to_json_value(expr.compiled.evaluate(act))
            except ConditionError:
                continue
        send = PendingSend(
            action_id=action_id(run.customer_key, campaign.journey_id, campaign.version, n + 1, step.id, 1),
            channel=step.channel,
            category=step.category,
            journey_id=campaign.journey_id,
            journey_version=campaign.version,
            entry_seq=n + 1,
            step_id=step.id,
            template_id=step.template,
            campaign=campaign.id,
            personalization=personalization,
            created_ms=at_ms,
            subscription_group=step.subscription_group,
        )
        _, unsent = dispatch(run, send, step, at_ms, campaign.schedule.default_timezone)
        held = unsent is None and any(h.action_id == send.action_id for h in run.state.held)
        self._record(
            run, campaign, n, 0, "held" if held else "sent" if unsent is None else f"unsent_{unsent}"
        )

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _record(
        run: Run, campaign: CampaignDefinition, n: int, due: int, status: str, said: str | None = None
    ) -> list[Any]:
        entry = run.state.campaigns[campaign.id] = [n, due, status, campaign.version]
        run.campaign_events.append((campaign.id, n, said or status))
        return entry

    @staticmethod
    def _zone(run: Run, campaign: CampaignDefinition) -> str | None:
        profile = run.state.profile
        if profile.timezone_known or not campaign.schedule.default_timezone:
            return profile.timezone
        return campaign.schedule.default_timezone

    @staticmethod
    def _in_audience(run: Run, campaign: CampaignDefinition, at_ms: int) -> bool:
        if campaign.segment not in run.state.profile.segments:
            return False
        if campaign.condition is None:
            return True
        try:
            return campaign.condition.compiled.test(run.state_activation(at_ms))
        except ConditionError:
            return False
