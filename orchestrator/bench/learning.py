"""``orchestrator bench --only learning``: what the run stage costs journeys that do not use it.

The issue's requirement: journeys that use none of ``channel: auto``, ``send_time: optimal`` and
``adaptive: true`` cost no more per event. The same generated events (the example journeys deployed,
none of which uses the run stage) run through :class:`CustomerLogic` over fresh states in three variants,
**interleaved** (A, B, C, A, B, C ... five rounds each, ``gc.collect()`` before each round), timed in CPU
time (``time.process_time``); the figure is the **median of the five** per variant, and its ratio to A:

- **A**, the run stage's hooks off: the profile does not record the decayed local-hour scores
  (``record_engagement`` swapped for a no-op) and a send goes straight to the policy (``dispatch``
  swapped for ``run.gate.submit(send, at_ms)``), swapped in this process by :func:`run_stage_hooks_off`
  and restored after. What remains of the run stage in A (the ``models`` argument, the ``adaptive`` test
  of a split, the no-op call) is a few attribute reads per event;
- **B**, the code as it is, no model (``models=None``);
- **C**, the code as it is with a model deployed (``journeys/run_stage/engagement_model.yaml``).

For information (not the no-cost claim): **D**, ``journeys/run_stage/smart_winback.yaml`` (``channel:
auto``, ``send_time: optimal``, ``adaptive: true``) with the model and the example policy, fed the same
events plus one ``churn_risk.detected`` per customer and push/SMS receipts; against **D0**, the same
journey with the run stage's options taken out (email, sent at once, the fixed shares), interleaved the
same way. D - D0 per send decision is what the choices cost; a profiled run of D says which parts.

And the pieces alone: ``record_engagement``, ``choose_send_time`` and ``choose_channel``, µs per call.
"""

from __future__ import annotations

import cProfile
import gc
import pstats
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from types import ModuleType
from typing import Any

import orjson

import orchestrator.core.engine.run as run_module
import orchestrator.core.profile as profile_module
from orchestrator.bench.micro import JOURNEYS_DIR, _events, build_registry
from orchestrator.contracts.engine_event import Event, read_event
from orchestrator.core.customer import CustomerLogic
from orchestrator.core.engine.clock import iso_from_ms
from orchestrator.core.engine.state import CustomerState, PendingSend
from orchestrator.core.journey import load_journey_file
from orchestrator.core.journey.model import JourneyDefinition, SendStep, SplitStep
from orchestrator.core.journey.registry import JourneyRegistry
from orchestrator.core.learning.channels import choose_channel
from orchestrator.core.learning.loader import load_model_file
from orchestrator.core.learning.model import EngagementModel
from orchestrator.core.learning.registry import ModelRegistry
from orchestrator.core.learning.sendtime import choose_send_time
from orchestrator.core.learning.timing import decayed_scores, record_engagement
from orchestrator.core.policy import PolicyRegistry, load_policy_file
from orchestrator.core.resolution import canonical_key
from orchestrator.simulate.generate import START_MS, WEEK_MS, generate_events
from orchestrator.simulate.runner import EARLIEST_MS

__all__ = ["bench_learning", "plain_journey", "run_stage_hooks_off", "uses_run_stage"]

ROUNDS = 5
MODEL_FILE = JOURNEYS_DIR / "run_stage" / "engagement_model.yaml"
SMART_WINBACK = JOURNEYS_DIR / "run_stage" / "smart_winback.yaml"
POLICY_FILE = JOURNEYS_DIR / "policy.yaml"
_HOUR_MS = 3_600_000


# -- A: the run stage's hooks off -----------------------------------------------------------------


def _no_record(timing: dict[str, list[Any]], channel: str, at_ms: int, tz_name: str | None) -> None:
    return None


def _straight_to_policy(
    run: run_module.Run, send: PendingSend, step: SendStep, at_ms: int, default_timezone: str | None
) -> tuple[str, str | None]:
    return run.gate.submit(send, at_ms)


