"""Topic layout: creation, compaction where it belongs, and the worker refusing a mismatch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from orchestrator.exceptions import TopicLayoutError
from orchestrator.kafka.topics import (
    check_layout,
    create_topics,
    describe_topics,
    erasure_compaction_configs,
    topic_specs,
)
from orchestrator.testing import WorkerProcess, unique_settings
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


def _configs(bootstrap: str, topic: str) -> dict[str, str | None]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return {k: e.value for k, e in admin.describe_configs([res])[res].result(10).items()}


def test_changelogs_of_an_older_version_are_altered_by_topics_create_then_a_worker_starts(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    s = unique_settings(kafka_bootstrap, tmp_path / "worker", erasure_compaction_hours=8)
    bounds = erasure_compaction_configs(8)
    assert bounds == {
        "segment.ms": "7200000",
        "max.compaction.lag.ms": "7200000",
        "delete.retention.ms": "7200000",
    }
    specs = topic_specs(s)
    changelogs = [spec.name for spec in specs if spec.name.endswith("-changelog")]
    assert len(changelogs) == 4  # customers, wakeups, segment sizes, identities
    for spec in specs:
        if spec.name in changelogs:
            assert bounds.items() <= spec.config.items()
    # the cluster as an older version left it: the same topics, without the compaction bounds
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    old = [
        NewTopic(
            spec.name, spec.partitions, 1, config={k: v for k, v in spec.config.items() if k not in bounds}
        )
        for spec in specs
    ]
    for future in admin.create_topics(old).values():
        future.result(10)
    assert (
        _configs(kafka_bootstrap, changelogs[0])["max.compaction.lag.ms"] != bounds["max.compaction.lag.ms"]
    )
    env = {**os.environ, **settings_env(s)}
    # the check alone (what `topics list`-style checks do) refuses and names the fix
    with pytest.raises(TopicLayoutError, match="run: orchestrator topics create") as refused:
        check_layout(s)
    assert f"topic '{changelogs[0]}' has max.compaction.lag.ms=" in str(refused.value)

    # a worker stopped and started on this cluster (an upgrade) applies the new configs itself
    upgraded = WorkerProcess(s, tmp_path / "upgraded.log").start()
    try:
        upgraded.wait_ready()
    finally:
        upgraded.stop()
    for name in changelogs:
        configs = _configs(kafka_bootstrap, name)
        assert {k: configs[k] for k in bounds} == bounds
        assert f"altered  {name}: max.compaction.lag.ms " in upgraded.log_path.read_text()
    # back to the old configs, to check that `topics create` fixes them too
    for future in admin.incremental_alter_configs(
        [
            ConfigResource(
                ConfigResource.Type.TOPIC,
                name,
                incremental_configs=[
                    ConfigEntry(key, None, incremental_operation=AlterConfigOpType.DELETE) for key in bounds
                ],
            )
            for name in changelogs
        ]
    ).values():
        future.result(10)

    cmd = [sys.executable, "-m", "orchestrator", "topics", "create"]
    fixed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=True)
    for name in changelogs:
        for key, value in bounds.items():
            prefix, suffix = f"altered  {name}: {key} ", f" -> {value}"
            assert any(x.startswith(prefix) and x.endswith(suffix) for x in fixed.stdout.splitlines())
        configs = _configs(kafka_bootstrap, name)
        assert {k: configs[k] for k in bounds} == bounds
        assert configs["cleanup.policy"] == "compact"
    altered = [line for line in fixed.stdout.splitlines() if line.startswith("altered ")]
    assert len(altered) == 4 * len(changelogs), altered  # (4 lines per changelog)
    # idempotent: nothing left to alter; a shorter limit (stricter) is accepted as it is
    quicker = ConfigResource(
        ConfigResource.Type.TOPIC,
        changelogs[0],
        incremental_configs=[
            ConfigEntry("delete.retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    # an operator keeps dead letters for ever: retention is never altered after creation
    forever = ConfigResource(
        ConfigResource.Type.TOPIC,
        s.topics.dead_letter,
        incremental_configs=[ConfigEntry("retention.ms", "-1", incremental_operation=AlterConfigOpType.SET)],
    )
    for future in admin.incremental_alter_configs([quicker, forever]).values():
        future.result(10)
    changes: list[tuple[str, str, str | None, str]] = []
    again = create_topics(s, on_change=lambda *change: changes.append(change))
    assert changes == []
    assert {state for _, state in again} == {"exists"}
    assert _configs(kafka_bootstrap, changelogs[0])["delete.retention.ms"] == "1000"
    assert _configs(kafka_bootstrap, s.topics.dead_letter)["retention.ms"] == "-1"

    proc = WorkerProcess(s, tmp_path / "worker.log").start()
    try:
        proc.wait_ready()
    finally:
        proc.stop()
