"""Worker metrics without Kafka: what each call counts, bounded labels, names, cost; JSON logs."""

from __future__ import annotations

import io
import logging
import logging.config
import time
from dataclasses import dataclass

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.core.engine.records import Transition
from orchestrator.core.journey import JourneyRegistry, load_journey_text
from orchestrator.runtime.logs import JsonFormatter, logging_config
from orchestrator.runtime.metrics import (
    CONTENT_TYPE,
    CUSTOM_EVENT_TYPE,
    MAX_SERIES,
    WorkerMetrics,
    exported_names,
)
from orchestrator.runtime.processor import Processed

JOURNEY = """
id: hello
version: 1
name: Hello
entry:
  event: app.installed
steps:
  greet:
    type: send
    channel: email
    category: transactional
    template: hello
"""


def value(m: WorkerMetrics, name: str, **labels: str) -> float:
    got = m.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def action(
    channel: str, journey: str, customer: str = "cust-42", recipient: str = "ann@example.com"
) -> bytes:
    return orjson.dumps(
        {"action_id": "a1", "channel": channel, "customer_id": customer, "recipient": recipient,
         "journey_id": journey}
    )  # fmt: skip


def tr(kind: str, journey: str = "j", step: str | None = None, reason: str | None = None,
       branch: str | None = None) -> Transition:  # fmt: skip
    return Transition(kind=kind, journey_id=journey, version=1, step_id=step, branch=branch,  # type: ignore[arg-type]
                      reason=reason, at_ms=0)  # fmt: skip


def test_routed_counts_raw_messages_and_dead_letters_by_reason() -> None:
    m = WorkerMetrics(process_metrics=False)
    for reason in ("resolved", "resolved", "not_json", "invalid_event", "invalid_event"):
        m.routed(reason)
    m.invalid("processing_error")
    assert value(m, "orchestrator_raw_messages_total") == 5
    assert value(m, "orchestrator_invalid_events_total", reason="not_json") == 1
    assert value(m, "orchestrator_invalid_events_total", reason="invalid_event") == 2
    assert value(m, "orchestrator_invalid_events_total", reason="processing_error") == 1
    assert value(m, "orchestrator_invalid_events_total", reason="resolved") == 0


def test_event_types_are_bounded_known_journey_or_custom() -> None:
    registry = JourneyRegistry()
    m = WorkerMetrics(journeys=registry, process_metrics=False)
    m.event_consumed("email.opened")
    m.event_consumed("app.installed")  # custom, no journey yet
    m.event_consumed("x.cust-123")  # free-form custom type: must not become a label
    registry.deploy(load_journey_text(JOURNEY), 0)
    m.event_consumed("app.installed")  # now a deployed journey reacts to it
    m.event_consumed("x.cust-456")
    assert value(m, "orchestrator_events_consumed_total", type="email.opened") == 1
    assert value(m, "orchestrator_events_consumed_total", type="app.installed") == 1
    assert value(m, "orchestrator_events_consumed_total", type=CUSTOM_EVENT_TYPE) == 3
    assert m.label_of("x.cust-789") == CUSTOM_EVENT_TYPE
    assert m.label_of("order.completed") == "order.completed"
    assert b"cust-123" not in m.render()


def test_deployed_journeys_have_their_series_at_zero_before_any_event() -> None:
    registry = JourneyRegistry()
    m = WorkerMetrics(journeys=registry, process_metrics=False)
    registry.deploy(load_journey_text(JOURNEY), 0)
    m.processed(Processed(record=b"{}"))  # any message after the deployment
    assert m.registry.get_sample_value("orchestrator_journey_entries_total", {"journey": "hello"}) == 0
    steps = m.registry.get_sample_value(
        "orchestrator_step_transitions_total", {"journey": "hello", "step": "greet"}
    )
    assert steps == 0
    sent = m.registry.get_sample_value("orchestrator_actions_total", {"channel": "email", "journey": "hello"})
    assert sent == 0


def test_without_a_registry_unknown_types_are_custom() -> None:
    m = WorkerMetrics(process_metrics=False)
    m.event_consumed("app.installed")
    assert value(m, "orchestrator_events_consumed_total", type=CUSTOM_EVENT_TYPE) == 1


