"""A recorded history made by customers whose preferences are known: test data for ``orchestrator fit``
and ``orchestrator evaluate`` (not the engine: it draws with ``random.Random(seed)``).

Each customer has a zone (Europe/Berlin, America/New_York, Asia/Tokyo or UTC), a true **hour affinity**
over the local hours of the week (a peak hour of the day, another on weekends, a width, a weekend factor,
a floor), addresses and marketing consent on some channels, and a true **answer probability** per
channel (one favourite channel well above the others). Over ``weeks`` weeks they get sends at varied
hours from three journeys (``digest`` by email, ``nudge`` by SMS or push, and ``promo``, a split whose
branches convert at different true rates), and answer a send on channel ``c`` at local hour ``h`` with
probability ``p(c) * affinity(h)``, at a moment drawn from their affinity within two days of it. They also
open earlier sends again, view pages at their preferred hours and order now and then.

Writes ``events.jsonl``, ``actions.jsonl``, ``decisions.jsonl``, ``journeys/*.yaml`` and ``truth.json``
(per customer: zone, affinity, channel probabilities, allowed channels; per split branch: the true
conversion rate) into ``--out``::

    python -m orchestrator.learning.synthetic --customers 2000 --weeks 6 --seed 1 --out var/synthetic
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from orchestrator.contracts.actions import make_action_id
from orchestrator.contracts.decision import make_decision_id
from orchestrator.core.engine.clock import iso_from_ms
from orchestrator.core.learning.model import HOURS_OF_WEEK, MODEL_CHANNELS
from orchestrator.core.learning.timing import local_hour_of_week

__all__ = [
    "DEFAULT_START",
    "SPLIT_RATES",
    "ZONES",
    "CustomerTruth",
    "Generated",
    "generate",
    "load_truth",
    "main",
]

ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC")
DEFAULT_START = "2025-03-03T00:00:00Z"
"""A Monday; six weeks from it cross the US and the EU DST changes."""
SPLIT_RATES = {"a": 0.04, "b": 0.10, "control": 0.02}
"""True conversion rates (within three days) of the promo split's branches."""
_SPLIT_SHARES = (("a", 0.45), ("b", 0.45), ("control", 0.10))
_PEAKS = ((8, 3.0), (12, 2.0), (19, 4.0), (21, 2.0))
"""Peak hours of the day across the population, and how common each is."""
_HOUR = 3_600_000
_DAY = 24 * _HOUR
_WEEK = 7 * _DAY
_ANSWER_HOURS = 48
_ANSWER = {"email": "opened", "sms": "clicked", "push": "opened"}


@dataclass(frozen=True, slots=True)
class CustomerTruth:
    key: str
    zone: str
    affinity: tuple[float, ...]
    """Per local hour of the week (0 = Monday 00:00 local): how likely an answer is then (max 1)."""
    channels: dict[str, float]
    """Per channel: the probability of answering a send at the best hour."""
    allowed: tuple[str, ...]
    """Channels with an address and marketing consent."""
    peak: int = 0
    weekend_peak: int = 0

    def probability(self, channel: str, at_ms: int) -> float:
        """The true chance of answering a send on ``channel`` at ``at_ms``."""
        return self.channels.get(channel, 0.0) * self.affinity[local_hour_of_week(at_ms, self.zone)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "peak_hour": self.peak,
            "weekend_peak_hour": self.weekend_peak,
            "hour_affinity": list(self.affinity),
            "channels": self.channels,
            "allowed": list(self.allowed),
        }


@dataclass(frozen=True, slots=True)
class Generated:
    events: int
    actions: int
    decisions: int
    customers: int
    out: Path


def load_truth(path: Path) -> dict[str, CustomerTruth]:
    data = orjson.loads(path.read_bytes())
    return {
        key: CustomerTruth(
            key,
            c["zone"],
            tuple(c["hour_affinity"]),
            dict(c["channels"]),
            tuple(c["allowed"]),
            c.get("peak_hour", 0),
            c.get("weekend_peak_hour", 0),
        )
        for key, c in data["customers"].items()
    }


