"""``orchestrator evaluate``'s logic: what the run stage's choices would have gained on a recorded history.

The history is split at a time quantile (``train``: the share of its records before the split). A model
is fitted on the first part (:func:`~orchestrator.learning.fit.fit_model`, as ``orchestrator fit``
would), each customer's profile is built from the first part's events (the core's ``apply_event``), and
the choices made at the split are scored on the rest:

- **send time**: for each customer and channel with opens or clicks in the test part, the moment
  ``choose_send_time`` picks (now = the split, within 7 days, no bounds), against the population's best
  hour (from the model), 10:00 local and a random hour (seeded): how often the chosen local hour of the
  week (and hour of the day) is one the customer engaged in during the test part; with the truth, the
  mean true answer probability at the chosen moment;
- **channel**: for each customer with a channel allowed (address and marketing consent), the channel
  ``choose_channel`` picks, against email and a random allowed channel: the test part's answered-send
  rate on the picked channel (pooled over customers), and with the truth the mean true answer
  probability of the picked channel.

Lifts are ratios: chosen / fixed, chosen / random.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from orchestrator.core.engine.clock import iso_from_ms
from orchestrator.core.journey import JourneyDefinition
from orchestrator.core.learning.channels import choose_channel
from orchestrator.core.learning.model import HOURS_OF_WEEK, MODEL_CHANNELS, EngagementModel
from orchestrator.core.learning.sendtime import candidate_moments, choose_send_time
from orchestrator.core.learning.timing import decayed_scores, local_hour_of_week
from orchestrator.core.profile import Profile, apply_event
from orchestrator.learning.fit import DEFAULT_ATTRIBUTION_MS, FitOptions, fit_model
from orchestrator.learning.history import History, LearningError, event_customer
from orchestrator.learning.synthetic import CustomerTruth

__all__ = ["EvaluateOptions", "evaluate", "format_table", "split_time"]

_WEEK_MS = 7 * 86_400_000
SEND_TIME_ARMS = ("chosen", "best_hour", "ten_am", "random")
CHANNEL_ARMS = ("chosen", "email", "random")


@dataclass(frozen=True, slots=True)
class EvaluateOptions:
    train: float = 0.75
    seed: int = 0
    within_ms: int = _WEEK_MS
    fixed_hour: int = 10
    attribution_ms: int = DEFAULT_ATTRIBUTION_MS
    prior_weight: float = 10.0


def split_time(history: History, train: float) -> int:
    """The time before which ``train`` of the history's events and sends happened."""
    times = sorted([e.occurred_ms for e in history.events] + [s.at_ms for s in history.sends])
    if not times:
        raise LearningError("no events and no actions in the history: nothing to evaluate")
    return times[min(len(times) - 1, int(train * len(times)))]


def _profiles(history: History, before_ms: int) -> dict[str, Profile]:
    profiles: dict[str, Profile] = {}
    for event in history.events:
        if event.occurred_ms >= before_ms:
            break
        key = event_customer(event)
        profile = profiles.get(key)
        if profile is None:
            profile = profiles[key] = Profile(customer_key=key)
        apply_event(profile, event)
    return profiles


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b > 0 else None


def _lifts(values: dict[str, float], arms: tuple[str, ...]) -> dict[str, float | None]:
    return {f"chosen/{a}": _ratio(values["chosen"], values[a]) for a in arms[1:]}


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def _first(moments: list[int], zone: str, test: Any) -> int:
    for at in moments:
        if test(local_hour_of_week(at, zone)):
            return at
    return moments[0]


