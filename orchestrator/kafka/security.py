"""How every Kafka client of the orchestrator connects: one place for TLS and SASL.

Three spellings of the same settings (:class:`~orchestrator.config.Settings`):

- :func:`aiokafka_options` for plain aiokafka clients (the journey feed, benches);
- :func:`faust_credentials` for Faust's consumer, producer and admin (topic creation) clients;
- :func:`librdkafka_options` for the confluent-kafka clients (topics, deploy, produce, inspect,
  connectors).

Each builder first calls :func:`check_security`, which refuses inconsistent settings with a
:class:`~orchestrator.exceptions.ConfigError` naming the field and its ``ORCH_*`` variable.

:func:`cluster_metadata` (and :func:`connection_check`) is the start-up check: a metadata request that
turns what librdkafka only reports through its error callback (refused SASL credentials, a TLS
handshake the CA cannot verify) into one :class:`~orchestrator.exceptions.KafkaSetupError` line within
seconds, instead of a metadata timeout.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.config import ENV_PREFIX, Settings
from orchestrator.exceptions import ConfigError, KafkaSetupError

__all__ = [
    "admin_client",
    "aiokafka_options",
    "check_security",
    "cluster_metadata",
    "connection_check",
    "describe_kafka_error",
    "faust_credentials",
    "librdkafka_options",
    "ssl_context",
]

_SASL_FIELDS = ("sasl_mechanism", "sasl_username", "sasl_password")
_SSL_FIELDS = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password")


def _uses_sasl(settings: Settings) -> bool:
    return settings.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def _uses_tls(settings: Settings) -> bool:
    return settings.security_protocol in ("SSL", "SASL_SSL")


def _field(name: str) -> str:
    return f"field {name!r} (env {ENV_PREFIX}{name.upper()})"


def check_security(settings: Settings) -> None:
    """Refuse connection settings that cannot work or would be silently ignored.

    Raises :class:`ConfigError` listing every problem, one line each, naming the field and its
    environment variable.
    """
    protocol = settings.security_protocol
    problems: list[str] = []
    if _uses_sasl(settings):
        problems += [
            f"{_field(name)}: required with security_protocol {protocol}"
            for name in _SASL_FIELDS
            if not getattr(settings, name)
        ]
    else:
        problems += [
            f"{_field(name)}: set, but security_protocol {protocol} does not use SASL "
            "(use SASL_SSL or SASL_PLAINTEXT, or unset it)"
            for name in _SASL_FIELDS
            if getattr(settings, name)
        ]
    if not _uses_tls(settings):
        problems += [
            f"{_field(name)}: set, but security_protocol {protocol} does not use TLS "
            "(use SSL or SASL_SSL, or unset it)"
            for name in _SSL_FIELDS
            if getattr(settings, name)
        ]
    else:
        if settings.ssl_certfile and not settings.ssl_keyfile:
            problems.append(
                f"{_field('ssl_keyfile')}: required with ssl_certfile (the client certificate's key)"
            )
        if settings.ssl_keyfile and not settings.ssl_certfile:
            problems.append(f"{_field('ssl_certfile')}: required with ssl_keyfile (the key's certificate)")
        if settings.ssl_key_password and not settings.ssl_keyfile:
            problems.append(f"{_field('ssl_key_password')}: set, but no ssl_keyfile to decrypt")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(settings, name)
            if path and not Path(path).is_file():
                problems.append(f"{_field(name)}: file not found: {path}")
    if problems:
        raise ConfigError("\n".join(problems))


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of aiokafka and Faust clients (None when the protocol does not use TLS).

    Verifies the broker's certificate against ``ssl_cafile`` (the system's CAs when unset), checks
    its host name unless ``ssl_check_hostname`` is false, and presents the client certificate when one
    is configured.
    """
    check_security(settings)
    if not _uses_tls(settings):
        return None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.ssl_cafile)
    except ssl.SSLError as exc:
        raise ConfigError(f"{_field('ssl_cafile')}: not a PEM CA bundle: {exc}") from None
    ctx.check_hostname = settings.ssl_check_hostname  # the chain is verified either way
    if settings.ssl_certfile:
        password = (_secret(settings.ssl_key_password) or "").encode()
        # A callable, never None: with None OpenSSL would prompt on the terminal for an encrypted key.
        try:
            ctx.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile, password=lambda: password)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"{_field('ssl_certfile')} / {_field('ssl_keyfile')}: cannot load the client certificate and "
                f"key (wrong {ENV_PREFIX}SSL_KEY_PASSWORD, or a key that does not match?): {exc}"
            ) from None
    return ctx


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Connection options in aiokafka's spelling (``AIOKafkaConsumer(**aiokafka_options(s), ...)``)."""
    opts: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    ctx = ssl_context(settings)
    if ctx is not None:
        opts["ssl_context"] = ctx
    if _uses_sasl(settings):
        opts.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=_secret(settings.sasl_password),
        )
    return opts


def faust_credentials(settings: Settings) -> Any:
    """``broker_credentials`` for :class:`faust.App` (None for PLAINTEXT).

    Faust (faust-streaming 0.15.3, ``credentials_to_aiokafka_auth``) derives the protocol from the
    credential's type: :class:`faust.SSLCredentials` gives SSL, :class:`faust.SASLCredentials` gives
    SASL_PLAINTEXT, or SASL_SSL only when it carries an ``ssl_context``. Its consumer, producer and the
    topic creation (done through the producer's client) all use these credentials.
    """
    import faust

    ctx = ssl_context(settings)
    if _uses_sasl(settings):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=_secret(settings.sasl_password),
            mechanism=settings.sasl_mechanism,
            ssl_context=ctx,
        )
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None


