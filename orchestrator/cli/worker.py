"""``orchestrator worker``: run one Faust worker of the orchestrator."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from orchestrator.cli._common import add_config_option, settings_from

__all__ = ["register"]


def register(sub: Any) -> None:
    parser = sub.add_parser("worker", help="run a worker (ingestion, resolution, customer state)")
    add_config_option(parser)
    parser.add_argument("--web-port", type=int, default=None, help="health/metrics port (ORCH_WEB_PORT)")
    parser.set_defaults(func=_worker)


def _worker(args: argparse.Namespace) -> int:
    from orchestrator.kafka.topics import check_layout
    from orchestrator.runtime.app import build_app
    from orchestrator.runtime.worker import run_worker

    settings = settings_from(args)
    if args.web_port is not None:
        settings = settings.model_copy(update={"web_port": args.web_port})
    worker_app = build_app(settings)

    def altered(topic: str, key: str, old: str | None, new: str) -> None:
        print(f"altered  {topic}: {key} {old if old is not None else '(unset)'} -> {new}", file=sys.stderr)

    check_layout(settings, on_change=altered)  # an upgrade's new topic configs are applied here
    run_worker(worker_app)