def _circular(a: int, b: int) -> int:
    d = abs(a - b) % 24
    return min(d, 24 - d)


def _customer(rng: random.Random, i: int) -> tuple[CustomerTruth, dict[str, str]]:
    key = f"cust{i:05d}"
    zone = rng.choice(ZONES)
    base = rng.choices([h for h, _ in _PEAKS], weights=[w for _, w in _PEAKS])[0]
    peak = (base + rng.randint(-1, 1)) % 24
    weekend_peak = (peak + rng.choice((0, 1, 2, 3))) % 24
    width = rng.uniform(1.0, 2.0)
    weekend = rng.uniform(0.5, 1.3)
    raw = []
    for how in range(HOURS_OF_WEEK):
        day, hod = divmod(how, 24)
        p = weekend_peak if day >= 5 else peak
        a = 0.06 + math.exp(-(_circular(hod, p) ** 2) / (2 * width * width))
        raw.append(a * (weekend if day >= 5 else 1.0))
    top = max(raw)
    affinity = tuple(round(a / top, 4) for a in raw)
    addresses = {"email": f"{key}@example.com"}
    if rng.random() < 0.7:
        addresses["sms"] = f"+1555{i:07d}"
    if rng.random() < 0.6:
        addresses["push"] = f"tok-{key}"
    consent = {"email": 0.9, "sms": 0.65, "push": 0.85}
    allowed = tuple(ch for ch in MODEL_CHANNELS if ch in addresses and rng.random() < consent[ch])
    probs = {"email": rng.uniform(0.1, 0.35), "sms": rng.uniform(0.03, 0.2), "push": rng.uniform(0.05, 0.3)}
    if allowed:
        probs[rng.choice(allowed)] = rng.uniform(0.55, 0.85)
    channels = {ch: round(p, 3) for ch, p in probs.items()}
    return CustomerTruth(key, zone, affinity, channels, allowed, peak, weekend_peak), addresses


class _Writer:
    def __init__(self) -> None:
        self.events: list[tuple[int, bytes]] = []
        self.actions: list[tuple[int, bytes]] = []
        self.decisions: list[tuple[int, bytes]] = []
        self.n = 0

    def event(self, etype: str, at: int, ids: dict[str, str], **extra: Any) -> None:
        self.n += 1
        body = {"event_id": f"ev{self.n:08d}", "type": etype, "identifiers": ids,
                "occurred_at": iso_from_ms(at), "source": "synthetic", **extra}  # fmt: skip
        self.events.append((at, orjson.dumps(body)))

    def send(self, c: CustomerTruth, ch: str, address: str, journey: str, step: str, at: int, n: int) -> str:
        aid = make_action_id(c.key, journey, n, step)
        self.actions.append((at, orjson.dumps({
            "action_id": aid, "channel": ch, "category": "marketing", "customer_id": c.key,
            "recipient": address, "journey_id": journey, "journey_version": 1, "step_id": step,
            "template_id": step, "campaign": journey, "personalization": {}, "created_at": iso_from_ms(at),
            "not_before": None,
        })))  # fmt: skip
        self.decision(c, ch, journey, step, at, aid, "sent", "allowed")
        self.event(f"{ch}.sent", at + 2000, {"customer_key": c.key}, action_id=aid, campaign=journey,
                   journey=journey)  # fmt: skip
        return aid

    def decision(self, c: CustomerTruth, ch: str, journey: str, step: str, at: int, aid: str, kind: str,
                 reason: str) -> None:  # fmt: skip
        self.decisions.append((at, orjson.dumps({
            "decision_id": make_decision_id(aid, kind, at), "kind": kind, "reason": reason, "detail": "",
            "customer_id": c.key, "action_id": aid, "original_action_id": aid, "journey_id": journey,
            "journey_version": 1, "step_id": step, "campaign": journey, "category": "marketing",
            "channel": ch, "original_channel": ch, "at": iso_from_ms(at),
        })))  # fmt: skip