def test_processed_counts_every_transition_kind_and_action() -> None:
    m = WorkerMetrics(process_metrics=False)
    done = Processed(
        record=b"{}",
        actions=[("email", action("email", "welcome")), ("sms", action("sms", "welcome"))],
        transitions=[
            tr("entered", "welcome", reason="account.created"),
            tr("step", "welcome", "welcome_email"),
            tr("step", "welcome", "welcome_sms"),
            tr("step", "welcome", "push_it", reason="no_address"),
            tr("split", "welcome", "ab", branch="holdout"),
            tr("goal", "welcome", "welcome_sms", reason="first_order"),
            tr("exited", "cart", "wait", reason="timeout"),
        ],
    )
    m.processed(done, record_ts=time.time() - 0.2)
    assert value(m, "orchestrator_journey_entries_total", journey="welcome") == 1
    assert value(m, "orchestrator_step_transitions_total", journey="welcome", step="welcome_email") == 1
    assert value(m, "orchestrator_step_transitions_total", journey="welcome", step="push_it") == 1
    assert (
        value(m, "orchestrator_sends_skipped_total", journey="welcome", step="push_it", reason="no_address")
        == 1
    )
    assert (
        value(m, "orchestrator_split_assignments_total", journey="welcome", step="ab", branch="holdout") == 1
    )
    assert value(m, "orchestrator_goals_total", journey="welcome", goal="first_order") == 1
    assert value(m, "orchestrator_exits_total", journey="cart", reason="timeout") == 1
    assert value(m, "orchestrator_actions_total", channel="email", journey="welcome") == 1
    assert value(m, "orchestrator_actions_total", channel="sms", journey="welcome") == 1
    assert value(m, "orchestrator_event_to_action_seconds_count") == 1
    total = value(m, "orchestrator_event_to_action_seconds_sum")
    assert 0.2 <= total < 5
    assert value(m, "orchestrator_event_to_action_seconds_bucket", le="0.1") == 0
    assert value(m, "orchestrator_event_to_action_seconds_bucket", le="0.25") == 1


def test_no_customer_data_in_any_label() -> None:
    m = WorkerMetrics(process_metrics=False)
    done = Processed(
        record=b"{}", actions=[("email", action("email", "j", "cust-secret", "ann@secret.example"))]
    )
    m.processed(done, record_ts=time.time())
    text = m.render()
    assert b"cust-secret" not in text
    assert b"secret.example" not in text


def test_timer_messages_observe_no_latency_and_replays_count_as_resent() -> None:
    m = WorkerMetrics(process_metrics=False)
    m.processed(Processed(record=b"{}", actions=[("sms", action("sms", "j"))]), record_ts=None)
    m.processed(Processed(record=None, actions=[("sms", action("sms", "j"))], replayed=True, changed=False))
    m.processed(Processed(record=b"{}", duplicate=True, changed=False))
    assert value(m, "orchestrator_event_to_action_seconds_count") == 0
    assert value(m, "orchestrator_actions_total", channel="sms", journey="j") == 1
    assert value(m, "orchestrator_actions_resent_total", channel="sms") == 1
    assert value(m, "orchestrator_duplicate_events_total") == 1


def test_timer_lateness_by_partition_clock_and_wall_clock() -> None:
    m = WorkerMetrics(process_metrics=False)
    m.timer_fired(due_ms=10_000, clock_ms=10_300, wall_ms=12_000)
    m.timer_fired(due_ms=10_000, clock_ms=10_001, wall_ms=9_000)  # wall behind the clock: not negative
    name = "orchestrator_timer_lateness_seconds"
    assert value(m, f"{name}_count", clock="partition") == 2
    assert value(m, f"{name}_sum", clock="partition") == pytest.approx(0.301)
    assert value(m, f"{name}_sum", clock="wall") == pytest.approx(2.0)
    assert value(m, f"{name}_bucket", clock="wall", le="0.05") == 1


@dataclass(frozen=True)
class _Decision:
    kind: str
    reason: str
    channel: str
    journey_id: str


def test_policy_decisions_by_kind_reason_channel_and_journey() -> None:
    m = WorkerMetrics(process_metrics=False)
    m.record_decisions(
        [
            _Decision("suppressed", "frequency_cap", "sms", "cart"),
            _Decision("suppressed", "frequency_cap", "sms", "cart"),
            _Decision("held", "quiet_hours", "push", "cart"),
            _Decision("redirected", "no_consent", "email", "welcome"),
            _Decision("vanished", "what", "email", "welcome"),
        ]
    )
    name = "orchestrator_policy_decisions_total"
    assert value(m, name, kind="suppressed", reason="frequency_cap", channel="sms", journey="cart") == 2
    assert value(m, name, kind="held", reason="quiet_hours", channel="push", journey="cart") == 1
    assert value(m, name, kind="redirected", reason="no_consent", channel="email", journey="welcome") == 1
    assert value(m, name, kind="other", reason="what", channel="email", journey="welcome") == 1


