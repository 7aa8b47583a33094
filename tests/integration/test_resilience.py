"""Crashes and rebalances on the real broker: kill -9 at random points, two workers, RocksDB; the
workload includes visitors who sign up (merges across partitions).

Every expected action (what `orchestrator simulate` gives for the same events) must appear; a
duplicate must carry the same action_id and the same content; no action may appear that simulate
does not give.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.config import Settings
from orchestrator.kafka.local_broker import free_port
from orchestrator.simulate.generate import generate_events
from orchestrator.testing import WorkerProcess, wait_until
from tests.integration.runtime_helpers import (
    EXAMPLE_NAMES,
    JOURNEYS,
    ActionReader,
    by_id,
    deploy,
    produce,
    simulate,
)

pytestmark = pytest.mark.integration

FAST_GROUP = {"ORCH_SESSION_TIMEOUT_S": "6", "ORCH_LATENESS_HOURS": "0"}


def _workload(n: int, customers: int, seed: int) -> tuple[list[bytes], dict[str, dict[str, Any]]]:
    # a third of the customers start as anonymous visitors and sign up later: identity merges too
    events = [orjson.dumps(e) for e in generate_events(n, customers, seed=seed, visitors=0.3)]
    files = [JOURNEYS / f"{name}.yaml" for name in EXAMPLE_NAMES]
    expected = by_id(simulate(files, events, until_ms=int(time.time() * 1000)))
    return events, expected


def _check(
    actions: ActionReader, expected: dict[str, dict[str, Any]], survivor: WorkerProcess | None = None
) -> None:
    try:
        actions.wait_for_ids(set(expected), timeout=150, describe=expected)
    except TimeoutError as exc:
        if survivor is None:
            raise
        missing = sorted({expected[i]["customer_id"] for i in set(expected) - actions.ids()})[:3]
        states = [survivor.get_json(f"/customers/{c}/")[1] for c in missing]
        clock = survivor.get_json("/clock/")
        raise AssertionError(f"{exc}\nclock of the survivor: {clock}\nstates: {states}") from None
    actions.settle(3.0)
    seen: dict[str, dict[str, Any]] = {}
    for record in actions.records:
        first = seen.setdefault(record["action_id"], record)
        assert first == record, f"a duplicate of {record['action_id']} differs in content"
    extra = [seen[i] for i in sorted(set(seen) - set(expected))]
    if extra and survivor is not None:
        state = survivor.get_json(f"/customers/{extra[0]['customer_id']}/")
        raise AssertionError(f"unexpected actions: {extra[:3]}\nstate of the first: {state}")
    assert not extra, f"unexpected actions: {extra[:5]}"
    assert seen == expected


def _seen(actions: ActionReader, n: int) -> bool:
    actions.poll(0.2)
    return len(actions.ids()) >= n


def _shared(one: WorkerProcess, two: WorkerProcess) -> list[set[str]] | None:
    owned = [set(w.get_json("/clock/")[1]["partitions"]) for w in (one, two)]
    return owned if owned[0] and owned[1] and not owned[0] & owned[1] else None


def _worker(settings: Settings, tmp: Path, name: str, **over: Any) -> WorkerProcess:
    own = settings.model_copy(update={"web_port": free_port(), "data_dir": tmp / name, **over})
    return WorkerProcess(own, tmp / f"{name}.log", extra_env=FAST_GROUP)


@pytest.mark.timeout(400)
@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_kill_9_at_random_points_loses_no_action(
    settings: Settings, tmp_path: Path, actions: ActionReader, store: str
) -> None:
    deploy(settings, [JOURNEYS / f"{name}.yaml" for name in EXAMPLE_NAMES])
    events, expected = _workload(6000, 600, seed=11)
    assert len(expected) > 300
    produce(settings, events)
    rng = random.Random(2026)
    kills = 0
    for _round in range(3):
        worker = _worker(settings, tmp_path, "w", store=store).start()
        worker.wait_ready(timeout=120)
        time.sleep(rng.uniform(0.2, 2.5))  # the random point of the crash, not a wait for a condition
        worker.kill()
        kills += 1
        actions.poll(0.1)
        if expected.keys() <= actions.ids():
            break  # everything done before this crash: the remaining rounds would test nothing new
    assert kills >= 1
    final = _worker(settings, tmp_path, "w", store=store).start()
    try:
        final.wait_ready(timeout=120)
        _check(actions, expected)
    finally:
        final.stop()


@pytest.mark.timeout(400)
@pytest.mark.parametrize("moment", ["at_assignment", "mid_stream"])
def test_two_workers_share_the_partitions_and_survive_one_killed(
    settings: Settings, tmp_path: Path, actions: ActionReader, moment: str
) -> None:
    deploy(settings, [JOURNEYS / f"{name}.yaml" for name in EXAMPLE_NAMES])
    events, expected = _workload(6000, 600, seed=5)
    # The recorded events wait as a backlog (produced into an idle, running system they would be
    # late arrivals: its clocks already follow the wall clock).
    produce(settings, events)
    one = _worker(settings, tmp_path, "one").start()
    two = _worker(settings, tmp_path, "two").start()
    try:
        one.wait_ready(timeout=120)
        two.wait_ready(timeout=120)
        owned = wait_until(lambda: _shared(one, two), timeout=60, what="both workers to own partitions")
        if moment == "mid_stream":  # both at work: some actions out, most of the backlog still to do
            # (few: the batch path reads this backlog in seconds)
            wait_until(lambda: _seen(actions, 20), timeout=120, what="20 actions from the two workers")
        two.kill()  # its partitions and state move to worker one
        _check(actions, expected, survivor=one)
        assert not owned[0] & owned[1]
        # the actions may all be out before the group notices the death (session timeout): then wait
        wait_until(
            lambda: set(one.get_json("/clock/")[1]["partitions"]) == owned[0] | owned[1],
            timeout=60,
            what="worker one to own every partition",
        )
    finally:
        one.stop()
        two.kill()


@pytest.mark.timeout(400)
def test_a_worker_joins_under_load_then_the_first_is_killed(
    settings: Settings, tmp_path: Path, actions: ActionReader
) -> None:
    """Rebalance under load (issue 17): a second worker joins while the first works through a backlog
    (partitions move to it mid-stream), then the first is killed -9 (they move back). Every action
    simulate gives, duplicates identical, none that it does not give."""
    deploy(settings, [JOURNEYS / f"{name}.yaml" for name in EXAMPLE_NAMES])
    events, expected = _workload(6000, 600, seed=17)
    produce(settings, events)
    one = _worker(settings, tmp_path, "one").start()
    two = _worker(settings, tmp_path, "two")
    try:
        one.wait_ready(timeout=120)
        wait_until(lambda: _seen(actions, 20), timeout=120, what="20 actions from the first worker")
        two.start().wait_ready(timeout=120)
        wait_until(lambda: _shared(one, two), timeout=90, what="the joining worker to take partitions")
        one.kill()
        _check(actions, expected, survivor=two)
    finally:
        one.kill()
        two.stop()
