"""The streaming runtime on the real broker: journeys end to end, parity with simulate, live deploys."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.config import Settings
from orchestrator.simulate import simulate_file
from orchestrator.testing import WorkerProcess, wait_until
from orchestrator.testing.worker import settings_env
from tests.integration.runtime_helpers import (
    EXAMPLE_NAMES,
    JOURNEYS,
    PAST,
    ActionReader,
    by_id,
    deploy,
    example_events,
    inspect_live,
    produce,
    read_decisions,
    simulate,
)

pytestmark = pytest.mark.integration


def _now_ms() -> int:
    return int(time.time() * 1000)


@pytest.mark.parametrize("cache", [None, 2], ids=["default-caches", "tiny-caches"])
def test_examples_match_simulate(
    settings: Settings, tmp_path: Path, actions: ActionReader, cache: int | None
) -> None:
    """Replaying recorded example events through the runtime gives simulate's actions: same ids and
    content. The events are in the past and wait as a backlog when the worker starts, so 24-hour
    waits resolve by event time (the partition clock follows the events while there is lag), and
    by the clock reaching the wall clock once caught up, not by waiting. With tiny caches the identity
    graph and the pending wake-ups are read back from their tables all the time: the same actions."""
    files = [JOURNEYS / f"{n}.yaml" for n in EXAMPLE_NAMES]
    deploy(settings, files)
    events = example_events()
    produce(settings, events)
    env = {"ORCH_LATENESS_HOURS": "0"}
    if cache is not None:
        env |= {"ORCH_IDENTITY_CACHE": str(cache), "ORCH_TIMER_CACHE": str(cache)}
    worker = WorkerProcess(settings, tmp_path / "worker.log", extra_env=env)
    worker.start().wait_ready()
    try:
        funnel: dict[str, Any] = {}
        expected = by_id(simulate(files, events, until_ms=_now_ms(), funnel=funnel))
        assert len(expected) > 20
        actions.wait_for_ids(set(expected), describe=expected)
        actions.settle()
        if cache is None:  # each journey's funnel, cluster-wide, is simulate's (issue 25's live counts)
            counted = ("entered", "steps", "edges", "occupancy", "goals", "exits", "splits", "skipped_sends")
            want = {j: {k: f[k] for k in counted} for j, f in funnel.items()}

            def funnels() -> dict[str, Any]:
                status, page = worker.get_json("/funnels/")
                assert status == 200
                assert page["cluster_wide"]
                return {j: {k: f[k] for k in counted} for j, f in page["journeys"].items()}

            wait_until(lambda: funnels() == want, timeout=30, what="the worker's funnels to be simulate's")
    finally:
        worker.stop()
    assert by_id(actions.records) == expected
    if cache is not None:
        assert "read again from the table" in (tmp_path / "worker.log").read_text(), "the index was paged"


def test_policy_decisions_match_simulate(settings: Settings, tmp_path: Path, actions: ActionReader) -> None:
    """With the example policy deployed live next to the journeys, the runtime's actions and its
    decisions log (sent, suppressed, held, redirected, with reasons) are simulate's."""
    policy = JOURNEYS / "policy.yaml"
    files = [JOURNEYS / f"{n}.yaml" for n in EXAMPLE_NAMES]
    deploy(settings, [*files, policy])
    events = example_events()
    produce(settings, events)
    decisions: list[dict[str, object]] = []
    expected = by_id(simulate(files, events, until_ms=_now_ms(), policy_file=policy, decisions=decisions))
    kinds = {d["kind"] for d in decisions}
    assert {"sent", "suppressed"} <= kinds, kinds
    worker = WorkerProcess(settings, tmp_path / "worker.log", extra_env={"ORCH_LATENESS_HOURS": "0"})
    worker.start().wait_ready()
    try:
        assert worker.get_json("/journeys/")[1]["policies"][0]["policy"] == "default@1"
        actions.wait_for_ids(set(expected), describe=expected)
        got = read_decisions(settings, expect=len(decisions))
        actions.settle()
        inspected = inspect_live(settings, worker, "w-ann")
    finally:
        worker.stop()
    mine = [d for d in decisions if d["customer_id"] == "w-ann"]
    assert [d["decision_id"] for d in inspected["decisions"]] == [d["decision_id"] for d in mine]
    assert inspected["source"] == "live"
    decided = [t["what"] for t in inspected["timeline"] if t["what"].startswith("welcome/")]
    assert len(decided) == len(mine), inspected["timeline"]  # each decision in the timeline, with its reason
    assert all(" — " in what for what in decided)
    # what went out, as an operator reads it (no kcat): this customer's, one channel's, as JSON
    shown = _cli(settings, "actions", "--customer", "w-ann", "--json")
    records = [orjson.loads(line) for line in shown.splitlines()]
    assert {r["record"]["decision_id"] for r in records if r["kind"] == "decision"} == {
        d["decision_id"] for d in mine
    }
    mine_sent = {a["action_id"] for a in expected.values() if a["customer_id"] == "w-ann"}
    assert {r["record"]["action_id"] for r in records if r["kind"] == "action"} == mine_sent
    assert all(
        r["record"]["recipient"].startswith(("a***@", "+1555***")) for r in records if r["kind"] == "action"
    )
    sms = _cli(settings, "actions", "--channel", "sms", "--only", "actions")
    assert sms.count(" sms ") == sum(1 for a in expected.values() if a["channel"] == "sms"), sms
    assert "template welcome_sms_v1 to +1555***" in sms
    assert inspected["profile"]["addresses"]["email"] == "ann@example.com"
    assert by_id(actions.records) == expected
    by_decision = {d["decision_id"]: d for d in got}
    assert by_decision == {d["decision_id"]: d for d in decisions}


