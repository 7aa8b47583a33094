"""``orchestrator simulate --journeys DIR --events FILE.jsonl [--policy FILE] [--out FILE] [--report FILE]
[--html FILE]``.

(Also ``--decisions FILE``, ``--until ISO``, ``--lateness DURATION``, ``--state-out FILE``: the final
customer states and identity graph, for ``orchestrator inspect CUSTOMER --from-simulate FILE``.)

Replays recorded events through the journeys, offline and with event time as the clock; writes the
actions as JSONL (the action contract), prints a funnel per journey, and a JSON report with
``--report``. With ``--policy`` every send passes the cross-channel policy (docs/policy.md) exactly as
in the runtime; the funnel then shows the decisions by kind and reason, and ``--decisions`` writes
each decision as JSONL. Invalid event lines are skipped and listed with their line number and reason.
``--html`` writes the report as one self-contained page: each journey's funnel and split branches, and
its picture (:mod:`orchestrator.pictures.funnel_page`).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from orchestrator.core.engine.clock import iso_from_ms
from orchestrator.core.journey.durations import parse_duration
from orchestrator.core.journey.model import JourneyDefinition
from orchestrator.exceptions import (
    CampaignValidationError,
    JourneyValidationError,
    PolicyValidationError,
    SegmentValidationError,
    SimulationError,
)
from orchestrator.simulate.runner import SimulationResult, load_registry, simulate_file, timeline_paths
from orchestrator.simulate.timeline import read_timeline

__all__ = ["parse_until", "register", "simulate_command", "waiting_summary"]

_SHOWN_INVALID = 20


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("simulate", help="replay recorded events through journeys, offline")
    parser.add_argument(
        "--journeys",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of journey files, all in effect from the start (needed unless --deployments)",
    )
    parser.add_argument(
        "--deployments",
        type=Path,
        default=None,
        metavar="FILE",
        help="a deployment timeline: which journey and policy files were deployed when (docs/simulate.md)",
    )
    parser.add_argument(
        "--events", type=Path, required=True, metavar="FILE", help="events, one JSON per line"
    )
    parser.add_argument(
        "--out", type=Path, default=None, metavar="FILE", help="write the actions here (JSONL)"
    )
    parser.add_argument(
        "--policy", type=Path, default=None, metavar="FILE", help="apply this cross-channel policy file"
    )
    parser.add_argument(
        "--decisions", type=Path, default=None, metavar="FILE", help="write the policy's decisions (JSONL)"
    )
    parser.add_argument(
        "--state-out",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the final customer states and identity graph (for orchestrator inspect)",
    )
    parser.add_argument("--report", type=Path, default=None, metavar="FILE", help="write the funnel as JSON")
    parser.add_argument(
        "--html",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the funnel as a self-contained HTML page, with each journey's picture",
    )
    parser.add_argument(
        "--until", default=None, metavar="ISO", help="at the end, fire pending timers due up to this time"
    )
    parser.add_argument(
        "--lateness", default=None, metavar="DURATION", help="events older than this start no journey"
    )
    parser.set_defaults(func=simulate_command)


def parse_until(text: str) -> int:
    """An ISO 8601 instant (``Z`` or an offset; UTC when none) as epoch milliseconds."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise SimulationError(
            f"--until: {text!r} is not an ISO 8601 time (e.g. 2025-03-01T00:00:00Z)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def waiting_summary(result: SimulationResult, *, until_given: bool) -> list[str]:
    """What is still to come after the events: customers waiting on a timer, their next wake-up, and
    the hint to pass ``--until`` (without it no timer fires after the last event: "0 actions" may only
    mean that every customer still waits)."""
    if not result.waiting or result.next_wakeup_ms is None:
        return []
    who = "customer waits" if result.waiting == 1 else "customers wait"
    at = iso_from_ms(result.next_wakeup_ms)
    lines = [f"{result.waiting} {who} on a timer; the next wake-up is at {at}"]
    if until_given:
        lines.append("(after --until: pass a later --until to see what they do)")
    else:
        lines.append(
            f"timers fire only up to the last event's time: pass --until {at} (or later) to see what they do"
        )
    return lines


