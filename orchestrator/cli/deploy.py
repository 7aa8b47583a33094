"""``orchestrator deploy PATH...``: validate journeys (and the policy, segments, campaigns and templates),
then publish them for every worker to load live. A folder stands for its ``*.yaml``/``*.yml`` files."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.cli._common import add_config_option, settings_from
from orchestrator.cli.validate import journey_files
from orchestrator.exceptions import JourneyValidationError
from orchestrator.kafka.deploy import (
    check_deployments,
    prepare_deployments,
    publish_deployments,
    read_deployment_records,
)
from orchestrator.kafka.security import connection_check

__all__ = ["register"]


def register(sub: Any) -> None:
    parser = sub.add_parser("deploy", help="validate journey files and publish them to the workers (live)")
    parser.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="journey, policy, segment, campaign and template YAML files, or folders of them",
    )
    parser.add_argument(
        "--at",
        type=datetime.fromisoformat,
        default=None,
        help="logical time from which the deployment applies (ISO 8601 with zone; default: now)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate, check against the journeys topic as the workers would, publish nothing",
    )
    add_config_option(parser)
    parser.set_defaults(func=_deploy)


def _deploy(args: argparse.Namespace) -> int:
    at: datetime = args.at or datetime.now(UTC)
    if at.tzinfo is None:
        raise SystemExit("orchestrator deploy: error: --at needs a time zone, e.g. 2026-11-22T10:00:00+00:00")
    files, missing = journey_files(list(args.files))
    try:
        if missing:
            raise JourneyValidationError(missing)
        deployments = prepare_deployments(files, at)
    except JourneyValidationError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"refused: {len(exc.problems)} problem(s); nothing was published", file=sys.stderr)
        return 1
    for dep in deployments:
        when = dep.effective_from.isoformat()
        print(f"{dep.source_name}: {dep.journey_id} v{dep.version} effective from {when}")
    settings = settings_from(args)
    connection_check(settings)  # a refused login or TLS handshake: one clear line, now
    try:
        if args.dry_run:
            # the same check as a real deployment: what the workers would refuse, against the topic
            problems = check_deployments(
                read_deployment_records(settings), deployments, settings.history_window_days * 86_400_000
            )
            if problems:
                raise JourneyValidationError(problems)
            print(f"dry run: the workers would accept it; nothing published to {settings.topics.journeys}")
            return 0
        publish_deployments(settings, deployments)
    except JourneyValidationError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(
            f"refused: {len(exc.problems)} problem(s) the workers would refuse; nothing was published"
            + (" (dry run)" if args.dry_run else ""),
            file=sys.stderr,
        )
        return 1
    print(f"published {len(deployments)} deployment(s) to {settings.topics.journeys}")
    return 0
