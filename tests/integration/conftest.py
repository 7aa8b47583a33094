"""One real Kafka broker per test session; unique topics and groups per test.

The broker comes from, in order:
1. ``ORCH_TEST_BOOTSTRAP`` (an address of a broker you run yourself);
2. the local Apache Kafka broker (``orchestrator kafka up``'s machinery) on free ports and a temp dir;
3. testcontainers, where a Docker engine answers.
In CI (``CI`` set) a missing broker fails the session loudly instead of skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.config import Settings
from orchestrator.exceptions import ToolMissingError
from orchestrator.kafka.local_broker import LocalBroker, SecureListeners, free_port
from orchestrator.kafka.topics import create_topics
from orchestrator.testing import WorkerProcess, unique_settings
from orchestrator.testing.certs import SecureKafka, make_certificates
from tests.integration.runtime_helpers import ActionReader

SCRAM_USERS = (("orchestrator", "orchestrator-scram-secret"), ("reader", "reader-scram-secret"))


def _testcontainers_broker() -> tuple[str, object] | None:
    try:
        import docker

        docker.from_env().ping()
        from testcontainers.kafka import KafkaContainer
    except Exception:
        return None
    container = KafkaContainer().with_kraft()
    container.start()
    return container.get_bootstrap_server(), container


@pytest.fixture(scope="session")
def _kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SecureKafka | None]]:
    """The session's broker: its PLAINTEXT bootstrap and, for the local broker, its secured listeners
    (SSL and SASL_SSL with SCRAM, on the same broker, certificates made in a temp dir)."""
    given = os.environ.get("ORCH_TEST_BOOTSTRAP")
    if given:
        yield given, None
        return
    run_dir = tmp_path_factory.mktemp("kafka")
    secure: SecureListeners | None = None
    certs = None
    try:
        certs = make_certificates(run_dir / "certs")
        secure = SecureListeners(
            keystore=certs.server_keystore,
            truststore=certs.ca,
            ssl_port=free_port(),
            sasl_ssl_port=free_port(),
            scram_users=SCRAM_USERS,
        )
    except ToolMissingError:  # no openssl: the broker runs without secured listeners
        if os.environ.get("CI"):
            raise
    broker = LocalBroker(port=free_port(), controller_port=free_port(), run_dir=run_dir, secure=secure)
    try:
        info = broker.up(timeout=120)
    except ToolMissingError as exc:
        tc = _testcontainers_broker()
        if tc is None:
            message = f"no Kafka broker for the integration tests: {exc}; no Docker engine either"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        bootstrap, container = tc
        yield bootstrap, None
        container.stop()  # type: ignore[attr-defined]
        return
    try:
        if secure is None or certs is None:
            yield info.bootstrap, None
        else:
            yield (
                info.bootstrap,
                SecureKafka(
                    ssl_bootstrap=f"{info.host}:{secure.ssl_port}",
                    sasl_ssl_bootstrap=f"{info.host}:{secure.sasl_ssl_port}",
                    certs=certs,
                    users=SCRAM_USERS,
                ),
            )
    finally:
        broker.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(_kafka_broker: tuple[str, SecureKafka | None]) -> str:
    """The PLAINTEXT bootstrap address of the session's broker."""
    return _kafka_broker[0]


@pytest.fixture(scope="session")
def secure_kafka(_kafka_broker: tuple[str, SecureKafka | None]) -> SecureKafka:
    """The session broker's SSL and SASL_SSL listeners, its CA, client certificate and SCRAM users.

    Only the local broker has them: with ORCH_TEST_BOOTSTRAP or testcontainers the tests using this skip
    (in CI, with the local broker, they run)."""
    if _kafka_broker[1] is None:
        pytest.skip("secured listeners exist only on the local test broker (not ORCH_TEST_BOOTSTRAP, Docker)")
    return _kafka_broker[1]


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    """Settings of this test alone, with its topics created."""
    s = unique_settings(kafka_bootstrap, tmp_path / "worker")
    create_topics(s)
    return s


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A running, ready worker on this test's topics; stopped afterwards."""
    proc = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def actions(settings: Settings) -> Iterator[ActionReader]:
    """Reads this test's three action topics continuously (one consumer, its own group)."""
    reader = ActionReader(settings)
    yield reader
    reader.close()
