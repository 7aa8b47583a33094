"""The run stage in the engine: channel: auto, send_time: optimal and adaptive splits, through
CustomerLogic (the same calls both shells make), with the policy and a model on their timelines."""

from __future__ import annotations

from pathlib import Path

from orchestrator.contracts import CustomerEvent
from orchestrator.core.customer import CustomerLogic
from orchestrator.core.journey import JourneyRegistry, load_journey_text
from orchestrator.core.learning.loader import dump_model, load_model_file, load_model_text
from orchestrator.core.learning.model import BranchStats, EngagementModel
from orchestrator.core.learning.registry import ModelRegistry
from orchestrator.core.policy import PolicyRegistry
from tests.unit.core.policy.policy_helpers import T0, Customer, D, event, ms, policy

ROOT = Path(__file__).resolve().parents[4]
MODEL = load_model_file(ROOT / "journeys" / "run_stage" / "engagement_model.yaml")

JOURNEY = """\
id: pick
version: 1
entry: {event: lapsed}
re_entry: {policy: always}
steps:
  msg:
    type: send
    channel: auto
    channels: [email, sms, push]
    template: {email: t_email, sms: t_sms, push: t_push}
    send_time: %(send_time)s
%(window)s    on_unsent: %(on_unsent)s
    next: done
  done: {type: exit}
"""


def journey(send_time: str = "immediate", window: str = "", on_unsent: str = "continue") -> JourneyRegistry:
    reg = JourneyRegistry()
    text = JOURNEY % {"send_time": send_time, "window": window, "on_unsent": on_unsent}
    reg.deploy(load_journey_text(text, "pick.yaml"), 0)
    return reg


def customer(
    reg: JourneyRegistry, models: ModelRegistry | None = None, body: str = "", key: str = "c1"
) -> Customer:
    return Customer(CustomerLogic(reg, policy=PolicyRegistry(policy(body)), models=models), key)


def answers(c: Customer, channel: str, kind: str, n: int, at_ms: int, sends: int | None = None) -> None:
    """``sends`` receipts of ``channel`` and ``n`` answers (``kind``), a day apart before ``at_ms``."""
    for i in range(sends if sends is not None else n):
        c.on(f"{channel}.sent", at_ms - (i + 1) * D, action_id=f"h-{channel}-{i}")
        if i < n:
            c.on(f"{channel}.{kind}", at_ms - (i + 1) * D + 15 * 60_000, action_id=f"h-{channel}-{i}")


# -- channel: auto ---------------------------------------------------------------------------------
def test_only_channels_the_policy_allows_are_chosen_one_without_consent() -> None:
    c = customer(journey())
    c.reachable(T0 - 30 * D, "email", "sms")
    c.consent(T0 - 30 * D, "sms", False)  # sms: an address, no consent
    answers(c, "sms", "clicked", 8, T0)  # ... though the customer answers SMS every time
    answers(c, "email", "opened", 0, T0, sends=8)
    c.on("lapsed", T0)
    assert [(a.channel, a.template_id) for a in c.actions] == [("email", "t_email")]
    d = c.decisions[-1]
    assert d.choice is not None
    assert (d.choice["channel"], set(d.choice["rates"])) == ("email", {"email"})


def test_the_channel_the_customer_answers_is_chosen_and_recorded() -> None:
    c = customer(journey())
    c.reachable(T0 - 30 * D, "email", "sms", "push")
    answers(c, "sms", "clicked", 6, T0)
    answers(c, "email", "opened", 0, T0, sends=6)
    c.on("lapsed", T0)
    assert [a.channel for a in c.actions] == ["sms"]
    d = c.decisions[-1]
    assert (d.kind, d.channel, d.original_channel) == ("sent", "sms", "sms")
    assert d.choice is not None
    assert d.choice["rates"]["sms"] > 0.8 > d.choice["rates"]["email"]
    assert set(d.choice["draws"]) == {"email", "sms", "push"}
    assert c.actions[0].action_id == d.original_action_id  # the id the step made: no redirect id


def test_no_channel_allowed_is_suppressed_on_the_first_and_on_unsent_applies() -> None:
    c = customer(journey(on_unsent="exit"))
    c.profile(T0 - D, email="a@example.com")  # no consent anywhere
    out = c.on("lapsed", T0)
    assert c.actions == []
    assert c.verdicts() == [("suppressed", "no_consent", "email")]
    assert [t.reason for t in out.transitions if t.kind == "exited"] == ["unsent_no_consent"]


# -- send_time: optimal ----------------------------------------------------------------------------
WINDOW = '    within: 24h\n    between: ["08:00", "21:00"]\n'


def test_the_send_is_held_until_the_customer_s_hour_then_judged_again() -> None:
    c = customer(journey("optimal", WINDOW))
    c.reachable(T0 - 30 * D, "email", timezone="Europe/Berlin")
    for day in range(1, 8):  # opens at 19:15 Berlin (18:15 UTC in March before DST) every day
        c.on("email.opened", ms("2025-03-03T18:15:00Z") - day * D, action_id=f"h{day}")
    out = c.on("lapsed", ms("2025-03-03T07:00:00Z"))
    assert c.actions == []
    assert out.next_wakeup_ms == ms("2025-03-03T18:00:00Z")  # 19:00 Berlin: a durable timer in the state
    held = c.decisions[-1]
    assert (held.kind, held.reason) == ("held", "send_time")
    assert held.choice is not None
    assert held.choice["basis"] == "history"
    c.wake(ms("2025-03-03T18:00:00Z"))
    assert [(a.channel, a.created_at.isoformat()) for a in c.actions] == [
        ("email", "2025-03-03T18:00:00+00:00")
    ]
    assert (c.decisions[-1].kind, c.decisions[-1].reason) == ("sent", "released")


