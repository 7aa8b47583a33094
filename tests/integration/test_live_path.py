"""The live path tells the truth (issue 18): the traps a new operator falls into, on the real broker."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from orchestrator.config import Settings
from orchestrator.testing import WorkerProcess, read_topic, wait_until
from orchestrator.testing.worker import settings_env
from tests.integration.runtime_helpers import ActionReader, deploy

pytestmark = pytest.mark.integration

JOURNEYS = Path(__file__).resolve().parents[2] / "journeys"


def test_a_worker_starts_in_a_fresh_folder_with_the_default_data_dir(
    settings: Settings, tmp_path: Path
) -> None:
    """Trap 1: ``orchestrator worker`` in a fresh checkout failed with ``FileNotFoundError: 'var/worker'``
    (the default data dir is relative, and its parent did not exist)."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    own = settings.model_copy(update={"data_dir": Path("var/worker"), "store": "rocksdb://"})
    worker = WorkerProcess(own, tmp_path / "worker.log", cwd=checkout).start()
    try:
        worker.wait_ready(timeout=120)
    finally:
        worker.stop()
    assert (checkout / "var" / "worker").is_dir()


def test_produce_names_the_line_the_field_and_what_is_expected(settings: Settings, tmp_path: Path) -> None:
    """Trap 7: ``produce`` reported bad lines with pydantic's own words (``String should match
    pattern ...``)."""
    good = {
        "event_id": "e1", "type": "page.viewed", "identifiers": {"customer_id": "c1"},
        "occurred_at": "2025-03-01T10:00:00Z", "source": "test",
    }  # fmt: skip
    lines = [
        orjson.dumps(good),
        orjson.dumps({**good, "event_id": "e2", "type": "Page Viewed"}),
        orjson.dumps({**good, "event_id": "e3", "occurred_at": "2025-03-01 10:00"}),
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    env = {**os.environ, **settings_env(settings)}
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "produce", str(path)],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "produced 1 events" in done.stdout
    errors = done.stderr.splitlines()
    assert f"{path}:2: skipped: field 'type': an event type is lowercase words of letters" in errors[0]
    assert "(got 'Page Viewed')" in errors[0]
    assert f"{path}:3: skipped: field 'occurred_at': needs a time zone: an ISO 8601 time" in errors[1]
    assert "should" not in done.stderr


def test_deploy_refuses_what_the_workers_would_refuse_with_the_diff(
    settings: Settings, tmp_path: Path
) -> None:
    """Trap 3: ``deploy`` said "published 1 deployment(s)" for the same version with other content,
    which the workers then refused; ``--dry-run`` did not look at the topic at all."""
    env = {**os.environ, **settings_env(settings)}
    cli = [sys.executable, "-m", "orchestrator", "deploy"]
    first = subprocess.run(
        [*cli, str(JOURNEYS / "welcome.yaml")], capture_output=True, text=True, env=env, timeout=60
    )
    assert first.returncode == 0, first.stderr
    changed = tmp_path / "welcome.yaml"
    original = (JOURNEYS / "welcome.yaml").read_text()
    changed.write_text(original.replace("after: 24h", "after: 12h", 1))
    assert changed.read_text() != original
    for extra in (["--dry-run"], []):
        done = subprocess.run(
            [*cli, *extra, str(changed)], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert (
            "is already deployed with different content; give the changed journey a new version"
            in done.stderr
        )
        assert "the change against the deployed version:" in done.stderr
        assert "-      after: 24h" in done.stderr  # the diff names the changed line
        assert "+      after: 12h" in done.stderr
        assert "nothing was published" in done.stderr
    kept = read_topic(settings.bootstrap_servers, settings.topics.journeys, idle=0.5)
    assert len(kept) == 1  # only the first deployment reached the topic
    ok = subprocess.run(
        [*cli, "--dry-run", str(JOURNEYS / "welcome.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "dry run: the workers would accept it" in ok.stdout


def _signup(customer: str, at: datetime) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"{customer}-signup", "type": "account.created", "source": "test",
            "identifiers": {"customer_id": customer, "email": f"{customer}@example.com"},
            "occurred_at": at.isoformat().replace("+00:00", "Z"),
        }
    )  # fmt: skip


def test_late_events_are_told_by_produce_the_worker_and_inspect(
    settings: Settings, worker: WorkerProcess, actions: ActionReader, tmp_path: Path
) -> None:
    """Trap 2: recorded events produced to a live worker updated profiles and started no journey, and
    nothing said so. Now ``produce --worker`` counts them against the worker's clock, the worker counts
    them by reason and logs it, and ``inspect`` shows them on the customer."""
    deploy(settings, [JOURNEYS / "welcome.yaml"])
    now = datetime.now(UTC)
    path = tmp_path / "recorded.jsonl"
    path.write_bytes(_signup("rec-old", now - timedelta(days=3)) + b"\n" + _signup("rec-new", now) + b"\n")
    env = {**os.environ, **settings_env(settings)}
    cli = [sys.executable, "-m", "orchestrator"]
    done = subprocess.run(
        [*cli, "produce", str(path), "--worker", worker.url],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "produced 2 events" in done.stdout
    assert "note: 1 line(s) are older than the lateness window (24 h before the worker's clock" in done.stdout
    assert "starts no journey for them" in done.stdout

    # the on-time customer gets the welcome email; the late one none, but its profile is there
    def welcomed() -> bool:
        actions.poll()
        return any(r["customer_id"] == "rec-new" for r in actions.records)

    wait_until(welcomed, timeout=60, what="rec-new's welcome email")
    wait_until(lambda: worker.get_json("/customers/rec-old/")[0] == 200, what="rec-old's state")
    assert [r["customer_id"] for r in actions.records] == ["rec-new"]
    with urllib.request.urlopen(worker.request("/metrics"), timeout=5) as r:
        metrics = r.read().decode()
    assert 'orchestrator_events_out_of_time_total{reason="late"} 1.0' in metrics
    assert 'orchestrator_events_out_of_time_total{reason="future"} 0.0' in metrics
    log = (tmp_path / "worker.log").read_text()
    assert "is late, the partition's clock is at" in log
    shown = subprocess.run(
        [*cli, "inspect", "rec-old", "--worker", worker.url, "--decisions", "0"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "note: 1 event applied as late: no journey entry" in shown.stdout
    assert "journeys (0 running):" in shown.stdout
