"""The email connector's rendering with deployed templates (connectors/render.py): the template's parts
with the action's personalization, the unsubscribe link at the end of both parts, the version named, a
part the template lacks made from the other, the plain rendering while none is deployed, and a template
that cannot render whole refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.connectors.errors import RenderError
from orchestrator.connectors.render import TemplateEmailRenderer, render_email
from orchestrator.contracts import ChannelAction
from orchestrator.core.template import TemplateRegistry, load_template_text

URL = "https://c.example/u/u1.abc.def"


def _action(template: str, **personalization: Any) -> ChannelAction:
    return ChannelAction.model_validate(
        {
            "action_id": "act_1",
            "channel": "email",
            "category": "marketing",
            "customer_id": "c1",
            "recipient": "ada@example.com",
            "journey_id": "welcome",
            "journey_version": 1,
            "step_id": "mail",
            "template_id": template,
            "personalization": personalization,
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        }
    )


def _registry(*texts: str) -> TemplateRegistry:
    registry = TemplateRegistry()
    for text in texts:
        registry.deploy(load_template_text(text), 0)
    return registry


HTML_ONLY = """kind: template
id: news
version: 2
channel: email
variables: {name: {default: friend}}
subject: "News for {{ name }}"
html: "<html><body><p>Hi {{ name }} &amp; co</p>\\n<p>More soon</p></body></html>"
"""
TEXT_ONLY = """kind: template
id: plain
version: 1
channel: email
variables: {code: {required: true}}
subject: "Code"
text: "Your code: {{ code }} <b>"
"""


def test_the_template_renders_with_the_link_at_the_end_of_both_parts_and_names_its_version() -> None:
    renderer = TemplateEmailRenderer(_registry(HTML_ONLY))
    parts = renderer(_action("news", name="Ada"), URL)
    assert parts.subject == "News for Ada"
    assert parts.template == "news v2"
    assert parts.text == f"Hi Ada & co\nMore soon\n\nUnsubscribe: {URL}\n"  # (the HTML part's text)
    assert parts.html.endswith(f'<p><a href="{URL}">Unsubscribe</a></p></body></html>')
    assert renderer(_action("news"), None).subject == "News for friend"


def test_a_text_only_template_gets_an_escaped_html_part_and_a_missing_variable_is_refused() -> None:
    renderer = TemplateEmailRenderer(_registry(TEXT_ONLY))
    parts = renderer(_action("plain", code="X1"), None)
    assert parts.text == "Your code: X1 <b>"
    assert "<pre>Your code: X1 &lt;b&gt;</pre>" in parts.html
    with pytest.raises(RenderError, match="code"):
        renderer(_action("plain"), None)
    with pytest.raises(RenderError, match="template"):
        renderer(_action("not_deployed"), None)


def test_before_any_template_is_deployed_the_plain_rendering() -> None:
    action = _action("welcome_v1", first_name="Ada")
    assert TemplateEmailRenderer()(action, URL) == render_email(action, URL)
