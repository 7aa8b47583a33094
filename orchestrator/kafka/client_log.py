"""librdkafka's log lines through Python logging (logger ``orchestrator.kafka``), for the clients the
command line makes: without it librdkafka prints them to stderr in its own format.

A fresh broker answers an idempotent producer's first request for a producer id with "coordinator
load in progress", and librdkafka says so (``GETPID ... retrying``) before it succeeds on its own:
such transient retries are logged at DEBUG, everything else at librdkafka's level.
"""

from __future__ import annotations

import logging

__all__ = ["ClientLog", "client_log"]

log = logging.getLogger("orchestrator.kafka")

TRANSIENT = (("GETPID", "retrying"),)
"""(facility, words in the message) of log lines that only say librdkafka will try again."""


class ClientLog:
    """The ``logger`` of a confluent-kafka client: librdkafka calls ``log(level, fmt, facility, client,
    message)`` from the client's poll."""

    def log(self, level: int, fmt: str, *args: object) -> None:
        facility = str(args[0]) if args else ""
        message = str(args[2]) if len(args) > 2 else " ".join(map(str, args))
        if any(facility == fac and words in message for fac, words in TRANSIENT):
            level = logging.DEBUG
        log.log(level, "librdkafka %s: %s", facility, message)


def client_log() -> ClientLog:
    return ClientLog()
