"""The broker that ``orchestrator kafka up`` starts is a real Apache Kafka that clients can talk to."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from orchestrator.kafka.local_broker import LocalBroker, free_port
from orchestrator.testing.certs import SecureKafka

pytestmark = pytest.mark.integration


def test_cli_up_status_down_is_a_kafka_jvm(tmp_path: Path) -> None:
    port = free_port()
    args = ["--port", str(port), "--controller-port", str(free_port()), "--run-dir", str(tmp_path / "k")]
    cli = [sys.executable, "-m", "orchestrator", "kafka"]
    try:
        up = subprocess.run([*cli, "up", *args], capture_output=True, text=True, timeout=150, check=True)
        assert up.stdout.strip().splitlines()[-1] == f"127.0.0.1:{port}"
        broker = LocalBroker(port=port, run_dir=tmp_path / "k")
        info = broker.recorded()
        assert info is not None
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().split(b"\0")
        assert b"kafka.Kafka" in cmdline
        assert any(b"java" in part for part in cmdline[:1])

        again = subprocess.run([*cli, "up", *args], capture_output=True, text=True, timeout=60, check=True)
        assert "already runs" in again.stdout
        assert again.stdout.strip().splitlines()[-1] == f"127.0.0.1:{port}"

        status = subprocess.run(
            [*cli, "status", *args], capture_output=True, text=True, timeout=60, check=True
        )
        assert f"127.0.0.1:{port}" in status.stdout

        md = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(timeout=10)
        assert len(md.brokers) == 1

        # the address stopped is the one recorded, not the --port default (issue 18, trap 4)
        down = subprocess.run(
            [*cli, "down", "--run-dir", str(tmp_path / "k")],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert f"stopped the broker on 127.0.0.1:{port} " in down.stdout
    finally:
        subprocess.run([*cli, "down", *args], capture_output=True, text=True, timeout=60, check=False)
    status = subprocess.run([*cli, "status", *args], capture_output=True, text=True, timeout=60, check=False)
    assert status.returncode == 1
    assert "not running" in status.stdout


def test_kcat_lists_the_session_broker(kafka_bootstrap: str) -> None:
    if shutil.which("kcat") is None:
        if os.environ.get("CI"):
            pytest.fail("kcat is missing: make test installs it (Debian package kcat)")
        pytest.skip("kcat not installed (make test installs it)")
    out = subprocess.run(
        ["kcat", "-b", kafka_bootstrap, "-L", "-m", "10"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert "1 brokers:" in out.stdout


def test_the_secured_listeners_advertise_themselves(kafka_bootstrap: str, secure_kafka: SecureKafka) -> None:
    """A client that bootstraps through the SSL or the SASL_SSL listener is told that listener's address
    (never the PLAINTEXT one), so all its later connections stay on it; a PLAINTEXT client speaking to the
    SSL port gets no answer."""
    certs, user = secure_kafka.certs, secure_kafka.users[-1]
    tls = {"ssl.ca.location": str(certs.ca), "ssl.endpoint.identification.algorithm": "https"}
    through = {
        secure_kafka.ssl_bootstrap: {"security.protocol": "SSL", **tls},
        secure_kafka.sasl_ssl_bootstrap: {
            "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.username": user[0], "sasl.password": user[1], **tls,
        },
    }  # fmt: skip
    for bootstrap, conf in through.items():
        md = AdminClient({"bootstrap.servers": bootstrap, **conf}).list_topics(timeout=10)
        assert [f"{b.host}:{b.port}" for b in md.brokers.values()] == [bootstrap]
    plain = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)
    assert [f"{b.host}:{b.port}" for b in plain.brokers.values()] == [kafka_bootstrap]
    with pytest.raises(KafkaException):
        AdminClient({"bootstrap.servers": secure_kafka.ssl_bootstrap, "log_level": 0}).list_topics(timeout=2)


def test_cli_up_refuses_a_port_another_broker_answers_on(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Issue 18, trap 4: on the session broker's port, ``kafka up`` used to take that broker's metadata
    answer for its own and report success while its JVM died on the port 20 s later."""
    port = kafka_bootstrap.rsplit(":", 1)[1]
    run_dir = tmp_path / "k"
    cli = [sys.executable, "-m", "orchestrator", "kafka", "up", "--port", port, "--run-dir", str(run_dir)]
    up = subprocess.run(cli, capture_output=True, text=True, timeout=60, check=False)
    assert up.returncode == 2, up.stdout + up.stderr  # (the CLI's exit code for an error it names)
    assert f"the client port 127.0.0.1:{port} is in use by another process" in up.stderr
    assert "--port" in up.stderr
    assert LocalBroker(port=int(port), run_dir=run_dir).recorded() is None
    assert not (run_dir / "server.properties").exists()  # refused before anything was written
