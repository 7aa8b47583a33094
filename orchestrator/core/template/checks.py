"""What can be known before any message is rendered: a send step against the template it names.

A step's ``template:`` must name a template (when templates are given at all), of the step's channel,
and the step's ``personalization`` must give every variable the template requires — a required variable
the step never gives would make every one of its messages fail. ``orchestrator validate`` (the files
given) and ``orchestrator deploy`` (the files given and what the journeys topic holds) report these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from orchestrator.core.campaign.model import CampaignDefinition
from orchestrator.core.journey.model import JourneyDefinition, SendStep
from orchestrator.core.journey.reader import did_you_mean
from orchestrator.core.template.model import TemplateDefinition

__all__ = ["Mismatch", "Send", "mismatches", "sends_of", "unknown_template"]


@dataclass(frozen=True, slots=True)
class Send:
    """A send step of a journey, or a campaign's ``send``: ``path`` is where it is in its file."""

    owner: str
    """``journey welcome v1`` or ``campaign spring_sale v1``."""
    source_name: str
    path: tuple[str, ...]
    step: SendStep

    @property
    def name(self) -> str:
        return f"{self.owner}'s send" if self.path == ("send",) else f"{self.owner}'s step {self.step.id}"


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A send and a template that do not go together: ``field`` is the send's field (``channel`` or
    ``personalization``); ``variable`` the required variable the send never gives."""

    send: Send
    template: TemplateDefinition
    field: str
    message: str
    variable: str | None = None


def sends_of(definition: JourneyDefinition | CampaignDefinition) -> list[Send]:
    """The sends of a journey (its send steps) or of a campaign (its ``send``, when it has one)."""
    owner = f"{'campaign' if isinstance(definition, CampaignDefinition) else 'journey'} {definition.id} v"
    owner += str(definition.version)
    found: list[tuple[tuple[str, ...], SendStep]]
    if isinstance(definition, CampaignDefinition):
        found = [(("send",), definition.send)] if definition.send else []
    else:
        found = [(("steps", s.id), s) for s in definition.steps.values() if isinstance(s, SendStep)]
    # (a `channel: auto` send is one send per channel it may choose, each with its own template)
    return [
        Send(owner, definition.source_name, path, replace(step, channel=ch, template=tpl, channels=()))
        if step.channels
        else Send(owner, definition.source_name, path, step)
        for path, step in found
        for ch, tpl in step.templates
    ]


def mismatches(send: Send, template: TemplateDefinition) -> list[Mismatch]:
    """``send`` against ``template`` (the template it names): the channel, the required variables."""
    named = f"template {template.id} v{template.version} ({template.source_name})"
    found: list[Mismatch] = []
    if template.channel != send.step.channel:
        found.append(
            Mismatch(
                send, template, "channel",
                f"{named} is a {template.channel} template, but {send.name} sends by {send.step.channel}",
            )
        )  # fmt: skip
    given = {name for name, _ in send.step.personalization}
    for variable in template.required:
        if variable not in given:
            found.append(
                Mismatch(
                    send, template, "personalization",
                    f"{named} requires variable {variable!r}, which {send.name} never gives: add "
                    f"personalization.{variable} to the send, or give the variable a default in the template",
                    variable,
                )
            )  # fmt: skip
    return found


def unknown_template(template_id: str, known: Iterable[str], among: str) -> str:
    """The message for a send naming a template that is not ``among`` (e.g. ``the template files
    checked``)."""
    ids = sorted(known)
    return f"template {template_id!r} is not among {among} ({', '.join(ids)}){did_you_mean(template_id, ids)}"
