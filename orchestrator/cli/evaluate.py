"""``orchestrator evaluate``: what the run stage's choices (send time, channel) would have gained on a
recorded history: fit on its first part, score the choices on the rest (docs/optimization-fit.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson

from orchestrator.cli._common import add_config_option
from orchestrator.cli.fit import duration_ms, read_history
from orchestrator.exceptions import JourneyValidationError
from orchestrator.learning.evaluate import EvaluateOptions, evaluate, format_table
from orchestrator.learning.fit import DEFAULT_ATTRIBUTION_MS, load_journeys
from orchestrator.learning.history import LearningError
from orchestrator.learning.synthetic import load_truth

__all__ = ["register"]


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "evaluate", help="score the send-time and channel choices on a recorded history (fit on its start)"
    )
    source = parser.add_argument_group("what happened (files, or --from-kafka)")
    source.add_argument("--events", type=Path, metavar="FILE", help="customer events, one JSON a line")
    source.add_argument("--actions", type=Path, metavar="FILE", help="actions sent, one JSON a line")
    source.add_argument("--decisions", type=Path, metavar="FILE", help="the policy's decisions (optional)")
    source.add_argument("--from-kafka", action="store_true", help="read the topics of the config instead")
    source.add_argument("--no-decisions", action="store_true", help="with --from-kafka: skip the decisions")
    parser.add_argument(
        "--truth",
        type=Path,
        metavar="FILE",
        help="truth.json of a synthetic history: score true probabilities",
    )
    parser.add_argument(
        "--train", type=float, default=0.75, help="share of the history (by time) to fit on (default 0.75)"
    )
    parser.add_argument("--journeys", nargs="+", type=Path, default=[], metavar="PATH")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random arm (default 0)")
    parser.add_argument(
        "--attribution", type=duration_ms, default=DEFAULT_ATTRIBUTION_MS, metavar="DURATION",
        help="an open or click answers a send within this long after it (default 3d)",
    )  # fmt: skip
    parser.add_argument("--prior-weight", type=float, default=10.0, metavar="W")
    parser.add_argument("--json", action="store_true", help="the result as one JSON object")
    add_config_option(parser)
    parser.set_defaults(func=evaluate_command)


def evaluate_command(args: argparse.Namespace) -> int:
    from orchestrator.cli.fit import print_problems

    try:
        journeys = load_journeys(args.journeys)
    except JourneyValidationError as exc:
        raise LearningError("; ".join(exc.problems)) from None
    truth = None
    if args.truth is not None:
        try:
            truth = load_truth(args.truth)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LearningError(
                f"{args.truth}: not a truth file of the synthetic generator ({exc})"
            ) from None
    history = read_history(args, "evaluate")
    options = EvaluateOptions(
        train=args.train, seed=args.seed, attribution_ms=args.attribution, prior_weight=args.prior_weight
    )
    result = evaluate(history, options, truth, journeys)
    print_problems(history, "evaluate")
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() if args.json else format_table(result))
    return 0
