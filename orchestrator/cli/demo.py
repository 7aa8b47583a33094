"""``orchestrator demo``: the whole path on a real broker, from an empty machine to results, then stop.

Works from any folder: the example journeys come from the checkout or from the installed package
(:func:`orchestrator.demo.example_dir`). The run's folder (the worker's log, the events produced) is
kept and named at the end.
"""

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
    parser.add_argument(
        "--journeys", type=Path, default=None, help="journeys and policy folder (default: the examples)"
    )
    parser.add_argument(
        "--events",
        type=Path,
        default=None,
        help="extra events produced after the examples' (default: the demo's, bad lines included)",
    )
    parser.add_argument("--bootstrap-servers", default=None, help="use this broker instead of starting one")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="the run's folder, kept (default: a new one in /tmp)"
    )
    parser.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="orchestrator-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    return run_demo(args.journeys, args.events, workdir, bootstrap=args.bootstrap_servers, say=print)
