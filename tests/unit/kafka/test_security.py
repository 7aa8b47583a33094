"""Connection settings in the three spellings (aiokafka, Faust, librdkafka) and the refused combinations."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
import pytest
from confluent_kafka import KafkaError
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from orchestrator.config import Settings, load_settings
from orchestrator.exceptions import ConfigError, ToolMissingError
from orchestrator.kafka.security import (
    aiokafka_options,
    check_security,
    describe_kafka_error,
    faust_credentials,
    librdkafka_options,
    ssl_context,
)
from orchestrator.testing.certs import CertificateSet, make_certificates

BOOT = "broker-1:9093,broker-2:9093"
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
BUILDERS: list[Callable[[Settings], Any]] = [aiokafka_options, faust_credentials, librdkafka_options]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertificateSet:
    try:
        return make_certificates(tmp_path_factory.mktemp("certs"))
    except ToolMissingError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


def _settings(**values: Any) -> Settings:
    return Settings.model_validate({"bootstrap_servers": BOOT, **values})


def _sasl(protocol: str, mechanism: str, **values: Any) -> Settings:
    return _settings(
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username="alice",
        sasl_password="s3cret",
        **values,
    )


# --- PLAINTEXT ------------------------------------------------------------------------------------


def test_plaintext() -> None:
    s = _settings()
    assert aiokafka_options(s) == {"bootstrap_servers": BOOT, "security_protocol": "PLAINTEXT"}
    assert faust_credentials(s) is None
    assert credentials_to_aiokafka_auth(faust_credentials(s)) == {"security_protocol": "PLAINTEXT"}
    assert librdkafka_options(s) == {"bootstrap.servers": BOOT, "security.protocol": "PLAINTEXT"}
    assert ssl_context(s) is None


# --- SSL ------------------------------------------------------------------------------------------


def test_ssl_with_a_ca_file(certs: CertificateSet) -> None:
    s = _settings(security_protocol="SSL", ssl_cafile=str(certs.ca))
    opts = aiokafka_options(s)
    assert opts["security_protocol"] == "SSL"
    ctx = opts["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname is True
    assert "sasl_mechanism" not in opts
    assert any("orchestrator test ca" in str(c.get("subject")) for c in ctx.get_ca_certs())

    creds = faust_credentials(s)
    assert isinstance(creds, faust.SSLCredentials)
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SSL"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)

    assert librdkafka_options(s) == {
        "bootstrap.servers": BOOT,
        "security.protocol": "SSL",
        "ssl.ca.location": str(certs.ca),
        "ssl.endpoint.identification.algorithm": "https",
    }


def test_ssl_with_a_client_certificate_and_an_encrypted_key(certs: CertificateSet) -> None:
    s = _settings(
        security_protocol="SSL",
        ssl_cafile=str(certs.ca),
        ssl_certfile=str(certs.client_cert),
        ssl_keyfile=str(certs.client_key),
        ssl_key_password=certs.client_key_password,
    )
    assert isinstance(aiokafka_options(s)["ssl_context"], ssl.SSLContext)  # the key decrypts
    assert isinstance(faust_credentials(s), faust.SSLCredentials)
    assert librdkafka_options(s) == {
        "bootstrap.servers": BOOT,
        "security.protocol": "SSL",
        "ssl.ca.location": str(certs.ca),
        "ssl.certificate.location": str(certs.client_cert),
        "ssl.key.location": str(certs.client_key),
        "ssl.key.password": certs.client_key_password,
        "ssl.endpoint.identification.algorithm": "https",
    }


def test_ssl_without_the_hostname_check_still_verifies_the_chain(certs: CertificateSet) -> None:
    s = _settings(security_protocol="SSL", ssl_cafile=str(certs.ca), ssl_check_hostname=False)
    ctx = aiokafka_options(s)["ssl_context"]
    assert ctx.check_hostname is False
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert faust_credentials(s).context.check_hostname is False
    assert librdkafka_options(s)["ssl.endpoint.identification.algorithm"] == "none"


def test_ssl_without_a_ca_file_trusts_the_system_store() -> None:
    s = _settings(security_protocol="SSL")
    assert aiokafka_options(s)["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert "ssl.ca.location" not in librdkafka_options(s)


# --- SASL_PLAINTEXT and SASL_SSL ------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_sasl_plaintext(mechanism: str) -> None:
    s = _sasl("SASL_PLAINTEXT", mechanism)
    assert aiokafka_options(s) == {
        "bootstrap_servers": BOOT,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "alice",
        "sasl_plain_password": "s3cret",
    }
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert credentials_to_aiokafka_auth(creds) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "alice",
        "sasl_plain_password": "s3cret",
        "ssl_context": None,
    }
    assert librdkafka_options(s) == {
        "bootstrap.servers": BOOT,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": "alice",
        "sasl.password": "s3cret",
    }


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_sasl_ssl(mechanism: str, certs: CertificateSet) -> None:
    s = _sasl("SASL_SSL", mechanism, ssl_cafile=str(certs.ca))
    opts = aiokafka_options(s)
    assert opts["security_protocol"] == "SASL_SSL"
    assert (opts["sasl_mechanism"], opts["sasl_plain_username"], opts["sasl_plain_password"]) == (
        mechanism,
        "alice",
        "s3cret",
    )
    assert opts["ssl_context"].verify_mode == ssl.CERT_REQUIRED

    auth = credentials_to_aiokafka_auth(faust_credentials(s))
    # Faust makes SASL credentials SASL_SSL only when they carry an SSL context.
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == mechanism
    assert isinstance(auth["ssl_context"], ssl.SSLContext)

    assert librdkafka_options(s) == {
        "bootstrap.servers": BOOT,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": mechanism,
        "sasl.username": "alice",
        "sasl.password": "s3cret",
        "ssl.ca.location": str(certs.ca),
        "ssl.endpoint.identification.algorithm": "https",
    }


async def test_every_faust_client_of_the_worker_gets_the_credentials(
    certs: CertificateSet, tmp_path: Path
) -> None:
    """The worker's Faust consumer and producer (which also creates topics, through its client) are
    built SASL_SSL with the TLS context; nothing connects here."""
    from orchestrator.runtime.app import build_app

    s = _sasl("SASL_SSL", "SCRAM-SHA-512", ssl_cafile=str(certs.ca), store="memory://", data_dir=tmp_path)
    app = build_app(s).app
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    producer = app.producer._new_producer()
    try:
        for client in (consumer._client, producer.client):
            assert client._security_protocol == "SASL_SSL"
            assert client._sasl_mechanism == "SCRAM-SHA-512"
            assert client._sasl_plain_username == "alice"
            assert isinstance(client._ssl_context, ssl.SSLContext)
    finally:
        await consumer.stop()
        await producer.stop()


def test_secrets_come_from_the_environment(certs: CertificateSet) -> None:
    s = load_settings(
        environ={
            "ORCH_SECURITY_PROTOCOL": "SASL_SSL",
            "ORCH_SASL_MECHANISM": "SCRAM-SHA-512",
            "ORCH_SASL_USERNAME": "alice",
            "ORCH_SASL_PASSWORD": "from-env",
            "ORCH_SSL_CAFILE": str(certs.ca),
            "ORCH_SSL_CHECK_HOSTNAME": "false",
        }
    )
    assert librdkafka_options(s)["sasl.password"] == "from-env"
    assert librdkafka_options(s)["ssl.endpoint.identification.algorithm"] == "none"
    assert "from-env" not in repr(s)


# --- refused combinations --------------------------------------------------------------------------


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__)
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            {"security_protocol": "SASL_SSL"},
            ["ORCH_SASL_MECHANISM", "ORCH_SASL_USERNAME", "ORCH_SASL_PASSWORD"],
            id="sasl-without-anything",
        ),
        pytest.param(
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
            ["ORCH_SASL_PASSWORD): required with security_protocol SASL_PLAINTEXT"],
            id="sasl-without-password",
        ),
        pytest.param(
            {"sasl_mechanism": "SCRAM-SHA-512"},
            ["ORCH_SASL_MECHANISM): set, but security_protocol PLAINTEXT does not use SASL"],
            id="mechanism-with-plaintext",
        ),
        pytest.param(
            {"security_protocol": "SSL", "sasl_username": "u", "sasl_password": "p"},
            ["ORCH_SASL_USERNAME", "ORCH_SASL_PASSWORD", "security_protocol SSL does not use SASL"],
            id="credentials-with-ssl",
        ),
        pytest.param(
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "u",
                "sasl_password": "p",
                "ssl_cafile": "/etc/hostname",
            },
            ["ORCH_SSL_CAFILE): set, but security_protocol SASL_PLAINTEXT does not use TLS"],
            id="ca-without-tls",
        ),
        pytest.param(
            {"security_protocol": "SSL", "ssl_certfile": "/etc/hostname"},
            ["ORCH_SSL_KEYFILE): required with ssl_certfile"],
            id="cert-without-key",
        ),
        pytest.param(
            {"security_protocol": "SSL", "ssl_keyfile": "/etc/hostname"},
            ["ORCH_SSL_CERTFILE): required with ssl_keyfile"],
            id="key-without-cert",
        ),
        pytest.param(
            {"security_protocol": "SSL", "ssl_key_password": "x"},
            ["ORCH_SSL_KEY_PASSWORD): set, but no ssl_keyfile"],
            id="key-password-without-key",
        ),
        pytest.param(
            {"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.pem"},
            ["ORCH_SSL_CAFILE): file not found: /nonexistent/ca.pem"],
            id="missing-ca-file",
        ),
        pytest.param(
            {
                "security_protocol": "SSL",
                "ssl_certfile": "/nonexistent/c.pem",
                "ssl_keyfile": "/nonexistent/k",
            },
            ["ORCH_SSL_CERTFILE): file not found", "ORCH_SSL_KEYFILE): file not found"],
            id="missing-cert-and-key-files",
        ),
    ],
)
def test_inconsistent_settings_are_refused_naming_the_field(
    builder: Callable[[Settings], Any], values: dict[str, Any], expected: list[str]
) -> None:
    s = _settings(**values)
    with pytest.raises(ConfigError) as err:
        builder(s)
    for part in expected:
        assert part in str(err.value)
    with pytest.raises(ConfigError):
        check_security(s)
    assert "s3cret" not in str(err.value)


def test_a_wrong_key_password_is_a_config_error(certs: CertificateSet) -> None:
    s = _settings(
        security_protocol="SSL",
        ssl_certfile=str(certs.client_cert),
        ssl_keyfile=str(certs.client_key),
        ssl_key_password="wrong",
    )
    with pytest.raises(ConfigError, match="ORCH_SSL_KEY_PASSWORD"):
        aiokafka_options(s)
    missing = _settings(
        security_protocol="SSL", ssl_certfile=str(certs.client_cert), ssl_keyfile=str(certs.client_key)
    )
    with pytest.raises(ConfigError, match="ORCH_SSL_KEYFILE"):  # an encrypted key and no password
        faust_credentials(missing)


def test_a_ca_file_that_is_not_pem_is_a_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="ORCH_SSL_CAFILE"):
        aiokafka_options(_settings(security_protocol="SSL", ssl_cafile=str(bogus)))


# --- one line per connection error ----------------------------------------------------------------


def test_refused_credentials_read_as_one_line() -> None:
    s = _sasl("SASL_SSL", "SCRAM-SHA-512")
    error = KafkaError(
        KafkaError._AUTHENTICATION,
        "sasl_ssl://10.0.0.7:9094/bootstrap: SASL authentication error: Authentication failed during "
        "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 312ms in "
        "state AUTH_REQ)",
    )
    assert describe_kafka_error(s, error) == (
        "Kafka at 10.0.0.7:9094 refused the SASL credentials of user 'alice' (SCRAM-SHA-512): SASL "
        "authentication error: Authentication failed during authentication due to invalid credentials "
        "with SASL mechanism SCRAM-SHA-512"
    )
    unsupported = KafkaError(
        KafkaError._AUTHENTICATION,
        "sasl_ssl://10.0.0.7:9094/bootstrap: SASL PLAIN mechanism handshake failed: Broker: Unsupported "
        "SASL mechanism: broker's supported mechanisms: SCRAM-SHA-512 (after 3ms in state AUTH_HANDSHAKE)",
    )
    text = describe_kafka_error(_sasl("SASL_SSL", "PLAIN"), unsupported)
    assert text is not None
    assert text.startswith(
        "Kafka at 10.0.0.7:9094 does not accept SASL mechanism PLAIN (ORCH_SASL_MECHANISM)"
    )


def test_a_failed_tls_handshake_reads_as_one_line(certs: CertificateSet) -> None:
    s = _settings(security_protocol="SSL", ssl_cafile=str(certs.other_ca))
    error = KafkaError(
        KafkaError._SSL,
        "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate "
        "verify failed: broker certificate could not be verified (after 11ms in state SSL_HANDSHAKE)",
    )
    assert describe_kafka_error(s, error) == (
        "TLS handshake with 127.0.0.1:9093 failed: SSL handshake failed: error:0A000086:SSL "
        "routines::certificate verify failed: broker certificate could not be verified "
        f"(ssl_cafile={certs.other_ca}, ssl_check_hostname=true)"
    )
    to_plaintext = KafkaError(
        KafkaError._TRANSPORT,
        "ssl://127.0.0.1:9092/bootstrap: SSL handshake failed: Disconnected: SSL connection closed by "
        "peer: connecting to a PLAINTEXT broker listener? (after 1ms in state SSL_HANDSHAKE)",
    )
    assert (describe_kafka_error(s, to_plaintext) or "").startswith("TLS handshake with 127.0.0.1:9092")


def test_errors_that_retrying_cures_are_not_described() -> None:
    refused = KafkaError(
        KafkaError._TRANSPORT,
        "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 0ms "
        "in state CONNECT)",
    )
    assert describe_kafka_error(_settings(), refused) is None
    assert (
        describe_kafka_error(_settings(), KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
        is None
    )