@contextmanager
def _swapped(module: ModuleType, name: str, value: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """``module.name`` is ``value`` within the block (the original is yielded, and put back after). The
    call sites read these names as module globals at call time, so the swap takes effect there."""
    original = getattr(module, name)
    assert callable(original), f"{module.__name__}.{name} is not a function: the call site changed"
    setattr(module, name, value)
    try:
        yield original
    finally:
        setattr(module, name, original)


@contextmanager
def run_stage_hooks_off() -> Iterator[None]:
    """Within the block, the profile records no decayed local-hour scores and every send goes straight
    to the policy, as before the run stage (``orchestrator.core.profile.record_engagement`` and
    ``orchestrator.core.engine.run.dispatch`` swapped, and put back after)."""
    with (
        _swapped(profile_module, "record_engagement", _no_record),
        _swapped(run_module, "dispatch", _straight_to_policy),
    ):
        yield


# -- journeys ----------------------------------------------------------------------------------------


def uses_run_stage(definition: JourneyDefinition) -> bool:
    """Does the journey have a ``channel: auto``, ``send_time: optimal`` or adaptive split step?"""
    for step in definition.steps.values():
        if isinstance(step, SendStep) and (step.channels or step.send_time == "optimal"):
            return True
        if isinstance(step, SplitStep) and step.adaptive:
            return True
    return False


def plain_journey(definition: JourneyDefinition) -> JourneyDefinition:
    """The journey with the run stage's options taken out: the first listed channel with its template,
    sent at once, the split's fixed shares."""
    steps: dict[str, Any] = {}
    for sid, step in definition.steps.items():
        if isinstance(step, SendStep) and step.channels:
            channel, template = step.channels[0]
            step = replace(step, channel=channel, template=template, channels=())
        if isinstance(step, SendStep) and step.send_time == "optimal":
            step = replace(step, send_time="immediate", within_ms=0, between=None)
        if isinstance(step, SplitStep) and step.adaptive:
            step = replace(step, adaptive=False)
        steps[sid] = step
    return replace(definition, steps=steps, content_hash=definition.content_hash + "-plain")


def _examples_and(definition: JourneyDefinition) -> JourneyRegistry:
    """The registry of the no-cost runs (:func:`build_registry` of 10) with ``definition`` deployed too."""
    registry = build_registry(10)
    registry.deploy(definition, EARLIEST_MS)
    return registry


# -- events ------------------------------------------------------------------------------------------


def _using_events(n: int, customers: int) -> list[tuple[str, Event]]:
    """The generated events, with: before them, each customer's zone, phone and push token and marketing
    consent on every channel (so ``channel: auto`` has channels to choose among); a third of the email
    opens as push opens and a third of the clicks as SMS clicks (receipts on every channel it compares);
    one ``churn_risk.detected`` per customer at a random time of the week (smart_winback's entry)."""
    rng = random.Random(11)
    zones = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC")
    raw: list[tuple[int, int, dict[str, Any]]] = []

    def add(at: int, order: int, event_id: str, typ: str, c: int, props: dict[str, Any] | None) -> None:
        ev: dict[str, Any] = {
            "event_id": event_id,
            "type": typ,
            "identifiers": {"customer_id": f"cust-{c}", "email": f"cust-{c}@example.com"},
            "occurred_at": iso_from_ms(at),
            "source": "bench",
        }
        if props:
            ev["properties"] = props
        raw.append((at, order, ev))

    before = START_MS - 86_400_000
    for c in range(customers):
        attrs = {"timezone": zones[c % 4], "phone": f"+1555{c:07d}", "push_token": f"tok-{c}"}
        add(before + 2 * c, -2, f"prof-{c}", "profile.updated", c, attrs)
        add(before + 2 * c + 1, -1, f"consent-{c}", "consent.changed", c, {"channel": "all", "granted": True})
    for i, ev in enumerate(generate_events(n, customers, 7)):
        if ev["type"] in ("email.opened", "email.clicked") and rng.random() < 1 / 3:
            ev["type"] = "push.opened" if ev["type"] == "email.opened" else "sms.clicked"
        raw.append((START_MS + int(i * WEEK_MS / max(n, 1)), i, ev))
    for c in range(customers):
        add(
            START_MS + rng.randrange(WEEK_MS) // 1000 * 1000,
            n + c,
            f"churn-{c}",
            "churn_risk.detected",
            c,
            None,
        )
    raw.sort(key=lambda r: (r[0], r[1]))
    out = []
    for _, _, ev in raw:
        event = read_event(orjson.dumps(ev))
        out.append((canonical_key(event.identifiers), event))
    return out


# -- timing ------------------------------------------------------------------------------------------


def _run(
    logic: CustomerLogic, events: list[tuple[str, Event]]
) -> tuple[float, dict[str, CustomerState], int]:
    """CPU seconds to apply every event over fresh states; the states and the actions made."""
    states: dict[str, CustomerState] = {}
    actions = 0
    gc.collect()
    t0 = time.process_time()
    for key, event in events:
        out = logic.on_event(key, states.get(key), event, event.occurred_ms)
        if out.state is None:
            states.pop(key, None)
        else:
            states[key] = out.state
        actions += len(out.actions)
    return time.process_time() - t0, states, actions


def _interleaved(
    variants: dict[str, tuple[Callable[[], CustomerLogic], bool]],
    events: list[tuple[str, Event]],
    rounds: int,
) -> dict[str, dict[str, Any]]:
    """``rounds`` rounds of every variant in turn (name -> (logic factory, hooks off)), after one untimed
    warm-up run; per variant the CPU seconds of each round, and from its first round the actions and the
    stored record's mean size. No run's states outlive it: every run starts with the same heap (a full
    collection inside a timed run walks whatever is alive)."""

    def once(make: Callable[[], CustomerLogic], off: bool, facts: bool) -> tuple[float, dict[str, Any]]:
        with run_stage_hooks_off() if off else nullcontext():
            spent, states, actions = _run(make(), events)
        if not facts:
            return spent, {}
        sizes = [len(orjson.dumps({"s": s.to_dict()})) for s in states.values()]
        return spent, {
            "actions": actions,
            "mean_record_bytes": round(sum(sizes) / max(1, len(sizes))),
            "customers_with_timing": sum(1 for s in states.values() if s.profile.timing),
        }

    first_make, first_off = next(iter(variants.values()))
    once(first_make, first_off, facts=False)  # (warm-up: caches, compiled conditions, zones)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    facts: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        for name, (make, off) in variants.items():
            spent, found = once(make, off, facts=name not in facts)
            seconds[name].append(spent)
            facts.setdefault(name, found)
    n = len(events)
    return {
        name: {
            "us_per_event": round(statistics.median(secs) / n * 1e6, 3),
            "best_us_per_event": round(min(secs) / n * 1e6, 3),
            "rounds_us_per_event": [round(s / n * 1e6, 2) for s in secs],
            **facts[name],
        }
        for name, secs in seconds.items()
    }


def _median_us(call: Callable[[], int], rounds: int) -> float:
    """Median over ``rounds`` of the CPU µs per call (``call`` runs a batch and returns how many)."""
    per: list[float] = []
    for _ in range(rounds):
        gc.collect()
        t0 = time.process_time()
        count = call()
        per.append((time.process_time() - t0) / count * 1e6)
    return round(statistics.median(per), 3)


def _micro(model: EngagementModel, quick: bool, rounds: int) -> dict[str, Any]:
    """The pieces alone, µs per call (median of ``rounds``)."""
    calls = 2_000 if quick else 40_000
    rng = random.Random(3)
    times = sorted(START_MS + rng.randrange(4 * WEEK_MS) for _ in range(calls))
    zones = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", None)

    def record() -> int:  # (customers with 10 opens each over four weeks, in four zones)
        timings: list[dict[str, list[Any]]] = [{} for _ in range(calls // 10)]
        for i, at in enumerate(times):
            record_engagement(timings[i % len(timings)], "email", at, zones[i % 4])
        return calls

    timing: dict[str, list[Any]] = {}
    for at in times[:40]:  # a customer with 40 opens over four weeks
        record_engagement(timing, "email", at, "Europe/Berlin")
    now = times[40]
    prior = model.hour_prior("email")
    few = max(1, calls // 10)

    def send_time() -> int:
        for i in range(few):
            choose_send_time(
                now + i * 60_000,
                24 * _HOUR_MS,
                history_zone="Europe/Berlin",
                bounds_zone="Europe/Berlin",
                between=(480, 1260),
                own=decayed_scores(timing.get("email"), now + i * 60_000),
                prior=prior,
                prior_weight=model.prior_weight,
            )
        return few

    engagement = {"email.sent": [12, now], "email.opened": [5, now], "email.clicked": [1, now],
                  "push.sent": [3, now], "push.opened": [1, now]}  # fmt: skip
    allowed = ["email", "push", "sms"]

    def channel() -> int:
        for i in range(few):
            choose_channel(f"action-{i}", allowed, engagement, model)
        return few

    return {
        "record_engagement_us": _median_us(record, rounds),
        "record_engagement_note": "10 opens per customer over four weeks, four zones",
        "choose_send_time_us": _median_us(send_time, rounds),
        "choose_send_time_note": "24 h window, between 08:00-21:00, 40 decayed opens, the model's prior; "
        "decayed_scores included",
        "choose_channel_us": _median_us(channel, rounds),
        "choose_channel_note": "3 channels allowed, the model's rates (one Beta draw per channel)",
    }


_CHOICE_PARTS = {
    "choose_channel": ("channels.py", "choose_channel"),
    "choose_send_time": ("sendtime.py", "choose_send_time"),
    "decayed_scores": ("timing.py", "decayed_scores"),
    "adaptive_branch": ("splits.py", "adaptive_branch"),
    "gate.allows": ("gate.py", "allows"),
    "gate.schedule": ("gate.py", "schedule"),
}


def _profile_shares(make: Callable[[], CustomerLogic], events: list[tuple[str, Event]]) -> dict[str, Any]:
    """One run of D under cProfile: each part's cumulative time as a share of the run (the profiler's
    overhead weighs more on small calls: indicative). ``choices``: the parts that choose (the channels
    allowed now, the channel, the hour, the split's branch)."""
    logic = make()
    profiler = cProfile.Profile()
    profiler.enable()
    _run(logic, events)
    profiler.disable()
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in stats.values()) or 1.0  # (the own time of every function: the whole run)

    def share(filename: str, func: str) -> float:
        cum: float = sum(v[3] for k, v in stats.items() if k[0].endswith(filename) and k[2] == func)
        return round(cum / total, 4)

    shares = {part: share(filename, func) for part, (filename, func) in _CHOICE_PARTS.items()}
    return {
        "shares_of_run": shares,
        "choices_share": round(sum(v for k, v in shares.items() if k != "gate.schedule"), 4),
        "dispatch_share": share("choices.py", "dispatch"),
        "gate_submit_share": share("gate.py", "submit"),
    }


def _count_decisions(make: Callable[[], CustomerLogic], events: list[tuple[str, Event]]) -> int:
    """The sends that asked for a choice (``channel: auto`` or ``send_time: optimal``), in one untimed
    run."""
    count = 0
    real = run_module.__dict__["dispatch"]

    def counting(
        run: run_module.Run, send: PendingSend, step: SendStep, at_ms: int, default_timezone: str | None
    ) -> tuple[str, str | None]:
        nonlocal count
        if step.channels or step.send_time == "optimal":
            count += 1
        return real(run, send, step, at_ms, default_timezone)  # type: ignore[no-any-return]

    with _swapped(run_module, "dispatch", counting):
        _run(make(), events)
    return count


def _using_it(events: list[tuple[str, Event]], model: EngagementModel, n: int, rounds: int) -> dict[str, Any]:
    smart = load_journey_file(SMART_WINBACK)
    assert uses_run_stage(smart)
    policy = PolicyRegistry(load_policy_file(POLICY_FILE))
    using = _examples_and(smart)
    plain = _examples_and(plain_journey(smart))

    def d0() -> CustomerLogic:
        return CustomerLogic(plain, policy=policy, models=ModelRegistry(model, EARLIEST_MS))

    def d() -> CustomerLogic:
        return CustomerLogic(using, policy=policy, models=ModelRegistry(model, EARLIEST_MS))

    rows = _interleaved({"D0": (d0, False), "D": (d, False)}, events, rounds)
    decisions = _count_decisions(d, events)
    spent_more = (rows["D"]["us_per_event"] - rows["D0"]["us_per_event"]) * len(events)
    return {
        "what": "smart_winback (channel: auto, send_time: optimal, adaptive: true) beside the example "
        "journeys, with the model and journeys/policy.yaml; D0: the same journey without the options "
        "(the first channel, sent at once, fixed shares)",
        "events": len(events),
        "generated_events": n,
        "added_events": len(events) - n,
        "added_note": "per customer: a profile.updated (zone, phone, push token) and a consent.changed "
        "(marketing on every channel) before the week, and one churn_risk.detected in it",
        "send_decisions": decisions,
        "plain_us_per_event": rows["D0"]["us_per_event"],
        "using_us_per_event": rows["D"]["us_per_event"],
        "ratio_using_vs_plain": round(rows["D"]["us_per_event"] / rows["D0"]["us_per_event"], 4),
        "extra_us_per_send_decision": round(spent_more / decisions, 2) if decisions else None,
        "rows": rows,
        "profile": _profile_shares(d, events),
    }


def bench_learning(quick: bool = False, events: int | None = None, rounds: int = ROUNDS) -> dict[str, Any]:
    n = events if events is not None else (3_000 if quick else 24_000)
    customers = max(min(500, n), n // 8)
    generated = _events(n, customers=customers)
    journeys = build_registry(10)
    using = sorted(j for j in journeys.journey_ids() if _any_version_uses(journeys, j))
    assert not using, f"journeys of the no-cost claim use the run stage: {using}"
    model = load_model_file(MODEL_FILE)
    variants: dict[str, tuple[Callable[[], CustomerLogic], bool]] = {
        "A": (lambda: CustomerLogic(journeys), True),
        "B": (lambda: CustomerLogic(journeys, models=None), False),
        "C": (lambda: CustomerLogic(journeys, models=ModelRegistry(model, EARLIEST_MS)), False),
        "A2": (lambda: CustomerLogic(journeys), True),
    }
    names = {
        "A": "before: the run stage's hooks off (no decayed local-hour scores, sends straight to the policy)",
        "B": "now, no model (models=None)",
        "C": f"now, a model deployed ({model.key})",
        "A2": "A again (the same code as A: how far two identical variants land apart on this machine)",
    }
    measured = _interleaved(variants, generated, rounds)
    base, best = measured["A"]["us_per_event"], measured["A"]["best_us_per_event"]
    rows = [
        {
            "variant": v,
            "name": names[v],
            **measured[v],
            "vs_A": round(measured[v]["us_per_event"] / base, 4),
            "best_vs_A": round(measured[v]["best_us_per_event"] / best, 4),
        }
        for v in variants
    ]
    same_actions = len({measured[v]["actions"] for v in variants}) == 1
    micro = _micro(model, quick or events is not None, rounds)
    inside = _record_in_situ(variants["B"][0], generated, rounds)
    extra = inside["us_per_event"]
    return {
        "what": "CustomerLogic.on_event over the same generated events, the example journeys (none uses "
        "the run stage), fresh states; interleaved A, B, C, A2; CPU time (time.process_time); "
        f"median of {rounds} rounds (and the best)",
        "events": n,
        "customers": customers,
        "rounds": rounds,
        "rows": rows,
        "ratio_B_vs_A": rows[1]["vs_A"],
        "ratio_C_vs_A": rows[2]["vs_A"],
        "ratio_A2_vs_A": rows[3]["vs_A"],
        "same_actions": same_actions,
        "micro": micro,
        "in_situ": {
            "what": "B's extra work measured inside B's run: the time spent in record_engagement (a timer "
            "around each call, median of the rounds), over A's time; the other hook, dispatch's test of "
            "the step's options before gate.submit, is two attribute reads per send",
            **inside,
            "ratio_vs_A_median": round((base + extra) / base, 4),
            "ratio_vs_A_best": round((best + extra) / best, 4),
        },
        "using_it": _using_it(_using_events(n, customers), model, n, rounds),
    }


def _record_in_situ(
    make: Callable[[], CustomerLogic], events: list[tuple[str, Event]], rounds: int
) -> dict[str, Any]:
    """Calls of ``record_engagement`` per event and the time inside them, in runs of ``make``'s logic."""
    real = profile_module.__dict__["record_engagement"]
    calls = 0
    spent = 0.0
    clock = time.perf_counter

    def timed(timing: dict[str, list[Any]], channel: str, at_ms: int, tz_name: str | None) -> None:
        nonlocal calls, spent
        t0 = clock()
        real(timing, channel, at_ms, tz_name)
        spent += clock() - t0
        calls += 1

    per_call: list[float] = []
    with _swapped(profile_module, "record_engagement", timed):
        for _ in range(rounds):
            calls, spent = 0, 0.0
            _run(make(), events)
            per_call.append(spent / max(1, calls))
    us = statistics.median(per_call) * 1e6
    return {
        "calls_per_event": round(calls / len(events), 4),
        "us_per_call": round(us, 3),
        "us_per_event": round(us * calls / len(events), 3),
    }


def _any_version_uses(registry: JourneyRegistry, journey_id: str) -> bool:
    return any(uses_run_stage(d.definition) for d in registry.deployments(journey_id))