def test_quiet_hours_still_win_at_the_chosen_moment() -> None:
    quiet = "quiet_hours: {start: '18:30', end: '08:00', channels: [email]}\n"
    c = customer(journey("optimal", "    within: 24h\n"), body=quiet)
    c.reachable(T0 - 30 * D, "email")
    for day in range(1, 8):  # opens at 22:00 UTC: inside the quiet hours
        c.on("email.opened", ms("2025-03-03T22:00:00Z") - day * D, action_id=f"h{day}")
    c.on("lapsed", ms("2025-03-03T07:00:00Z"))
    assert c.wakeup == ms("2025-03-03T22:00:00Z")
    c.wake(ms("2025-03-03T22:00:00Z"))
    assert c.actions == []
    assert (c.decisions[-1].kind, c.decisions[-1].reason) == ("held", "quiet_hours")
    c.wake(ms("2025-03-04T08:00:00Z"))
    assert [a.created_at.isoformat() for a in c.actions] == ["2025-03-04T08:00:00+00:00"]


def test_no_history_and_no_model_sends_now() -> None:
    c = customer(journey("optimal", WINDOW))
    c.reachable(T0 - D, "email")
    c.on("lapsed", T0)
    assert len(c.actions) == 1
    assert c.decisions[-1].choice is not None
    assert c.decisions[-1].choice["basis"] == "no_data"


def test_the_model_in_force_at_the_send_s_time_is_read() -> None:
    models = ModelRegistry(MODEL, effective_from_ms=ms("2025-03-10T00:00:00Z"))
    before, after = customer(journey("optimal", WINDOW), models), customer(journey("optimal", WINDOW), models)
    for c in (before, after):
        c.reachable(ms("2025-03-01T00:00:00Z"), "email")
    before.on("lapsed", ms("2025-03-05T06:00:00Z"))  # no model yet, no history: now
    after.on("lapsed", ms("2025-03-12T06:00:00Z"))  # the model's evening prior
    assert before.decisions[-1].choice is not None
    assert after.decisions[-1].choice is not None
    assert (before.decisions[-1].choice["model"], before.decisions[-1].choice["basis"]) == (None, "no_data")
    assert (after.decisions[-1].choice["model"], after.decisions[-1].choice["basis"]) == (
        "engagement@1",
        "prior",
    )
    assert after.wakeup == ms("2025-03-12T18:00:00Z")


def test_a_replay_makes_the_same_choices() -> None:
    def run() -> list[tuple[str, str, str]]:
        c = customer(journey("optimal", WINDOW), ModelRegistry(MODEL))
        c.reachable(T0 - 30 * D, "email", "sms", "push", timezone="America/New_York")
        answers(c, "push", "opened", 2, T0, sends=5)
        answers(c, "email", "opened", 2, T0, sends=5)
        c.on("lapsed", T0)
        c.wake(T0 + 2 * D)
        return [(a.action_id, a.channel, a.created_at.isoformat()) for a in c.actions]

    assert run() == run()


# -- adaptive splits -------------------------------------------------------------------------------
SPLIT = """\
id: ab
version: 1
entry: {event: lapsed}
re_entry: {policy: always}
steps:
  offer:
    type: split
    adaptive: true
    branches:
      - {name: holdout, percent: 20, holdout: true}
      - {name: a, percent: 40, next: done}
      - {name: b, percent: 40, next: done}
  done: {type: exit}
"""


def _with_counts(version: int, a: tuple[int, int], b: tuple[int, int]) -> EngagementModel:
    base = load_model_text(dump_model(MODEL))
    text = dump_model(
        EngagementModel(
            id="engagement", version=version, fitted_from_ms=base.fitted_from_ms,
            fitted_to_ms=base.fitted_to_ms,
            splits={"ab": {"offer": {"a": BranchStats(*a), "b": BranchStats(*b)}}},
        )
    )  # fmt: skip
    return load_model_text(text)


def _branches(models: ModelRegistry, at_ms: int) -> dict[str, str]:
    reg = JourneyRegistry()
    reg.deploy(load_journey_text(SPLIT, "ab.yaml"), 0)
    logic = CustomerLogic(reg, models=models)
    out = {}
    for i in range(400):
        key = f"k{i}"
        done = logic.on_event(key, None, _lapsed(key, at_ms), at_ms)
        out[key] = next(t.branch for t in done.transitions if t.kind == "split")
    return out


def _lapsed(key: str, at_ms: int) -> CustomerEvent:
    return event("lapsed", at_ms, key)


def test_a_refit_moves_treated_customers_but_never_the_holdout() -> None:
    models = ModelRegistry(_with_counts(1, (500, 100), (500, 20)), effective_from_ms=0)
    models.deploy(_with_counts(2, (500, 20), (500, 100)), T0 + 10 * D)  # the refit says the opposite
    first, second = _branches(models, T0), _branches(models, T0 + 11 * D)
    held = {k for k, b in first.items() if b == "holdout"}
    assert held == {k for k, b in second.items() if b == "holdout"}
    assert 40 < len(held) < 120  # ~20 % of 400
    treated = [k for k in first if k not in held]
    assert sum(first[k] == "a" for k in treated) > 0.9 * len(treated)
    assert sum(second[k] == "b" for k in treated) > 0.9 * len(treated)
