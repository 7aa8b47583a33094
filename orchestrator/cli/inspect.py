"""``orchestrator inspect CUSTOMER --from-simulate STATE.json | --worker URL [--json]``: one customer.

Shows the resolved profile (attributes, addresses, consent, subscription choices, time zone,
engagement), the identities and forwarding aliases, the journey instances with their step and next
wake-up, the journeys finished lately (steps taken, goal or exit reason, times), the events that came
too late or too early, and a timeline in the customer's time zone: events, entries, the policy's
decisions with their reasons, ends and what is due. ``CUSTOMER`` is a customer key, an old key that was
merged away, or an identifier written ``kind:value`` (``email:ann@example.com``).

The document is built by :func:`customer_document` from a :class:`CustomerState` and what the identity
graph knows; :func:`render` prints it. A live variant (the worker's ``/customers/<key>/`` page and the
decisions topic) only has to build the same document from the worker's answer.
"""

from __future__ import annotations

import argparse
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from orchestrator.cli._common import add_config_option, settings_from
from orchestrator.cli._timeline import DEFAULT_ENTRIES, out_of_time_lines, timeline
from orchestrator.cli._worker_api import get_json
from orchestrator.config import Settings, secret_list
from orchestrator.core.engine.state import CustomerState
from orchestrator.core.profile import CONSENT_DEFAULTS
from orchestrator.exceptions import OrchestratorError
from orchestrator.kafka.security import connection_check, librdkafka_options
from orchestrator.simulate.state_file import read_state_file

__all__ = ["InspectError", "customer_document", "inspect_command", "register", "render"]

_CHANNELS = ("email", "sms", "push")


class InspectError(OrchestratorError):
    """The customer cannot be found or the source cannot be read."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inspect", help="one customer: resolved profile, identities, journey instances and wake-ups"
    )
    parser.add_argument(
        "customer", metavar="CUSTOMER", help="customer key, old key, or kind:value identifier"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--from-simulate",
        type=Path,
        metavar="STATE.json",
        help="the file `orchestrator simulate --state-out` wrote",
    )
    source.add_argument(
        "--worker",
        action="append",
        metavar="URL",
        help="live: a worker's web address (repeat for several; the owner of the customer answers); "
        "asked with the API token of the settings (ORCH_API_TOKEN)",
    )
    parser.add_argument(
        "--decisions",
        type=int,
        default=20,
        metavar="N",
        help="the last N policy decisions in the timeline (live: read from the decisions topic; 0: none)",
    )
    parser.add_argument(
        "--timeline",
        type=int,
        default=DEFAULT_ENTRIES,
        metavar="N",
        help=f"the last N entries of the customer's timeline (default {DEFAULT_ENTRIES}; 0: none)",
    )
    parser.add_argument("--json", action="store_true", help="print the document as JSON")
    add_config_option(parser)
    parser.set_defaults(func=inspect_command)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def customer_document(
    state: CustomerState,
    *,
    identities: dict[str, list[str]] | None = None,
    aliases: list[str] | None = None,
    asked: str | None = None,
    source: str = "simulate",
    decisions: list[dict[str, Any]] | None = None,
    timeline_entries: int = DEFAULT_ENTRIES,
) -> dict[str, Any]:
    """The JSON-compatible view of one customer (shared by the offline and the live inspect);
    ``decisions``: the customer's latest policy decisions (decision contract, JSON), for the timeline."""
    p = state.profile
    ids = {k: list(v) for k, v in p.identities.items()}
    for kind, values in (identities or {}).items():
        ids.setdefault(kind, []).extend(v for v in values if v not in ids[kind])
    return {
        "source": source,
        "asked": asked or p.customer_key,
        "customer_key": p.customer_key,
        "aliases": list(aliases or []),
        "identities": ids,
        "profile": {
            "timezone": p.timezone,
            "timezone_known": p.timezone_known,
            "attributes": p.attributes,
            "addresses": p.addresses,
            "consent": {ch: {c: p.has_consent(ch, c) for c in CONSENT_DEFAULTS} for ch in _CHANNELS},
            "consent_explicit": p.consent,
            "subscriptions": {
                group: {"subscribed": bool(subscribed), "at": _iso(at)}
                for group, (subscribed, at) in p.subscriptions.items()
            },
            "segments": {segment: _iso(since) for segment, since in sorted(p.segments.items())},
            "segments_checked_again": _iso(state.segment_due_ms) if state.segment_due_ms else None,
            "engagement": p.engagement_view(),
            "campaigns": p.campaign_engagement,
            "counts": p.counts_by_type,
            "first_seen": _iso(p.first_seen_ms),
            "last_seen": _iso(p.last_seen_ms),
        },
        "instances": [
            {
                "journey": i.journey,
                "version": i.version,
                "entry_seq": i.entry_seq,
                "step": i.step,
                "entered_at": _iso(i.entered_ms),
                "next_wakeup": _iso(i.due_ms),
                "held_out": i.held,
                "splits": i.splits,
            }
            for i in sorted(state.instances, key=lambda i: (i.journey, i.entry_seq))
        ],
        "held_sends": [
            {
                "action_id": h.action_id,
                "journey": h.journey_id,
                "channel": h.channel,
                "release": _iso(h.release_ms),
            }
            for h in state.held
        ],
        "finished": [
            {
                "journey": f.journey,
                "version": f.version,
                "entry_seq": f.entry_seq,
                "outcome": f.kind,
                "reason": f.reason,
                "step": f.step,
                "steps": f.visits,
                "splits": f.splits,
                "entered_at": _iso(f.entered_ms),
                "finished_at": _iso(f.finished_ms),
            }
            for f in state.finished
        ],
        "out_of_time": {
            reason: {"count": count, "last_event_at": _iso(last)}
            for reason, (count, last) in sorted(state.timing.items())
        },
        "entries": {j: {"count": n, "last": _iso(at)} for j, (n, at) in sorted(state.entries.items())},
        "clock": _iso(state.clock_ms),
        "next_wakeup": _iso(state.next_wakeup_ms()),
        "decisions": list(decisions or []),
        "timeline": timeline(state, decisions, timeline_entries) if timeline_entries > 0 else [],
        "notes": out_of_time_lines(state),
    }