def test_label_combinations_past_the_limit_go_to_other() -> None:
    m = WorkerMetrics(process_metrics=False)
    for i in range(MAX_SERIES + 5):
        m.processed(Processed(record=b"{}", transitions=[tr("entered", f"j{i}")]))
    series = [
        s
        for f in m.registry.collect()
        if f.name == "orchestrator_journey_entries"
        for s in f.samples
        if s.name.endswith("_total")
    ]
    assert len(series) == MAX_SERIES + 1
    assert value(m, "orchestrator_journey_entries_total", journey="other") == 5


def test_exported_names_have_the_type_suffixes() -> None:
    m = WorkerMetrics()
    names = m.names()
    for expected in (
        "orchestrator_raw_messages_total",
        "orchestrator_actions_total",
        "orchestrator_event_to_action_seconds_bucket",
        "orchestrator_event_to_action_seconds_count",
        "orchestrator_event_to_action_seconds_sum",
        "orchestrator_timer_lateness_seconds_bucket",
        "orchestrator_consumer_lag",
        "orchestrator_pending_timers",
        "orchestrator_table_keys",
        "orchestrator_journey_deployment_info",
        "orchestrator_policy_decisions_total",
        "process_resident_memory_bytes",
    ):
        assert expected in names
    assert "orchestrator_actions" not in names
    assert names == exported_names(m.registry)


def test_render_is_the_text_format_prometheus_reads() -> None:
    m = WorkerMetrics(process_metrics=False)
    m.routed("resolved")
    m.event_consumed("page.viewed")
    families = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    assert families["orchestrator_raw_messages"].type == "counter"
    assert families["orchestrator_event_to_action_seconds"].type == "histogram"
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_per_event_cost_is_a_few_microseconds() -> None:
    """The hot-path calls of one typical event (routed, consumed, processed with two transitions
    and one action, latency) stay far below a millisecond; docs/metrics.md has the measured figure."""
    m = WorkerMetrics(process_metrics=False)
    done = Processed(
        record=b"{}",
        actions=[("email", action("email", "welcome"))],
        transitions=[tr("entered", "welcome"), tr("step", "welcome", "welcome_email")],
    )
    n = 20_000
    ts = time.time()
    start = time.perf_counter()
    for _ in range(n):
        m.routed("resolved")
        m.event_consumed("account.created")
        m.processed(done, ts)
    per_event_us = (time.perf_counter() - start) / n * 1e6
    assert value(m, "orchestrator_raw_messages_total") == n
    assert per_event_us < 100, f"{per_event_us:.1f} µs per event"


# -- JSON logs ---------------------------------------------------------------------------------------
def test_json_formatter_writes_one_object_per_line() -> None:
    record = logging.LogRecord(
        "orchestrator.worker", logging.WARNING, __file__, 1, "dead-lettered %s", ("x",), None
    )
    record.partition = 3
    line = JsonFormatter().format(record)
    body = orjson.loads(line)
    assert "\n" not in line
    assert body["level"] == "WARNING"
    assert body["logger"] == "orchestrator.worker"
    assert body["message"] == "dead-lettered x"
    assert body["partition"] == 3
    assert body["ts"].endswith("+00:00")


def test_json_formatter_keeps_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("o", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    body = orjson.loads(JsonFormatter().format(record))
    assert body["exc_type"] == "ValueError"
    assert "boom" in body["exc"]


def test_logging_config_installs_json_lines_on_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    assert logging_config("INFO", json=False) is None
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        config = logging_config("INFO", json=True)
        assert config is not None
        logging.config.dictConfig(config)
        logging.getLogger("orchestrator.test").info("hello %d", 7, extra={"journey": "welcome"})
        logging.getLogger("orchestrator.test").debug("not shown")
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    body = orjson.loads(lines[0])
    assert body.pop("ts")
    assert body == {
        "level": "INFO",
        "logger": "orchestrator.test",
        "message": "hello 7",
        "journey": "welcome",
    }