def _cli(settings: Settings, *args: str) -> str:
    env = {**os.environ, **settings_env(settings)}
    cmd = [sys.executable, "-m", "orchestrator", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _journey(tmp: Path, version: int = 1, template: str = "nudge_v1", wait: str = "4s") -> Path:
    path = tmp / f"nudge-v{version}.yaml"
    path.write_text(
        f"""
id: nudge
version: {version}
name: Nudge
entry:
  event: app.opened
re_entry:
  policy: always
steps:
  hello:
    type: send
    channel: email
    category: transactional
    template: hello_{template}
    next: pause
  pause:
    type: wait
    duration: {wait}
    next: nudge
  nudge:
    type: send
    channel: sms
    category: transactional
    template: {template}
"""
    )
    return path


def _open_event(customer: str, n: int, at: datetime) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"{customer}-open-{n}",
            "type": "app.opened",
            "identifiers": {
                "customer_id": customer,
                "email": f"{customer}@example.com",
                "phone": f"+1555{abs(hash(customer)) % 10_000_000:07d}",
            },
            "occurred_at": at.isoformat(),
            "source": "test",
        }
    )


def test_wait_fires_across_a_restart(settings: Settings, tmp_path: Path, actions: ActionReader) -> None:
    deploy(settings, [_journey(tmp_path, wait="6s")])
    first = WorkerProcess(settings, tmp_path / "w1.log").start().wait_ready()
    try:
        produce(settings, [_open_event("cust-r", 1, datetime.now(UTC))])
        wait_until(lambda: (actions.poll(), len(actions.records) >= 1)[1], what="the first email")
        status, body = first.get_json("/customers/cust-r/")
        assert status == 200
        assert body["next_wakeup_ms"] is not None
    finally:
        first.stop()
    assert [r["channel"] for r in actions.records] == ["email"]
    second = WorkerProcess(settings, tmp_path / "w2.log").start().wait_ready()
    try:
        try:
            wait_until(
                lambda: (actions.poll(), any(r["channel"] == "sms" for r in actions.records))[1],
                timeout=30,
                what="the SMS",
            )
        except TimeoutError:
            raise AssertionError(f"no SMS after restart; clock: {second.get_json('/clock/')}") from None
        # (the email may come twice, with one id: a stop right after it may not have committed it)
        sent = by_id(actions.records)
        assert sorted(r["channel"] for r in sent.values()) == ["email", "sms"]
        (sms,) = [r for r in sent.values() if r["channel"] == "sms"]
        assert sms["recipient"].startswith("+1555")
    finally:
        second.stop()


