"""One acceptance rule on the real broker: `orchestrator deploy` refuses what a worker would refuse
(with file:line: field, exit 1, nothing published), and a worker reading a poisoned journeys topic —
records written by anything but `orchestrator deploy` — keeps running the last good version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from orchestrator.config import Settings
from orchestrator.testing import WorkerProcess, read_topic, wait_until
from orchestrator.testing.worker import settings_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WELCOME = (ROOT / "journeys" / "welcome.yaml").read_text()


def _deploy_cli(settings: Settings, *files: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings)}
    cmd = [
        sys.executable,
        "-m",
        "orchestrator",
        "deploy",
        "--at",
        "2025-01-01T00:00:00+00:00",
        *map(str, files),
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


def test_deploy_refuses_a_changed_journey_under_the_same_version(settings: Settings, tmp_path: Path) -> None:
    first = tmp_path / "welcome.yaml"
    first.write_text(WELCOME)
    ok = _deploy_cli(settings, first)
    assert ok.returncode == 0, ok.stderr
    assert "published 1 deployment(s)" in ok.stdout

    changed = tmp_path / "welcome-edited.yaml"
    changed.write_text(WELCOME.replace("welcome_email_v1", "welcome_email_v2"))
    refused = _deploy_cli(settings, changed)
    assert refused.returncode == 1
    assert (
        f"{changed}:1: version: welcome version 1 is already deployed with different content"
        in refused.stderr
    )
    assert "nothing was published" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert len(read_topic(settings.bootstrap_servers, settings.topics.journeys, idle=1.0)) == 1

    again = _deploy_cli(settings, first)  # the same content again is fine (idempotent)
    assert again.returncode == 0, again.stderr


def _record(text: str, version: int = 2) -> bytes:
    return orjson.dumps(
        {
            "journey_id": "welcome",
            "version": version,
            "effective_from": "2025-01-01T00:00:00Z",
            "source_name": "sneaky.yaml",
            "text": text,
        }
    )


def test_a_worker_survives_a_poisoned_journeys_topic(
    settings: Settings, worker: WorkerProcess, tmp_path: Path
) -> None:
    good = tmp_path / "welcome.yaml"
    good.write_text(WELCOME)
    assert _deploy_cli(settings, good).returncode == 0
    wait_until(lambda: "welcome" in worker.get_json("/journeys/")[1]["journeys"], what="welcome loaded")

    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    )
    poison = [
        _record("id: !!python/name:os.system welcome\nversion: 2\n"),
        _record(bomb),
        _record("id: welcome\nsteps: " + "[" * 5000 + "]" * 5000 + "\n"),
        _record("id: welcome\nversion: " + "9" * 5000 + "\n"),
        _record(WELCOME.replace("welcome_email_v1", "changed"), version=1),  # same version, other content
        b"not json at all",
        b"\xff\xfe binary",
    ]
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for n, value in enumerate(poison):
        producer.produce(settings.topics.journeys, key=f"poison-{n}".encode(), value=value)
    assert producer.flush(10) == 0

    body = wait_until(
        lambda: (b := worker.get_json("/journeys/")[1]) and len(b["refused"]) >= len(poison) and b,
        what="every poisoned record refused",
    )
    assert [d["version"] for d in body["journeys"]["welcome"]] == [1]
    reasons = " | ".join(r["error"] for r in body["refused"])
    for expected in (
        "is not allowed",
        "aliases are expanded",
        "nest",
        "cannot read the value",
        "different content",
    ):
        assert expected in reasons, (expected, reasons)
    assert worker.proc is not None
    assert worker.proc.poll() is None  # still running
    assert worker.get_json("/readyz")[0] == 200