def _preferred_moment(rng: random.Random, c: CustomerTruth, after: int, hours: int) -> int:
    """A moment in the ``hours`` hours after ``after``, drawn by the customer's affinity."""
    first = local_hour_of_week(after, c.zone)  # (hour by hour from there: a DST change shifts it by one)
    weights = [c.affinity[(first + k) % HOURS_OF_WEEK] ** 2 * 0.98**k for k in range(hours)]
    k = rng.choices(range(hours), weights=weights)[0]
    return after + k * _HOUR + rng.randrange(_HOUR)


def _answer(
    rng: random.Random, w: _Writer, c: CustomerTruth, ch: str, at: int, aid: str, journey: str, end: int
) -> None:
    ids = {"customer_key": c.key}
    if rng.random() >= c.probability(ch, at):
        return
    when = max(_preferred_moment(rng, c, at - at % _HOUR, _ANSWER_HOURS), at + 60_000)
    if when >= end:
        return
    kind = _ANSWER[ch]
    extra = {"action_id": aid, "campaign": journey, "journey": journey}
    w.event(f"{ch}.{kind}", when, ids, **extra)
    if ch == "email" and rng.random() < 0.3:
        w.event("email.clicked", when + rng.randrange(30_000, 600_000), ids, **extra)
    if rng.random() < 0.2:  # opened (clicked) again the same day: still one answered send
        again = when + rng.randrange(_HOUR, 6 * _HOUR)
        if again < end:
            w.event(f"{ch}.{kind}", again, ids, **extra)
    if rng.random() < 0.15:  # an earlier send looked at again days later, at a preferred hour
        later = _preferred_moment(rng, c, when + 4 * _DAY, 6 * 24)
        if later < end:
            w.event(f"{ch}.{kind}", later, ids, **extra)


