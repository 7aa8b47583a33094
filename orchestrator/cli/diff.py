"""``orchestrator diff OLD.yaml NEW.yaml --events FILE.jsonl [--policy FILE] [--journeys DIR] [--at ISO]
[--until ISO] [--limit N] [--json] [--html OUT.html]``.

The impact preview before a deploy (:mod:`orchestrator.preview`): replays the recorded events with the
old version all the way, and with the new one deployed at ``--at`` (default: the first event's time),
then says which customers' sends change, the sends added, removed, moved and changed per step and
channel, both funnels side by side, and what happens to the customers inside the old version at
``--at``. Text by default; ``--json`` for machines; ``--html`` writes a page with the journey pictures
too (each picture left out, with why, when Graphviz's dot is missing). Exit 0 whether or not anything
changes; 1 when a file is invalid; 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from orchestrator.cli.simulate import parse_until
from orchestrator.exceptions import (
    CampaignValidationError,
    JourneyValidationError,
    ModelValidationError,
    PolicyValidationError,
    SegmentValidationError,
    SimulationError,
    TemplateValidationError,
)
from orchestrator.preview.diff import preview
from orchestrator.preview.report import DEFAULT_LIMIT, report_dict, report_text

__all__ = ["diff_command", "register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diff", help="preview what a new journey version would change, on recorded events (before a deploy)"
    )
    parser.add_argument("old", type=Path, metavar="OLD.yaml", help="the journey version deployed now")
    parser.add_argument(
        "new", type=Path, metavar="NEW.yaml", help="the new version (same id, higher version)"
    )
    parser.add_argument(
        "--events", type=Path, required=True, metavar="FILE", help="events, one JSON per line"
    )
    parser.add_argument(
        "--journeys",
        type=Path,
        default=None,
        metavar="DIR",
        help="other journeys, segments and campaigns: deployed in both runs (the journey itself left out)",
    )
    parser.add_argument(
        "--policy",
        type=Path,
        default=None,
        metavar="FILE",
        help="apply this cross-channel policy in both runs",
    )
    parser.add_argument(
        "--at",
        default=None,
        metavar="ISO",
        help="when the new version takes effect (default: the first event's time: from the start)",
    )
    parser.add_argument(
        "--until",
        default=None,
        metavar="ISO",
        help="fire pending timers up to this time (default: the last event + the longer version's waits)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"list at most N customers (default {DEFAULT_LIMIT}; 0: all)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON (docs/simulate.md)")
    parser.add_argument(
        "--html",
        type=Path,
        default=None,
        metavar="OUT.html",
        help="also write a self-contained page: the tables and both journey pictures with their counts",
    )
    parser.set_defaults(func=diff_command)


def diff_command(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise SimulationError("--limit: a number of customers, 0 or more (0: all)")
    at = _instant("--at", args.at)
    until = _instant("--until", args.until)
    try:
        result = preview(
            args.old,
            args.new,
            args.events,
            policy_path=args.policy,
            journeys=args.journeys,
            at_ms=at,
            until_ms=until,
        )
    except (
        JourneyValidationError,
        PolicyValidationError,
        SegmentValidationError,
        CampaignValidationError,
        TemplateValidationError,
        ModelValidationError,
    ) as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 1
    if args.html is not None:
        from orchestrator.preview.page import write_page

        for problem in write_page(args.html, result, limit=args.limit):
            print(f"picture not drawn: {problem}", file=sys.stderr)
    if args.json:
        sys.stdout.write(
            orjson.dumps(report_dict(result, limit=args.limit), option=orjson.OPT_INDENT_2).decode()
        )
        sys.stdout.write("\n")
    else:
        sys.stdout.write(report_text(result, limit=args.limit))
    return 0


def _instant(option: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_until(text)
    except SimulationError:
        raise SimulationError(
            f"{option}: {text!r} is not an ISO 8601 time (e.g. 2025-03-01T00:00:00Z)"
        ) from None
