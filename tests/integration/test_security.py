"""TLS and SASL on the real broker: the session broker's SSL and SASL_SSL (SCRAM) listeners.

- a worker runs a journey end to end over SASL_SSL with SCRAM-SHA-512, pointed only at that listener;
- SSL with a CA, the host name check and a client certificate whose key is encrypted;
- a wrong SASL password and a broker certificate the CA does not trust stop ``orchestrator worker`` and
  ``orchestrator topics create`` within seconds, with one line naming the problem and no traceback.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.config import Settings
from orchestrator.kafka.produce import produce_file
from orchestrator.kafka.security import aiokafka_options, connection_check
from orchestrator.kafka.topics import create_topics
from orchestrator.testing import WorkerProcess, read_topic, unique_settings, wait_until
from orchestrator.testing.certs import SecureKafka
from orchestrator.testing.worker import settings_env
from tests.integration.runtime_helpers import EXAMPLES, JOURNEYS, deploy, simulate

pytestmark = pytest.mark.integration

WELCOME_EVENTS = EXAMPLES / "welcome.events.jsonl"
FAIL_WITHIN_S = 20.0
"""A refused login or TLS handshake must end a command this fast (interpreter and Faust import
included, on a loaded two-core machine); the check itself answers in about a second."""


def _sasl_settings(secure: SecureKafka, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": secure.user,
        "sasl_password": secure.password,
        "ssl_cafile": str(secure.certs.ca),
        **overrides,
    }
    return unique_settings(secure.sasl_ssl_bootstrap, tmp_path / "worker", **values)


def _ssl_settings(secure: SecureKafka, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "security_protocol": "SSL",
        "ssl_cafile": str(secure.certs.ca),
        "ssl_check_hostname": True,
        **overrides,
    }
    return unique_settings(secure.ssl_bootstrap, tmp_path / "worker", **values)


def _cli(settings: Settings, *args: str, timeout: float = 90.0) -> tuple[int, str, float]:
    """Run ``orchestrator ARGS`` with ``settings`` in its environment: (exit code, output, seconds)."""
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def _port(bootstrap: str) -> int:
    return int(bootstrap.rsplit(":", 1)[1])


def _remote_ports(pid: int) -> set[int]:
    """Remote ports of the established TCP connections of process ``pid`` (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if inode in inodes and state == "01":  # ESTABLISHED
                ports.add(int(remote.rsplit(":", 1)[1], 16))
    return ports


def test_worker_runs_a_journey_over_sasl_ssl_scram_sha_512(
    secure_kafka: SecureKafka, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Topics, deployment, events, the worker and the read-back all go through the SASL_SSL listener:
    the worker's settings name no other port, and its open connections prove it."""
    settings = _sasl_settings(secure_kafka, tmp_path, lateness_hours=0)
    code, out, _ = _cli(settings, "topics", "create")
    assert code == 0, out
    welcome = JOURNEYS / "welcome.yaml"
    deploy(settings, [welcome])
    code, out, _ = _cli(settings, "produce", str(WELCOME_EVENTS))
    assert code == 0, out
    events = [line for line in WELCOME_EVENTS.read_bytes().splitlines() if line.strip()]
    expected = simulate([welcome], events, until_ms=int(time.time() * 1000))
    channels = {a["channel"] for a in expected}
    assert expected
    assert "email" in channels

    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        worker.wait_ready(timeout=90)
        got: list[dict[str, Any]] = []
        for channel in sorted(channels):
            want = sum(1 for a in expected if a["channel"] == channel)
            records = read_topic(
                settings.bootstrap_servers,
                settings.topics.action_topic(channel),
                expect=want,
                timeout=90,
                settings=settings,
            )
            got += [orjson.loads(r.value or b"{}") for r in records]
        assert worker.proc is not None
        ports = wait_until(
            lambda: _remote_ports(worker.proc.pid) if worker.proc else None,
            timeout=10,
            what="the worker's Kafka connections",
        )
        log = worker.log_tail(400)
    finally:
        worker.stop()
    assert sorted(a["action_id"] for a in got) == sorted(a["action_id"] for a in expected)
    sasl_port, plain_port = _port(secure_kafka.sasl_ssl_bootstrap), _port(kafka_bootstrap)
    assert sasl_port in ports, ports
    assert plain_port not in ports, ports
    assert _port(secure_kafka.ssl_bootstrap) not in ports, ports
    assert "Sending username and password in the clear" not in log


def test_ssl_with_ca_hostname_check_and_an_encrypted_client_key(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    """SSL with the CA, the host name check on, and a client certificate (the listener requests one
    and verifies what it gets) whose key is encrypted: topics, produce and read back, with both the
    confluent-kafka and the aiokafka spelling."""
    certs = secure_kafka.certs
    settings = _ssl_settings(
        secure_kafka,
        tmp_path,
        ssl_certfile=str(certs.client_cert),
        ssl_keyfile=str(certs.client_key),
        ssl_key_password=certs.client_key_password,
    )
    made = create_topics(settings)
    assert {state for _, state in made} == {"created"}
    report = produce_file(WELCOME_EVENTS, settings, progress=False)
    assert report.sent > 5
    assert (report.bad, report.failed) == ([], [])
    topic = settings.topics.raw_events
    records = read_topic(settings.bootstrap_servers, topic, expect=report.sent, settings=settings)
    assert {r.value for r in records} == {
        line for line in WELCOME_EVENTS.read_bytes().splitlines() if line.strip()
    }
    assert asyncio.run(_aiokafka_count(settings, topic, report.sent)) == report.sent


async def _aiokafka_count(settings: Settings, topic: str, expect: int) -> int:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, **aiokafka_options(settings), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        seen = 0
        deadline = time.monotonic() + 30
        while seen < expect and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            seen += sum(len(records) for records in batches.values())
        return seen
    finally:
        await consumer.stop()


def test_scram_sha_256_in_both_spellings(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    settings = _sasl_settings(secure_kafka, tmp_path, sasl_mechanism="SCRAM-SHA-256")
    connection_check(settings)
    create_topics(settings)
    report = produce_file(WELCOME_EVENTS, settings, progress=False)
    assert report.sent > 5
    assert report.failed == []
    topic = settings.topics.raw_events
    assert asyncio.run(_aiokafka_count(settings, topic, report.sent)) == report.sent


def _assert_fails_clearly(settings: Settings, args: tuple[str, ...], needle: str, secret: str | None) -> str:
    code, out, seconds = _cli(settings, *args, timeout=60)
    command = args[0]
    assert code != 0, out
    assert seconds < FAIL_WITHIN_S, f"took {seconds:.1f}s:\n{out}"
    assert "Traceback" not in out, out
    assert secret is None or secret not in out
    errors = [line for line in out.splitlines() if line.startswith(f"orchestrator {command}: error:")]
    assert len(errors) == 1, out
    assert needle in errors[0], out
    return errors[0]


@pytest.mark.parametrize("args", [("worker",), ("topics", "create")], ids=["worker", "topics-create"])
def test_a_wrong_sasl_password_fails_at_start_in_one_line(
    secure_kafka: SecureKafka, tmp_path: Path, args: tuple[str, ...]
) -> None:
    settings = _sasl_settings(secure_kafka, tmp_path, sasl_password="not-the-password")
    line = _assert_fails_clearly(
        settings,
        args,
        f"Kafka at {secure_kafka.sasl_ssl_bootstrap} refused the SASL credentials of user "
        f"'{secure_kafka.user}' (SCRAM-SHA-512)",
        "not-the-password",
    )
    assert "invalid credentials" in line


@pytest.mark.parametrize("args", [("worker",), ("topics", "create")], ids=["worker", "topics-create"])
def test_a_broker_certificate_the_ca_does_not_trust_fails_at_start_in_one_line(
    secure_kafka: SecureKafka, tmp_path: Path, args: tuple[str, ...]
) -> None:
    settings = _ssl_settings(secure_kafka, tmp_path, ssl_cafile=str(secure_kafka.certs.other_ca))
    line = _assert_fails_clearly(
        settings, args, f"TLS handshake with {secure_kafka.ssl_bootstrap} failed", None
    )
    assert "certificate verify failed" in line
    assert f"ssl_cafile={secure_kafka.certs.other_ca}" in line
