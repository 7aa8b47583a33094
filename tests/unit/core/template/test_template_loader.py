"""Template files: what loads (each channel, to the model's values), and every refusal with file:line: field
(the line of Jinja's problem counted from where the part's text starts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.template import (
    is_template_file,
    is_template_text,
    load_template_file,
    load_template_text,
)
from orchestrator.core.template.loader import MAX_DATA_KEYS, MAX_VARIABLES
from orchestrator.exceptions import TemplateValidationError

EMAIL = """kind: template
id: welcome_email_v1
version: 2
name: Welcome email
description: The first email.
channel: email
variables:
  first_name:
    default: there
    description: The customer's first name.
  coupon: {required: true}
subject: "Welcome, {{ first_name }}!"
text: |
  Hello {{ first_name }},
  your code is {{ coupon }}.
html: |
  <p>Hello {{ first_name }},</p>
  <p>your code is <b>{{ coupon }}</b>{% if profile.tier is defined %} ({{ profile.tier }}){% endif %}.</p>
"""
SMS = """kind: template
id: welcome_sms_v1
version: 1
channel: sms
variables: {first_name: {default: there}}
body: "Hi {{ first_name }}, welcome! Reply STOP to opt out."
"""
PUSH = """kind: template
id: cart_push_v1
version: 1
channel: push
variables:
  item_count: {default: 1}
title: Your cart
body: "{{ item_count }} item(s) are waiting for you."
data:
  deep_link: "shop://cart"
  count: "{{ item_count }}"
