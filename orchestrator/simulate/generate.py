"""A deterministic synthetic event file for measuring ``orchestrator simulate``.

``python -m orchestrator.simulate.generate N OUT.jsonl [--customers C] [--seed S]`` writes N events
over one week, in time order, for C customers: sign-ups, page views, cart updates, orders, opens,
clicks, consent and profile changes, segment entries. The mix reaches every example journey. With
``--visitors F`` about that fraction of the customers start as anonymous visitors (events carry only
an ``anonymous_id``) until their first sign-up, which carries both: identity merges.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from orchestrator.core.engine.clock import iso_from_ms

__all__ = ["generate_events", "write_events"]

START_MS = 1_740_960_000_000  # 2025-03-03T00:00:00Z
WEEK_MS = 7 * 86_400_000
_MIX: list[tuple[str, int]] = [
    ("page.viewed", 40),
    ("cart.updated", 15),
    ("email.opened", 10),
    ("email.clicked", 4),
    ("order.completed", 6),
    ("account.created", 5),
    ("profile.updated", 6),
    ("consent.changed", 4),
    ("segment.entered", 3),
    ("review.submitted", 2),
    ("app.opened", 5),
]


def generate_events(n: int, customers: int, seed: int = 7, visitors: float = 0.0) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    every = round(1 / visitors) if visitors > 0 else 0
    signed_in: set[int] = set()
    types = [t for t, _ in _MIX]
    weights = [w for _, w in _MIX]
    step = WEEK_MS / max(n, 1)
    for i in range(n):
        at = START_MS + int(i * step)
        c = rng.randrange(customers)
        typ = rng.choices(types, weights)[0]
        ev: dict[str, Any] = {
            "event_id": f"g{i}",
            "type": typ,
            "identifiers": {"customer_id": f"cust-{c}", "email": f"cust-{c}@example.com"},
            "occurred_at": iso_from_ms(at),
            "source": "generator",
        }
        if every and c % every == 0 and c not in signed_in:  # (no draw from rng: same mix as without)
            if typ == "account.created":
                signed_in.add(c)
                ev["identifiers"]["anonymous_id"] = f"anon-{c}"
            else:
                ev["identifiers"] = {"anonymous_id": f"anon-{c}"}
        props: dict[str, Any] = {}
        if typ == "cart.updated":
            count = rng.randrange(4)
            props = {"item_count": count, "total": round(count * rng.uniform(5, 80), 2)}
        elif typ == "order.completed":
            props = {"order_id": f"o{i}", "total": round(rng.uniform(10, 300), 2)}
        elif typ in ("email.opened", "email.clicked"):
            ev["campaign"] = rng.choice(["welcome", "cart_reminder", "winback", "newsletter"])
        elif typ == "profile.updated":
            props = {"timezone": rng.choice(["Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC"])}
            if rng.random() < 0.5:
                props["push_token"] = f"tok-{c}"
        elif typ == "consent.changed":
            props = {"channel": rng.choice(["sms", "email", "push"]), "granted": rng.random() < 0.7}
        elif typ == "segment.entered":
            props = {"segment": rng.choice(["lapsed_90d", "vip"])}
        if props:
            ev["properties"] = props
        yield ev


def write_events(path: Path, n: int, customers: int, seed: int = 7, visitors: float = 0.0) -> None:
    with path.open("wb") as f:
        for ev in generate_events(n, customers, seed, visitors):
            f.write(orjson.dumps(ev) + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--visitors", type=float, default=0.0, help="fraction of anonymous visitors")
    args = parser.parse_args()
    write_events(args.out, args.n, args.customers, args.seed, args.visitors)


if __name__ == "__main__":  # pragma: no cover
    main()
