"""``orchestrator campaigns``: every campaign, its audience and what it did to its members, cluster-wide.

Sources (one of them):

- Kafka (default): the campaigns deployed (the journeys topic, as a worker applies it) and the latest
  counts of every customer partition (the ``segment_sizes`` changelog the workers write with their
  customers: rows ``campaigns:<partition>`` for the campaigns, ``sizes:<partition>`` for the audience):
  no worker needs to be asked;
- ``--worker URL``: a running worker's ``/campaigns/`` (the same cluster-wide counts, plus its own share);
- ``--from-simulate FILE``: the file ``orchestrator simulate --state-out`` wrote (its campaigns and what
  they did, the audience counted from every customer's profile).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from orchestrator.cli._common import add_config_option, settings_from
from orchestrator.cli._worker_api import WorkerApiError, get_json
from orchestrator.config import Settings, secret_list
from orchestrator.core.campaign import CampaignRegistry
from orchestrator.core.deployments import DeploymentBook
from orchestrator.core.journey import JourneyRegistry
from orchestrator.simulate.state_file import read_state_file

__all__ = [
    "campaigns_command",
    "campaigns_from_kafka",
    "campaigns_from_state",
    "format_rows",
    "register",
]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "campaigns", help="every campaign: its audience and what it did to its members (cluster-wide)"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--from-simulate",
        type=Path,
        metavar="STATE.json",
        help="the file `orchestrator simulate --state-out` wrote",
    )
    source.add_argument(
        "--worker", metavar="URL", help="ask a running worker (its /campaigns/; with ORCH_API_TOKEN)"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    add_config_option(parser)
    parser.set_defaults(func=campaigns_command)


def campaigns_from_kafka(settings: Settings) -> list[dict[str, Any]]:
    """The campaigns deployed, their audience and counts: the journeys topic, the counts' changelog."""
    from orchestrator.kafka.deploy import read_deployment_records, read_whole_topic
    from orchestrator.runtime.releases import campaign_report, counts_from_changelog
    from orchestrator.runtime.segment_sizes import SIZES_TABLE, sizes_from_changelog

    book = DeploymentBook(JourneyRegistry(history_window_ms=settings.history_window_days * 86_400_000))
    for key, value, where in read_deployment_records(settings):
        book.apply(key, value, where=where)
    records = read_whole_topic(settings, f"{settings.app_id}-{SIZES_TABLE}-changelog")
    counts, sizes = counts_from_changelog(records), sizes_from_changelog(records)
    return campaign_report(book.campaign_registry, counts, sizes, int(time.time() * 1000))


def campaigns_from_state(path: Path) -> list[dict[str, Any]]:
    """The campaigns of a simulation's state file: what each did, its audience counted from every
    customer's profile (the members of its segment at the end of the simulation)."""
    from orchestrator.runtime.releases import campaign_report

    sim = read_state_file(path)
    sizes = sim.segment_sizes()
    counts = {cid: dict(info.get("counts") or {}) for cid, info in sim.campaigns.items()}
    rows = campaign_report(CampaignRegistry(), counts, sizes, sim.clock_ms or 0)
    for row in rows:
        info = sim.campaigns[row["campaign"]]
        row.update({k: info[k] for k in ("version", "status", "name", "segment")})
        row["audience"] = int(sizes.get(row["segment"], 0))
    return rows


def _number(n: Any) -> str:
    return f"{int(n):,}"


def format_rows(rows: list[dict[str, Any]]) -> list[str]:
    """A table: campaign, version, status, segment, then the audience and the counts; under a campaign
    with sends refused by the policy, their reasons (``suppressed 1 (not_subscribed 1)``)."""
    from orchestrator.runtime.releases import REPORT_COUNTS

    if not rows:
        return ["no campaigns deployed (kind: campaign files; docs/campaigns.md)"]
    cells = [
        [
            str(r["campaign"]),
            "-" if r.get("version") is None else str(r["version"]),
            str(r.get("status", "")),
            str(r.get("segment") or "-"),
            *(_number(r.get(k, 0)) for k in REPORT_COUNTS),
        ]
        for r in rows
    ]
    header = ["campaign", "version", "status", "segment", *REPORT_COUNTS]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    left = 4  # campaign, version, status, segment: text; the counts: numbers, right-aligned
    right_aligned = {1, *range(left, len(header))}

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if i in right_aligned else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    lines = [line(header)]
    for r, c in zip(rows, cells, strict=True):
        lines.append(line(c))
        unsent = r.get("unsent") or {}
        if unsent:
            reasons = ", ".join(f"{reason} {_number(n)}" for reason, n in sorted(unsent.items()))
            lines.append(f"  suppressed {_number(r.get('suppressed', 0))} ({reasons})")
    return lines


def campaigns_command(args: argparse.Namespace) -> int:
    if args.from_simulate is not None:
        rows = campaigns_from_state(args.from_simulate)
        note = f"from {args.from_simulate}"
    elif args.worker:
        settings = settings_from(args)
        tokens = secret_list(settings.api_token)
        body = get_json(args.worker, "/campaigns/", tokens[0] if tokens else None)
        if body is not None and body.get("_missing"):
            raise WorkerApiError(
                f"{args.worker}: HTTP 404: no /campaigns/ page (a worker of an older version?)"
            )
        if body is None or "campaigns" not in body:
            raise WorkerApiError(f"{args.worker}: no campaigns in the answer (is this a worker's address?)")
        rows = body["campaigns"]
        note = (
            "cluster-wide"
            if body.get("cluster_wide")
            else "this worker's partitions only (Kafka unreachable)"
        )
    else:
        rows = campaigns_from_kafka(settings_from(args))
        note = "cluster-wide, from Kafka"
    if args.json:
        sys.stdout.write(orjson.dumps(rows).decode() + "\n")
        return 0
    for line in format_rows(rows):
        print(line)
    print(f"({note})")
    return 0
