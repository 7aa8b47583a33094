from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import load_settings
from orchestrator.exceptions import ConfigError
from orchestrator.kafka.security import aiokafka_options, librdkafka_options


def test_defaults_file_env_and_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "orch.toml"
    cfg.write_text('partitions = 12\nbootstrap_servers = "file:9092"\n[topics]\nraw_events = "in"\n')
    s = load_settings(cfg, environ={"ORCH_BOOTSTRAP_SERVERS": "env:9092", "ORCH_TOPIC_DEAD_LETTER": "dlq"})
    assert s.partitions == 12
    assert s.bootstrap_servers == "env:9092"
    assert s.topics.raw_events == "in"
    assert s.topics.dead_letter == "dlq"
    assert load_settings(cfg, environ={}, bootstrap_servers="cli:1").bootstrap_servers == "cli:1"


def test_errors_name_the_source_and_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"environment: field 'partitions' \(env ORCH_PARTITIONS\)"):
        load_settings(environ={"ORCH_PARTITIONS": "zero"})
    bad = tmp_path / "bad.toml"
    bad.write_text("partitions = [")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_settings(bad, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match="no action topic for channel"):
        load_settings(environ={}).topics.action_topic("fax")


def test_a_removed_setting_is_refused_with_what_took_its_place(tmp_path: Path) -> None:
    # an unknown environment variable is otherwise ignored: the operator's old cache size would vanish
    with pytest.raises(
        ConfigError, match=r"environment: ORCH_ROCKSDB_BLOCK_CACHE_MB .* use rocksdb_memory_mb"
    ):
        load_settings(environ={"ORCH_ROCKSDB_BLOCK_CACHE_MB": "8"})
    old = tmp_path / "old.toml"
    old.write_text("rocksdb_block_cache_mb = 8\n")
    with pytest.raises(ConfigError, match=r"old\.toml: rocksdb_block_cache_mb .* use rocksdb_memory_mb"):
        load_settings(old, environ={})
    assert load_settings(environ={"ORCH_ROCKSDB_MEMORY_MB": "128"}).rocksdb_memory_mb == 128


def test_client_options_carry_security() -> None:
    s = load_settings(
        environ={
            "ORCH_SECURITY_PROTOCOL": "SASL_SSL",
            "ORCH_SASL_MECHANISM": "PLAIN",
            "ORCH_SASL_USERNAME": "u",
            "ORCH_SASL_PASSWORD": "p",
        }
    )
    assert librdkafka_options(s)["sasl.username"] == "u"
    assert aiokafka_options(s)["security_protocol"] == "SASL_SSL"


def test_stages_are_named_checked_and_kept_in_pipeline_order() -> None:
    assert load_settings(environ={}).stages == "ingest,identify,customer"
    s = load_settings(environ={"ORCH_STAGES": " customer , ingest"})
    assert s.stages == "ingest,customer"
    assert [stage for stage in ("ingest", "identify", "customer") if s.runs(stage)] == ["ingest", "customer"]
    with pytest.raises(
        ConfigError, match=r"field 'stages' \(env ORCH_STAGES\): .*unknown stages \['resolve'\]"
    ):
        load_settings(environ={"ORCH_STAGES": "resolve"})
    with pytest.raises(ConfigError, match="unknown stages"):
        load_settings(environ={"ORCH_STAGES": " , "})


def test_the_crash_tests_failpoint_is_off_by_default_and_checked() -> None:
    from orchestrator.config import DeliveryFailpoint
    from orchestrator.runtime.outgoing import CrashAt

    assert load_settings(environ={}).delivery_failpoint() is None
    s = load_settings(environ={"ORCH_FAILPOINT": "deliver:customers-changelog:3:1"})
    point = s.delivery_failpoint()
    assert point == DeliveryFailpoint("customers-changelog", 3, 1)
    for bad, why in [
        ("kill:x:1:1", "expected deliver"),
        ("deliver::1:1", "expected deliver"),
        ("deliver:x:one:1", "whole numbers"),
        ("deliver:x:0:1", "at least 1"),
    ]:
        with pytest.raises(ConfigError, match=rf"field 'failpoint' \(env ORCH_FAILPOINT\): .*{why}"):
            load_settings(environ={"ORCH_FAILPOINT": bad})
    crash = CrashAt(DeliveryFailpoint("customers-changelog", 2, 1))
    assert not crash.due(["app-customers-changelog", "actions"], 1)  # nothing left after the kept one
    assert not crash.due(["app-wakeups-changelog", "actions"], 3)  # not the topic
    assert not crash.due(["app-customers-changelog", "actions"], 2)  # the first such delivery
    assert crash.due(["app-customers-changelog", "actions"], 2)  # the second
    assert not crash.due(["app-customers-changelog", "actions"], 2)  # once only


def test_every_setting_is_documented() -> None:
    from orchestrator.config import Settings

    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    rows = {
        name.strip()
        for line in doc.splitlines()
        if line.startswith("| ")
        for name in line.split("|")[1].split("/")
    }
    missing = [name for name in Settings.model_fields if name != "topics" and name not in rows]
    assert not missing, f"not in docs/configuration.md: {missing}"
