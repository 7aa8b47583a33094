"""``orchestrator simulate --deployments FILE`` (issue 20): versions deployed at times replay offline as
live — an entry on v1 before v2's time, on v2 after it; what a worker refuses is refused here too."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from orchestrator.cli import main
from orchestrator.cli.simulate import parse_until
from orchestrator.exceptions import SimulationError
from orchestrator.simulate import simulate_file

JOURNEY = """id: nudge
version: {version}
entry: {{event: cart.updated}}
re_entry: {{policy: always}}
steps:
  mail: {{type: send, channel: email, template: {template}}}
"""


def _line(n: int, at: str) -> bytes:
    ids = {"customer_id": f"c{n}", "email": f"c{n}@example.com"}
    return orjson.dumps(
        {"event_id": f"e{n}", "type": "cart.updated", "identifiers": ids, "occurred_at": at, "source": "t"}
    )


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    (tmp_path / "v1.yaml").write_text(JOURNEY.format(version=1, template="nudge_v1"))
    (tmp_path / "v2.yaml").write_text(JOURNEY.format(version=2, template="nudge_v2"))
    (tmp_path / "events.jsonl").write_bytes(
        b"\n".join(
            [
                _line(1, "2025-03-02T10:00:00Z"),
                _line(2, "2025-03-05T11:59:59Z"),
                _line(3, "2025-03-05T12:00:00Z"),
            ]
        )
    )
    (tmp_path / "deployments.yaml").write_text(
        "- at: 2025-03-01T00:00:00Z\n  files: [v1.yaml]\n- at: 2025-03-05T12:00:00Z\n  files: [v2.yaml]\n"
    )
    return tmp_path


def _templates(out: Path) -> list[tuple[str, str]]:
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    return [(a["customer_id"], a["template_id"]) for a in rows]


def test_each_version_is_in_effect_from_its_time(scenario: Path) -> None:
    out = scenario / "actions.jsonl"
    result = simulate_file(
        None, scenario / "events.jsonl", out_path=out, deployments_path=scenario / "deployments.yaml"
    )
    assert result.refused_deployments == []
    assert _templates(out) == [("c1", "nudge_v1"), ("c2", "nudge_v1"), ("c3", "nudge_v2")]


def test_without_a_timeline_the_highest_version_is_in_effect_from_the_start(scenario: Path) -> None:
    out = scenario / "actions.jsonl"
    simulate_file([scenario / "v1.yaml", scenario / "v2.yaml"], scenario / "events.jsonl", out_path=out)
    assert {t for _, t in _templates(out)} == {"nudge_v2"}


def test_the_same_version_with_other_content_is_refused_as_a_worker_would(scenario: Path) -> None:
    (scenario / "v2.yaml").write_text(JOURNEY.format(version=1, template="changed"))
    out = scenario / "actions.jsonl"
    result = simulate_file(
        None, scenario / "events.jsonl", out_path=out, deployments_path=scenario / "deployments.yaml"
    )
    (refused,) = result.refused_deployments
    assert "nudge version 1 is already deployed with different content" in refused
    assert {t for _, t in _templates(out)} == {"nudge_v1"}  # the earlier version stays


def test_the_cli_takes_the_timeline_and_says_what_is_wrong_in_it(
    scenario: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "simulate",
        "--deployments",
        str(scenario / "deployments.yaml"),
        "--events",
        str(scenario / "events.jsonl"),
    ]
    assert main(args) == 0
    assert "3 actions" in capsys.readouterr().out
    (scenario / "deployments.yaml").write_text("- at: yesterday\n  files: [v1.yaml]\n")
    assert main(args) == 2
    assert "entry 1: at: 'yesterday' is not an ISO 8601 time" in capsys.readouterr().err
    (scenario / "deployments.yaml").write_text("- at: 2025-03-01T00:00:00Z\n  files: [missing.yaml]\n")
    with pytest.raises(SimulationError, match=r"missing\.yaml: no such file"):
        simulate_file(None, scenario / "events.jsonl", deployments_path=scenario / "deployments.yaml")
    assert main(["simulate", "--events", str(scenario / "events.jsonl")]) == 2
    assert "give --journeys DIR, or --deployments FILE" in capsys.readouterr().err


def test_segments_and_campaigns_of_the_journeys_folder_are_deployed_before_a_timeline(tmp_path: Path) -> None:
    """--journeys DIR with --deployments: the folder's segments (and campaigns, models) are deployed from
    the start, as without a timeline (they were left out: the segment example sent nothing)."""
    root = Path(__file__).resolve().parents[3]
    timeline = tmp_path / "deployments.yaml"
    timeline.write_text(f"- at: 2025-01-01T00:00:00Z\n  files: [{root / 'journeys' / 'welcome.yaml'}]\n")
    out = tmp_path / "actions.jsonl"
    examples = root / "journeys" / "examples"
    simulate_file(
        root / "journeys",
        examples / "cart_nudge.events.jsonl",
        out_path=out,
        until_ms=parse_until("2025-04-30T00:00:00Z"),
        policy_path=root / "journeys" / "policy.yaml",
        deployments_path=timeline,
    )
    got = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    want = [orjson.loads(line) for line in (examples / "cart_nudge.expected.jsonl").read_bytes().splitlines()]
    assert [a for a in got if a["journey_id"] == "cart_nudge"] == want
