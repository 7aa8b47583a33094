"""``orchestrator demo``: the whole path on a real broker, from an empty machine to results, then clean up."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.demo import run_demo

__all__ = ["register"]


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo",
        help="local Kafka, journeys deployed, a worker and a connector, sample events, results; then stop",
    )
    parser.add_argument("--journeys", type=Path, default=Path("journeys"), help="journeys and policy folder")
    parser.add_argument(
        "--events",
        type=Path,
        default=Path("journeys/demo/events.jsonl"),
        help="extra events produced after the examples' (bad lines included)",
    )
    parser.add_argument("--bootstrap-servers", default=None, help="use this broker instead of starting one")
    parser.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="orchestrator-demo-") as tmp:
        return run_demo(args.journeys, args.events, Path(tmp), bootstrap=args.bootstrap_servers, say=print)
