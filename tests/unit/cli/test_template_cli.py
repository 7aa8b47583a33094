"""``orchestrator template render``: a template previewed for a customer of a simulate state file, a profile
file or personalization values alone; every failure with its reason and exit status."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from orchestrator.cli import main
from orchestrator.cli.simulate import parse_until
from orchestrator.cli.template import parse_personalization
from orchestrator.simulate import simulate_file

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = ROOT / "templates"
HELLO = """kind: template
id: hello
version: {version}
channel: email
variables:
  first_name: {{default: there}}
  items: {{default: []}}
subject: "Hello {{{{ first_name }}}} (v{version})"
text: |
  {{% for i in items %}}
  - {{{{ i }}}}
  {{% endfor %}}
  Tier: {{{{ profile.tier|default('none') }}}}, mail: {{{{ profile.email|default('-') }}}}
"""


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["template", "render", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "hello.yaml").write_text(HELLO.format(version=1))
    (tmp_path / "hello_v2.yaml").write_text(HELLO.format(version=2))
    (tmp_path / "journey.yaml").write_text("id: j\nversion: 1\n")  # (not a template: left alone)
    return tmp_path


def test_personalization_values_read_as_json_or_text() -> None:
    assert parse_personalization(["n=3", "ok=true", "l=[1, 2]", "s=Ann", "z=007", 'q="007"', "e="]) == {
        "n": 3, "ok": True, "l": [1, 2], "s": "Ann", "z": "007", "q": "007", "e": "",
    }  # fmt: skip


def test_the_highest_version_or_the_one_asked_for(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "hello", "--templates", str(folder), "--personalization", 'items=["a", "b"]')
    assert code == 0
    assert out == (
        f"template hello v2 (email), {folder}/hello_v2.yaml\n"
        "subject: Hello there (v2)\n"
        "--- text\n"
        "- a\n- b\nTier: none, mail: -\n"
    )
    code, out, _ = run(capsys, "hello", "--templates", str(folder), "--version", "1", "--json")
    assert code == 0
    assert orjson.loads(out) == {
        "template_id": "hello", "template_version": 1, "channel": "email",
        "subject": "Hello there (v1)", "text": "Tier: none, mail: -",
    }  # fmt: skip


def test_a_profile_file_of_attributes_or_a_whole_profile(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    attributes = tmp_path / "ann.json"
    attributes.write_text('{"first_name": "Ann", "tier": "gold", "email": "ann@example.com"}')
    code, out, _ = run(capsys, "hello", "--templates", str(folder), "--profile", str(attributes))
    assert code == 0
    assert out.splitlines()[0].endswith(", for customer preview")
    assert "Tier: gold, mail: ann@example.com" in out
    whole = tmp_path / "bob.json"
    whole.write_text('{"customer_key": "c-bob", "attributes": {"tier": "silver"}}')
    code, out, _ = run(capsys, "hello", "--templates", str(folder), "--profile", str(whole))
    assert code == 0
    assert "for customer c-bob" in out
    assert "Tier: silver" in out


def test_a_customer_of_a_simulate_state_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state.json"
    simulate_file(
        ROOT / "journeys" / "welcome.yaml",
        ROOT / "journeys" / "examples" / "welcome.events.jsonl",
        until_ms=parse_until("2025-04-30T00:00:00Z"),
        state_out=state,
    )
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "hello.yaml").write_text(HELLO.format(version=1))
    code, out, _ = run(
        capsys, "hello", "--templates", str(folder), "--state", str(state), "--customer", "w-ann",
        "--personalization", "first_name=Ann",
    )  # fmt: skip
    assert code == 0
    assert out.splitlines()[:2] == [
        f"template hello v1 (email), {folder}/hello.yaml, for customer w-ann",
        "subject: Hello Ann (v1)",
    ]
    assert "mail: ann@example.com" in out
    # the example templates with the welcome journey's personalization
    code, out, _ = run(
        capsys, "welcome_email_v1", "--templates", str(TEMPLATES), "--state", str(state),
        "--customer", "w-ann", "--personalization", "first_name=Ann",
    )  # fmt: skip
    assert code == 0
    assert "subject: Welcome aboard, Ann!" in out
    with pytest.raises(SystemExit):  # (argparse: --state and --profile together)
        run(capsys, "hello", "--state", str(state), "--profile", str(state))
    assert main(["template", "render", "hello", "--templates", str(folder), "--state", str(state)]) == 2
    assert "--state needs --customer KEY" in capsys.readouterr().err
    code, _, err = run(
        capsys, "hello", "--templates", str(folder), "--state", str(state), "--customer", "nobody"
    )
    assert code == 2
    assert f"no customer 'nobody' in {state}" in err


def test_what_cannot_be_rendered_says_why_and_exits_1(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "bare.yaml").write_text(
        "kind: template\nid: bare\nversion: 1\nchannel: sms\nvariables: {n: {required: true}}\n"
        "body: '{{ n }}'\n"
    )
    code, _, err = run(capsys, "bare", "--templates", str(folder), "--personalization", "n=")
    assert code == 1
    assert f"{folder}/bare.yaml: template bare v1: body: renders to nothing" in err
    assert "not rendered (empty): a connector would dead-letter this message" in err
    code, _, err = run(capsys, "cart_reminder_v1", "--templates", str(TEMPLATES))
    assert code == 1
    assert err.splitlines() == [
        f"{TEMPLATES}/cart_reminder_v1.yaml: template cart_reminder_v1 v1: required variable 'item_count' "
        "missing: the personalization gives none (it has: nothing)",
        "(give it with --personalization item_count=...)",
        "not rendered (missing_variable): a connector would dead-letter this message",
    ]
    (folder / "strict.yaml").write_text(
        "kind: template\nid: strict\nversion: 1\nchannel: sms\nbody: 'Hi {{ profile.first_name }}'\n"
    )
    code, _, err = run(capsys, "strict", "--templates", str(folder))
    assert code == 1
    assert "body: 'profile.first_name' is missing" in err
    assert "--personalization" not in err


def test_what_cannot_be_found_exits_2(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "helo", "--templates", str(folder))
    assert code == 2
    assert "no template 'helo' in" in err
    assert "(did you mean 'hello'?); there: hello" in err
    code, _, err = run(capsys, "hello", "--templates", str(folder), "--version", "7")
    assert (code, "template hello has no version 7" in err, "(versions: 1, 2)" in err) == (2, True, True)
    code, _, err = run(capsys, "hello", "--templates", str(tmp_path / "nope"))
    assert code == 2
    assert "no such folder" in err
    code, _, err = run(capsys, "hello", "--templates", str(folder), "--customer", "x")
    assert (code, "--customer needs --state" in err) == (2, True)
    code, _, err = run(capsys, "hello", "--templates", str(folder), "--personalization", "novalue")
    assert (code, "write name=value" in err) == (2, True)


def test_a_folder_with_a_broken_template_is_reported(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "broken.yaml").write_text(
        "kind: template\nid: broken\nversion: 1\nchannel: sms\nbody: '{{ x'\n"
    )
    code, _, err = run(capsys, "hello", "--templates", str(folder))
    assert code == 1
    assert f"{folder}/broken.yaml:5: body: template syntax:" in err
    assert f"1 problem(s) in the template files of {folder} (orchestrator validate {folder})" in err