def _send_time(
    history: History, split: int, model: EngagementModel, profiles: dict[str, Profile],
    truth: dict[str, CustomerTruth] | None, o: EvaluateOptions,
) -> dict[str, Any]:  # fmt: skip
    engaged: dict[tuple[str, str], list[int]] = {}
    for event in history.events:
        if event.occurred_ms < split:
            continue
        channel, _, kind = event.type.partition(".")
        if channel in MODEL_CHANNELS and kind in ("opened", "clicked"):
            engaged.setdefault((event_customer(event), channel), []).append(event.occurred_ms)
    hits_how = dict.fromkeys(SEND_TIME_ARMS, 0)
    hits_hod = dict.fromkeys(SEND_TIME_ARMS, 0)
    true_p: dict[str, list[float]] = {arm: [] for arm in SEND_TIME_ARMS}
    bases: dict[str, int] = {}
    for customer, channel in sorted(engaged):
        profile = profiles.get(customer) or Profile(customer_key=customer)
        zone = profile.timezone
        hows = {local_hour_of_week(at, zone) for at in engaged[(customer, channel)]}
        prior = model.hour_prior(channel)
        choice = choose_send_time(
            split, o.within_ms, history_zone=zone, bounds_zone=zone, between=None,
            own=decayed_scores(profile.timing.get(channel), split), prior=prior,
            prior_weight=model.prior_weight,
        )  # fmt: skip
        bases[choice.basis] = bases.get(choice.basis, 0) + 1
        moments = candidate_moments(split, o.within_ms, zone)[1:] or [split]
        best = max(range(HOURS_OF_WEEK), key=lambda h: (prior[h], -h)) if prior else None
        rng = random.Random(f"{o.seed}:{customer}:{channel}")
        picked = {
            "chosen": choice.at_ms,
            "best_hour": choice.at_ms if best is None else _first(moments, zone, best.__eq__),
            "ten_am": _first(moments, zone, lambda h: h % 24 == o.fixed_hour),
            "random": rng.choice(moments),
        }
        t = truth.get(customer) if truth is not None else None
        for arm, at in picked.items():
            how = local_hour_of_week(at, zone)
            hits_how[arm] += how in hows
            hits_hod[arm] += how % 24 in {h % 24 for h in hows}
            if t is not None:
                true_p[arm].append(t.probability(channel, at))
    n = len(engaged)
    how_rate = {arm: round(hits_how[arm] / n, 4) if n else 0.0 for arm in SEND_TIME_ARMS}
    hod_rate = {arm: round(hits_hod[arm] / n, 4) if n else 0.0 for arm in SEND_TIME_ARMS}
    out: dict[str, Any] = {
        "pairs": n,
        "basis": dict(sorted(bases.items())),
        "hit_hour_of_week": how_rate,
        "hit_hour_of_day": hod_rate,
        "lift_hour_of_week": {
            f"chosen/{a}": _ratio(how_rate["chosen"], how_rate[a]) for a in SEND_TIME_ARMS[1:]
        },
    }
    if truth is not None:
        means = {arm: _mean(true_p[arm]) for arm in SEND_TIME_ARMS}
        out["true_probability"] = means
        out["lift_true_probability"] = {
            f"chosen/{a}": _ratio(means["chosen"], means[a]) for a in SEND_TIME_ARMS[1:]
        }
    return out


def _allowed(profile: Profile) -> list[str]:
    return [ch for ch in MODEL_CHANNELS if ch in profile.addresses and profile.has_consent(ch, "marketing")]


def _channel(
    history: History, split: int, model: EngagementModel, profiles: dict[str, Profile],
    truth: dict[str, CustomerTruth] | None, o: EvaluateOptions,
) -> dict[str, Any]:  # fmt: skip
    answered_ids: dict[str, list[int]] = {}
    for event in history.events:
        channel, _, kind = event.type.partition(".")
        if event.action_id is not None and event.occurred_ms >= split and kind in ("opened", "clicked"):
            answered_ids.setdefault(f"{channel}:{event.action_id}", []).append(event.occurred_ms)
    sends: dict[tuple[str, str], list[int]] = {}  # (customer, channel) -> [sends, answered]
    for s in history.sends:
        if s.at_ms < split:
            continue
        counts = sends.setdefault((s.customer, s.channel), [0, 0])
        counts[0] += 1
        times = answered_ids.get(f"{s.channel}:{s.action_id}", [])
        counts[1] += any(s.at_ms <= t <= s.at_ms + o.attribution_ms for t in times)
    pooled = {arm: [0, 0] for arm in CHANNEL_ARMS}
    true_p: dict[str, list[float]] = {arm: [] for arm in CHANNEL_ARMS}
    customers = 0
    for key in sorted(profiles):
        allowed = _allowed(profiles[key])
        if not allowed:
            continue
        customers += 1
        picked = {
            "chosen": choose_channel(key, allowed, profiles[key].engagement, model).channel,
            "email": "email" if "email" in allowed else allowed[0],
            "random": random.Random(f"{o.seed}:{key}:channel").choice(allowed),
        }
        t = truth.get(key) if truth is not None else None
        for arm, ch in picked.items():
            found = sends.get((key, ch))
            if found is not None:
                pooled[arm][0] += found[0]
                pooled[arm][1] += found[1]
            if t is not None:
                true_p[arm].append(t.channels.get(ch, 0.0))
    rates = {arm: round(a / s, 4) if s else 0.0 for arm, (s, a) in pooled.items()}
    out: dict[str, Any] = {
        "customers": customers,
        "test_sends": {arm: s for arm, (s, _) in pooled.items()},
        "answered_rate": rates,
        "lift_answered_rate": _lifts(rates, CHANNEL_ARMS),
    }
    if truth is not None:
        means = {arm: _mean(true_p[arm]) for arm in CHANNEL_ARMS}
        out["true_probability"] = means
        out["lift_true_probability"] = {
            f"chosen/{a}": _ratio(means["chosen"], means[a]) for a in CHANNEL_ARMS[1:]
        }
    return out


