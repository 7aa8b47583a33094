"""``orchestrator fit``: learn a model (``kind: model``) from what happened over a time range.

From JSONL files (``--events FILE --actions FILE [--decisions FILE]``: what ``orchestrator simulate``
writes, or dumps of the topics) or from the Kafka topics of the config (``--from-kafka``: the raw events
topic, the three action topics and the decisions topic). Writes the model file with ``-o``; deploy it
with ``orchestrator deploy model.yaml --at ...``. docs/optimization-fit.md explains every field.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.cli._common import add_config_option, settings_from
from orchestrator.core.engine.clock import iso_from_ms
from orchestrator.core.journey import parse_duration
from orchestrator.core.learning.loader import dump_model, load_model_file
from orchestrator.core.learning.model import EngagementModel
from orchestrator.exceptions import JourneyValidationError, ModelValidationError
from orchestrator.learning.fit import DEFAULT_ATTRIBUTION_MS, FitOptions, fit_model, load_journeys
from orchestrator.learning.history import History, LearningError, read_files, read_kafka

__all__ = ["add_range_options", "duration_ms", "print_problems", "register", "time_ms"]


def time_ms(text: str) -> int:
    """An ISO 8601 time with its zone (``2026-11-01T00:00:00Z``) as epoch milliseconds."""
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (like 2026-11-01T00:00:00Z)"
        ) from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no zone: write it like 2026-11-01T00:00:00Z")
    return int(at.timestamp() * 1000)


def duration_ms(text: str) -> int:
    """A duration as journey files write them (``3d``, ``12h``)."""
    try:
        ms = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if ms <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be longer than 0")
    return ms


def add_range_options(parser: argparse.ArgumentParser) -> None:
    help_from = "start of the range (ISO 8601 with zone; default: the earliest record)"
    help_to = "end of the range, excluded (default: just after the latest record)"
    parser.add_argument("--from", dest="from_ms", type=time_ms, metavar="TIME", help=help_from)
    parser.add_argument("--to", dest="to_ms", type=time_ms, metavar="TIME", help=help_to)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "fit", help="learn a model (kind: model) from recorded events, actions and decisions"
    )
    source = parser.add_argument_group("what happened (files, or --from-kafka)")
    source.add_argument("--events", type=Path, metavar="FILE", help="customer events, one JSON a line")
    source.add_argument("--actions", type=Path, metavar="FILE", help="actions sent, one JSON a line")
    source.add_argument("--decisions", type=Path, metavar="FILE", help="the policy's decisions (optional)")
    source.add_argument(
        "--from-kafka",
        action="store_true",
        help="read the raw events, action and decisions topics of the config instead of files",
    )
    source.add_argument(
        "--no-decisions", action="store_true", help="with --from-kafka: do not read the decisions topic"
    )
    add_range_options(parser)
    parser.add_argument(
        "--journeys",
        nargs="+",
        type=Path,
        default=[],
        metavar="PATH",
        help="journey files or folders: their split steps get conversion counts per branch",
    )
    parser.add_argument(
        "--attribution",
        type=duration_ms,
        default=DEFAULT_ATTRIBUTION_MS,
        metavar="DURATION",
        help="an open or click answers a send within this long after it (default 3d)",
    )
    parser.add_argument(
        "--conversion-window",
        type=duration_ms,
        default=None,
        metavar="DURATION",
        help="a goal counts for a split branch within this long after entering it (default: --attribution)",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="the model file")
    parser.add_argument(
        "--id", dest="model_id", default="engagement", help="the model's id (default engagement)"
    )
    parser.add_argument("--version", type=int, default=None, help="default: --previous's version + 1, else 1")
    parser.add_argument("--previous", type=Path, default=None, metavar="FILE", help="the model fitted before")
    parser.add_argument(
        "--prior-weight",
        type=float,
        default=10.0,
        metavar="W",
        help="how many of a customer's own observations the population counts as (default 10)",
    )
    add_config_option(parser)
    parser.set_defaults(func=fit_command)


def print_problems(history: History, what: str) -> None:
    for problem in history.problems:
        print(problem, file=sys.stderr)
    if history.skipped:
        more = history.skipped - len(history.problems)
        extra = f" ({more} more not shown)" if more > 0 else ""
        print(f"{what}: skipped {history.skipped} invalid line(s){extra}", file=sys.stderr)


def read_history(args: argparse.Namespace, command: str) -> History:
    if args.from_kafka:
        if args.events or args.actions or args.decisions:
            raise LearningError("--from-kafka reads the topics: leave out --events, --actions, --decisions")
        return read_kafka(settings_from(args), decisions=not args.no_decisions)
    if args.events is None or args.actions is None:
        raise LearningError(f"{command} needs --events FILE and --actions FILE (or --from-kafka)")
    return read_files(args.events, args.actions, args.decisions)


def _version(args: argparse.Namespace) -> int:
    if args.version is not None:
        if args.version < 1:
            raise LearningError("--version must be at least 1")
        return int(args.version)
    if args.previous is None:
        return 1
    try:
        return load_model_file(args.previous).version + 1
    except ModelValidationError as exc:
        raise LearningError(f"--previous: {'; '.join(exc.problems)}") from None


def fit_command(args: argparse.Namespace) -> int:
    if not 0.0 < args.prior_weight <= 10_000.0:
        raise LearningError("--prior-weight must be above 0 and at most 10000")
    version = _version(args)
    try:
        journeys = load_journeys(args.journeys)
    except JourneyValidationError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"refused: {len(exc.problems)} problem(s) in the journeys; no model written", file=sys.stderr)
        return 1
    history = read_history(args, "fit")
    bounds = history.bounds()
    from_ms = args.from_ms if args.from_ms is not None else (bounds[0] if bounds else 0)
    to_ms = args.to_ms if args.to_ms is not None else (bounds[1] + 1 if bounds else from_ms)
    if to_ms < from_ms:
        raise LearningError("--to is before --from")
    options = FitOptions(args.model_id, version, args.prior_weight, args.attribution, args.conversion_window)
    model = fit_model(history, from_ms, to_ms, options, journeys)
    text = dump_model(model)
    args.output.write_text(text, encoding="utf-8")
    print_problems(history, "fit")
    print(summary(model, str(args.output)))
    return 0


def summary(model: EngagementModel, where: str) -> str:
    c = model.counts
    lines = [
        f"{where}: {model.key}, fitted from {iso_from_ms(model.fitted_from_ms)} to "
        f"{iso_from_ms(model.fitted_to_ms)}: {c.get('events', 0)} events, {c.get('actions', 0)} actions, "
        f"{c.get('decisions', 0)} decisions, {c.get('customers', 0)} customers"
    ]
    for ch, s in model.channels.items():
        lines.append(f"  {ch}: {s.sends} sends, {s.engaged} answered ({s.engaged / max(s.sends, 1):.1%})")
    for journey, steps in model.splits.items():
        for step, branches in steps.items():
            parts = ", ".join(f"{b} {s.converted}/{s.entered}" for b, s in branches.items())
            lines.append(f"  {journey}/{step}: {parts}")
    if not model.channels:
        lines.append("  no sends in the range: a model with zero counts (the engine uses no prior from it)")
    return "\n".join(lines)
