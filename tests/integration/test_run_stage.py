"""The run stage on the real broker (issue 24): the smart_winback example — channel: auto, send_time:
optimal and an adaptive split — with its model deployed at a time (2025-03-10), through the policy.
The worker sends exactly what simulate sends on the same deployment timeline, at the same moments and
on the same channels, and its decisions carry the same choices."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from orchestrator.kafka.topics import create_topics
from orchestrator.simulate import simulate_file
from orchestrator.testing import WorkerProcess, unique_settings
from tests.integration.runtime_helpers import (
    ActionReader,
    assert_exactly,
    by_id,
    deploy,
    produce,
    read_decisions,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RUN_STAGE = ROOT / "journeys" / "run_stage"
EXAMPLES = ROOT / "journeys" / "examples"


@pytest.mark.timeout(240)
def test_simulate_and_the_worker_make_the_same_choices_with_a_model_deployed_at_a_time(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    events_file = EXAMPLES / "smart_winback.events.jsonl"
    out, decisions_file = tmp_path / "actions.jsonl", tmp_path / "decisions.jsonl"
    result = simulate_file(
        None,
        events_file,
        out_path=out,
        until_ms=int(time.time() * 1000),
        policy_path=ROOT / "journeys" / "policy.yaml",
        deployments_path=EXAMPLES / "smart_winback.deployments.yaml",
        decisions_path=decisions_file,
    )
    assert result.refused_deployments == []
    expected = by_id(orjson.loads(line) for line in out.read_bytes().splitlines())
    expected_decisions = [orjson.loads(line) for line in decisions_file.read_bytes().splitlines()]
    assert len(expected) == 8
    assert {d["choice"]["model"] for d in expected_decisions if "choice" in d} == {None, "engagement@1"}

    settings = unique_settings(kafka_bootstrap, tmp_path / "data", partitions=3)
    create_topics(settings)
    deploy(settings, [ROOT / "journeys" / "policy.yaml"])
    deploy(settings, [RUN_STAGE / "smart_winback.yaml"], datetime(2025, 3, 1, tzinfo=UTC))
    deploy(settings, [RUN_STAGE / "engagement_model.yaml"], datetime(2025, 3, 10, tzinfo=UTC))
    produce(settings, [line for line in events_file.read_bytes().splitlines() if line.strip()])
    actions = ActionReader(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log", extra_env={"ORCH_LATENESS_HOURS": "0"})
    try:
        worker.start()
        assert_exactly(actions, expected)
        made = read_decisions(settings, expect=len(expected_decisions))
    finally:
        worker.stop()
        actions.close()

    def key(d: dict[str, object]) -> str:
        return str(d["decision_id"])

    assert sorted(made, key=key) == sorted(expected_decisions, key=key)
    chosen = {a["customer_id"]: (a["channel"], a["created_at"]) for a in expected.values()}
    assert chosen["rs-02"] == ("sms", "2025-03-12T16:00:00Z")  # the model's time, the customer's channel