def render(doc: dict[str, Any]) -> str:
    """A readable text of :func:`customer_document`."""
    prof = doc["profile"]
    lines = [
        f"customer {doc['customer_key']}"
        + (f" (asked: {doc['asked']})" if doc["asked"] != doc["customer_key"] else "")
    ]
    if doc["aliases"]:
        lines.append(f"  aliases: {', '.join(doc['aliases'])}")
    lines.append("identities:")
    lines += [f"  {kind}: {', '.join(values)}" for kind, values in sorted(doc["identities"].items())]
    zone = prof["timezone"] if prof.get("timezone_known", True) else f"{prof['timezone']}: not given, assumed"
    lines.append(f"profile (time zone {zone}, seen {prof['first_seen']} .. {prof['last_seen']}):")
    lines += [f"  {k} = {orjson.dumps(v).decode()}" for k, v in sorted(prof["attributes"].items())]
    lines.append(
        "addresses: " + (", ".join(f"{ch} {a}" for ch, a in sorted(prof["addresses"].items())) or "none")
    )
    lines.append(
        "consent: "
        + "; ".join(
            f"{ch} " + ", ".join(f"{c} {'yes' if ok else 'no'}" for c, ok in cats.items())
            for ch, cats in prof["consent"].items()
        )
    )
    if prof.get("subscriptions"):
        lines.append(
            "subscription choices: "
            + ", ".join(
                f"{group} {'yes' if c['subscribed'] else 'no'} ({c['at']})"
                for group, c in sorted(prof["subscriptions"].items())
            )
        )
    again = prof.get("segments_checked_again")
    members = ", ".join(f"{segment} (since {since})" for segment, since in prof.get("segments", {}).items())
    lines.append(
        "segments: " + (members or "none") + (f"; checked again by time at {again}" if again else "")
    )
    engaged = [
        f"{ch} {k} {v}"
        for ch in _CHANNELS
        for k, v in prof["engagement"][ch].items()
        if isinstance(v, int) and v and not k.startswith("last_")
    ]
    lines.append("engagement: " + (", ".join(engaged) or "none"))
    lines.append(f"journeys ({len(doc['instances'])} running):")
    for i in doc["instances"]:
        wake = f", wakes {i['next_wakeup']}" if i["next_wakeup"] else ", waiting for an event"
        held = " [holdout]" if i["held_out"] else ""
        where = f"  {i['journey']} v{i['version']} #{i['entry_seq']}: at {i['step']}"
        lines.append(f"{where} since {i['entered_at']}{wake}{held}")
    for h in doc["held_sends"]:
        lines.append(f"  held send {h['action_id']} ({h['journey']}, {h['channel']}) until {h['release']}")
    if doc["finished"]:
        lines.append(f"finished lately ({len(doc['finished'])}):")
        for f in doc["finished"]:
            ended = f"goal {f['reason']}" if f["outcome"] == "goal" else f"exited: {f['reason']}"
            steps = " → ".join(f["steps"]) or f["step"]
            lines.append(
                f"  {f['journey']} v{f['version']} #{f['entry_seq']}: {ended} at {f['step']} "
                f"({f['entered_at']} .. {f['finished_at']}; steps {steps})"
            )
    lines.append(f"next wake-up: {doc['next_wakeup'] or 'none'}")
    lines += [f"note: {note}" for note in doc["notes"]]
    if doc["timeline"]:
        lines.append(f"timeline (last {len(doc['timeline'])}, time zone {prof['timezone']}):")
        lines += [f"  {t['local']}  {t['what']}" for t in doc["timeline"]]
    return "\n".join(lines)


