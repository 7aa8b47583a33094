"""``orchestrator segments``: every segment with its members, cluster-wide.

Sources (one of them):

- Kafka (default): the segments deployed (the journeys topic, as a worker applies it) and the latest
  counts of every customer partition (the ``segment_sizes`` changelog the workers write with their
  customers): no worker needs to be asked;
- ``--worker URL``: a running worker's ``/segments/`` (the same cluster-wide counts, plus its own share);
- ``--from-simulate FILE``: the file ``orchestrator simulate --state-out`` wrote (members counted from
  every customer's profile).
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
from orchestrator.core.deployments import DeploymentBook
from orchestrator.core.journey import JourneyRegistry
from orchestrator.core.segment import SegmentRegistry
from orchestrator.simulate.state_file import read_state_file

__all__ = ["format_rows", "register", "segments_command", "segments_from_kafka", "segments_from_state"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("segments", help="every segment with its members (cluster-wide)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--from-simulate",
        type=Path,
        metavar="STATE.json",
        help="the file `orchestrator simulate --state-out` wrote",
    )
    source.add_argument(
        "--worker", metavar="URL", help="ask a running worker (its /segments/; with ORCH_API_TOKEN)"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    add_config_option(parser)
    parser.set_defaults(func=segments_command)


def segments_from_kafka(settings: Settings) -> list[dict[str, Any]]:
    """The segments deployed and their members, from the journeys topic and the counts' changelog."""
    from orchestrator.kafka.deploy import read_deployment_records, read_whole_topic
    from orchestrator.runtime.segment_sizes import SIZES_TABLE, segment_report, sizes_from_changelog

    book = DeploymentBook(JourneyRegistry(history_window_ms=settings.history_window_days * 86_400_000))
    for key, value, where in read_deployment_records(settings):
        book.apply(key, value, where=where)
    sizes = sizes_from_changelog(read_whole_topic(settings, f"{settings.app_id}-{SIZES_TABLE}-changelog"))
    return segment_report(book.segment_registry, sizes, int(time.time() * 1000))


def segments_from_state(path: Path) -> list[dict[str, Any]]:
    """The segments of a simulation's state file, members counted from every customer's profile."""
    from orchestrator.runtime.segment_sizes import segment_report

    sim = read_state_file(path)
    sizes = sim.segment_sizes()
    rows = segment_report(SegmentRegistry(), sizes, sim.clock_ms or 0)
    known = sim.segments
    for row in rows:
        info = known.get(row["segment"])
        if info is not None:
            row.update({k: info[k] for k in ("version", "status", "name", "time_dependent", "reads")})
    for segment, info in sorted(known.items()):
        if segment not in sizes:
            rows.append({"segment": segment, **info, "members": 0})
    return sorted(rows, key=lambda r: str(r["segment"]))


def format_rows(rows: list[dict[str, Any]]) -> list[str]:
    """A table: segment, version, status, members, whether time alone changes it, what it reads."""
    if not rows:
        return ["no segments deployed (kind: segment files; docs/segments.md)"]
    width = max(7, *(len(str(r["segment"])) for r in rows))
    lines = [f"{'segment':<{width}}  version  status        members  by time  reads"]
    for r in rows:
        version = "-" if r.get("version") is None else str(r["version"])
        reads = ", ".join(r.get("reads") or []) or "-"
        lines.append(
            f"{r['segment']:<{width}}  {version:>7}  {r.get('status', ''):<12}  {r['members']:>7,}  "
            f"{'yes' if r.get('time_dependent') else 'no':<7}  {reads}"
        )
    return lines


def segments_command(args: argparse.Namespace) -> int:
    if args.from_simulate is not None:
        rows = segments_from_state(args.from_simulate)
        note = f"from {args.from_simulate}"
    elif args.worker:
        settings = settings_from(args)
        tokens = secret_list(settings.api_token)
        body = get_json(args.worker, "/segments/", tokens[0] if tokens else None)
        if body is None or "segments" not in body:
            raise WorkerApiError(f"{args.worker}: no segments in the answer (is this a worker's address?)")
        rows = body["segments"]
        note = (
            "cluster-wide"
            if body.get("cluster_wide")
            else "this worker's partitions only (Kafka unreachable)"
        )
    else:
        rows = segments_from_kafka(settings_from(args))
        note = "cluster-wide, from Kafka"
    if args.json:
        sys.stdout.write(orjson.dumps(rows).decode() + "\n")
        return 0
    for line in format_rows(rows):
        print(line)
    print(f"({note})")
    return 0
