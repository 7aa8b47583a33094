"""``orchestrator validate`` with template files: a summary line each, and every send of the journeys and
campaigns given checked against them (the template named, its channel, the variables it requires)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.cli.validate import validate_paths

TEMPLATE = """kind: template
id: hello_email
version: 1
channel: email
variables:
  first_name: {default: there}
  coupon: {required: true}
subject: "Hello {{ first_name }}"
text: "Your code: {{ coupon }} {{ profile.tier|default('') }}"
"""
JOURNEY = """id: hello
version: 1
entry: {event: account.created}
steps:
  mail:
    type: send
    channel: email
    template: hello_email
    personalization:
      coupon: '"SPRING"'
"""
CAMPAIGN = """kind: campaign
id: spring
version: 1
audience: {segment: vip}
send:
  channel: email
  template: hello_email
schedule: {at: 2025-03-12T10:00:00Z}
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_each_template_gets_a_summary_line(tmp_path: Path) -> None:
    email = _write(tmp_path, "hello_email.yaml", TEMPLATE)
    sms = _write(tmp_path, "sms.yaml", "kind: template\nid: sms\nversion: 2\nchannel: sms\nbody: Hi\n")
    whole = _write(
        tmp_path,
        "push.yaml",
        "kind: template\nid: push\nversion: 1\nchannel: push\ntitle: T\n"
        "body: '{% for k in profile %}{{ k }}{% endfor %}'\ndata: {link: 'x://y'}\n",
    )
    summaries, problems = validate_paths([tmp_path])
    assert problems == []
    assert summaries == [
        f"{email}: ok: template hello_email v1 (email): subject, text; variables first_name (default "
        "'there'), coupon (required); reads profile tier",
        f"{whole}: ok: template push v1 (push): title, body, data.link; no variables; reads the whole "
        "profile",
        f"{sms}: ok: template sms v2 (sms): body; no variables",
    ]


def test_sends_are_checked_against_the_template_files_given(tmp_path: Path) -> None:
    _write(tmp_path, "hello_email.yaml", TEMPLATE)
    journey = _write(tmp_path, "hello.yaml", JOURNEY)
    campaign = _write(tmp_path, "spring.yaml", CAMPAIGN)
    _write(tmp_path, "vip.yaml", "kind: segment\nid: vip\nversion: 1\ncondition: profile.tier == 'gold'\n")
    _, problems = validate_paths([tmp_path])
    assert problems == [
        f"{campaign}:6: send.personalization: template hello_email v1 ({tmp_path}/hello_email.yaml) requires "
        "variable 'coupon', which campaign spring v1's send never gives: add personalization.coupon to the "
        "send, or give the variable a default in the template"
    ]
    journey.write_text(JOURNEY.replace("template: hello_email", "template: hello_emial"))
    _, problems = validate_paths([journey, tmp_path / "hello_email.yaml"])
    assert problems == [
        f"{journey}:8: steps.mail.template: template 'hello_emial' is not among the template files checked "
        "(hello_email) (did you mean 'hello_email'?)"
    ]
    journey.write_text(JOURNEY.replace("channel: email", "channel: sms"))
    _, problems = validate_paths([journey, tmp_path / "hello_email.yaml"])
    assert problems == [
        f"{journey}:7: steps.mail.channel: template hello_email v1 ({tmp_path}/hello_email.yaml) is a email "
        "template, but journey hello v1's step mail sends by sms"
    ]


def test_without_template_files_sends_are_not_checked(tmp_path: Path) -> None:
    journey = _write(tmp_path, "hello.yaml", JOURNEY.replace("template: hello_email", "template: anything"))
    assert validate_paths([journey])[1] == []


def test_each_version_given_is_checked_and_a_version_defined_twice_is_a_problem(tmp_path: Path) -> None:
    _write(tmp_path, "hello_email.yaml", TEMPLATE)
    _write(
        tmp_path,
        "hello_email_v2.yaml",
        TEMPLATE.replace("version: 1", "version: 2").replace("{default: there}", "{required: true}"),
    )
    journey = _write(tmp_path, "hello.yaml", JOURNEY)
    _, problems = validate_paths([tmp_path])
    assert problems == [
        f"{journey}:9: steps.mail.personalization: template hello_email v2 ({tmp_path}/hello_email_v2.yaml) "
        "requires variable 'first_name', which journey hello v1's step mail never gives: add "
        "personalization.first_name to the send, or give the variable a default in the template"
    ]
    copy = _write(tmp_path, "copy.yaml", TEMPLATE)
    _, problems = validate_paths([tmp_path / "hello_email.yaml", copy])
    assert problems == [
        f"{copy}:1: id: template hello_email version 1 is also defined in {tmp_path}/hello_email.yaml"
    ]


def test_a_broken_template_fails_validate_with_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _write(tmp_path, "bad.yaml", TEMPLATE.replace("{{ coupon }}", "{{ coupon.__class__ }}"))
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:9: text: names starting with '_' are not available ('__class__')" in err
    assert "1 problem(s) found" in err
