"""``orchestrator topics create|list``: every topic the system uses, laid out as it needs."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli._common import add_config_option, settings_from
from orchestrator.kafka.topics import create_topics, describe_topics, topic_specs

__all__ = ["register"]


def register(sub: Any) -> None:
    parser = sub.add_parser("topics", help="create or list the orchestrator's topics")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create", help="create every topic that is missing; alter the configs of the others to their spec"
    )
    add_config_option(create)
    create.set_defaults(func=_create)
    lst = actions.add_parser("list", help="show the topics, their partitions and cleanup policy")
    add_config_option(lst)
    lst.set_defaults(func=_list)


def _create(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    def changed(topic: str, key: str, old: str | None, new: str) -> None:
        print(f"altered  {topic}: {key} {'(unset)' if old is None else old} -> {new}")

    for spec, state in create_topics(settings, on_change=changed):
        policy = "compact" if spec.compacted else "delete"
        print(f"{state:8} {spec.name:32} partitions={spec.partitions:<3} cleanup={policy:8} {spec.purpose}")
    return 0


def _list(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    specs = topic_specs(settings)
    actual = describe_topics(settings, [s.name for s in specs])
    for spec in specs:
        have = actual.get(spec.name)
        print(f"{spec.name:32} {'missing' if have is None else f'partitions={have}'}")
    return 0 if len(actual) == len(specs) else 1
