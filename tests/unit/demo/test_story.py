"""The demo's stories: each step with its time and the reason of each turn; and where the demo finds its
files outside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli.simulate import parse_until
from orchestrator.contracts.decision import Decision
from orchestrator.core.engine.records import Transition
from orchestrator.core.policy import load_policy_file
from orchestrator.demo.files import SHARED, DemoError, example_dir
from orchestrator.demo.story import duration, story
from orchestrator.simulate.runner import Simulator, load_registry

ROOT = Path(__file__).resolve().parents[3]
JOURNEYS = ROOT / "journeys"
Welcome = tuple[dict[str, list[Transition]], dict[str, list[Decision]], Simulator]


@pytest.fixture(scope="module")
def welcome() -> Welcome:
    steps: dict[str, list[Transition]] = {}
    decided: dict[str, list[Decision]] = {}
    sim = Simulator(
        load_registry(JOURNEYS),
        policy=load_policy_file(JOURNEYS / "policy.yaml"),
        on_transition=lambda key, t: steps.setdefault(key, []).append(t),
        on_decision=lambda d: decided.setdefault(d.customer_id, []).append(d),
    )
    for n, line in enumerate((JOURNEYS / "examples" / "welcome.events.jsonl").read_bytes().splitlines(), 1):
        sim.feed_line(n, line)
    sim.finish(parse_until("2025-04-30T00:00:00Z"))
    return steps, decided, sim


def _told(welcome: Welcome, key: str) -> list[str]:
    steps, decided, sim = welcome
    return story(steps[key], decided.get(key, []), sim.logic.registry, journeys=["welcome"])


def test_no_open_in_time_and_consent_to_sms_gives_the_sms(welcome: Welcome) -> None:
    assert _told(welcome, "w-ann") == [
        "2025-03-03T09:00:00Z  welcome · entered welcome v1 on event account.created",
        "2025-03-03T09:00:00Z  welcome · welcome_email: email sent — allowed: every rule passed (marketing)",
        "2025-03-03T09:00:00Z  welcome · wait_open: waits for email.opened of welcome_email, at most 24 h",
        "2025-03-04T09:00:00Z  welcome · wait_open: no email.opened within 24 h",
        '2025-03-04T09:00:00Z  welcome · sms_allowed: profile.consent.sms.marketing && profile.phone != "" '
        "holds → welcome_sms",
        "2025-03-04T09:00:00Z  welcome · welcome_sms: sms sent — allowed: every rule passed (marketing)",
        "2025-03-04T09:00:00Z  welcome · left welcome: completed",
    ]


def test_an_open_at_exactly_the_timeout_is_in_time(welcome: Welcome) -> None:
    told = _told(welcome, "w-dan")
    assert told[-2:] == [
        "2025-03-04T12:00:00Z  welcome · wait_open: email.opened came in time",
        "2025-03-04T12:00:00Z  welcome · left welcome: opened_email",
    ]


def test_no_consent_is_said_with_its_meaning_and_the_goal_ends_the_wait(welcome: Welcome) -> None:
    told = _told(welcome, "w-fay")
    assert told[1] == (
        "2025-03-03T14:00:00Z  welcome · welcome_email: email suppressed — no_consent: no consent for the "
        "category on the channel (and no usable fallback channel)"
    )
    assert told[-1] == "2025-03-03T16:00:00Z  welcome · left welcome: goal first_order reached"


def test_a_branch_that_takes_its_default_names_the_conditions(welcome: Welcome) -> None:
    steps, decided, sim = welcome
    told = story(steps["w-fay"], decided["w-fay"], sim.logic.registry, journeys=["post_purchase"])
    assert any("post_purchase · morning: waits until 10:00 in the customer's time zone" in t for t in told)
    assert any("again: no condition holds (journey.visits.ask_review < 3) → mark_asked" in t for t in told)


def test_durations() -> None:
    assert [duration(ms) for ms in (86_400_000, 3 * 86_400_000, 5_400_000, 30_000, 90_000, 1_500)] == [
        "24 h", "3 days", "90 min", "30 s", "90 s", "1500 ms",
    ]  # fmt: skip


def test_the_files_come_from_the_checkout_or_from_the_installed_copy(tmp_path: Path) -> None:
    assert example_dir() == JOURNEYS  # a development install: the checkout's folder
    installed = tmp_path / "prefix" / SHARED
    for sub in ("examples", "demo"):
        (installed / sub).mkdir(parents=True)
    (installed / "policy.yaml").write_text("kind: policy\n")
    elsewhere = tmp_path / "no-checkout"  # as if installed from a wheel, with no checkout around it
    assert example_dir([tmp_path / "other", tmp_path / "prefix"], checkout=elsewhere) == installed
    with pytest.raises(DemoError, match="the example journeys are not installed"):
        example_dir([tmp_path / "other"], checkout=elsewhere)
