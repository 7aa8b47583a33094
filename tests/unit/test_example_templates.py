"""The example templates (templates/): one for every template the example journeys and campaigns name,
each valid, deployable with the journeys, and rendering every action of the examples' expected files
(with their personalization only: what a connector reading the actions topic has)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson

from orchestrator.cli.validate import validate_paths
from orchestrator.contracts import ChannelAction
from orchestrator.core.journey import SendStep
from orchestrator.core.template import TemplateRegistry, load_template_file, render_action, stamp
from orchestrator.kafka.deploy import check_deployments, prepare_deployments
from orchestrator.simulate import load_campaigns, load_registry

ROOT = Path(__file__).resolve().parents[2]
JOURNEYS = ROOT / "journeys"
TEMPLATES = ROOT / "templates"
RUN_STAGE = JOURNEYS / "run_stage"
"""The run stage's example (a journey with channel: auto, a template per channel)."""


def _named() -> set[str]:
    """The templates the example journeys and campaigns name."""
    named = {
        template
        for journeys in (load_registry(JOURNEYS), load_registry(RUN_STAGE))
        for jid in journeys.journey_ids()
        for dep in journeys.deployments(jid)
        for step in dep.definition.steps.values()
        if isinstance(step, SendStep)
        for _, template in step.templates
    }
    named |= {d.send.template for d in load_campaigns(JOURNEYS).in_force(0) if d.send is not None}
    return named


def test_there_is_one_template_file_per_template_the_examples_name() -> None:
    files = {load_template_file(p).id: p for p in sorted(TEMPLATES.glob("*.yaml"))}
    assert set(files) == _named()
    assert all(path.stem == tid for tid, path in files.items())


def test_the_templates_validate_with_the_journeys_and_deploy_with_them() -> None:
    summaries, problems = validate_paths([JOURNEYS, RUN_STAGE, TEMPLATES])
    assert problems == []
    assert sum(": ok: template " in s for s in summaries) == len(list(TEMPLATES.glob("*.yaml")))
    files = [
        *sorted(JOURNEYS.glob("*.yaml")),
        *sorted(RUN_STAGE.glob("*.yaml")),
        *sorted(TEMPLATES.glob("*.yaml")),
    ]
    records = prepare_deployments(files, datetime(2025, 1, 1, tzinfo=UTC))
    assert check_deployments([], records, 30 * 86_400_000) == []


def test_every_action_of_the_examples_renders_with_its_template() -> None:
    registry = TemplateRegistry([(load_template_file(p), -(2**53)) for p in sorted(TEMPLATES.glob("*.yaml"))])
    rendered = 0
    for expected in sorted((JOURNEYS / "examples").glob("*.expected.jsonl")):
        for line in expected.read_bytes().splitlines():
            action = ChannelAction.model_validate(orjson.loads(line))
            message = render_action(registry, action)  # (raises when it cannot be rendered)
            assert stamp(action, message).template_version == 1
            rendered += 1
    assert rendered > 50
    assert render_action(registry, _action("welcome_email_v1", {"first_name": "Ann"})).subject == (
        "Welcome aboard, Ann!"
    )
    reminder = render_action(registry, _action("cart_reminder_v1", {"item_count": 2}))
    assert (reminder.subject, (reminder.text or "").splitlines()[0]) == (
        "You left 2 items in your cart",
        "Your cart is waiting: 2 items.",
    )


def _action(template: str, personalization: dict[str, object]) -> ChannelAction:
    return ChannelAction(
        action_id="act_1", channel="email", category="marketing", customer_id="c", recipient="a@b",
        journey_id="j", journey_version=1, step_id="s", template_id=template,
        personalization=personalization, created_at=datetime(2025, 3, 1, tzinfo=UTC),
    )  # fmt: skip
