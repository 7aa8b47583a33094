"""``orchestrator kafka up|down|status``: a local Apache Kafka broker (KRaft) from Maven Central."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from orchestrator.kafka.local_broker import DEFAULT_KAFKA_VERSION, LocalBroker

__all__ = ["register"]


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "kafka", help="run a local Apache Kafka broker (KRaft) fetched from Maven Central"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, func, text in (
        ("up", _up, "fetch (once), format (once) and start the broker; prints the bootstrap address last"),
        ("down", _down, "stop the broker by its recorded pid"),
        ("status", _status, "say whether the broker runs and where"),
    ):
        p = actions.add_parser(name, help=text)
        p.add_argument("--port", type=int, default=9092, help="client port (default 9092)")
        p.add_argument(
            "--controller-port", type=int, default=None, help="KRaft controller port (default port+1)"
        )
        p.add_argument(
            "--run-dir",
            type=Path,
            default=None,
            help="data, config and log (default ~/.local/state/orchestrator/kafka-PORT)",
        )
        p.add_argument(
            "--version",
            dest="kafka_version",
            default=DEFAULT_KAFKA_VERSION,
            help=f"Apache Kafka version (default {DEFAULT_KAFKA_VERSION})",
        )
        p.add_argument("--heap", default="768m", help="JVM heap (default 768m; at least 512m)")
        p.set_defaults(func=func)


def _broker(args: argparse.Namespace) -> LocalBroker:
    return LocalBroker(
        port=args.port,
        controller_port=args.controller_port,
        run_dir=args.run_dir,
        version=args.kafka_version,
        heap=args.heap,
    )


def _up(args: argparse.Namespace) -> int:
    info = _broker(args).up(say=print)
    print(
        f"Apache Kafka {info.version} (KRaft) runs, pid {info.pid}, log {Path(info.run_dir) / 'server.log'}"
    )
    print(info.bootstrap)
    return 0


def _down(args: argparse.Namespace) -> int:
    broker = _broker(args)
    stopped = broker.down()
    if stopped is not None:
        print(f"stopped the broker on {stopped.bootstrap} (pid {stopped.pid}, run dir {stopped.run_dir})")
    else:
        print(f"no broker recorded in {broker.run_dir}")
    return 0


def _status(args: argparse.Namespace) -> int:
    broker = _broker(args)
    info = broker.status()
    if info is None:
        recorded = broker.recorded()
        if recorded is not None:
            print(f"broker process {recorded.pid} is up but does not answer on {recorded.bootstrap} yet")
            return 1
        print(f"not running (run dir {broker.run_dir})")
        return 1
    print(f"running: Apache Kafka {info.version}, pid {info.pid}, run dir {info.run_dir}")
    print(info.bootstrap)
    return 0
