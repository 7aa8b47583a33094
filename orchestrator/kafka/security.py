"""How every Kafka client of the orchestrator connects: one place for TLS and SASL.

Three spellings of the same settings (:class:`~orchestrator.config.Settings`):

- :func:`aiokafka_options` for plain aiokafka clients (the journey feed, benches);
- :func:`faust_credentials` for Faust's consumer, producer and admin client;
- :func:`librdkafka_options` for the confluent-kafka clients (topics, deploy, produce, inspect,
  connectors).
"""

from __future__ import annotations

from typing import Any

from orchestrator.config import Settings

__all__ = ["aiokafka_options", "faust_credentials", "librdkafka_options"]


def _password(settings: Settings) -> str | None:
    return None if settings.sasl_password is None else settings.sasl_password.get_secret_value()


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Connection options in aiokafka's spelling."""
    opts: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers}
    if settings.security_protocol != "PLAINTEXT":
        opts["security_protocol"] = settings.security_protocol
    if settings.sasl_mechanism:
        opts.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=_password(settings),
        )
    return opts


def faust_credentials(settings: Settings) -> Any:
    """``broker_credentials`` for :class:`faust.App` (None for PLAINTEXT)."""
    import faust

    if settings.sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=_password(settings),
            mechanism=settings.sasl_mechanism,
        )
    return None


def librdkafka_options(settings: Settings) -> dict[str, Any]:
    """Connection options in confluent-kafka's (librdkafka's) spelling."""
    opts: dict[str, Any] = {"bootstrap.servers": settings.bootstrap_servers}
    if settings.security_protocol != "PLAINTEXT":
        opts["security.protocol"] = settings.security_protocol
    if settings.sasl_mechanism:
        opts.update(
            {
                "sasl.mechanism": settings.sasl_mechanism,
                "sasl.username": settings.sasl_username,
                "sasl.password": _password(settings),
            }
        )
    if settings.ssl_cafile:
        opts["ssl.ca.location"] = settings.ssl_cafile
    return opts
