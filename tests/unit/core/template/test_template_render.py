"""Rendering: variables from the personalization or their defaults, the profile, HTML escaped and nothing
else, a missing value named in one exception type, never a half-rendered message; the sandbox's
refusals and limits at render time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.contracts import ChannelAction
from orchestrator.core.profile import Profile
from orchestrator.core.template import (
    TemplateDefinition,
    load_template_text,
    profile_view,
    render,
    render_values,
    stamp,
)
from orchestrator.core.template.sandbox import MAX_ITERATIONS, MAX_VALUE_CHARS
from orchestrator.exceptions import TemplateRenderError

EMAIL = """kind: template
id: welcome_email_v1
version: 3
channel: email
variables:
  first_name: {default: there}
  coupon: {required: true}
subject: |
  Welcome,
  {{ first_name }}!
text: |
  Hello {{ first_name }},
  {% if profile.tier is defined %}
  you are {{ profile.tier }}.
  {% endif %}
  Your code: {{ coupon }}
html: |
  <p>Hello {{ first_name }}, your code is <b>{{ coupon }}</b>.</p>
"""


def sms(body: str, variables: str = "{name: {default: there}}") -> TemplateDefinition:
    return load_template_text(
        f"kind: template\nid: s\nversion: 1\nchannel: sms\nvariables: {variables}\nbody: {body!r}\n", "s.yaml"
    )


def failure(
    template: TemplateDefinition, values: dict[str, Any], profile: dict[str, Any] | None = None
) -> TemplateRenderError:
    with pytest.raises(TemplateRenderError) as exc:
        render_values(template, values, profile)
    return exc.value


def action(**changes: Any) -> ChannelAction:
    fields: dict[str, Any] = {
        "action_id": "act_1", "channel": "email", "category": "marketing", "customer_id": "c-1",
        "recipient": "ann@example.com", "journey_id": "welcome", "journey_version": 1,
        "step_id": "welcome_email", "template_id": "welcome_email_v1",
        "personalization": {"first_name": "Ann", "coupon": "SPRING"},
        "created_at": datetime(2025, 3, 1, tzinfo=UTC),
    }  # fmt: skip
    return ChannelAction(**{**fields, **changes})


def test_every_part_renders_from_the_personalization_and_the_profile() -> None:
    t = load_template_text(EMAIL)
    message = render_values(t, {"first_name": "Ann", "coupon": "SPRING", "unused": 1}, {"tier": "gold"})
    assert message.subject == "Welcome, Ann!"  # (one line: its line breaks are spaces)
    assert message.text == "Hello Ann,\nyou are gold.\nYour code: SPRING"
    assert message.html == "<p>Hello Ann, your code is <b>SPRING</b>.</p>"
    assert (message.body, message.title, message.data) == (None, None, {})
    assert message.to_dict() == {
        "template_id": "welcome_email_v1", "template_version": 3, "channel": "email",
        "subject": "Welcome, Ann!", "text": "Hello Ann,\nyou are gold.\nYour code: SPRING",
        "html": "<p>Hello Ann, your code is <b>SPRING</b>.</p>",
    }  # fmt: skip
    assert list(message.parts) == ["subject", "text", "html"]


def test_a_default_fills_a_missing_or_null_value() -> None:
    t = load_template_text(EMAIL)
    assert render_values(t, {"coupon": "X"}).subject == "Welcome, there!"
    assert render_values(t, {"coupon": "X", "first_name": None}).subject == "Welcome, there!"
    assert render_values(sms("{{ n + 1 }}", "{n: {default: 41}}"), None).body == "42"


def test_a_missing_required_variable_raises_the_named_error_and_nothing_is_rendered() -> None:
    t = load_template_text(EMAIL)
    exc = failure(t, {"first_name": "Ann"})
    assert (exc.reason, exc.variable, exc.part, exc.template_id, exc.version) == (
        "missing_variable", "coupon", None, "welcome_email_v1", 3,
    )  # fmt: skip
    assert str(exc) == (
        "template welcome_email_v1 v3: required variable 'coupon' missing: the personalization gives none "
        "(it has: first_name)"
    )
    assert failure(t, {"coupon": None}).variable == "coupon"


def test_a_missing_profile_field_is_named_with_its_path() -> None:
    t = sms("Hi {{ profile.first_name }}")
    exc = failure(t, {}, {"last_name": "Lee"})
    assert (exc.reason, exc.variable, exc.part) == ("missing_variable", "profile.first_name", "body")
    assert str(exc) == (
        "template s v1: body: 'profile.first_name' is missing (to allow that: "
        "{{ profile.first_name|default('...') }} or {% if profile.first_name is defined %})"
    )
    assert failure(t, {}, None).variable == "profile.first_name"  # (no profile: an empty one)
    nested = sms("{% for i in order.items %}{{ i.price }}{% endfor %}", "{order: {required: true}}")
    assert (
        failure(nested, {"order": {"items": [{"price": 1}, {"sku": "b"}]}}).variable == "order.items[1].price"
    )
    assert failure(sms("{{ profile.consent.fax.marketing }}"), {}, {"consent": {}}).variable == (
        "profile.consent.fax"
    )
    assert failure(sms("{{ order[2] }}", "{order: {required: true}}"), {"order": [1]}).variable == "order[2]"


def test_defined_and_default_allow_a_missing_value() -> None:
    t = sms(
        "Hi {{ profile.first_name|default('you') }}"
        "{% if profile.tier is defined %} ({{ profile.tier }}){% endif %}"
    )
    assert render_values(t, {}, {}).body == "Hi you"
    assert render_values(t, {}, {"first_name": "Ann", "tier": "gold"}).body == "Hi Ann (gold)"
    # but a plain `if` on a missing value is an error: StrictUndefined
    assert failure(sms("{% if profile.tier %}x{% endif %}y"), {}, {}).variable == "profile.tier"


def test_html_is_escaped_and_the_other_parts_are_not() -> None:
    t = load_template_text(EMAIL)
    message = render_values(t, {"first_name": "<script>&", "coupon": '"X"'})
    assert message.html == "<p>Hello &lt;script&gt;&amp;, your code is <b>&#34;X&#34;</b>.</p>"
    assert (message.text or "").startswith("Hello <script>&,")
    assert message.subject == "Welcome, <script>&!"
    assert render_values(sms("{{ name }}"), {"name": "<b>"}).body == "<b>"


def test_a_subject_is_one_line_whatever_the_values() -> None:
    t = load_template_text(EMAIL)
    assert render_values(t, {"first_name": "Ann\r\nBcc: x@evil", "coupon": "X"}).subject == (
        "Welcome, Ann Bcc: x@evil!"
    )


def test_a_part_that_renders_to_nothing_is_refused() -> None:
    exc = failure(sms("{{ name }}"), {"name": "   "})
    assert (exc.reason, exc.part) == ("empty", "body")


@pytest.mark.parametrize(
    ("body", "reason", "detail"),
    [
        ("{{ name.upper }}", "refused", "a text has no fields ('upper')"),
        ("{{ name.__class__ }}", "refused", None),  # (refused when loaded; see below)
        ("{{ profile }}", "refused", "prints a whole map"),
        ("{{ profile.tags }}", "refused", "prints a whole list"),
        ("{% for c in name %}{{ c }}{% endfor %}", "refused", "a loop over text is not available"),
        ("{{ '%s' % name }}", "refused", "'%' formatting of text is not available"),
        ("{{ name * 1000000 }}", "over_limit", "'*' would make more than"),
        ("{{ 9 ** 9 ** 9 }}", "over_limit", "'**' would make a number beyond 2**256"),
        ("{{ profile|tojson(1000000000) }}", "refused", "tojson's indent is a number from 0 to 8"),
        ("{{ 1 / 0 }}", "error", "ZeroDivisionError"),
        ("{{ name|int + 'x' }}", "error", "TypeError"),
    ],
)
def test_what_the_sandbox_refuses_while_rendering(body: str, reason: str, detail: str | None) -> None:
    if detail is None:
        with pytest.raises(Exception, match="names starting with '_' are not available"):
            sms(body)
        return
    exc = failure(sms(body), {"name": "Ann"}, {"tags": ["a"]})
    assert exc.reason == reason
    assert detail in str(exc), str(exc)


def test_values_and_loops_are_bounded() -> None:
    big = "x" * (MAX_VALUE_CHARS // 2 + 1)
    assert failure(sms("{{ name + name }}"), {"name": big}).reason == "over_limit"
    assert failure(sms("{{ name ~ name }}"), {"name": big}).reason == "over_limit"
    assert failure(sms("{{ [name, name]|join }}"), {"name": big}).reason == "over_limit"
    assert failure(sms("{{ name|replace('x', 'yy') }}"), {"name": big}).reason == "over_limit"
    items = list(range(400))
    loops = sms(
        "{% for a in l %}{% for b in l %}{% for c in l %}{% endfor %}{% endfor %}{% endfor %}x",
        "{l: {required: true}}",
    )
    exc = failure(loops, {"l": items})
    assert exc.reason == "over_limit"
    assert f"the loops took more than {MAX_ITERATIONS} steps" in str(exc)
    # within the budget: fine
    assert render_values(loops, {"l": items[:10]}).body == "x"


def test_the_rendered_size_of_a_part_is_bounded() -> None:
    t = sms("{% for a in l %}{{ name }}{% endfor %}", "{l: {required: true}, name: {required: true}}")
    exc = failure(t, {"l": list(range(20)), "name": "x" * 100})
    assert (exc.reason, exc.part) == ("over_limit", "body")
    assert "renders to more than 1600 characters" in str(exc)


def test_filters_work_in_the_sandbox() -> None:
    t = sms(
        "{{ name|title }} {{ items|join(', ') }} {{ items|length }} {{ total|round(1) }}"
        " {{ missing|default('-') }} {{ profile.consent.sms.marketing }} {{ other }}",
        "{name: {default: x}, items: {default: 0}, total: {default: 0}, missing: {default: 0},"
        " other: {default: 0}}",
    )
    body = render_values(
        t,
        {"name": "ann lee", "items": ["a", "b"], "total": 12.345, "missing": None},
        {"consent": {"sms": {"marketing": True}}},
    ).body
    assert body == "Ann Lee a, b 2 12.3 0 True 0"
    loop = sms(
        "{% for i in l %}{{ loop.index }}{{ i }}{% if not loop.last %},{% endif %}{% endfor %}",
        "{l: {required: true}}",
    )
    assert render_values(loop, {"l": ["a", "b"]}).body == "1a,2b"


def test_a_push_renders_title_body_and_data() -> None:
    t = load_template_text(
        "kind: template\nid: p\nversion: 1\nchannel: push\nvariables: {n: {default: 1}}\ntitle: Cart\n"
        "body: '{{ n }} items'\ndata:\n  link: 'shop://cart?n={{ n }}'\n"
    )
    message = render_values(t, {"n": 3})
    assert (message.title, message.body, message.data) == ("Cart", "3 items", {"link": "shop://cart?n=3"})
    assert message.to_dict()["data"] == {"link": "shop://cart?n=3"}


def test_render_checks_the_action_and_stamp_names_the_version() -> None:
    t = load_template_text(EMAIL)
    message = render(t, action(), {"tier": "gold"})
    assert message.template_version == 3
    stamped = stamp(action(), message)
    assert stamped.template_version == 3
    assert stamp(action(), message).to_json().endswith(b',"template_version":3}')
    assert render(t, action(template_version=3)).subject == "Welcome, Ann!"
    for changed, reason in (
        ({"template_id": "other"}, "no_template"),
        ({"template_version": 2}, "no_template"),
        ({"channel": "sms", "recipient": "+33600000000"}, "channel"),
    ):
        with pytest.raises(TemplateRenderError) as exc:
            render(t, action(**changed))
        assert exc.value.reason == reason


def test_the_profile_view_is_what_conditions_read() -> None:
    profile = Profile("c-1", attributes={"first_name": "Ann", "tier": "gold"}, addresses={"email": "a@x"})
    view = profile_view(profile)
    assert view == profile.cel_view()
    assert (view["first_name"], view["email"], view["attributes"]["tier"]) == ("Ann", "a@x", "gold")
    assert profile_view(None) == {}
    assert render_values(sms("{{ profile.first_name }} {{ profile.email }}"), {}, view).body == "Ann a@x"


def test_the_template_package_is_pure_core() -> None:
    """It imports nothing of Kafka, Faust or Prometheus (connectors and workers alike can use it)."""
    import subprocess
    import sys

    code = (
        "import sys, orchestrator.core.template\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('faust', 'mode', 'aiokafka', 'confluent_kafka', 'prometheus_client', 'rocksdict')]\n"
        "print(','.join(bad))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == ""
