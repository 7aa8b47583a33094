"""The demo: every part for real — broker, topics, journeys and policy deployed, a worker, the sandbox
connector closing the feedback loop — then what came out, the story of three customers and why, and
everything stopped (the worker's log is kept).

The example journeys' recorded events (March 2025) are produced before the worker starts, so the
worker catches them up as a backlog and 24-hour waits resolve by event time, in seconds. The stories
are told by the journey engine over the same events (the steps one by one, with their times and
reasons); the demo checks that the worker sent exactly the engine's actions for those customers.
The sandbox connector starts once the backlog is done: its deliveries, opens and clicks flow back
into the profiles.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from orchestrator.config import Settings
from orchestrator.connectors.ratelimit import ChannelLimiter
from orchestrator.connectors.sandbox import SandboxConnector, SandboxScript, engagement_events
from orchestrator.contracts.actions import CHANNELS, ChannelAction
from orchestrator.contracts.decision import Decision
from orchestrator.core.engine.records import Transition
from orchestrator.core.journey.registry import JourneyRegistry
from orchestrator.core.policy import load_policy_file
from orchestrator.demo.files import DemoError, example_dir
from orchestrator.demo.pictures import write_pictures
from orchestrator.demo.story import story
from orchestrator.kafka.deploy import prepare_deployments, publish_deployments
from orchestrator.kafka.local_broker import LocalBroker, free_port
from orchestrator.kafka.produce import produce_file
from orchestrator.kafka.topics import create_topics
from orchestrator.simulate.runner import Simulator, load_campaigns, load_registry, load_segments
from orchestrator.testing.kafka import read_topic, wait_until
from orchestrator.testing.worker import WorkerProcess

__all__ = ["STORY_CUSTOMERS", "DemoError", "example_dir", "run_demo"]

EXAMPLES = ("welcome", "abandoned_cart", "winback", "post_purchase", "cart_nudge")
SINCE = datetime(2025, 1, 1, tzinfo=UTC)
STORY_CUSTOMERS = ("w-ann", "w-dan", "w-fay")
"""Three customers of the welcome example: no open (an SMS), an open in time (none), no consent."""
STORY_JOURNEY = "welcome"

Say = Callable[[str], None]


def _demo_events(journeys: Path, extra: Path, out: Path) -> tuple[Path, int]:
    """The example journeys' events and the extra file's valid ones in time order, the extra file's
    bad lines last (they go to the dead-letter topic). The examples grant the consent they need."""
    rows: list[tuple[str, bytes]] = []
    for name in EXAMPLES:
        for line in (journeys / "examples" / f"{name}.events.jsonl").read_bytes().splitlines():
            if line.strip():
                rows.append((orjson.loads(line)["occurred_at"], line))
    bad: list[bytes] = []
    for line in extra.read_bytes().splitlines():
        try:
            rows.append((orjson.loads(line)["occurred_at"], line))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            if line.strip():
                bad.append(line)
    lines = [line for _, line in sorted(rows, key=lambda r: r[0])] + bad
    out.write_bytes(b"\n".join(lines) + b"\n")
    return out, len(bad)


def run_demo(
    journeys: Path | None,
    extra_events: Path | None,
    workdir: Path,
    *,
    bootstrap: str | None,
    say: Say,
) -> int:
    """Run the demo in ``workdir`` (kept: the worker's log stays there); a broker it starts itself is
    stopped at the end and its data removed."""
    journeys = journeys or example_dir()
    extra_events = extra_events or journeys / "demo" / "events.jsonl"
    for needed in (journeys / "policy.yaml", journeys / "examples", extra_events):
        if not needed.exists():
            raise DemoError(f"{needed}: not found (--journeys DIR names a folder like journeys/)")
    broker: LocalBroker | None = None
    worker: WorkerProcess | None = None
    stop = threading.Event()
    connector_thread: threading.Thread | None = None
    try:
        if bootstrap is None:
            say("== 1. Apache Kafka (KRaft) from Maven Central")
            broker = LocalBroker(port=free_port(), controller_port=free_port(), run_dir=workdir / "kafka")
            bootstrap = broker.up(say=lambda line: say(f"   {line}")).bootstrap
            say(f"   broker answers on {bootstrap}")
        else:
            say(f"== 1. Apache Kafka: the broker at {bootstrap}")
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
        created = Counter(state for _, state in create_topics(settings))
        say(f"   {', '.join(f'{n} {state}' for state, n in sorted(created.items()))} (prefix orch.)")
        say(f"== 3. deploying the example journeys and the policy from {journeys}")
        files = sorted(journeys.glob("*.yaml"))
        deployments = prepare_deployments(files, SINCE)
        publish_deployments(settings, deployments)
        for dep in deployments:
            say(f"   {dep.kind:8} {dep.journey_id} v{dep.version} ({dep.source_name.rsplit('/', 1)[-1]})")
        events, bad_lines = _demo_events(journeys, extra_events, workdir / "events.jsonl")
        report = produce_file(events, settings, validate=False)
        say(
            f"== 4. produced {report.sent} events: the examples' (recorded in March 2025) and "
            f"{bad_lines} bad lines"
        )
        say("== 5. a worker catches up on them (a backlog: 24-hour waits pass by event time, in seconds)")
        worker = WorkerProcess(settings, workdir / "worker.log", extra_env={"ORCH_LATENESS_HOURS": "0"})
        worker.start().wait_ready()
        say(f"   worker ready on {worker.url}")
        engine = _engine(journeys, events)
        actions = _results(settings, engine, bad_lines, say)
        checked = _stories(engine, actions, say)
        checked = _segments(settings, engine, say) and checked
        say("== 8. the sandbox connector delivers them (40 % opened): engagement flows back into profiles")
        script = SandboxScript(open_rate=0.4, click_rate=0.1)
        connector = SandboxConnector(settings, limiter=ChannelLimiter({}), script=script)
        connector_thread = threading.Thread(target=connector.run, args=(stop,), daemon=True)
        connector_thread.start()
        wait_until(lambda: connector.stats.delivered >= len(actions), timeout=60, what="the deliveries")
        say(
            f"   {connector.stats.delivered} delivered, {connector.stats.events} events back to the raw topic"
        )
        _engagement(worker, "w-ann", actions, script, say)
        _pictures(journeys, worker, engine, workdir / "pictures", say)
        _next_steps(journeys, worker, say)
        return 0 if actions and checked else 1
    finally:
        stop.set()
        if connector_thread is not None:
            connector_thread.join(10)
        if worker is not None:
            worker.stop()
        if broker is not None:
            broker.down()
            shutil.rmtree(workdir / "kafka", ignore_errors=True)
        say("== stopped the connector, the worker" + (" and the broker" if broker is not None else ""))
        if worker is not None:
            say(f"   the worker's log is kept: {worker.log_path}")


@dataclass
class _Engine:
    """What the journey engine makes of the same events (``simulate``'s shell): the worker must agree."""

    registry: JourneyRegistry
    simulator: Simulator
    steps: dict[str, list[Transition]] = field(default_factory=dict)
    decided: dict[str, list[Decision]] = field(default_factory=dict)
    sent: dict[str, set[str]] = field(default_factory=dict)
    by_channel: Counter[str] = field(default_factory=Counter)


def _engine(journeys: Path, events: Path) -> _Engine:
    registry = load_registry(journeys)
    steps: dict[str, list[Transition]] = {}
    decided: dict[str, list[Decision]] = {}
    sent: dict[str, set[str]] = {}
    by_channel: Counter[str] = Counter()

    def on_action(a: ChannelAction) -> None:
        sent.setdefault(a.customer_id, set()).add(a.action_id)
        by_channel[a.channel] += 1

    sim = Simulator(
        registry,
        segments=load_segments(journeys),
        campaigns=load_campaigns(journeys),
        policy=load_policy_file(journeys / "policy.yaml"),
        on_transition=lambda key, t: steps.setdefault(key, []).append(t),
        on_decision=lambda d: decided.setdefault(d.customer_id, []).append(d),
        on_action=on_action,
    )
    for n, line in enumerate(events.read_bytes().splitlines(), 1):
        sim.feed_line(n, line)
    sim.finish(int(datetime.now(UTC).timestamp() * 1000))  # the worker's clock: every timer due
    return _Engine(registry, sim, steps, decided, sent, by_channel)


def _read(settings: Settings, topic: str, expect: int) -> list[dict[str, Any]]:
    """The topic's records once ``expect`` are there (the worker catching up on the backlog)."""
    found = read_topic(settings.bootstrap_servers, topic, expect=expect, timeout=120)
    return [orjson.loads(r.value or b"{}") for r in found]


def _results(settings: Settings, engine: _Engine, bad_lines: int, say: Say) -> list[dict[str, Any]]:
    t = settings.topics
    actions = [a for ch in CHANNELS for a in _read(settings, t.action_topic(ch), engine.by_channel[ch])]
    letters = _read(settings, t.dead_letter, bad_lines)
    decisions = _read(settings, t.decisions, sum(len(d) for d in engine.decided.values()))
    say(f"== 6. results: {len(actions)} actions, {len(decisions)} decisions, {len(letters)} dead letters")
    per = Counter((a["journey_id"], a["step_id"], a["channel"]) for a in actions)
    for (journey, step, channel), n in sorted(per.items()):
        say(f"   {n:3} {channel:5} {journey}/{step}")
    for (kind, reason), n in sorted(Counter((d["kind"], d["reason"]) for d in decisions).items()):
        say(f"   {n:3} decisions {kind}: {reason}")
    for letter in sorted(letters, key=lambda x: (x["reason"], x["error"])):
        original = base64.b64decode(letter["value_b64"])[:40].decode(errors="replace")
        where, sep, why = letter["error"].partition(": ")  # (cut the reason, not the place)
        say(f"   dead letter, {letter['reason']}: {where}{sep}{why[:600]}")
        say(f"      the line: {original}...")
    return actions


def _stories(engine: _Engine, actions: list[dict[str, Any]], say: Say) -> bool:
    """The story customers' welcome journeys, step by step; True when the worker's actions are the
    engine's."""
    live: dict[str, set[str]] = {}
    for a in actions:
        live.setdefault(a["customer_id"], set()).add(a["action_id"])
    same = live == engine.sent
    say(
        f"== 7. three customers of the {STORY_JOURNEY} journey, step by step (event time, UTC), told by the "
        f"journey engine over the same events; the worker's actions are the engine's, id for id: "
        f"{'yes' if same else 'NO'}"
    )
    for key in STORY_CUSTOMERS:
        state = engine.simulator.states.get(key)
        if state is None:
            continue
        p = state.profile
        consent = ", ".join(
            f"{ch} marketing {'yes' if p.has_consent(ch, 'marketing') else 'no'}" for ch in ("email", "sms")
        )
        say(f"   {key} ({consent})")
        told = story(engine.steps.get(key, []), engine.decided.get(key, []), engine.registry, [STORY_JOURNEY])
        for line in told:
            say(f"     {line}")
    return same


def _engagement(
    worker: WorkerProcess, key: str, actions: list[dict[str, Any]], script: SandboxScript, say: Say
) -> None:
    """Once the profile counts every event the sandbox reported for the customer's actions: the counts."""
    reported: Counter[str] = Counter(
        event.type
        for a in actions
        if a["customer_id"] == key
        for event in engagement_events(ChannelAction.model_validate(a), script)
    )

    def counted() -> dict[str, Any] | None:
        status, body = worker.get_json(f"/customers/{key}/")
        if status != 200 or not isinstance(body, dict):
            return None
        engagement: dict[str, Any] = body["profile"].get("engagement", {})
        have = {name: value[0] for name, value in engagement.items()}
        return engagement if all(have.get(k, 0) >= n for k, n in reported.items()) else None

    engagement = wait_until(counted, timeout=30, what=f"{key}'s engagement")
    said = ", ".join(f"{name.replace('.', ' ')} {value[0]}" for name, value in sorted(engagement.items()))
    say(f"   {key}'s profile now counts: {said}")


def _segments(settings: Settings, engine: _Engine, say: Say) -> bool:
    """The segments' sizes now, cluster-wide from Kafka (what ``orchestrator segments`` prints), against
    the engine's; True when they agree."""
    from orchestrator.cli.segments import format_rows, segments_from_kafka

    expected: Counter[str] = Counter()
    for state in engine.simulator.states.values():
        expected.update(state.profile.segments.keys())
    rows: list[dict[str, Any]] = []

    def agreed() -> bool | None:
        rows[:] = segments_from_kafka(settings)
        return all(r["members"] == expected.get(r["segment"], 0) for r in rows) or None

    try:
        same = bool(wait_until(agreed, timeout=60, what="the segment sizes"))
    except TimeoutError:
        same = False
    say(
        "== 7b. segments (live audiences; docs/segments.md): members now, from Kafka (`orchestrator "
        f"segments`); the engine counts the same: {'yes' if same else 'NO'}"
    )
    for line in format_rows(rows):
        say(f"   {line}")
    return same


def _pictures(journeys: Path, worker: WorkerProcess, engine: _Engine, out: Path, say: Say) -> None:
    """Each example journey drawn with the worker's counts (its ``/funnels/``, cluster-wide) once they
    have every entry the engine counted; the engine's own counts if they do not come in time."""
    expected = engine.simulator.result.funnel.to_dict()

    def settled() -> dict[str, Any] | None:
        status, body = worker.get_json("/funnels/")
        funnels = body.get("journeys") if status == 200 and isinstance(body, dict) else None
        if not isinstance(funnels, dict):
            return None
        entered = {n: (funnels.get(n) or {}).get("entered", 0) for n in EXAMPLES}
        return funnels if entered == {n: expected.get(n, {}).get("entered", 0) for n in EXAMPLES} else None

    try:
        funnels, source = wait_until(settled, timeout=30, what="the worker's funnels"), "the worker's counts"
    except TimeoutError:
        funnels, source = expected, "the journey engine's counts (the worker's did not come in time)"
    written, svg = write_pictures(journeys, EXAMPLES, funnels, out)
    say(f"== 9. the example journeys as pictures, with {source} (`orchestrator graph`): {out}")
    if not svg:
        say("   (as mermaid text: Graphviz's dot draws SVG; install the Debian package graphviz)")
    say("   " + "  ".join(p.name for p in written))


def _next_steps(journeys: Path, worker: WorkerProcess, say: Say) -> None:
    welcome = journeys / "examples" / "welcome.events.jsonl"
    say("== what to try next")
    for line in (
        f"orchestrator validate {journeys}    (journey files checked: file, line, field)",
        f"orchestrator simulate --journeys {journeys} --events {welcome} --policy {journeys / 'policy.yaml'} "
        "--until 2025-04-30T00:00:00Z    (the same stories, offline, with a funnel)",
        "orchestrator kafka up && orchestrator topics create && orchestrator worker    (your own broker and "
        "worker; docs/operations.md)",
        "orchestrator inspect w-ann --worker URL  /  orchestrator actions --customer w-ann    (one customer, "
        "live)",
        f"orchestrator graph {journeys / 'welcome.yaml'} --worker URL -o welcome.svg    (a journey with its "
        "live counts)",
    ):
        say(f"   {line}")
