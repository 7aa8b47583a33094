"""The demo: every part for real — broker, topics, journeys and policy deployed, a worker, the sandbox
connector closing the feedback loop — then a report of what came out, and everything stopped.

The example journeys' recorded events (March 2025) are produced before the worker starts, so the
worker catches them up as a backlog and 24-hour waits resolve by event time, in seconds.
"""

from __future__ import annotations

import base64
import functools
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from orchestrator.config import Settings
from orchestrator.connectors.ratelimit import ChannelLimiter
from orchestrator.connectors.sandbox import SandboxConnector, SandboxScript
from orchestrator.kafka.deploy import prepare_deployments, publish_deployments
from orchestrator.kafka.local_broker import LocalBroker, free_port
from orchestrator.kafka.produce import produce_file
from orchestrator.kafka.topics import create_topics
from orchestrator.testing.kafka import Record, read_topic, wait_until
from orchestrator.testing.worker import WorkerProcess

__all__ = ["run_demo"]

EXAMPLES = ("welcome", "abandoned_cart", "winback", "post_purchase")
SINCE = datetime(2025, 1, 1, tzinfo=UTC)


def _demo_events(journeys: Path, extra: Path, out: Path) -> Path:
    """The example journeys' events and the extra file's valid ones in time order, the extra file's
    bad lines last. First of all, every example customer grants email marketing consent: the policy
    sends no marketing message without it."""
    rows: list[tuple[str, bytes]] = []
    customers: set[str] = set()
    for name in EXAMPLES:
        for line in (journeys / "examples" / f"{name}.events.jsonl").read_bytes().splitlines():
            if line.strip():
                event = orjson.loads(line)
                rows.append((event["occurred_at"], line))
                customers.update(filter(None, [event["identifiers"].get("customer_id")]))
    bad: list[bytes] = []
    for line in extra.read_bytes().splitlines():
        try:
            rows.append((orjson.loads(line)["occurred_at"], line))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            if line.strip():
                bad.append(line)
    for customer in sorted(customers):
        grant: dict[str, Any] = {
            "event_id": f"demo-consent-{customer}", "type": "consent.changed",
            "identifiers": {"customer_id": customer}, "occurred_at": "2025-03-01T00:00:00Z",
            "source": "demo", "properties": {"channel": "email", "category": "marketing", "granted": True},
        }  # fmt: skip
        rows.append((str(grant["occurred_at"]), orjson.dumps(grant)))
    lines = [line for _, line in sorted(rows, key=lambda r: r[0])] + bad
    out.write_bytes(b"\n".join(lines) + b"\n")
    return out


def run_demo(
    journeys: Path, extra_events: Path, workdir: Path, *, bootstrap: str | None, say: Callable[[str], None]
) -> int:
    """Run the demo in ``workdir``; a broker it starts itself is stopped at the end."""
    broker: LocalBroker | None = None
    worker: WorkerProcess | None = None
    stop = threading.Event()
    connector_thread: threading.Thread | None = None
    try:
        if bootstrap is None:
            say("== 1. Apache Kafka (KRaft) from Maven Central")
            broker = LocalBroker(port=free_port(), controller_port=free_port(), run_dir=workdir / "kafka")
            bootstrap = broker.up(say=say).bootstrap
            say(f"   broker answers on {bootstrap}")
        settings = Settings(
            bootstrap_servers=bootstrap,
            app_id=f"demo-{workdir.name[-8:]}",
            store="memory://",
            data_dir=workdir / "worker",
            web_port=free_port(),
            partitions=3,
            api_token=secrets.token_urlsafe(24),  # the demo reads its worker's pages with it
        )
        say("== 2. topics")
        for spec, state in create_topics(settings):
            say(f"   {state:8} {spec.name} ({spec.partitions} partitions)")
        say("== 3. deploying the example journeys and the policy")
        files = sorted(journeys.glob("*.yaml"))
        deployments = prepare_deployments(files, SINCE)
        publish_deployments(settings, deployments)
        for dep in deployments:
            say(f"   {dep.kind:8} {dep.journey_id} v{dep.version} from {dep.source_name}")
        events = _demo_events(journeys, extra_events, workdir / "events.jsonl")
        say(f"== 4. producing {events.name}: recorded example events, bad lines for the dead-letter topic")
        report = produce_file(events, settings, validate=False)
        say(f"   produced {report.sent} messages")
        say("== 5. a worker and the sandbox connector (delivers every message, 40% opened)")
        worker = WorkerProcess(settings, workdir / "worker.log", extra_env={"ORCH_LATENESS_HOURS": "0"})
        worker.start().wait_ready()
        say(f"   worker ready on {worker.url} (log {worker.log_path})")
        connector = SandboxConnector(
            settings, limiter=ChannelLimiter({}), script=SandboxScript(open_rate=0.4, click_rate=0.1)
        )
        connector_thread = threading.Thread(target=connector.run, args=(stop,), daemon=True)
        connector_thread.start()
        return _report(settings, worker, say)
    finally:
        stop.set()
        if connector_thread is not None:
            connector_thread.join(10)
        if worker is not None:
            worker.stop()
        if broker is not None:
            broker.down()
            say("== stopped the connector, the worker and the broker")


def _settled(settings: Settings, topic: str) -> list[Record]:
    return read_topic(settings.bootstrap_servers, topic, timeout=60, idle=3.0)


def _report(settings: Settings, worker: WorkerProcess, say: Callable[[str], None]) -> int:
    t = settings.topics
    actions = [r for ch in ("email", "sms", "push") for r in _settled(settings, t.action_topic(ch))]
    letters = _settled(settings, t.dead_letter)
    decisions = [orjson.loads(r.value or b"{}") for r in _settled(settings, t.decisions)]
    say(f"== 6. results: {len(actions)} actions, {len(decisions)} decisions, {len(letters)} dead letters")
    per: Counter[tuple[str, str, str]] = Counter()
    for record in actions:
        a = orjson.loads(record.value or b"{}")
        per[(a["journey_id"], a["step_id"], a["channel"])] += 1
    for (journey, step, channel), n in sorted(per.items()):
        say(f"   {journey:16} {step:16} {channel:6} {n}")
    kinds = Counter((d["kind"], d["reason"]) for d in decisions)
    for (kind, reason), n in sorted(kinds.items()):
        say(f"   decision {kind:10} {reason:28} {n}")
    for record in letters:
        letter = orjson.loads(record.value or b"{}")
        original = base64.b64decode(letter["value_b64"])[:50]
        say(f"   dead letter [{letter['reason']}] {letter['error'][:100]}\n      original: {original!r}")
    body = wait_until(functools.partial(_customer, worker, "w-ann"), timeout=20, what="w-ann's state")
    profile = body["profile"]
    say(
        f"   customer w-ann: consent={profile['consent']} engagement={profile.get('engagement', {})} "
        f"instances={len(body['instances'])}"
    )
    status, journeys = worker.get_json("/journeys/")
    say(f"   worker journeys: {sorted(journeys['journeys'])}, policies: {journeys['policies']}")
    return 0 if actions and letters and status == 200 else 1


def _customer(worker: WorkerProcess, key: str) -> dict[str, Any] | None:
    status, body = worker.get_json(f"/customers/{key}/")
    return body if status == 200 and isinstance(body, dict) else None
