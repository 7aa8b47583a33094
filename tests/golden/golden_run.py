"""The golden runs: a generated week of events (20 % visitors) through ``orchestrator simulate`` and
through the runtime's customer side (:class:`~orchestrator.testing.LocalPipeline`), with and without
the example policy, reduced to digests of what they produced.

``tests/golden/generated.json`` holds the digests the release before the processor's batch rewrite
gave (issue 15); ``records-v1.jsonl.gz`` the customer records that release stored half-way through
the pipeline run (the upgrade test reads them). Regenerate both only when outputs are meant to change,
with the code that is to be the reference::

    python -m tests.golden.golden_run --write

``python -m tests.golden.golden_run --events 200000`` prints the digests of a larger file, to compare two
checkouts by hand (the 200,000-event file gave the same digests before and after issue 15).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from orchestrator.core.customer import CustomerLogic
from orchestrator.core.policy import load_policy_file
from orchestrator.simulate.generate import generate_events
from orchestrator.simulate.runner import Simulator, load_registry
from orchestrator.testing.pipeline import LocalPipeline

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "generated.json"
RECORDS = HERE / "records-v1.jsonl.gz"
EVENTS = 10_000
CUSTOMERS = 2_000
VISITORS = 0.2
UPGRADE_EVENTS = 3_000
UPGRADE_CUSTOMERS = 600


def events(n: int = EVENTS, customers: int = CUSTOMERS) -> list[bytes]:
    return [orjson.dumps(e) for e in generate_events(n, customers, 7, VISITORS)]


def digest(items: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    count = 0
    for item in items:
        h.update(item)
        h.update(b"\n")
        count += 1
    return f"{count}:{h.hexdigest()[:24]}"


def _policy(with_policy: bool) -> Any:
    return load_policy_file(ROOT / "journeys" / "policy.yaml") if with_policy else None


def simulate_digests(lines: list[bytes], *, with_policy: bool) -> dict[str, str]:
    actions: list[bytes] = []
    decisions: list[bytes] = []
    sim = Simulator(
        load_registry(ROOT / "journeys"),
        on_action=lambda a: actions.append(a.to_json()),
        on_decision=lambda d: decisions.append(d.to_json()),
        policy=_policy(with_policy),
    )
    for n, line in enumerate(lines, 1):
        sim.feed_line(n, line)
    sim.finish(None)
    states = (orjson.dumps([k, customer_view(s.to_dict())]) for k, s in sorted(sim.states.items()))
    return {"actions": digest(actions), "decisions": digest(decisions), "states": digest(states)}


INSPECTION_ONLY = ("f", "tm")
"""State fields kept only for ``orchestrator inspect`` (issue 18: finished instances, late and future
event counts), added after the reference release: no rule reads them, the digests leave them out."""


PROFILE_ADDED = ("timing",)
"""Profile fields added after the reference release (issue 24: decayed engagement by local hour of the
week, read only by ``send_time: optimal``, which no reference journey uses): the digests leave them out."""


def customer_view(state: dict[str, Any]) -> dict[str, Any]:
    """A stored customer state without the fields kept only for inspection, nor the profile's fields
    added after the reference release."""
    view = {k: v for k, v in state.items() if k not in INSPECTION_ONLY}
    profile = view.get("p")
    if isinstance(profile, dict) and any(k in profile for k in PROFILE_ADDED):
        view["p"] = {k: v for k, v in profile.items() if k not in PROFILE_ADDED}
    return view


def stored_view(record: bytes) -> bytes:
    """A stored record without its delivery plumbing (offsets, outbox): the customer as stored."""
    data = orjson.loads(record)
    data.pop("off", None)
    data.pop("out", None)
    if isinstance(data.get("s"), dict):
        data["s"] = customer_view(data["s"])
    return orjson.dumps(data)


def pipeline(lines: list[bytes], *, with_policy: bool) -> LocalPipeline:
    return LocalPipeline(CustomerLogic(load_registry(ROOT / "journeys"), policy=_policy(with_policy)))


def pipeline_digests(run: LocalPipeline) -> dict[str, str]:
    out = run.output
    records = (k.encode() + b" " + stored_view(v) for k, v in sorted(run.records.items()))
    return {
        "actions": digest(sorted(out.actions)),
        "decisions": digest(sorted(out.decisions)),
        "records": digest(records),
        "messages": str(out.messages),
    }


def two_halves(lines: list[bytes], run: LocalPipeline, swap: dict[str, bytes] | None = None) -> None:
    """The first half resolved and applied, then (``swap``: the stored records replaced) the second."""
    half = len(lines) // 2
    run.resolve(lines[:half])
    run.run()
    if swap is not None:
        run.records = dict(swap)
    run.resolve(lines[half:])
    run.run()


def compute(n: int = EVENTS) -> dict[str, Any]:
    lines = events(n, max(CUSTOMERS, n // 5))
    golden: dict[str, Any] = {}
    for name, with_policy in (("no_policy", False), ("policy", True)):
        golden[f"simulate_{name}"] = simulate_digests(lines, with_policy=with_policy)
        run = pipeline(lines, with_policy=with_policy)
        two_halves(lines, run)
        golden[f"pipeline_{name}"] = pipeline_digests(run)
    small = events(UPGRADE_EVENTS, UPGRADE_CUSTOMERS)
    run = pipeline(small, with_policy=True)
    two_halves(small, run)
    golden["upgrade"] = pipeline_digests(run)
    return golden


def halfway_records() -> dict[str, bytes]:
    small = events(UPGRADE_EVENTS, UPGRADE_CUSTOMERS)
    run = pipeline(small, with_policy=True)
    run.resolve(small[: len(small) // 2])
    run.run()
    return dict(run.records)


def read_records() -> dict[str, bytes]:
    with gzip.open(RECORDS, "rb") as f:
        return {k: v.encode() for k, v in (orjson.loads(line) for line in f)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="write generated.json and records-v1.jsonl.gz")
    parser.add_argument(
        "--events", type=int, default=EVENTS, help="digests of a larger file (a fifth as many customers)"
    )
    args = parser.parse_args()
    if args.write and args.events != EVENTS:
        parser.error("--write keeps the reference size")
    golden = compute(args.events)
    print(orjson.dumps(golden, option=orjson.OPT_INDENT_2).decode())
    if args.write:
        GOLDEN.write_bytes(orjson.dumps(golden, option=orjson.OPT_INDENT_2) + b"\n")
        with gzip.GzipFile(RECORDS, "wb", mtime=0) as f:
            for key, value in sorted(halfway_records().items()):
                f.write(orjson.dumps([key, value.decode()]) + b"\n")


if __name__ == "__main__":
    main()