def generate(customers: int, weeks: int, seed: int, out: Path, start: str = DEFAULT_START) -> Generated:
    """Write the history and the truth into ``out`` (see the module's docs)."""
    from orchestrator.learning.fit import DEFAULT_ATTRIBUTION_MS

    rng = random.Random(seed)
    start_ms = int(_parse(start))
    end_ms = start_ms + weeks * _WEEK
    w = _Writer()
    truths: dict[str, CustomerTruth] = {}
    for i in range(customers):
        c, addresses = _customer(rng, i)
        truths[c.key] = c
        ids = {"customer_id": c.key}
        props: dict[str, Any] = {"timezone": c.zone, "email": addresses["email"]}
        if "sms" in addresses:
            props["phone"] = addresses["sms"]
        if "push" in addresses:
            props["push_token"] = addresses["push"]
        joined = start_ms - rng.randrange(1, 30) * _DAY
        w.event("profile.updated", joined, ids, properties=props)
        for ch in c.allowed:
            w.event("consent.changed", joined + 1000, ids,
                    properties={"channel": ch, "category": "marketing", "granted": True})  # fmt: skip
        n = 0
        for week in range(weeks):
            for _ in range(rng.choice((2, 3, 3, 4))):
                if not c.allowed:
                    break
                ch = rng.choice(c.allowed)
                at = (
                    start_ms
                    + week * _WEEK
                    + rng.randrange(HOURS_OF_WEEK) * _HOUR
                    + rng.randrange(60) * 60_000
                )
                journey, step = ("digest", "digest") if ch == "email" else ("nudge", f"nudge_{ch}")
                n += 1
                aid = w.send(c, ch, addresses[ch], journey, step, at, n)
                _answer(rng, w, c, ch, at, aid, journey, end_ms)
            for _ in range(2):  # browsing at preferred hours
                seen = _preferred_moment(rng, c, start_ms + week * _WEEK, HOURS_OF_WEEK)
                w.event("page.viewed", seen, ids, properties={"path": "/"})
        # the promo split, once, in the first half
        entered = start_ms + rng.randrange(max(1, weeks * HOURS_OF_WEEK // 2)) * _HOUR
        w.event("promo.eligible", entered, ids)
        branch = rng.choices([b for b, _ in _SPLIT_SHARES], weights=[s for _, s in _SPLIT_SHARES])[0]
        if branch != "control":
            step = f"mail_{branch}"
            if "email" in c.allowed:
                n += 1
                aid = w.send(c, "email", addresses["email"], "promo", step, entered, n)
                _answer(rng, w, c, "email", entered, aid, "promo", end_ms)
            else:
                aid = make_action_id(c.key, "promo", 0, step)
                w.decision(c, "email", "promo", step, entered, aid, "suppressed", "no_consent")
        if rng.random() < SPLIT_RATES[branch]:
            w.event("order.completed", entered + rng.randrange(DEFAULT_ATTRIBUTION_MS), ids,
                    properties={"total": 40})  # fmt: skip
        if rng.random() < 0.2:  # orders of their own
            w.event(
                "order.completed", start_ms + rng.randrange(end_ms - start_ms), ids, properties={"total": 25}
            )
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("events", w.events), ("actions", w.actions), ("decisions", w.decisions)):
        rows.sort(key=lambda r: r[0])
        (out / f"{name}.jsonl").write_bytes(b"".join(body + b"\n" for _, body in rows))
    (out / "journeys").mkdir(exist_ok=True)
    for name, text in JOURNEYS.items():
        (out / "journeys" / f"{name}.yaml").write_text(text, encoding="utf-8")
    truth = {
        "seed": seed,
        "start": iso_from_ms(start_ms),
        "weeks": weeks,
        "splits": {"promo": {"ab": SPLIT_RATES}},
        "customers": {k: c.to_dict() for k, c in truths.items()},
    }
    (out / "truth.json").write_bytes(orjson.dumps(truth))
    return Generated(len(w.events), len(w.actions), len(w.decisions), customers, out)


def _parse(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


_SEND = """\
    type: send
    channel: {channel}
    category: marketing
    template: {template}
    campaign: {campaign}
"""
JOURNEYS = {
    "digest": "id: digest\nversion: 1\nentry:\n  event: digest.due\nre_entry:\n  policy: always\n"
    "steps:\n  digest:\n" + _SEND.format(channel="email", template="digest", campaign="digest"),
    "nudge": "id: nudge\nversion: 1\nentry:\n  event: nudge.due\nre_entry:\n  policy: always\nsteps:\n"
    "  nudge_sms:\n"
    + _SEND.format(channel="sms", template="nudge_sms", campaign="nudge")
    + "    next: later\n"
    "  later:\n    type: wait\n    duration: 1d\n    next: nudge_push\n"
    "  nudge_push:\n" + _SEND.format(channel="push", template="nudge_push", campaign="nudge"),
    "promo": "id: promo\nversion: 1\nentry:\n  event: promo.eligible\ngoals:\n  - name: ordered\n"
    "    event: order.completed\nsteps:\n  ab:\n    type: split\n    branches:\n"
    "      - name: a\n        percent: 45\n        next: mail_a\n"
    "      - name: b\n        percent: 45\n        next: mail_b\n"
    "      - name: control\n        percent: 10\n        holdout: true\n"
    "  mail_a:\n"
    + _SEND.format(channel="email", template="promo_a", campaign="promo")
    + "  mail_b:\n"
    + _SEND.format(channel="email", template="promo_b", campaign="promo"),
}
"""The journeys the history's sends come from (what ``--journeys`` reads for the promo split)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.learning.synthetic",
        description="write a recorded history of customers with known preferences (and truth.json)",
    )
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--weeks", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", default=DEFAULT_START, help="ISO 8601, UTC (default %(default)s)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR")
    args = parser.parse_args(argv)
    if args.customers < 1 or args.weeks < 1:
        parser.error("--customers and --weeks must be at least 1")
    done = generate(args.customers, args.weeks, args.seed, args.out, args.start)
    print(
        f"{done.out}: {done.customers} customers, {done.events} events, {done.actions} actions, "
        f"{done.decisions} decisions over {args.weeks} weeks (seed {args.seed}); truth in truth.json",
        file=sys.stdout,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
