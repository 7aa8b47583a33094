"""Templates deploy like campaigns: a record of kind 'template' that every worker's DeploymentBook applies
(or refuses with its reason); `orchestrator deploy` takes folders and refuses, once templates are
deployed, a send whose template is missing, of another channel, or short of a required variable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.contracts import JourneyDeployment
from orchestrator.core.deployments import DeploymentBook
from orchestrator.core.journey import JourneyRegistry
from orchestrator.exceptions import JourneyValidationError
from orchestrator.kafka.deploy import check_deployments, prepare_deployments

AT = datetime(2025, 1, 1, tzinfo=UTC)
AT_MS = int(AT.timestamp() * 1000)
WINDOW = 30 * 86_400_000
TEMPLATE = """kind: template
id: hello_sms
version: 1
channel: sms
variables:
  first_name: {required: true}
body: "Hi {{ first_name }}"
"""
JOURNEY = """id: hello
version: 1
entry: {event: account.created}
steps:
  text:
    type: send
    channel: sms
    template: hello_sms
    personalization:
      first_name: profile.first_name
"""
CAMPAIGN = """kind: campaign
id: spring
version: 1
audience: {segment: vip}
send: {channel: sms, template: hello_sms}
schedule: {at: 2025-03-12T10:00:00Z}
"""


def record(text: str, kind: str, jid: str, version: int = 1, at: datetime = AT) -> JourneyDeployment:
    return JourneyDeployment(
        kind=kind, journey_id=jid, version=version, effective_from=at, source_name=f"{jid}.yaml", text=text
    )  # type: ignore[arg-type]


def existing(*records: JourneyDeployment) -> list[tuple[bytes | None, bytes | None, str]]:
    return [(r.key.encode(), r.to_json(), f"journeys[0]@{n}") for n, r in enumerate(records)]


def test_a_template_record_is_applied_keyed_and_listed() -> None:
    book = DeploymentBook(JourneyRegistry())
    rec = record(TEMPLATE, "template", "hello_sms")
    assert rec.key == f"template:hello_sms@1@{AT_MS}"
    assert book.apply(rec.key.encode(), rec.to_json(), where="journeys[0]@0") is None
    current = book.templates.current("hello_sms", AT_MS)
    assert current is not None
    assert (current.id, current.version, current.source_name) == ("hello_sms", 1, "hello_sms.yaml")
    assert book.templates.current("hello_sms", AT_MS - 1) is None
    assert book.last_applied.startswith("template hello_sms v1 from ")
    assert book.summary()["templates"] == {
        "hello_sms": [{"version": 1, "channel": "sms", "effective_from_ms": AT_MS}]
    }
    assert book.summary()["journeys"] == {}


def test_a_broken_or_mislabelled_template_record_is_refused_with_its_reason() -> None:
    book = DeploymentBook(JourneyRegistry())
    wrong = book.apply(b"t", record(TEMPLATE, "template", "other").to_json(), where="journeys[0]@0")
    assert wrong is not None
    assert wrong.problems == ("other.yaml:1: id: record says template other v1, the file says hello_sms v1",)
    broken = record(TEMPLATE.replace("{{ first_name }}", "{{ first_name }"), "template", "hello_sms")
    refusal = book.apply(b"t", broken.to_json(), where="journeys[0]@1")
    assert refusal is not None
    assert refusal.problems[0].startswith("hello_sms.yaml:7: body: template syntax:")
    changed = record(TEMPLATE.replace("Hi", "Hello"), "template", "hello_sms")
    assert (
        book.apply(b"t", record(TEMPLATE, "template", "hello_sms").to_json(), where="journeys[0]@2") is None
    )
    again = book.apply(b"t", changed.to_json(), where="journeys[0]@3")
    assert again is not None
    assert "template hello_sms version 1 is already deployed with different content" in again.problems[0]
    assert len(book.templates) == 1


def test_prepare_deployments_tells_a_template_file(tmp_path: Path) -> None:
    (tmp_path / "hello_sms.yaml").write_text(TEMPLATE)
    (tmp_path / "hello.yaml").write_text(JOURNEY)
    records = prepare_deployments(sorted(tmp_path.glob("*.yaml")), AT)
    assert [(r.kind, r.journey_id) for r in records] == [("journey", "hello"), ("template", "hello_sms")]
    (tmp_path / "broken.yaml").write_text(TEMPLATE.replace("channel: sms", "channel: sms\nsubject: x"))
    with pytest.raises(JourneyValidationError) as err:
        prepare_deployments([tmp_path / "broken.yaml"], AT)
    assert err.value.problems == [
        f"{tmp_path}/broken.yaml:5: subject: not a part of sms templates; theirs: body"
    ]


def test_with_templates_deployed_a_send_short_of_a_required_variable_is_refused() -> None:
    template = record(TEMPLATE, "template", "hello_sms")
    journey = record(JOURNEY, "journey", "hello")
    assert check_deployments([], [template, journey], WINDOW) == []
    assert check_deployments(existing(template), [journey], WINDOW) == []
    short = record(JOURNEY.replace("first_name: profile", "name: profile"), "journey", "hello")
    assert check_deployments(existing(template), [short], WINDOW) == [
        "hello.yaml:9: steps.text.personalization: template hello_sms v1 (hello_sms.yaml) requires variable "
        "'first_name', which journey hello v1's step text never gives: add personalization.first_name to "
        "the send, or give the variable a default in the template"
    ]
    email = record(JOURNEY.replace("channel: sms", "channel: email"), "journey", "hello")
    assert check_deployments(existing(template), [email], WINDOW) == [
        "hello.yaml:7: steps.text.channel: template hello_sms v1 (hello_sms.yaml) is a sms template, but "
        "journey hello v1's step text sends by email"
    ]
    unknown = record(JOURNEY.replace("template: hello_sms", "template: helo_sms"), "journey", "hello")
    assert check_deployments(existing(template), [unknown], WINDOW) == [
        "hello.yaml:8: steps.text.template: template 'helo_sms' is not among the templates deployed "
        "(hello_sms) (did you mean 'hello_sms'?)"
    ]
    campaign = record(CAMPAIGN, "campaign", "spring")
    assert check_deployments(existing(template), [campaign], WINDOW)[0].startswith(
        "spring.yaml:5: send.personalization: template hello_sms v1 (hello_sms.yaml) requires variable "
        "'first_name', which campaign spring v1's send never gives"
    )


def test_without_templates_deployed_sends_are_not_checked() -> None:
    """Templates are optional: journeys deploy as before until the first template is deployed."""
    unknown = record(JOURNEY.replace("template: hello_sms", "template: anything"), "journey", "hello")
    assert check_deployments([], [unknown], WINDOW) == []


def test_a_template_is_checked_against_the_sends_in_force_that_name_it() -> None:
    journey = record(JOURNEY, "journey", "hello")
    v2 = record(
        TEMPLATE.replace("version: 1", "version: 2").replace("{required: true}", "{required: true}\n  code: "
        "{required: true}").replace("Hi {{ first_name }}", "Hi {{ first_name }} {{ code }}"),
        "template", "hello_sms", version=2, at=AT + timedelta(days=1),
    )  # fmt: skip
    assert check_deployments(existing(journey, record(TEMPLATE, "template", "hello_sms")), [v2], WINDOW) == [
        "hello_sms.yaml:7: variables.code: template hello_sms v2 (hello_sms.yaml) requires variable 'code', "
        "which journey hello v1's step text never gives: add personalization.code to the send, or give the "
        "variable a default in the template (hello.yaml)"
    ]
    # deployed together with the journey that gives it: fine (checked from the journey's side)
    fixed = record(
        JOURNEY + "      code: '\"X\"'\n", "journey", "hello", version=1, at=AT + timedelta(days=1)
    )
    fixed = record(
        fixed.text.replace("version: 1", "version: 2"), "journey", "hello", 2, AT + timedelta(days=1)
    )
    assert (
        check_deployments(existing(journey, record(TEMPLATE, "template", "hello_sms")), [v2, fixed], WINDOW)
        == []
    )


def test_deploy_takes_folders_and_refuses_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "hello_sms.yaml").write_text(TEMPLATE.replace("{{ first_name }}", "{{ firstname }}"))
    assert main(["deploy", str(folder), "--bootstrap-servers", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert (
        f"{folder}/hello_sms.yaml:7: body: variable 'firstname' is not declared (did you mean 'first_name'?)"
        in err
    )
    assert "refused: 1 problem(s); nothing was published" in err
    assert main(["deploy", str(tmp_path / "nothing"), "--bootstrap-servers", "127.0.0.1:1"]) == 1
    assert f"{tmp_path}/nothing:1: (root): no such file or directory" in capsys.readouterr().err