def simulate_command(args: argparse.Namespace) -> int:
    if args.journeys is None and args.deployments is None:
        raise SimulationError("give --journeys DIR, or --deployments FILE (a deployment timeline), or both")
    until = parse_until(args.until) if args.until else None
    try:
        lateness = parse_duration(args.lateness) if args.lateness else None
    except ValueError as exc:
        raise SimulationError(f"--lateness: {exc}") from None
    try:
        result = simulate_file(
            args.journeys,
            args.events,
            out_path=args.out,
            until_ms=until,
            progress=sys.stderr.isatty(),
            lateness_ms=lateness,
            policy_path=args.policy,
            decisions_path=args.decisions,
            state_out=args.state_out,
            deployments_path=args.deployments,
        )
    except (
        JourneyValidationError,
        PolicyValidationError,
        SegmentValidationError,
        CampaignValidationError,
    ) as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 1
    for problem in result.refused_deployments:
        print(f"deployment refused, as a worker would: {problem}", file=sys.stderr)
    for bad in result.invalid[:_SHOWN_INVALID]:
        print(f"{args.events}:{bad.line}: skipped ({bad.reason}): {bad.error}", file=sys.stderr)
    if len(result.invalid) > _SHOWN_INVALID:
        print(
            f"... and {len(result.invalid) - _SHOWN_INVALID} more invalid lines (see --report)",
            file=sys.stderr,
        )
    print(result.funnel.table())
    if result.decisions:
        print("decisions: " + ", ".join(f"{k} {n}" for k, n in sorted(result.decisions.items())))
    for campaign, counts in sorted(result.campaigns.items()):
        print(f"campaign {campaign}: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))
    if result.merges or result.erased or result.dropped_erased or result.dropped_unknown:
        print(
            f"identity: {result.merges} merges, {result.erased} erased, "
            f"{result.dropped_erased} events of erased identifiers dropped"
            + (
                f", {result.dropped_unknown} events naming an unknown customer key dropped"
                if result.dropped_unknown
                else ""
            )
        )
    print(
        f"{result.events_read} events read, {result.events_applied} applied, {result.duplicates} duplicates, "
        f"{len(result.invalid)} invalid; {result.customers} customers; {result.actions} actions"
        + (f" written to {args.out}" if args.out else "")
    )
    for line in waiting_summary(result, until_given=until is not None):
        print(line)
    if args.report is not None:
        args.report.write_bytes(orjson.dumps(result.report(), option=orjson.OPT_INDENT_2) + b"\n")
    if args.html is not None:
        _write_html(args, result)
    return 0


def _definitions(args: argparse.Namespace) -> dict[str, JourneyDefinition]:
    """The journeys of the run, each in its last deployed version (the one its picture shows)."""
    if args.deployments is not None:
        before = [*timeline_paths(args.journeys), *([args.policy] if args.policy is not None else [])]
        registry = read_timeline(args.deployments, before=before).registry
    else:
        registry = load_registry(args.journeys)
    out: dict[str, JourneyDefinition] = {}
    for jid in registry.journey_ids():
        deployed = registry.deployments(jid)
        if deployed:
            out[jid] = max((d.definition for d in deployed), key=lambda d: d.version)
    return out


def _write_html(args: argparse.Namespace, result: SimulationResult) -> None:
    from orchestrator.pictures.funnel_page import funnel_page

    source = f"simulate of {args.events.name}" + (f" until {args.until}" if args.until else "")
    page = funnel_page(result.report(), _definitions(args), title="Journey funnels", subtitle=source)
    args.html.write_text(page, encoding="utf-8")
    print(f"funnel page written to {args.html}")


if __name__ == "__main__":  # pragma: no cover - python -m orchestrator.cli.simulate
    _parser = argparse.ArgumentParser(prog="orchestrator")
    register(_parser.add_subparsers(dest="command", required=True))
    _args = _parser.parse_args(["simulate", *sys.argv[1:]])
    try:
        sys.exit(_args.func(_args))
    except SimulationError as _exc:
        print(f"orchestrator simulate: error: {_exc}", file=sys.stderr)
        sys.exit(2)
