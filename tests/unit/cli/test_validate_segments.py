"""``orchestrator validate`` with segment files: summaries, cycles, and journeys naming unknown segments."""

from __future__ import annotations

from pathlib import Path

from orchestrator.cli.validate import validate_paths

JOURNEY = """id: nudge
version: 1
entry: {segment: cart_abandoners}
exit_when:
  - {name: vip_now, entered_segment: vip}
steps:
  mail: {type: send, channel: email, template: t}
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_segments_and_the_journeys_on_them_validate(tmp_path: Path) -> None:
    _write(tmp_path, "nudge.yaml", JOURNEY)
    _write(
        tmp_path, "vip.yaml", "kind: segment\nid: vip\nversion: 1\ncondition: \"profile.tier == 'gold'\"\n"
    )
    _write(
        tmp_path,
        "cart.yaml",
        "kind: segment\nid: cart_abandoners\nversion: 1\n"
        "condition: \"seen('cart.updated', duration('24h')) && !('vip' in profile.segments)\"\n",
    )
    summaries, problems = validate_paths([tmp_path])
    assert problems == []
    assert (
        f"{tmp_path}/cart.yaml: ok: segment cart_abandoners v1 (active), re-checked as counted events "
        in (summaries[0][: len(str(tmp_path)) + 86])
    )
    assert any("reads segments vip" in s for s in summaries)
    assert any("entry on segment cart_abandoners" in s for s in summaries)


def test_a_journey_naming_a_segment_not_given_is_a_problem(tmp_path: Path) -> None:
    _write(tmp_path, "nudge.yaml", JOURNEY)
    _write(
        tmp_path, "vip.yaml", "kind: segment\nid: vip\nversion: 1\ncondition: \"profile.tier == 'gold'\"\n"
    )
    _, problems = validate_paths([tmp_path])
    assert problems == [
        f"{tmp_path}/nudge.yaml:1: entry.segment: segment 'cart_abandoners' is not among the segment files "
        "checked (vip)"
    ]


def test_segments_reading_each_other_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "kind: segment\nid: a\nversion: 1\ncondition: \"'b' in profile.segments\"\n")
    _write(tmp_path, "b.yaml", "kind: segment\nid: b\nversion: 1\ncondition: \"'a' in profile.segments\"\n")
    _, problems = validate_paths([tmp_path])
    assert problems == [
        f"{tmp_path}/b.yaml:1: condition: segments would read each other in a cycle: a -> b -> a"
    ]