"""


def problems(text: str, name: str = "t.yaml") -> list[str]:
    with pytest.raises(TemplateValidationError) as exc:
        load_template_text(text, name)
    return exc.value.problems


def test_an_email_template_loads_with_its_parts_variables_and_profile_fields() -> None:
    t = load_template_text(EMAIL, "welcome.yaml")
    assert (t.id, t.version, t.channel, t.name, t.description) == (
        "welcome_email_v1", 2, "email", "Welcome email", "The first email.",
    )  # fmt: skip
    assert [p.name for p in t.parts] == ["subject", "text", "html"]
    assert [(p.name, p.line, p.one_line) for p in t.parts] == [
        ("subject", 12, True), ("text", 14, False), ("html", 17, False),
    ]  # fmt: skip
    assert [(v.name, v.required, v.default) for v in t.variables] == [
        ("first_name", False, "there"), ("coupon", True, None),
    ]  # fmt: skip
    assert t.variables[0].description == "The customer's first name."
    assert t.required == ("coupon",)
    assert t.variable("coupon") is t.variables[1]
    assert t.variable("nope") is None
    assert t.profile_fields == frozenset({"tier"})
    assert t.key == ("welcome_email_v1", 2)
    assert t.source_name == "welcome.yaml"
    assert t.content_hash


def test_sms_and_push_templates_load() -> None:
    sms = load_template_text(SMS)
    assert (sms.channel, [p.name for p in sms.parts]) == ("sms", ["body"])
    assert sms.profile_fields == frozenset()
    push = load_template_text(PUSH)
    assert [(p.name, p.max_chars) for p in push.parts] == [
        ("title", 250), ("body", 2000), ("data.deep_link", 1000), ("data.count", 1000),
    ]  # fmt: skip


def test_the_content_hash_ignores_name_and_description_only() -> None:
    base = load_template_text(SMS).content_hash
    assert load_template_text(SMS.replace("version: 1", "version: 1\nname: Other")).content_hash == base
    assert load_template_text(SMS.replace("welcome!", "welcome!!")).content_hash != base


def test_the_kind_line_tells_a_template_file(tmp_path: Path) -> None:
    assert is_template_text(SMS)
    assert is_template_text(SMS.replace("kind: template", "kind: 'template'  # a template"))
    assert not is_template_text(SMS.replace("kind: template", "  kind: template"))
    path = tmp_path / "t.yaml"
    path.write_text(SMS)
    assert is_template_file(path)
    assert load_template_file(path).source_name == str(path)
    assert not is_template_file(tmp_path / "missing.yaml")
    with pytest.raises(TemplateValidationError, match=r"missing.yaml:1: \(file\): cannot read"):
        load_template_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("kind: template", "kind: template\nchanel: sms"),
            "t.yaml:2: chanel: unknown field (did you mean 'channel'?)",
        ),
        (("id: welcome_sms_v1", "id: Welcome"), "t.yaml:2: id: 'Welcome' is not a valid name"),
        (("id: welcome_sms_v1", f"id: {'a' * 101}"), "t.yaml:2: id: at most 100 characters"),
        (("version: 1", "version: 0"), "t.yaml:3: version: must be at least 1"),
        (("channel: sms", "channel: fax"), "t.yaml:4: channel: unknown value 'fax'"),
        (("channel: sms\n", ""), "t.yaml:1: channel: required field is missing"),
        (("body: ", "subject: "), "t.yaml:6: subject: not a part of sms templates; theirs: body"),
        (("body: ", "bodyy: "), "t.yaml:6: bodyy: unknown field (did you mean 'body'?)"),
        (
            ('"Hi {{ first_name }}, welcome! Reply STOP to opt out."', "42"),
            "t.yaml:6: body: expected text (quote it)",
        ),
        (
            ('"Hi {{ first_name }}, welcome! Reply STOP to opt out."', '"  "'),
            "t.yaml:6: body: must not be empty",
        ),
        (("Reply STOP", "x" * 1600), "t.yaml:6: body: 1642 characters, more than the limit of 1600"),
        (
            ("{first_name: {default: there}}", "{first_name: {}}"),
            "t.yaml:5: variables.first_name: write required: true",
        ),
        (
            ("{default: there}", "{default: there, required: true}"),
            "t.yaml:5: variables.first_name.default: a required variable has no default",
        ),
        (
            ("{default: there}", "{default: [" + "a, " * 400 + "]}"),
            "t.yaml:5: variables.first_name.default: at most 1000 characters (written as JSON)",
        ),
        (
            ("{default: there}", "{default: there, requird: true}"),
            "t.yaml:5: variables.first_name.requird: unknown field (did you mean 'required'?)",
        ),
        (
            ("{default: there}", "{required: yes please}"),
            "t.yaml:5: variables.first_name.required: expected true or false",
        ),
        (
            ("{first_name: {default: there}}", "{profile: {default: x}}"),
            "t.yaml:5: variables.profile: 'profile' is reserved (the customer's profile)",
        ),
        (
            ("{first_name: {default: there}}", "{loop: {default: x}}"),
            "t.yaml:5: variables.loop: 'loop' is reserved",
        ),
        (
            ("{first_name: {default: there}}", "{_x: {default: x}}"),
            "t.yaml:5: variables._x: '_x' is not a variable name",
        ),
        (("{first_name: {default: there}}", "[first_name]"), "t.yaml:5: variables: expected a mapping"),
        (
            ("{default: there}", "{default: " + "x" * 1001 + "}"),
            "t.yaml:5: variables.first_name.default: at most 1000 characters",
        ),
    ],
)
def test_each_problem_names_file_line_and_field(change: tuple[str, str], expected: str) -> None:
    found = problems(SMS.replace(*change))
    assert any(p.startswith(expected) for p in found), found


def test_too_many_variables_or_data_keys() -> None:
    many = "\n".join(f"  v{i}: {{default: x}}" for i in range(MAX_VARIABLES + 1))
    text = SMS.replace("variables: {first_name: {default: there}}", "variables:\n" + many)
    assert problems(text) == [
        f"t.yaml:5: variables: {MAX_VARIABLES + 1} variables, more than the limit of 50"
    ]
    keys = "\n".join(f"  k{i}: x" for i in range(MAX_DATA_KEYS + 1))
    text = PUSH.split("data:")[0] + "data:\n" + keys + "\n"
    assert problems(text) == [f"t.yaml:9: data: {MAX_DATA_KEYS + 1} keys, more than the limit of 20"]
    assert problems(PUSH.replace("deep_link:", "deep link:")) == [
        "t.yaml:10: data.deep link: 'deep link' is not a data key (letters, digits, _, . and -; up to 64)"
    ]


def test_each_channel_needs_its_parts() -> None:
    email = EMAIL.split("subject:")[0]
    assert problems(email) == [
        "t.yaml:1: subject: required field is missing (a email template's subject)",
        "t.yaml:1: text: required field is missing: an email template has 'text', 'html' or both",
    ]
    assert problems(PUSH.replace('body: "{{ item_count }} item(s) are waiting for you."\n', "")) == [
        "t.yaml:1: body: required field is missing (a push template's body)"
    ]
    # html alone, or text alone, is an email
    assert load_template_text(EMAIL.split("html:")[0]).parts[-1].name == "text"


def test_jinja_problems_name_the_file_line_of_the_part() -> None:
    # text starts at line 14 (the line after `text: |`): its second line is 15
    broken = EMAIL.replace("your code is {{ coupon }}.", "your code is {{ coupon }.")
    assert problems(broken, "w.yaml") == ["w.yaml:15: text: template syntax: unexpected '}'"]
    # a part on the key's line: its line
    assert problems(SMS.replace("{{ first_name }}", "{% if %}"), "s.yaml") == [
        "s.yaml:6: body: template syntax: Expected an expression, got 'end of statement block'"
    ]
    undeclared = EMAIL.replace("<b>{{ coupon }}</b>", "<b>{{ cupon }}</b>")
    assert problems(undeclared, "w.yaml") == [
        "w.yaml:18: html: variable 'cupon' is not declared (did you mean 'coupon'?): declare it under "
        "'variables' (required: true, or a default), or read the profile as profile.<field>"
    ]
    hinted = problems(SMS.replace("{{ first_name }}", "{{ last_name }}"))
    assert hinted[0].startswith(
        "t.yaml:6: body: variable 'last_name' is not declared (did you mean 'profile.last_name'?)"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{{ ''.__class__ }}", "names starting with '_' are not available ('__class__')"),
        ("{{ profile['__dict__'] }}", "names starting with '_' are not available ('__dict__')"),
        ("{{ first_name.upper() }}", "calls are not available: use a filter, e.g. {{ name|upper }}"),
        ("{{ range(3) }}", "calls are not available"),
        ("{% include 'other' %}", "{% include %} is not available: a template stands alone"),
        ("{% extends 'base' %}", "{% extends %} is not available"),
        ("{% import 'm' as m %}", "{% import %} is not available"),
        ("{% from 'm' import x %}", "{% from ... import %} is not available"),
        ("{% macro m() %}x{% endmacro %}", "{% macro %} is not available"),
        ("{% block b %}x{% endblock %}", "{% block %} is not available"),
        ("{% autoescape false %}{{ first_name }}{% endautoescape %}", "{% autoescape %} is not available"),
        ("{{ first_name|safe }}", "filter 'safe' is not available"),
        ("{{ first_name|uper }}", "filter 'uper' is not available (did you mean 'upper'?)"),
        ("{{ first_name|center(10) }}", "filter 'center' is not available"),
        ("{{ first_name|striptags }}", "filter 'striptags' is not available"),
        ("{% if first_name is nonsense %}x{% endif %}", "test 'nonsense' is not available"),
        ("{% for a in profile.l recursive %}x{% endfor %}", "recursive loops are not available"),
        (
            "{% for a in profile.l %}{% for b in a %}{% for c in b %}{% for d in c %}x"
            "{% endfor %}{% endfor %}{% endfor %}{% endfor %}",
            "loops nest at most 3 deep",
        ),
    ],
)
def test_what_the_sandbox_does_not_have_is_refused_when_loaded(body: str, expected: str) -> None:
    found = problems(SMS.replace('"Hi {{ first_name }}, welcome! Reply STOP to opt out."', repr(body)))
    assert len(found) == 1
    assert found[0].startswith("t.yaml:6: body: " + expected), found


def test_profile_fields_read_or_the_whole_profile() -> None:
    def fields(body: str) -> frozenset[str] | None:
        return load_template_text(SMS.replace("{{ first_name }}", body)).profile_fields

    assert fields("{{ profile.first_name }} {{ profile['tier'] }}") == {"first_name", "tier"}
    assert fields("{{ profile.consent.sms.marketing }}") == {"consent"}
    assert fields("{% for k in profile %}{{ k }}{% endfor %}") is None
    assert fields("{{ profile[first_name] }}") is None
    # push data counts too
    assert load_template_text(PUSH.replace('"shop://cart"', '"{{ profile.cart_url }}"')).profile_fields == {
        "cart_url"
    }


def test_an_empty_or_broken_file() -> None:
    assert problems("") == ["t.yaml:1: (root): the file is empty"]
    assert problems("kind: template\nid: [")[0].startswith("t.yaml:")
    assert problems("kind: segment\nid: x\nversion: 1\nchannel: sms\nbody: x\n") == [
        "t.yaml:1: kind: expected 'template', got 'segment'"
    ]


def test_the_schema_lists_exactly_the_fields_the_loader_accepts() -> None:
    from orchestrator.core.template.loader import _TOP, _VARIABLE
    from orchestrator.core.template.model import PARTS
    from orchestrator.core.template.schema import template_schema

    schema = template_schema()
    assert set(schema["properties"]) == set(_TOP)
    assert set(schema["properties"]["variables"]["additionalProperties"]["properties"]) == set(_VARIABLE)
    assert set(schema["required"]) == {"kind", "id", "version", "channel"}
    assert schema["properties"]["channel"]["enum"] == list(PARTS)