def _live_identity(urls: list[str], name: str, token: str | None) -> dict[str, Any] | None:
    """Canonical key, identifiers and aliases from the worker that holds the identity graph."""
    for url in urls:
        body = get_json(url, f"/identities/{urllib.parse.quote(name, safe=':@+')}/", token)
        if body is not None and not body.get("_missing"):
            return body
    return None


def _live_state(urls: list[str], key: str, token: str | None) -> CustomerState:
    for _hop in range(3):
        moved = None
        for url in urls:
            body = get_json(url, f"/customers/{urllib.parse.quote(key, safe=':@+')}/", token)
            if body is None:
                continue
            if not body.get("_missing"):
                return CustomerState.from_dict(body["state"])
            moved = body.get("moved_to") or moved
        if moved is None:
            break
        key = str(moved)  # merged into another customer: ask for that one
    raise InspectError(f"no worker of {', '.join(urls)} holds customer {key!r}")


def recent_decisions(settings: Settings, key: str, last: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The customer's last ``last`` decisions from the decisions topic (its partition only)."""
    from aiokafka.partitioner import DefaultPartitioner
    from confluent_kafka import Consumer, TopicPartition

    topic = settings.topics.decisions
    consumer = Consumer(
        {**librdkafka_options(settings), "group.id": "orchestrator-inspect", "enable.auto.commit": False}
    )
    try:
        md = consumer.list_topics(topic, timeout=timeout)
        if topic not in md.topics or not md.topics[topic].partitions:
            raise InspectError(f"topic {topic!r} not found")
        parts = sorted(md.topics[topic].partitions)
        partition = DefaultPartitioner()(key.encode(), parts, parts)
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
        consumer.assign([TopicPartition(topic, partition, low)])
        found: list[dict[str, Any]] = []
        position = low
        while position < high:
            batch = consumer.consume(num_messages=1000, timeout=1.0)
            if not batch:
                break
            for msg in batch:
                position = max(position, (msg.offset() or 0) + 1)
                if msg.error() is None and msg.key() == key.encode():
                    found.append(orjson.loads(msg.value() or b"{}"))
        return found[-last:] if last else []
    finally:
        consumer.close()


def inspect_command(args: argparse.Namespace) -> int:
    if args.worker:
        settings = settings_from(args)
        if args.decisions:
            connection_check(settings)  # a refused login or TLS handshake: one clear line, now
        tokens = secret_list(settings.api_token)
        token = tokens[0] if tokens else None
        ident = _live_identity(args.worker, args.customer, token)
        found = _live_state(args.worker, ident["customer_key"] if ident else args.customer, token)
        decisions = recent_decisions(settings, found.customer_key, args.decisions) if args.decisions else []
        doc = customer_document(
            found,
            identities=ident["identities"] if ident else None,
            aliases=ident["aliases"] if ident else None,
            asked=args.customer,
            source="live",
            decisions=decisions,
            timeline_entries=args.timeline,
        )
    else:
        sim = read_state_file(args.from_simulate)
        key = sim.graph.lookup(args.customer) or args.customer
        state = sim.customers.get(key)
        if state is None:
            raise InspectError(f"no customer {args.customer!r} in {args.from_simulate}")
        doc = customer_document(
            state,
            identities=sim.graph.identities(key),
            aliases=sim.graph.aliases(key),
            asked=args.customer,
            decisions=sim.decisions.get(key, [])[-args.decisions :] if args.decisions > 0 else [],
            timeline_entries=args.timeline,
        )
    if args.json:
        print(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    else:
        print(render(doc))
    return 0
