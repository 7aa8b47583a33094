"""Crashes inside the batch path (issue 16), on the real broker, RocksDB:

- a kill -9 **in the middle of a batch's delivery** — the customer stage's new states on the broker,
  its wake-ups or actions not (a failpoint: ``settings.failpoint``) — and a restart with an **empty
  store** (the data directory deleted: everything comes back from the changelogs);
- kill -9 at random points **with the cross-channel policy deployed** (caps, quiet hours holding
  sends, engagement suppression): the actions and the policy's decisions are simulate's, duplicates
  identical (a visitor's record merged away is kept until its messages are committed: deleted earlier,
  a kill made them apply again to a new, empty state and judge a send on it).

The workload is the generated mix with visitors who sign up (identity merges across partitions).
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.config import Settings
from orchestrator.kafka.local_broker import free_port
from orchestrator.runtime.app import CUSTOMERS_TABLE
from orchestrator.simulate.generate import generate_events
from orchestrator.testing import WorkerProcess, wait_until
from orchestrator.testing.kafka import read_topic
from tests.integration.runtime_helpers import (
    EXAMPLE_NAMES,
    JOURNEYS,
    ActionReader,
    assert_exactly,
    by_id,
    deploy,
    produce,
    simulate,
)

pytestmark = pytest.mark.integration

FAST_GROUP = {"ORCH_SESSION_TIMEOUT_S": "6", "ORCH_LATENESS_HOURS": "0"}
FILES = [JOURNEYS / f"{name}.yaml" for name in EXAMPLE_NAMES]
POLICY = JOURNEYS / "policy.yaml"


def _events(n: int, customers: int, seed: int) -> list[bytes]:
    return [orjson.dumps(e) for e in generate_events(n, customers, seed=seed, visitors=0.3)]


def _worker(settings: Settings, tmp: Path, name: str, **over: Any) -> WorkerProcess:
    own = settings.model_copy(
        update={"web_port": free_port(), "data_dir": tmp / "data", "store": "rocksdb://", **over}
    )
    return WorkerProcess(own, tmp / f"{name}.log", extra_env=FAST_GROUP)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("keep", [1, 3])
def test_kill_9_in_the_middle_of_a_batch_then_an_empty_store_loses_no_action(
    settings: Settings, tmp_path: Path, actions: ActionReader, keep: int
) -> None:
    """``keep`` 1: the batch's customer states reached the changelog, nothing else did (their actions
    must come from the outbox of the restored state); 3: the wake-ups and part of the actions too."""
    deploy(settings, FILES)
    events = _events(3000, 300, seed=5)
    expected = by_id(simulate(FILES, events, until_ms=int(time.time() * 1000)))
    assert len(expected) > 150
    produce(settings, events)
    failpoint = f"deliver:{CUSTOMERS_TABLE}-changelog:3:{keep}"
    first = _worker(settings, tmp_path, "first", failpoint=failpoint).start()
    try:
        assert first.wait_exit(timeout=120) == -9, first.log_tail()
    finally:
        first.kill()
    log = first.log_path.read_text(errors="replace")
    assert f"killing the worker after {keep} of" in log, first.log_tail()
    shutil.rmtree(tmp_path / "data")  # an empty store: the state comes back from the changelogs alone
    second = _worker(settings, tmp_path, "second").start()
    try:
        second.wait_ready(timeout=120)
        assert_exactly(actions, expected, timeout=150)
    finally:
        second.stop()


@pytest.mark.timeout(400)
def test_kill_9_with_the_policy_deployed_loses_no_action_and_no_decision(
    settings: Settings, tmp_path: Path, actions: ActionReader
) -> None:
    kafka = settings.bootstrap_servers
    deploy(settings, [*FILES, POLICY])
    events = _events(4000, 400, seed=23)
    made: list[dict[str, Any]] = []
    expected = by_id(
        simulate(FILES, events, until_ms=int(time.time() * 1000), policy_file=POLICY, decisions=made)
    )
    kinds = {d["kind"] for d in made}
    assert {"sent", "suppressed", "held"} <= kinds, kinds  # caps, suppression and quiet hours at work
    produce(settings, events)
    rng = random.Random(16)
    for round_ in range(2):
        worker = _worker(settings, tmp_path, f"w{round_}").start()
        worker.wait_ready(timeout=120)
        enough = 10 + 60 * round_
        wait_until(lambda n=enough: _some(actions, n), timeout=120, what="actions before the kill")
        time.sleep(rng.uniform(0.0, 1.0))  # the random point of the crash, not a wait for a condition
        worker.kill()
    final = _worker(settings, tmp_path, "final").start()
    try:
        final.wait_ready(timeout=120)
        assert_exactly(actions, expected, timeout=150)
    finally:
        final.stop()
    # everything is on the broker (the worker stopped): read to the end, duplicates included
    got = [orjson.loads(r.value or b"{}") for r in read_topic(kafka, settings.topics.decisions, idle=3.0)]
    first: dict[str, dict[str, Any]] = {}
    differing: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for decision in got:
        seen = first.setdefault(decision["decision_id"], decision)
        if seen != decision:
            differing.append((seen, decision))
    want = {d["decision_id"]: d for d in made}
    extra = [first[k] for k in sorted(set(first) - set(want))]
    missing = [want[k] for k in sorted(set(want) - set(first))]
    changed = [(first[k], want[k]) for k in sorted(set(first) & set(want)) if first[k] != want[k]]
    found = {"extra": extra, "missing": missing, "changed": changed, "duplicates differing": differing}
    assert not any(found.values()), f"decisions differ from simulate's after a kill: {found}"[:4000]


def _some(actions: ActionReader, n: int) -> bool:
    actions.poll(0.2)
    return len(actions.ids()) >= n