def librdkafka_options(settings: Settings) -> dict[str, Any]:
    """Connection options in confluent-kafka's (librdkafka's) spelling."""
    check_security(settings)
    opts: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.security_protocol,
    }
    if _uses_tls(settings):
        opts["ssl.endpoint.identification.algorithm"] = "https" if settings.ssl_check_hostname else "none"
        if settings.ssl_cafile:
            opts["ssl.ca.location"] = settings.ssl_cafile
        if settings.ssl_certfile:
            opts["ssl.certificate.location"] = settings.ssl_certfile
            opts["ssl.key.location"] = settings.ssl_keyfile
            if settings.ssl_key_password is not None:
                opts["ssl.key.password"] = _secret(settings.ssl_key_password)
    if _uses_sasl(settings):
        opts.update(
            {
                "sasl.mechanism": settings.sasl_mechanism,
                "sasl.username": settings.sasl_username,
                "sasl.password": _secret(settings.sasl_password),
            }
        )
    return opts


# --- the start-up check --------------------------------------------------------------------------

_WHERE = re.compile(r"^(?:[a-z_]+://)?(?P<addr>[^/\s]+)/\S*: (?P<detail>.*)$", re.DOTALL)
_AFTER = re.compile(r"\s*\(after \d+ms in state \w+\)\s*$")


class _QuietLogger:
    """librdkafka's own log lines are left out: the check reports the errors itself, in one line."""

    def log(self, *args: object) -> None:
        pass

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **k: None


def admin_client(settings: Settings, errors: list[Any] | None = None) -> Any:
    """A confluent-kafka ``AdminClient`` for ``settings`` whose connection errors (``KafkaError``,
    reported through librdkafka's ``error_cb`` when the client is polled) are appended to ``errors``.
    librdkafka's log lines are silenced: :func:`cluster_metadata` reports what went wrong."""
    from confluent_kafka.admin import AdminClient

    sink = errors if errors is not None else []
    conf = {**librdkafka_options(settings), "error_cb": sink.append, "logger": _QuietLogger(), "log_level": 0}
    return AdminClient(conf)


def _split(error_text: str, fallback: str) -> tuple[str, str]:
    """(broker address, detail) of a librdkafka error string."""
    match = _WHERE.match(error_text.strip())
    addr, detail = (match["addr"], match["detail"]) if match else (fallback, error_text)
    return addr, " ".join(_AFTER.sub("", detail).split())


def _is_tls_failure(error: Any) -> bool:
    from confluent_kafka import KafkaError

    return bool(
        error.code() == KafkaError._SSL
        or (error.code() == KafkaError._TRANSPORT and "SSL handshake failed" in error.str())
    )


def describe_kafka_error(settings: Settings, error: Any) -> str | None:
    """One line for a librdkafka connection error that retrying will not cure (refused credentials,
    a failed TLS handshake); None for the others (a broker not up yet, a dropped connection)."""
    from confluent_kafka import KafkaError

    addr, detail = _split(error.str(), settings.bootstrap_servers)
    if error.code() == KafkaError._AUTHENTICATION:
        mechanism = settings.sasl_mechanism or "no mechanism"
        if "mechanism handshake failed" in detail:
            return (
                f"Kafka at {addr} does not accept SASL mechanism {mechanism} "
                f"({ENV_PREFIX}SASL_MECHANISM): {detail}"
            )
        user = settings.sasl_username
        return f"Kafka at {addr} refused the SASL credentials of user {user!r} ({mechanism}): {detail}"
    if _is_tls_failure(error):
        trust = settings.ssl_cafile or "the system's CA certificates"
        return (
            f"TLS handshake with {addr} failed: {detail} (ssl_cafile={trust}, "
            f"ssl_check_hostname={str(settings.ssl_check_hostname).lower()})"
        )
    return None


def cluster_metadata(settings: Settings, timeout: float = 10.0) -> Any:
    """The cluster's metadata (``list_topics``), or one :class:`KafkaSetupError` line saying why not.

    Refused SASL credentials and failed TLS handshakes fail within about a second; a broker that does
    not answer at all fails after ``timeout`` with the last connection error librdkafka reported.
    """
    from confluent_kafka import KafkaError, KafkaException

    errors: list[Any] = []
    client = admin_client(settings, errors)
    deadline = time.monotonic() + timeout
    last: str | None = None
    while True:
        try:
            return client.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
        except KafkaException as exc:
            last = last or str(exc.args[0].str() if exc.args else exc)
        client.poll(0)  # serves error_cb
        for error in errors:
            message = describe_kafka_error(settings, error)
            if message is not None:
                raise KafkaSetupError(message)
        informative = [e for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN]
        if informative:
            last = _split(informative[-1].str(), settings.bootstrap_servers)[1]
        if time.monotonic() >= deadline:
            raise KafkaSetupError(
                f"Kafka at {settings.bootstrap_servers} did not answer within {timeout:.0f}s "
                f"(security_protocol {settings.security_protocol}): {last or 'no response'}"
            )
        errors.clear()


def connection_check(settings: Settings, timeout: float = 10.0) -> None:
    """Fail fast, with one clear line, when the brokers cannot be reached with ``settings``."""
    cluster_metadata(settings, timeout)
