"""The template timeline: the version in force by time, a version by number, the template of an action,
and the deployments refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.contracts import ChannelAction
from orchestrator.core.template import (
    MAX_TEMPLATES,
    TemplateDefinition,
    TemplateRegistry,
    load_template_text,
    render_action,
)
from orchestrator.exceptions import TemplateRenderError, TemplateValidationError

T0 = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp() * 1000)


def template(tid: str = "hello", version: int = 1, body: str = "Hello v1") -> TemplateDefinition:
    return load_template_text(
        f"kind: template\nid: {tid}\nversion: {version}\nchannel: sms\nbody: {body}\n", f"{tid}.yaml"
    )


def action(**changes: Any) -> ChannelAction:
    fields: dict[str, Any] = {
        "action_id": "act_1", "channel": "sms", "category": "marketing", "customer_id": "c-1",
        "recipient": "+33600000000", "journey_id": "j", "journey_version": 1, "step_id": "s",
        "template_id": "hello", "created_at": datetime(2025, 3, 1, tzinfo=UTC),
    }  # fmt: skip
    return ChannelAction(**{**fields, **changes})


def test_the_version_in_force_at_a_time_and_by_number() -> None:
    reg = TemplateRegistry([(template(), T0)])
    reg.deploy(template(version=2, body="Hello v2"), T0 + 1000)
    reg.deploy(template("other"), T0)
    assert reg.current("hello", T0 - 1) is None
    assert reg.current("hello", T0).version == 1  # type: ignore[union-attr]
    assert reg.current("hello", T0 + 1000).version == 2  # type: ignore[union-attr]
    assert reg.version("hello", 1).version == 1  # type: ignore[union-attr]
    assert reg.version("hello", 3) is None
    assert reg.latest("hello").version == 2  # type: ignore[union-attr]
    assert reg.versions("hello") == [1, 2]
    assert reg.template_ids() == ["hello", "other"]
    assert [d.effective_from_ms for d in reg.deployments("hello")] == [T0, T0 + 1000]
    assert "hello" in reg
    assert len(reg) == 2
    assert reg.generation == 3


def test_an_action_is_rendered_with_the_version_in_force_at_its_creation_or_the_one_it_names() -> None:
    reg = TemplateRegistry([(template(), T0), (template(version=2, body="Hello v2"), T0 + 1000)])
    assert reg.for_action(action()).version == 1
    later = action(created_at=datetime(2025, 3, 1, 0, 0, 1, tzinfo=UTC))
    assert reg.for_action(later).version == 2
    assert reg.for_action(action(template_version=2)).version == 2
    assert render_action(reg, later).body == "Hello v2"
    assert render_action(reg, action(template_version=1)).template_version == 1


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"template_id": "helo"}, "no template 'helo' is deployed (did you mean 'hello'?)"),
        ({"template_version": 7}, "version 7 is not deployed (deployed: 1)"),
        (
            {"created_at": datetime(2025, 2, 1, tzinfo=UTC)},
            "no version was in force at 2025-02-01T00:00:00+00:00",
        ),
    ],
)
def test_an_action_without_a_template_is_refused_with_its_reason(
    changes: dict[str, Any], detail: str
) -> None:
    reg = TemplateRegistry([(template(), T0)])
    with pytest.raises(TemplateRenderError) as exc:
        render_action(reg, action(**changes))
    assert exc.value.reason == "no_template"
    assert exc.value.detail == detail


def test_the_same_version_with_other_content_is_refused() -> None:
    reg = TemplateRegistry()
    reg.deploy(template(), 0)
    reg.deploy(template(), 10)  # the same content again: allowed
    with pytest.raises(TemplateValidationError) as exc:
        reg.deploy(template(body="Changed"), 20)
    assert exc.value.problems == [
        "hello.yaml:1: version: template hello version 1 is already deployed with different content; give "
        "the changed template a new version number"
    ]
    assert reg.current("hello", 30).parts[0].source == "Hello v1"  # type: ignore[union-attr]


def test_at_most_so_many_templates() -> None:
    reg = TemplateRegistry([(template(f"t{i}"), 0) for i in range(MAX_TEMPLATES)])
    reg.deploy(template("t0", version=2), 0)  # (a new version of one: fine)
    with pytest.raises(TemplateValidationError, match=f"{MAX_TEMPLATES} templates are deployed already"):
        reg.deploy(template("one_more"), 0)
