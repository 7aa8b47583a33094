"""`orchestrator validate` given journeys and a policy: each send step's subscription group is checked."""

from __future__ import annotations

from pathlib import Path

from orchestrator.cli.validate import validate_paths

POLICY = """\
kind: policy
id: groups
version: 1
subscription_groups:
  - {id: product_news, channel: email, default: opt_out}
  - {id: sms_offers, channel: sms, default: opt_in}
"""
JOURNEY = """\
id: news
version: 1
entry: {event: news.go}
steps:
  mail:
    type: send
    channel: email
    template: t
    subscription_group: {group}
"""


def write(folder: Path, group: str, policy: str = POLICY) -> tuple[Path, Path]:
    journey, pol = folder / "news.yaml", folder / "policy.yaml"
    journey.write_text(JOURNEY.replace("{group}", group))
    pol.write_text(policy)
    return journey, pol


def test_a_group_of_the_policy_on_the_steps_channel_is_clean(tmp_path: Path) -> None:
    write(tmp_path, "product_news")
    summaries, problems = validate_paths([tmp_path])
    assert problems == []
    assert any(s.endswith(", 2 subscription group(s)") for s in summaries)


def test_an_undefined_group_names_file_line_and_field(tmp_path: Path) -> None:
    journey, pol = write(tmp_path, "product_nwes")
    _, problems = validate_paths([journey, pol])
    assert problems == [
        f"{journey}:9: steps.mail.subscription_group: no subscription group 'product_nwes' (did you mean "
        f"'product_news'?) in policy groups@1 ({pol}); defined: product_news, sms_offers"
    ]


def test_a_group_on_another_channel_than_the_step(tmp_path: Path) -> None:
    journey, pol = write(tmp_path, "sms_offers")
    _, problems = validate_paths([tmp_path])
    assert problems == [
        f"{journey}:9: steps.mail.subscription_group: subscription group 'sms_offers' is on sms in policy "
        f"groups@1 ({pol}), but this step sends by email"
    ]


def test_without_a_policy_groups_are_not_checked(tmp_path: Path) -> None:
    journey, _ = write(tmp_path, "anything")
    summaries, problems = validate_paths([journey])
    assert problems == []
    assert summaries[0].startswith(f"{journey}: ok: news v1")


def test_a_policy_without_groups_refuses_every_group(tmp_path: Path) -> None:
    journey, pol = write(tmp_path, "product_news", policy="kind: policy\nid: plain\nversion: 1\n")
    _, problems = validate_paths([tmp_path])
    assert problems == [
        f"{journey}:9: steps.mail.subscription_group: no subscription group 'product_news' in policy "
        f"plain@1 ({pol}); defined: none"
    ]
