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
from orchestrator.kafka.local_broker import LocalBroker, free_port
from orchestrator.kafka.topics import create_topics
from orchestrator.testing import WorkerProcess, unique_settings


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
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("ORCH_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    run_dir = tmp_path_factory.mktemp("kafka")
    broker = LocalBroker(port=free_port(), controller_port=free_port(), run_dir=run_dir)
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
        yield bootstrap
        container.stop()  # type: ignore[attr-defined]
        return
    try:
        yield info.bootstrap
    finally:
        broker.down()


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
