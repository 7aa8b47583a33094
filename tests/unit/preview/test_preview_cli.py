"""``orchestrator diff``: the text report's sections, the --json shape, --limit, errors on bad input."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from orchestrator.cli import main
from tests.unit.preview.preview_helpers import (
    JOURNEYS,
    WELCOME,
    WELCOME_EVENTS,
    WINBACK,
    WINBACK_EVENTS,
    more_offer_20,
    shorter_timeout,
    write_version,
)

JSON_KEYS = {
    "journey",
    "old",
    "new",
    "events",
    "until",
    "deployed_in_both",
    "runs",
    "sends",
    "by_step",
    "customers",
    "funnels",
    "inside",
}


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["diff", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_text_report_has_its_sections(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = write_version(tmp_path, WELCOME, shorter_timeout, migrate=True)
    code, out, _ = _run(
        capsys,
        WELCOME,
        new,
        "--events",
        WELCOME_EVENTS,
        "--journeys",
        JOURNEYS,
        "--at",
        "2025-03-03T13:00:00Z",
    )
    assert code == 0
    assert out.startswith("Impact preview of journey welcome: v1 -> v2 (")
    assert "Sends: 10 with v1, 10 with v2: 0 added, 0 removed, 2 moved, 0 changed, 8 unchanged" in out
    assert "  welcome        welcome_sms    sms       2   2      0        0      2        0" in out
    assert "Customers whose sends change: 2 of 6" in out
    assert "funnel of welcome (unchanged)  v1  v2  change" in out
    assert "Funnels unchanged: post_purchase" in out
    assert "Customers inside v1 at 2025-03-03T13:00:00.000Z: 3 (3 move, 0 leave, 0 stay)" in out
    assert "  w-ann     wait_open  2025-03-03T09:00:00.000Z  moves    wait_open  to version 2" in out


def test_json_has_stable_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = write_version(tmp_path, WINBACK, more_offer_20)
    code, out, _ = _run(capsys, WINBACK, new, "--events", WINBACK_EVENTS, "--json", "--limit", "2")
    assert code == 0
    data = orjson.loads(out)
    assert set(data) == JSON_KEYS
    assert data["journey"] == "winback"
    assert data["old"] == {"file": str(WINBACK), "version": 1}
    assert data["new"] == {
        "file": str(new),
        "version": 2,
        "migrate": False,
        "status": "active",
        "from": "2025-03-03T09:00:00.000Z",
        "from_rule": "the first event's time: the new version from the start",
    }
    assert data["sends"] == {
        "old": 18,
        "new": 18,
        "unchanged": 9,
        "added": 9,
        "removed": 9,
        "moved": 0,
        "changed": 0,
    }
    assert data["by_step"][0] == {
        "journey": "winback",
        "step": "email_10",
        "channel": "email",
        "old": 12,
        "new": 3,
        "added": 0,
        "removed": 9,
        "moved": 0,
        "changed": 0,
    }
    customers = data["customers"]
    assert (customers["changed"], customers["of"], customers["limit"]) == (9, 21, 2)
    assert [c["customer"] for c in customers["shown"]] == ["wb-03", "wb-05"]
    assert customers["shown"][0]["changes"][0] == {
        "kind": "removed",
        "journey": "winback",
        "step": "email_10",
        "channel": "email",
        "template": "winback_10pct",
        "old_at": "2025-03-03T09:03:00.000Z",
        "new_at": None,
        "differs": {},
    }
    funnel = data["funnels"]["winback"]
    assert funnel["changed"] is True
    assert funnel["old"]["splits"]["ab"]["offer_20"]["entered"] == 6
    assert funnel["new"]["splits"]["ab"]["offer_20"]["entered"] == 15
    assert data["inside"] == {
        "at": "2025-03-03T09:00:00.000Z",
        "migrate": False,
        "moves": 0,
        "leaves": 0,
        "stays": 0,
        "limit": 2,
        "shown": [],
    }
    assert set(data["runs"]["old"]) == {
        "events_read",
        "events_applied",
        "invalid_lines",
        "customers",
        "actions",
        "waiting",
    }


def test_limit_shortens_the_customer_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = write_version(tmp_path, WINBACK, more_offer_20)
    _, out, _ = _run(capsys, WINBACK, new, "--events", WINBACK_EVENTS, "--limit", "3")
    assert "  ... and 6 more customers (--limit N, 0: all)" in out
    assert "wb-09" in out
    assert "wb-10" not in out
    _, every, _ = _run(capsys, WINBACK, new, "--events", WINBACK_EVENTS, "--limit", "0")
    assert "wb-20" in every
    assert "more customers" not in every


def test_the_same_command_twice_prints_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = write_version(tmp_path, WELCOME, shorter_timeout)
    argv = (WELCOME, new, "--events", WELCOME_EVENTS, "--journeys", JOURNEYS)
    assert _run(capsys, *argv) == _run(capsys, *argv)
    assert _run(capsys, *argv, "--json") == _run(capsys, *argv, "--json")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("{welcome}", "{winback}"), "is journey 'winback'"),
        (("{v2}", "{welcome}"), "has version 1, not higher than version 2"),
        (("{welcome}", "{missing}"), "missing.yaml: no such journey file"),
        (("{welcome}", "{v2}", "--at", "tomorrow"), "--at: 'tomorrow' is not an ISO 8601 time"),
        (("{welcome}", "{v2}", "--until", "soon"), "--until: 'soon' is not an ISO 8601 time"),
        (("{welcome}", "{v2}", "--limit", "-1"), "--limit: a number of customers"),
        (("{welcome}", "{v2}", "--journeys", "{missing}"), "no such journey file or directory"),
    ],
)
def test_bad_input_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    names = {
        "welcome": str(WELCOME),
        "winback": str(WINBACK),
        "v2": str(write_version(tmp_path, WELCOME, shorter_timeout)),
        "missing": str(tmp_path / "missing.yaml"),
    }
    code, out, err = _run(capsys, *(a.format(**names) for a in argv), "--events", WELCOME_EVENTS)
    assert code == 2
    assert out == ""
    assert err.startswith("orchestrator diff: error: ")
    assert message in err


def test_an_invalid_file_prints_its_problems_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        WELCOME.read_text().replace("version: 1", "version: 2").replace("next: wait_open", "next: x")
    )
    code, out, err = _run(capsys, WELCOME, bad, "--events", WELCOME_EVENTS)
    assert code == 1
    assert out == ""
    assert "bad.yaml:" in err
