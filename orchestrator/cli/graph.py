"""``orchestrator graph FILE.yaml [--report REPORT.json | --worker URL] [--format svg|dot|mermaid] [-o OUT]``.

The journey as a picture: the entry, each step by type (its own shape and colour), the edges labelled
with their conditions, timeouts and split shares, the goals and exit rules. With counts (a simulate
report's ``journeys[<id>]``, or a running worker's ``/funnels/``), arrivals on the nodes, a "now: N"
badge where customers are, moves on the edges and the totals. ``svg`` is drawn by Graphviz's ``dot``
(Debian package ``graphviz``); ``dot`` and ``mermaid`` are texts that need no program.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from orchestrator.cli._common import add_config_option, settings_from
from orchestrator.cli._worker_api import WorkerApiError, get_json
from orchestrator.config import secret_list
from orchestrator.core.journey import load_journey_file
from orchestrator.exceptions import JourneyValidationError, PictureError
from orchestrator.pictures import journey_graph, render_svg, to_dot, to_mermaid

__all__ = ["FORMATS", "counts_from_report", "counts_from_worker", "graph_command", "register"]

FORMATS = ("svg", "dot", "mermaid")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "graph", help="draw a journey (SVG, DOT or mermaid), with the counts of a simulate report or a worker"
    )
    parser.add_argument("journey", type=Path, metavar="FILE.yaml", help="the journey file")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="REPORT.json",
        help="counts from this report of orchestrator simulate --report (its journeys[<id>])",
    )
    source.add_argument(
        "--worker",
        default=None,
        metavar="URL",
        help="counts from a running worker's /funnels/ (asked with ORCH_API_TOKEN)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="svg (drawn by Graphviz's dot), dot (its source) or mermaid (a flowchart for docs); "
        "default: from the -o file's extension, else svg",
    )
    parser.add_argument(
        "-o", "--out", type=Path, default=None, metavar="FILE", help="write here (default: standard output)"
    )
    parser.add_argument(
        "--timeout", type=float, default=20.0, metavar="SECONDS", help="how long dot may take (default 20)"
    )
    add_config_option(parser)
    parser.set_defaults(func=graph_command)


def _journey_counts(journeys: Any, journey_id: str, where: str) -> dict[str, Any]:
    if not isinstance(journeys, dict):
        raise PictureError(f"{where}: no 'journeys' counts in it")
    counts = journeys.get(journey_id)
    if counts is None:
        print(f"{where}: no counts of journey {journey_id!r} (nobody entered it): all 0", file=sys.stderr)
        return {}
    if not isinstance(counts, dict):
        raise PictureError(f"{where}: journeys[{journey_id!r}] is not a funnel")
    return counts


def counts_from_report(path: Path, journey_id: str) -> dict[str, Any]:
    """Journey ``journey_id``'s funnel in a report of ``orchestrator simulate --report``."""
    try:
        report = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise PictureError(f"{path}: report not found") from None
    except orjson.JSONDecodeError as exc:
        raise PictureError(f"{path}: not a JSON report: {exc}") from None
    if not isinstance(report, dict):
        raise PictureError(f"{path}: not a report of orchestrator simulate --report")
    return _journey_counts(report.get("journeys"), journey_id, str(path))


def counts_from_worker(url: str, token: str | None, journey_id: str) -> dict[str, Any]:
    """Journey ``journey_id``'s funnel as a running worker counts it cluster-wide (``/funnels/``)."""
    body = get_json(url, "/funnels/", token)
    if body is not None and body.get("_missing"):
        raise WorkerApiError(f"{url}: HTTP 404: no /funnels/ page (a worker of an older version?)")
    if body is None or "journeys" not in body:
        raise WorkerApiError(f"{url}: no funnels in the answer (is this a worker's address?)")
    if body.get("cluster_wide") is False:
        print(f"{url}: Kafka unreachable: the counts of this worker's partitions only", file=sys.stderr)
    return _journey_counts(body["journeys"], journey_id, f"{url}/funnels/")


def _format(args: argparse.Namespace) -> str:
    if args.format is not None:
        return str(args.format)
    suffix = args.out.suffix.lower() if args.out is not None else ""
    return {".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid"}.get(suffix, "svg")


def graph_command(args: argparse.Namespace) -> int:
    try:
        definition = load_journey_file(args.journey)
    except JourneyValidationError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 1
    counts: dict[str, Any] | None = None
    if args.report is not None:
        counts = counts_from_report(args.report, definition.id)
    elif args.worker:
        tokens = secret_list(settings_from(args).api_token)
        counts = counts_from_worker(args.worker, tokens[0] if tokens else None, definition.id)
    graph = journey_graph(definition)
    fmt = _format(args)
    if fmt == "mermaid":
        text = to_mermaid(graph, counts)
    elif fmt == "dot":
        text = to_dot(graph, counts)
    else:
        text = render_svg(to_dot(graph, counts), timeout=args.timeout)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"{args.out}: {definition.id} v{definition.version} as {fmt}", file=sys.stderr)
    return 0
