"""Erasure keeps its word (docs/identity.md, "Where personal data lives"): after `customer.erased` a
worker with the RocksDB store leaves none of the customer's identifiers in the changelogs (once compacted:
the test makes their bounds seconds) nor in its local files; they remain only in the topics the docs
name (the event topics and the actions, until their retention)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)

from orchestrator.config import Settings
from orchestrator.kafka.topics import create_topics
from orchestrator.testing import WorkerProcess, unique_settings, wait_until
from tests.integration.runtime_helpers import JOURNEYS, ActionReader, deploy, produce

pytestmark = pytest.mark.integration

FAST_COMPACTION = {
    # stricter than the spec's bounds (accepted by the start-up check), so the cleaner acts in seconds
    "segment.ms": "1000",
    "max.compaction.lag.ms": "1000",
    "delete.retention.ms": "1000",
    "min.cleanable.dirty.ratio": "0.01",
}

MAY_REMAIN = {
    # topic (by its default name) -> why the identifiers stay there until the topic's retention
    "orch.events.raw": "events as producers published them",
    "orch.events.identify": "valid events on their way to the identity graph",
    "orch.events.resolved": "events keyed by customer",
    "orch.actions.email": "the welcome email: recipient and personalisation",
    "orch.actions.sms": "SMS actions",
    "orch.actions.push": "push actions",
    "orch.decisions": "the policy's decisions name the customer key",
    "orch.timers": "wake-ups name the customer key",
}


def _read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of every partition of ``topic``, up to its end now (exact, no idle wait)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"scan-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {}
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        out: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + 30
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is not None:
                    continue
                out.append((msg.key(), msg.value()))
                p, offset = msg.partition(), msg.offset()
                if p in ends and offset is not None and offset >= ends[p] - 1:
                    del ends[p]
        assert not ends, f"{topic}: could not read to the end of partitions {sorted(ends)}"
        return out
    finally:
        consumer.close()


def _found(records: list[tuple[bytes | None, bytes | None]], personal: dict[str, bytes]) -> set[str]:
    blob = b"\n".join((k or b"") + b"\x00" + (v or b"") for k, v in records)
    return {name for name, value in personal.items() if value in blob}


def _files_naming(root: Path, personal: dict[str, bytes]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in root.rglob("*"):
        if path.is_file():
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # (RocksDB deletes files as it goes)
                continue
            hits = {name for name, value in personal.items() if value in data}
            if hits:
                out[str(path.relative_to(root))] = hits
    return out


def _event(eid: str, etype: str, ids: dict[str, str], at: datetime, **props: object) -> bytes:
    body = {"event_id": eid, "type": etype, "identifiers": ids, "source": "test"}
    return orjson.dumps({**body, "occurred_at": at.isoformat(), "properties": props})


def _test_topics(settings: Settings) -> list[str]:
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    tag = settings.topics.raw_events.split(".", 1)[0]
    names = admin.list_topics(timeout=10).topics
    return sorted(t for t in names if t.startswith((f"{tag}.", f"{settings.app_id}-")))


def test_erased_identifiers_leave_the_changelogs_and_the_local_files(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "worker"
    s = unique_settings(kafka_bootstrap, data_dir, store="rocksdb://", erasure_key="the test's erasure key")
    create_topics(s)
    changelogs = [f"{s.app_id}-{t}-changelog" for t in ("customers", "wakeups", "identities")]
    changelogs.append(s.topics.claims)  # (compacted with the same bounds: claims name the customer key)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    resources = [
        ConfigResource(
            ConfigResource.Type.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in FAST_COMPACTION.items()
            ],
        )
        for name in changelogs
    ]
    for future in admin.incremental_alter_configs(resources).values():
        future.result(10)
    deploy(s, [JOURNEYS / "welcome.yaml"])

    tag = uuid.uuid4().hex[:8]
    personal = {
        "customer_id": f"cust-{tag}".encode(),
        "email": f"zed.{tag}@erase.example".encode(),
        "phone": f"+1555{int(tag, 16) % 10**7:07d}".encode(),
        "first_name": f"Zebulonia{tag}".encode(),
        "push_token": f"ptok-{tag}".encode(),
    }
    text = {k: v.decode() for k, v in personal.items()}
    cid = {"customer_id": text["customer_id"]}
    now = datetime.now(UTC) - timedelta(seconds=30)
    produce(
        s,
        [
            _event(
                f"{tag}-1",
                "consent.changed",
                {**cid, "phone": text["phone"]},
                now,
                channel="sms",
                category="marketing",
                granted=True,
            ),
            _event(
                f"{tag}-2",
                "profile.updated",
                cid,
                now + timedelta(seconds=1),
                first_name=text["first_name"],
                push_token=text["push_token"],
            ),
            _event(
                f"{tag}-3",
                "account.created",
                {**cid, "email": text["email"], "phone": text["phone"]},
                now + timedelta(seconds=2),
                first_name=text["first_name"],
            ),
        ],
    )
    worker = WorkerProcess(s, tmp_path / "worker.log", extra_env={"ORCH_LATENESS_HOURS": "0"})
    reader = ActionReader(s)
    try:
        worker.start().wait_ready()
        wait_until(lambda: reader.poll() or reader.records, timeout=60, what="the welcome email")
        [email] = reader.records
        assert email["recipient"] == text["email"]
        state = worker.get_json(f"/customers/{text['customer_id']}/")
        assert state[0] == 200
        assert text["push_token"] in orjson.dumps(state[1]).decode(), "the profile holds every identifier"

        produce(s, [_event(f"{tag}-9", "customer.erased", cid, datetime.now(UTC))])
        wait_until(
            lambda: worker.get_json(f"/customers/{text['customer_id']}/")[0] == 404,
            timeout=30,
            what="the customer's state to be deleted",
        )
        erased_at = time.monotonic()

        # the changelogs: values and tombstone keys compacted away (the bounds are seconds here)
        left: list[str] = []
        rounds = iter(range(1_000))

        def changelogs_clean() -> bool:
            # Other customers' activity: Kafka rolls a segment (the active one is never compacted)
            # only when a record is appended, so a partition must be written to after the erasure
            # (a live system's are; docs/identity.md says what an idle partition keeps).
            r = next(rounds)
            produce(s, [_event(f"{tag}-f{r}-{i}", "account.created", {"customer_id": f"f{r}-{i}"},
                               datetime.now(UTC)) for i in range(30)])  # fmt: skip
            left[:] = [
                f"{t}: key={k!r} value={'-' if v is None else sorted(_found([(None, v)], personal))}"
                for t in changelogs
                for k, v in _read_all(kafka_bootstrap, t)
                if _found([(k, v)], personal)
            ]
            return not left

        try:
            wait_until(changelogs_clean, timeout=75, interval=2.0, what="the changelogs to be compacted")
        except TimeoutError:
            pytest.fail("records naming the erased customer are still in the changelogs:\n" + "\n".join(left))
        changelog_s = time.monotonic() - erased_at

        # the local RocksDB files: compacted by the worker after the erasure (no sleep: a condition)
        def local_left() -> dict[str, set[str]]:
            # RocksDB's MANIFEST records each SST file's smallest and largest key (a customer key,
            # never a value) until it is rewritten at the next open (docs/identity.md)
            return {
                f: hits
                for f, hits in _files_naming(data_dir, personal).items()
                if not (Path(f).name.startswith("MANIFEST-") and hits == {"customer_id"})
            }

        try:
            wait_until(lambda: not local_left(), timeout=30, interval=1.0, what="local files")
        except TimeoutError:
            pytest.fail(f"the worker's files still hold the erased customer's data: {local_left()}")
        local_s = time.monotonic() - erased_at
        assert list(data_dir.rglob("*.sst")) or list(data_dir.rglob("*.log")), "RocksDB files were scanned"
    finally:
        worker.stop()
        reader.close()
    print(f"changelogs clean after {changelog_s:.1f}s, local files after {local_s:.1f}s")

    # every topic of the test: identifiers only where the docs say they remain
    defaults = {getattr(s.topics, f): d for f, d in type(s.topics)().model_dump().items()}
    found = {t: _found(_read_all(kafka_bootstrap, t), personal) for t in _test_topics(s)}
    assert set(changelogs) <= set(found)
    unexpected = {t: hits for t, hits in found.items() if hits and defaults.get(t) not in MAY_REMAIN}
    assert not unexpected, f"personal data where docs/identity.md says there is none: {unexpected}"
    assert found[s.topics.raw_events] == set(personal), "the scan finds what is there"
    assert {"email", "first_name", "customer_id"} <= found[s.topics.action_email]
    # the worker's log names none of them but the customer key
    logged = {name for name, value in personal.items() if value in (tmp_path / "worker.log").read_bytes()}
    assert logged <= {"customer_id"}, f"the worker's log holds {logged}"
