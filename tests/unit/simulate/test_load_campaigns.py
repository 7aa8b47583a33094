"""The simulator's campaigns: the campaign files of a folder (or of the files given), never read as
journeys, and a deployments timeline that deploys them at their time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.exceptions import CampaignValidationError
from orchestrator.simulate import EARLIEST_MS, load_campaigns, load_registry, load_segments
from orchestrator.simulate.timeline import read_timeline

CAMPAIGN = """kind: campaign
id: {id}
version: 1
audience: {{segment: vip}}
journey: nudge
schedule: {{at: 2025-03-12T10:00:00Z}}
"""
JOURNEY = (
    "id: nudge\nversion: 1\nentry: {event: x.y}\nsteps:\n  mail: {type: send, channel: email, template: t}\n"
)
SEGMENT = "kind: segment\nid: vip\nversion: 1\ncondition: \"profile.tier == 'gold'\"\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "spring.yaml").write_text(CAMPAIGN.format(id="spring"))
    (tmp_path / "autumn.yml").write_text(CAMPAIGN.format(id="autumn"))
    (tmp_path / "nudge.yaml").write_text(JOURNEY)
    (tmp_path / "vip.yaml").write_text(SEGMENT)
    return tmp_path


def test_the_campaigns_of_a_folder_are_in_force_always(folder: Path) -> None:
    campaigns = load_campaigns(folder)
    assert campaigns.campaign_ids() == ["autumn", "spring"]
    assert [d.id for d in campaigns.in_force(EARLIEST_MS)] == ["autumn", "spring"]
    assert [d.id for d in load_campaigns([folder / "spring.yaml", folder / "nudge.yaml"]).in_force(0)] == [
        "spring"
    ]
    assert len(load_campaigns(None)) == 0
    assert len(load_campaigns(folder / "spring.yaml")) == 0  # (one file is a journey file, as for segments)


def test_campaign_files_are_not_journeys(folder: Path) -> None:
    assert load_registry(folder).journey_ids() == ["nudge"]
    assert load_registry([folder / "spring.yaml", folder / "nudge.yaml"]).journey_ids() == ["nudge"]
    assert load_segments(folder).segment_ids() == ["vip"]


def test_the_problems_of_every_campaign_file_are_raised_together(folder: Path) -> None:
    (folder / "spring.yaml").write_text(CAMPAIGN.format(id="spring").replace("journey: nudge", "jurney: x"))
    (folder / "autumn.yml").write_text(CAMPAIGN.format(id="autumn").replace("vip", "Vip"))
    with pytest.raises(CampaignValidationError) as err:
        load_campaigns(folder)
    assert [p.split(": ")[0:2] for p in err.value.problems] == [
        [f"{folder}/autumn.yml:4", "audience.segment"],
        [f"{folder}/spring.yaml:5", "jurney"],
        [f"{folder}/spring.yaml:1", "send"],
    ]


def test_a_deployments_timeline_deploys_campaigns_at_their_time(folder: Path) -> None:
    (folder / "deployments.yaml").write_text(
        "- at: 2025-03-01T00:00:00Z\n  files: [nudge.yaml, vip.yaml]\n"
        "- at: 2025-03-05T00:00:00Z\n  files: [spring.yaml]\n"
    )
    timeline = read_timeline(folder / "deployments.yaml")
    assert timeline.refused == []
    at_ms = int(datetime(2025, 3, 5, tzinfo=UTC).timestamp() * 1000)
    assert timeline.campaigns.in_force(at_ms - 1) == ()
    assert [d.id for d in timeline.campaigns.in_force(at_ms)] == ["spring"]


def test_template_files_are_not_journeys(folder: Path) -> None:
    template = "kind: template\nid: t\nversion: 1\nchannel: email\nsubject: Hi\ntext: Hello\n"
    (folder / "t.yaml").write_text(template)
    assert load_registry(folder).journey_ids() == ["nudge"]
    assert load_registry([folder / "t.yaml", folder / "nudge.yaml"]).journey_ids() == ["nudge"]
    assert load_campaigns(folder).campaign_ids() == ["autumn", "spring"]
    assert load_segments(folder).segment_ids() == ["vip"]