def test_live_deploy_of_a_new_version(settings: Settings, worker: WorkerProcess, tmp_path: Path,
                                      actions: ActionReader) -> None:  # fmt: skip
    v1 = _journey(tmp_path, 1, "nudge_v1", wait="8s")
    deploy(settings, [v1])
    wait_until(lambda: "nudge" in worker.get_json("/journeys/")[1]["journeys"], what="v1 loaded")
    now = datetime.now(UTC)
    lines = [_open_event("early", 1, now)]
    produce(settings, lines[-1:])
    wait_until(lambda: (actions.poll(), len(actions.records) >= 1)[1], what="v1 email")
    switch = datetime.now(UTC) + timedelta(milliseconds=200)
    v2 = _journey(tmp_path, 2, "nudge_v2", wait="1s")
    deploy(settings, [v2], at=switch)
    wait_until(lambda: len(worker.get_json("/journeys/")[1]["journeys"]["nudge"]) == 2, what="v2 loaded")
    lines.append(_open_event("late", 1, switch + timedelta(milliseconds=500)))
    produce(settings, lines[-1:])
    wait_until(lambda: (actions.poll(), len(actions.records) >= 4)[1], timeout=60, what="all four actions")
    # issue 20: simulate with the same deployment timeline gives the same actions, id for id
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines))
    (tmp_path / "deployments.yaml").write_text(
        f"- at: {PAST.isoformat()}\n  files: [{v1.name}]\n- at: {switch.isoformat()}\n  files: [{v2.name}]\n"
    )
    simulated = tmp_path / "simulated.jsonl"
    simulate_file(
        None,
        tmp_path / "events.jsonl",
        out_path=simulated,
        deployments_path=tmp_path / "deployments.yaml",
        until_ms=int((datetime.now(UTC) + timedelta(minutes=1)).timestamp() * 1000),
    )
    offline = [orjson.loads(line) for line in simulated.read_bytes().splitlines()]
    assert by_id(offline) == by_id(actions.records)
    got = {
        (r["customer_id"], r["channel"]): (r["journey_version"], r["template_id"]) for r in actions.records
    }
    assert got == {
        ("early", "email"): (1, "hello_nudge_v1"),
        ("early", "sms"): (1, "nudge_v1"),  # in flight: finishes on its version
        ("late", "email"): (2, "hello_nudge_v2"),
        ("late", "sms"): (2, "nudge_v2"),
    }


def test_invalid_definition_on_the_topic_keeps_the_last_good(settings: Settings, worker: WorkerProcess,
                                                              tmp_path: Path) -> None:  # fmt: skip
    from confluent_kafka import Producer

    deploy(settings, [_journey(tmp_path)])
    wait_until(lambda: "nudge" in worker.get_json("/journeys/")[1]["journeys"], what="nudge loaded")
    bad = {
        "journey_id": "nudge", "version": 2, "effective_from": "2025-01-01T00:00:00Z",
        "source_name": "sneaky.yaml", "text": "id: nudge\nversion: 2\nsteps: {}\n",
    }  # fmt: skip
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    producer.produce(settings.topics.journeys, key=b"nudge@2@0", value=orjson.dumps(bad))
    producer.produce(settings.topics.journeys, key=b"junk", value=b"not json")
    producer.flush(10)
    body = wait_until(
        lambda: (b := worker.get_json("/journeys/")[1]) and len(b["refused"]) >= 2 and b, what="refusals"
    )
    assert [d["version"] for d in body["journeys"]["nudge"]] == [1]
    assert "sneaky.yaml" in body["refused"][0]["error"]
    assert worker.proc is not None
    assert worker.proc.poll() is None
