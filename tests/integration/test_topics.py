"""Topic layout: creation, compaction where it belongs, and the worker refusing a mismatch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from orchestrator.kafka.topics import create_topics, describe_topics, topic_specs
from orchestrator.testing import unique_settings
from orchestrator.testing.worker import settings_env

pytestmark = pytest.mark.integration


def test_create_is_idempotent_and_compacts_journeys(kafka_bootstrap: str, tmp_path: Path) -> None:
    s = unique_settings(kafka_bootstrap, tmp_path, partitions=4)
    first = create_topics(s)
    assert {state for _, state in first} == {"created"}
    second = create_topics(s)
    assert {state for _, state in second} == {"exists"}
    sizes = describe_topics(s, [spec.name for spec in topic_specs(s)])
    assert sizes[s.topics.raw_events] == sizes[s.topics.resolved_events] == sizes[s.topics.timers] == 4
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, s.topics.journeys)
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["cleanup.policy"].value == "compact"


def test_worker_refuses_topics_that_disagree(kafka_bootstrap: str, tmp_path: Path) -> None:
    s = unique_settings(kafka_bootstrap, tmp_path, partitions=3)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(s.topics.resolved_events, 5, 1)])[s.topics.resolved_events].result(10)
    with pytest.raises(Exception, match="partitions"):
        create_topics(s)
    env = {**settings_env(s)}
    import os

    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "worker"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert f"topic '{s.topics.resolved_events}' has 5 partitions" in proc.stderr
    assert "must all agree" in proc.stderr