def evaluate(
    history: History,
    options: EvaluateOptions = EvaluateOptions(),
    truth: dict[str, CustomerTruth] | None = None,
    journeys: list[JourneyDefinition] | None = None,
) -> dict[str, Any]:
    """Fit on the first part of ``history``, score the choices on the rest (see the module's docs)."""
    if not 0.0 < options.train < 1.0:
        raise LearningError("--train must be between 0 and 1 (the share of the history to fit on)")
    if not history.events:
        raise LearningError("no events in the history: nothing to evaluate (are the files empty?)")
    split = split_time(history, options.train)
    bounds = history.bounds()
    assert bounds is not None
    fit_options = FitOptions(prior_weight=options.prior_weight, attribution_ms=options.attribution_ms)
    model = fit_model(history, bounds[0], split, fit_options, journeys or ())
    profiles = _profiles(history, split)
    return {
        "split_at": iso_from_ms(split),
        "train": options.train,
        "seed": options.seed,
        "model": dict(model.counts),
        "send_time": _send_time(history, split, model, profiles, truth, options),
        "channel": _channel(history, split, model, profiles, truth, options),
    }


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _lift(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def format_table(result: dict[str, Any]) -> str:
    """The result as readable lines."""
    st, ch = result["send_time"], result["channel"]
    lines = [
        f"fitted on {result['model'].get('events', 0)} events and "
        f"{result['model'].get('actions', 0)} actions before {result['split_at']} "
        f"(train {result['train']:g}); scored on the rest",
        "",
        f"send time ({st['pairs']} customer-channel pairs with engagement after the split)",
        f"  {'':28}{'chosen':>10}{'best hour':>11}{'10:00':>10}{'random':>10}",
    ]
    rows = [("hit: hour of week", st["hit_hour_of_week"]), ("hit: hour of day", st["hit_hour_of_day"])]
    if "true_probability" in st:
        rows.append(("true answer probability", st["true_probability"]))
    for name, values in rows:
        cells = "".join(
            f"{_pct(values[a]):>{w}}" for a, w in zip(SEND_TIME_ARMS, (10, 11, 10, 10), strict=True)
        )
        lines.append(f"  {name:28}{cells}")
    lift = st["lift_hour_of_week"]
    lines.append(f"  lift (hour of week): {', '.join(f'{k} {_lift(v)}' for k, v in lift.items())}")
    if "lift_true_probability" in st:
        lift = st["lift_true_probability"]
        lines.append(f"  lift (true probability): {', '.join(f'{k} {_lift(v)}' for k, v in lift.items())}")
    lines += [
        "",
        f"channel ({ch['customers']} customers with an allowed channel)",
        f"  {'':28}{'chosen':>10}{'email':>10}{'random':>10}",
    ]
    rows = [("answered sends after split", ch["answered_rate"])]
    if "true_probability" in ch:
        rows.append(("true answer probability", ch["true_probability"]))
    for name, values in rows:
        lines.append(f"  {name:28}" + "".join(f"{_pct(values[a]):>10}" for a in CHANNEL_ARMS))
    lift = ch["lift_answered_rate"]
    lines.append(f"  lift (answered rate): {', '.join(f'{k} {_lift(v)}' for k, v in lift.items())}")
    if "lift_true_probability" in ch:
        lift = ch["lift_true_probability"]
        lines.append(f"  lift (true probability): {', '.join(f'{k} {_lift(v)}' for k, v in lift.items())}")
    if st["pairs"] == 0:
        lines.append("\nno customer engaged after the split: the send-time scores are empty (more history?)")
    return "\n".join(lines)
