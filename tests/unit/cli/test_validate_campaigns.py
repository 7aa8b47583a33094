"""``orchestrator validate`` with campaign files: one summary line each, and what they name checked against
the segment, journey and policy files given."""

from __future__ import annotations

from pathlib import Path

from orchestrator.cli.validate import validate_paths

SEND_AT = """kind: campaign
id: spring_sale
version: 1
audience:
  segment: cart_abandoners
  condition: profile.country == "US"
send:
  channel: email
  template: spring_sale_v1
  subscription_group: product_news
schedule:
  at: 2025-03-12T10:00:00Z
"""
JOURNEY_LOCAL = """kind: campaign
id: weekly
version: 2
status: paused
audience: {segment: vip}
journey: nudge
schedule:
  date: 2025-03-12
  local_time: "10:00"
  default_timezone: Europe/Berlin
  every: 7d
  occurrences: 4
"""
SEGMENT = "kind: segment\nid: {id}\nversion: 1\ncondition: \"profile.tier == 'gold'\"\n"
JOURNEY = (
    "id: nudge\nversion: 1\nentry: {event: x.y}\nsteps:\n  mail: {type: send, channel: email, template: t}\n"
)
POLICY = """kind: policy
id: groups
version: 1
subscription_groups:
  - {id: product_news, channel: email, default: opt_out}
  - {id: sms_offers, channel: sms, default: opt_in}
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_each_campaign_gets_a_summary_line(tmp_path: Path) -> None:
    send = _write(tmp_path, "spring.yaml", SEND_AT)
    local = _write(tmp_path, "weekly.yaml", JOURNEY_LOCAL)
    daily = _write(
        tmp_path,
        "daily.yaml",
        JOURNEY_LOCAL.replace("id: weekly", "id: daily")
        .replace("  default_timezone: Europe/Berlin\n", "")
        .replace("every: 7d", "every: 1d"),
    )
    summaries, problems = validate_paths([tmp_path])
    assert problems == []
    assert summaries == [
        f"{daily}: ok: campaign daily v2 (paused), to segment vip, journey nudge, at 10:00 local on "
        "2025-03-12 (unknown zones: UTC), every day x4",
        f"{send}: ok: campaign spring_sale v1 (active), to segment cart_abandoners, email template "
        "spring_sale_v1, at 2025-03-12T10:00:00Z",
        f"{local}: ok: campaign weekly v2 (paused), to segment vip, journey nudge, at 10:00 local on "
        "2025-03-12 (unknown zones: Europe/Berlin), every 7 days x4",
    ]


def test_what_a_campaign_names_is_checked_against_the_files_given(tmp_path: Path) -> None:
    send = _write(tmp_path, "spring.yaml", SEND_AT.replace('"US"', "\"US\" && 'vipp' in profile.segments"))
    local = _write(tmp_path, "weekly.yaml", JOURNEY_LOCAL.replace("journey: nudge", "journey: nudg"))
    _write(tmp_path, "vip.yaml", SEGMENT.replace("{id}", "vip"))
    _write(tmp_path, "nudge.yaml", JOURNEY)
    policy = _write(tmp_path, "policy.yaml", POLICY.replace("product_news", "product_newz"))
    summaries, problems = validate_paths([tmp_path])
    assert problems == [
        f"{send}:5: audience.segment: segment 'cart_abandoners' is not among the segment files checked (vip)",
        f"{send}:6: audience.condition: segment 'vipp' is not among the segment files checked (vip) "
        "(did you mean 'vip'?)",
        f"{send}:10: send.subscription_group: no subscription group 'product_news' (did you mean "
        f"'product_newz'?) in policy groups@1 ({policy}); defined: product_newz, sms_offers",
        f"{local}:6: journey: journey 'nudg' is not among the journey files checked (nudge) (did you mean "
        "'nudge'?)",
    ]
    assert len(summaries) == 5  # (each file is clean on its own)


def test_a_group_on_another_channel_than_the_campaigns_send(tmp_path: Path) -> None:
    send = _write(tmp_path, "spring.yaml", SEND_AT.replace("product_news", "sms_offers"))
    policy = _write(tmp_path, "policy.yaml", POLICY)
    _, problems = validate_paths([send, policy])
    assert problems == [
        f"{send}:10: send.subscription_group: subscription group 'sms_offers' is on sms in policy groups@1 "
        f"({policy}), but this step sends by email"
    ]


def test_without_segment_journey_or_policy_files_nothing_is_cross_checked(tmp_path: Path) -> None:
    summaries, problems = validate_paths(
        [_write(tmp_path, "spring.yaml", SEND_AT), _write(tmp_path, "weekly.yaml", JOURNEY_LOCAL)]
    )
    assert problems == []
    assert len(summaries) == 2


def test_a_broken_or_duplicate_campaign_is_reported_with_the_others(tmp_path: Path) -> None:
    first = _write(tmp_path, "a.yaml", SEND_AT)
    again = _write(tmp_path, "b.yaml", SEND_AT)
    broken = _write(tmp_path, "c.yaml", JOURNEY_LOCAL.replace("every: 7d", "every: 36h"))
    summaries, problems = validate_paths([tmp_path])
    assert problems == [
        f"{again}:1: id: campaign spring_sale version 1 is also defined in {first}",
        f"{broken}:11: schedule.every: must be whole days (1d, 7d, 14d ...): each occurrence is a "
        "calendar day",
    ]
    assert summaries == [summaries[0]]
    assert summaries[0].startswith(f"{first}: ok: campaign spring_sale v1")
