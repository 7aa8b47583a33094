"""kill -9 in the first seconds of a small backlog (issue 26): before the first commit and the first
changelog records of every partition. As the issue tried it: the four example files concatenated (not
in time order: a raw partition's event time goes back and forth), the journeys deployed at the earliest
``occurred_at``, 6 partitions, RocksDB, default settings (but a 6 s session timeout: the restarted
worker waits less for the dead one's partitions), with the fast path off and on; the worker killed at
a fixed delay after it logged "journeys loaded", then started again. Every action simulate gives must
arrive, duplicates identical, nothing else.

The delays cover the window from the journeys loaded to the backlog done (~1-3 s on this machine).
The issue's loop of 20 runs in a row: ``ORCH_KILL_EARLY_RUNS=20 pytest tests/integration/test_kill_early.py``.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from orchestrator.config import Settings
from orchestrator.kafka.local_broker import free_port
from orchestrator.kafka.topics import create_topics
from orchestrator.testing import WorkerProcess, read_topic, unique_settings, wait_until
from tests.integration.runtime_helpers import (
    EXAMPLE_NAMES,
    EXAMPLES,
    JOURNEYS,
    ActionReader,
    assert_exactly,
    by_id,
    deploy,
    produce,
    simulate,
)

pytestmark = pytest.mark.integration

RUNS = int(os.environ.get("ORCH_KILL_EARLY_RUNS", "1"))
"""Runs of each delay (the issue's loop: 20)."""


def _worker(settings: Settings, tmp: Path, name: str) -> WorkerProcess:
    own = settings.model_copy(update={"web_port": free_port(), "data_dir": tmp / "data"})
    return WorkerProcess(own, tmp / f"{name}.log", extra_env={"ORCH_SESSION_TIMEOUT_S": "6"})


def _concatenated() -> list[bytes]:
    """``cat journeys/examples/*.events.jsonl``, but the run stage's example: its events run to
    2025-03-16, so the files after it in this (file, not time) order, whose customers start on 2025-03-03,
    would be older than the worker's lateness window (24 h) against that clock and start no journey, by
    design (with ORCH_LATENESS_HOURS=0 all 94 actions of all the files arrive)."""
    return [
        line
        for path in sorted(EXAMPLES.glob("*.events.jsonl"))
        if path.name != "smart_winback.events.jsonl"
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]


def _loaded(worker: WorkerProcess) -> bool:
    return worker.log_path.exists() and "journeys loaded" in worker.log_path.read_text(errors="replace")


KNOWN_LOSS = pytest.mark.xfail(
    strict=False,
    reason="known defect, issue 17 (the fast path across a crash): under the whole suite about one run "
    "in three lost 8 of 78 actions (CI 2026-12-07; 4 of 4 passed alone); still run, reported as XFAIL "
    "or XPASS until fixed",
)


@pytest.mark.timeout(240 * RUNS)
@pytest.mark.parametrize(
    ("delay_s", "fast_path"),
    [(0.0, False), (1.0, False), (2.0, False), (3.0, False), pytest.param(2.0, True, marks=KNOWN_LOSS)],
)
def test_kill_9_in_the_first_seconds_loses_no_action(
    kafka_bootstrap: str, tmp_path: Path, delay_s: float, fast_path: bool
) -> None:
    for run in range(RUNS):
        _one_run(kafka_bootstrap, tmp_path / f"run{run}", delay_s, fast_path)


def _one_run(kafka_bootstrap: str, tmp_path: Path, delay_s: float, fast_path: bool) -> None:
    tmp_path.mkdir(parents=True)
    settings = unique_settings(kafka_bootstrap, tmp_path / "data", partitions=6, store="rocksdb://")
    settings = settings.model_copy(update={"fast_path": fast_path})
    create_topics(settings)
    events = _concatenated()
    first_at = min(orjson.loads(line)["occurred_at"] for line in events)
    deploy(
        settings,
        [JOURNEYS / f"{name}.yaml" for name in EXAMPLE_NAMES],
        at=datetime.fromisoformat(first_at.replace("Z", "+00:00")),
    )
    expected = by_id(
        simulate([JOURNEYS / f"{n}.yaml" for n in EXAMPLE_NAMES], events, int(time.time() * 1000))
    )
    assert len(expected) == 88  # (73 of the four first examples, 5 of appointment_reminder, 10 of the
    # cart_nudge example's customers in abandoned_cart and post_purchase: cart_nudge itself is not deployed)
    produce(settings, events)
    actions = ActionReader(settings)
    try:
        first = _worker(settings, tmp_path, "first").start()
        try:
            wait_until(lambda: _loaded(first), timeout=120, what="the worker to load the journeys")
            time.sleep(delay_s)  # the point of the crash, not a wait for a condition
        finally:
            first.kill()
        second = _worker(settings, tmp_path, "second").start()
        try:
            second.wait_ready(timeout=120)
            assert_exactly(actions, expected)
        finally:
            second.stop()
    finally:
        actions.close()
    if fast_path:
        # The first worker reads the backlog before the writer's first claims come back, so its events
        # go through the writer; the second one reads the claims and again the events after the first
        # one's commit, which the floor of the fast path (docs/runtime.md, "The fast path across a
        # crash") sends through the writer too. Live traffic by the fast path across a kill:
        # test_fast_path_crash.py.
        claims = read_topic(kafka_bootstrap, settings.topics.claims, idle=0.5)
        assert claims, "the writer claimed no customer"
