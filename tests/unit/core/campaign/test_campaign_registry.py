"""The campaign timeline: versions in force by time, status changes, and the deployments refused."""

from __future__ import annotations

import pytest

from orchestrator.core.campaign import MAX_CAMPAIGNS, CampaignDefinition, CampaignRegistry, load_campaign_text
from orchestrator.exceptions import CampaignValidationError


def campaign(cid: str, template: str = "t1", version: int = 1, extra: str = "") -> CampaignDefinition:
    return load_campaign_text(
        f"kind: campaign\nid: {cid}\nversion: {version}\naudience:\n  segment: s\n{extra}"
        f"send: {{channel: email, template: {template}}}\nschedule: {{at: 2025-03-12T10:00:00Z}}\n",
        f"{cid}.yaml",
    )


def test_in_force_gives_the_versions_effective_at_a_time_by_id() -> None:
    reg = CampaignRegistry()
    reg.deploy(campaign("b"), 0)
    reg.deploy(campaign("a", version=1), 0)
    reg.deploy(campaign("a", "t2", version=2), 1000)
    reg.deploy(campaign("c"), 5000)
    assert [(d.id, d.version) for d in reg.in_force(999)] == [("a", 1), ("b", 1)]
    assert [(d.id, d.version) for d in reg.in_force(1000)] == [("a", 2), ("b", 1)]
    assert [(d.id, d.version) for d in reg.in_force(5000)] == [("a", 2), ("b", 1), ("c", 1)]
    assert reg.in_force(-1) == ()
    assert reg.in_force(999) is reg.in_force(999)  # (the same tuple: kept)
    assert reg.campaign_ids() == ["a", "b", "c"]
    assert len(reg) == 3
    assert [d.effective_from_ms for d in reg.deployments("a")] == [0, 1000]
    assert reg.deployments("nope") == []


def test_current_and_a_status_change_from_a_time() -> None:
    reg = CampaignRegistry([(campaign("a"), 100)])
    assert reg.current("a", 99) is None
    assert reg.current("nope", 100) is None
    generation = reg.generation
    reg.set_status("a", "paused", 200)
    assert reg.generation == generation + 1
    current = reg.current("a", 150)
    assert current is not None
    assert current.status == "active"
    paused = reg.current("a", 200)
    assert paused is not None
    assert (paused.status, paused.version) == ("paused", 1)
    reg.set_status("a", "cancelled", 300)
    assert [d.status for d in reg.in_force(300)] == ["cancelled"]
    with pytest.raises(CampaignValidationError, match="campaign 'nope' is not deployed"):
        reg.set_status("nope", "paused", 0)
    with pytest.raises(CampaignValidationError, match="unknown status 'done'"):
        reg.set_status("a", "done", 0)  # type: ignore[arg-type]


def test_the_same_version_with_other_content_is_refused() -> None:
    reg = CampaignRegistry()
    reg.deploy(campaign("a"), 0)
    reg.deploy(campaign("a"), 10)  # the same content again: allowed
    with pytest.raises(CampaignValidationError) as err:
        reg.deploy(campaign("a", "t9"), 20)
    assert err.value.problems == [
        "a.yaml:1: version: campaign a version 1 is already deployed with different content; give the "
        "changed campaign a new version number"
    ]
    assert [d.effective_from_ms for d in reg.deployments("a")] == [0, 10]


def test_lookback_past_the_history_is_refused_naming_the_field() -> None:
    reg = CampaignRegistry(history_window_ms=3_600_000)
    with pytest.raises(
        CampaignValidationError, match=r"a\.yaml:1: audience\.condition: looks back 7200000 ms"
    ):
        reg.deploy(campaign("a", extra="  condition: \"seen('x', duration('2h'))\"\n"), 0)
    personal = load_campaign_text(
        "kind: campaign\nid: p\nversion: 1\naudience: {segment: s}\nschedule: {at: 2025-03-12T10:00:00Z}\n"
        "send: {channel: sms, template: t, personalization: {n: \"count('x', duration('3h'))\"}}\n",
        "p.yaml",
    )
    with pytest.raises(CampaignValidationError, match=r"p\.yaml:1: send\.personalization: looks back"):
        reg.deploy(personal, 0)
    assert len(reg) == 0


def test_no_more_than_the_most_campaigns() -> None:
    reg = CampaignRegistry()
    for i in range(MAX_CAMPAIGNS):
        reg.deploy(campaign(f"c{i}"), 0)
    reg.deploy(campaign("c0"), 10)  # (one already deployed may be deployed again)
    with pytest.raises(CampaignValidationError, match=f"{MAX_CAMPAIGNS} campaigns are deployed already"):
        reg.deploy(campaign("one_more"), 0)
