"""/metrics of a real worker on the real broker: after a journey ran, every counter moved by exactly
what happened; the worker logs JSON lines when asked to."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from orchestrator.config import Settings
from orchestrator.testing import WorkerProcess, wait_until
from tests.integration.metrics_helpers import Scrape, run_probe, scrape

pytestmark = pytest.mark.integration


def _l(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def _expected(settings: Settings) -> Scrape:
    t = settings.topics
    exp: Scrape = {
        ("orchestrator_raw_messages_total", _l()): 6,
        ("orchestrator_invalid_events_total", _l(reason="not_json")): 1,
        ("orchestrator_events_consumed_total", _l(type="app.opened")): 3,
        ("orchestrator_events_consumed_total", _l(type="page.viewed")): 1,
        ("orchestrator_events_consumed_total", _l(type="custom")): 1,
        ("orchestrator_journey_entries_total", _l(journey="probe")): 3,
        ("orchestrator_step_transitions_total", _l(journey="probe", step="hello")): 3,
        ("orchestrator_step_transitions_total", _l(journey="probe", step="pause")): 3,
        ("orchestrator_step_transitions_total", _l(journey="probe", step="nudge")): 3,
        ("orchestrator_actions_total", _l(channel="email", journey="probe")): 3,
        ("orchestrator_actions_total", _l(channel="sms", journey="probe")): 3,
        ("orchestrator_exits_total", _l(journey="probe", reason="completed")): 3,
        ("orchestrator_event_to_action_seconds_count", _l()): 3,
        ("orchestrator_timer_lateness_seconds_count", _l(clock="partition")): 3,
        ("orchestrator_timer_lateness_seconds_count", _l(clock="wall")): 3,
        ("orchestrator_duplicate_events_total", _l()): 0,
        ("orchestrator_table_keys", _l(table="customers")): 5,
        ("orchestrator_table_keys", _l(table="wakeups")): 0,
        ("orchestrator_journey_deployment_info", _l(journey="probe", version="1", status="active")): 1,
        ("orchestrator_journey_current_version", _l(journey="probe")): 1,
        ("orchestrator_journeys_loaded", _l()): 1,
        ("orchestrator_journey_deployments_refused", _l()): 0,
        ("orchestrator_worker_ready", _l()): 1,
    }
    for p in range(settings.partitions):
        exp[("orchestrator_consumer_lag", _l(topic=t.raw_events, partition=str(p)))] = 0
        exp[("orchestrator_consumer_lag", _l(topic=t.resolved_events, partition=str(p)))] = 0
        exp[("orchestrator_pending_timers", _l(partition=str(p)))] = 0
    return exp


def test_counters_move_by_exactly_what_the_journey_did(settings: Settings, tmp_path: Path) -> None:
    worker = WorkerProcess(settings, tmp_path / "worker.log", extra_env={"ORCH_LOG_JSON": "true"})
    worker.start().wait_ready()
    try:
        ctype, before = scrape(worker)
        assert ctype.startswith("text/plain; version=0.0.4")
        assert before[("orchestrator_raw_messages_total", _l())] == 0
        assert not [k for k in before if k[0] == "orchestrator_actions_total"]
        run_probe(settings, tmp_path)
        expected = _expected(settings)
        seen: dict[str, Scrape] = {}

        def settled() -> bool:
            seen["now"] = scrape(worker)[1]
            return all(seen["now"].get(k) == v for k, v in expected.items())

        try:
            wait_until(settled, timeout=60, interval=0.3, what="the metrics of the probe journey")
        except TimeoutError:
            wrong = {k: (seen["now"].get(k), v) for k, v in expected.items() if seen["now"].get(k) != v}
            raise AssertionError(f"metrics differ (got, expected): {wrong}") from None
        now = seen["now"]
        # Nothing else was counted: no other journey, channel, reason or type series.
        for name in ("orchestrator_actions_total", "orchestrator_events_consumed_total",
                     "orchestrator_invalid_events_total", "orchestrator_exits_total"):  # fmt: skip
            got = {k: v for k, v in now.items() if k[0] == name and v}
            assert got == {k: v for k, v in expected.items() if k[0] == name and v}
        assert not [k for k in now if k[0] == "orchestrator_goals_total"]
        # Latency: each email left within the histogram's range, in well under a minute.
        assert 0 < now[("orchestrator_event_to_action_seconds_sum", _l())] < 3 * 60
        assert now[("orchestrator_event_to_action_seconds_bucket", _l(le="60.0"))] == 3
        # Timers fired close to due on a live partition (tick 0.2 s; the clock reads from both sides).
        assert now[("orchestrator_timer_lateness_seconds_sum", _l(clock="partition"))] < 3 * 5
        # No label carries a customer id or an address.
        text = " ".join(f"{k[0]}{sorted(k[1])}" for k in now)
        assert "m-cust" not in text
        assert "example.com" not in text
    finally:
        worker.stop()
    lines = [line for line in worker.log_path.read_text().splitlines() if line.strip()]
    assert lines, "the worker logged nothing"
    records = [orjson.loads(line) for line in lines]  # every line is one JSON object
    assert any(r["logger"] == "orchestrator.journeys" and "probe" in r["message"] for r in records)
    assert any(r["level"] == "WARNING" and "dead-lettered" in r["message"] for r in records)
