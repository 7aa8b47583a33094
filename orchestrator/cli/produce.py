"""``orchestrator produce FILE.jsonl [--worker URL]``: publish events from a file.

Before sending, each line's time is held against a clock: the worker's (``--worker``: its ``/clock/``
page) or this machine's and the configured ``lateness_hours``. Lines a worker would apply as late (the
profile takes them, no journey starts) or as from the future (applied now) are counted and explained.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.cli._common import add_config_option, settings_from
from orchestrator.cli._worker_api import WorkerApiError, get_json
from orchestrator.config import Settings, secret_list
from orchestrator.kafka.produce import BadLine, TimeCheck, produce_file
from orchestrator.kafka.security import connection_check

__all__ = ["register", "time_check", "time_report"]


def register(sub: Any) -> None:
    parser = sub.add_parser("produce", help="publish events from a JSON-lines file to the raw events topic")
    parser.add_argument("file", type=Path, help="one event per line (JSON)")
    parser.add_argument("--topic", default=None, help="target topic (default: the raw events topic)")
    parser.add_argument(
        "--no-validate",
        dest="validate",
        action="store_false",
        help="send every line as it is, even invalid ones (they then land in the dead-letter topic)",
    )
    parser.add_argument(
        "--worker",
        metavar="URL",
        default=None,
        help="a running worker's web address: its clock and lateness window say which lines it would apply "
        "as late (no journey entry); asked with the API token of the settings (ORCH_API_TOKEN)",
    )
    add_config_option(parser)
    parser.set_defaults(func=_produce)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def time_check(settings: Settings, worker: str | None) -> TimeCheck:
    """The clock the lines are held against: the worker's (its latest partition clock, else its wall
    clock) or, without ``worker``, this machine's with the configured lateness."""
    now = int(time.time() * 1000)
    if worker is None:
        return TimeCheck(now, settings.lateness_hours * 3_600_000 or None, now)
    tokens = secret_list(settings.api_token)
    body = get_json(worker, "/clock/", tokens[0] if tokens else None)
    if body is None or body.get("_missing") or "now_ms" not in body:
        raise WorkerApiError(f"{worker}/clock/: no clock in the answer (is this an orchestrator worker?)")
    wall = int(body["now_ms"])
    clock = int(body.get("clock_ms") or wall)
    lateness = body.get("lateness_ms")
    skew = int(body.get("future_skew_ms") or 5_000)
    return TimeCheck(clock, None if lateness is None else int(lateness), wall, skew, "the worker's clock")


def time_report(times: TimeCheck) -> list[str]:
    """What the lines' times mean for a worker, in words (nothing when every line is on time)."""
    lines: list[str] = []
    window = "" if times.lateness_ms is None else f"{times.lateness_ms / 3_600_000:g} h"
    if times.late:
        lines.append(
            f"{times.late} line(s) are older than the lateness window ({window} before {times.source}, "
            f"{_iso(times.clock_ms)}): the worker updates those customers' profiles and running journeys, "
            "but starts no journey for them. To see what recorded events would do, use `orchestrator "
            "simulate`; to replay them live, give them recent times."
        )
    if times.future:
        lines.append(
            f"{times.future} line(s) are ahead of {times.source} ({_iso(times.now_ms)}) by more than "
            f"{times.skew_ms // 1000} s: the worker applies them at its clock, not at their own time."
        )
    if lines and times.oldest_ms is not None and times.newest_ms is not None:
        lines.append(f"the lines' times run from {_iso(times.oldest_ms)} to {_iso(times.newest_ms)}")
    return lines


def _produce(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    connection_check(settings)  # a refused login or TLS handshake: one clear line, now
    times = time_check(settings, args.worker) if args.validate else None

    def on_bad(bad: BadLine) -> None:
        print(f"{args.file}:{bad.line}: skipped: {bad.error}", file=sys.stderr)

    report = produce_file(
        args.file, settings, topic=args.topic, validate=args.validate, on_bad=on_bad, times=times
    )
    topic = args.topic or settings.topics.raw_events
    print(f"produced {report.sent} events to {topic}; {len(report.bad)} bad lines skipped")
    for line in time_report(times) if times is not None else []:
        print(f"note: {line}")
    for failure in report.failed:
        print(f"delivery failed: {failure}", file=sys.stderr)
    return 1 if report.failed else 0
