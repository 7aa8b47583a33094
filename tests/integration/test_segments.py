"""Segments and subscription groups on the real broker (issue 21): the worker's actions, decisions and
segment sizes are simulate's, including memberships that end by time alone (a counted event leaving its
window fires the customer's own timer) and an opt-out subscription group; a campaign (issue 22): the workers
deliver it as simulate does, and `orchestrator campaigns` shows the same rows from Kafka, from the worker's
/campaigns/ and from simulate's state file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.config import Settings
from orchestrator.simulate import simulate_file
from orchestrator.simulate.state_file import read_state_file
from orchestrator.testing import WorkerProcess, wait_until
from orchestrator.testing.worker import settings_env
from tests.integration.metrics_helpers import scrape
from tests.integration.runtime_helpers import ActionReader, by_id, deploy, produce, read_decisions
from tests.integration.test_runtime import _cli

pytestmark = pytest.mark.integration

POLICY = """kind: policy
id: groups
version: 1
subscription_groups:
  - {id: product_news, channel: email, default: opt_out, description: "Product news, unless one opts out"}
"""
CART = """kind: segment
id: cart_abandoners
version: 1
condition: >
  seen("cart.updated", duration("1h")) && !seen("order.completed", duration("1h"))
  && profile.consent.email.marketing && profile.subscriptions.product_news
  && !("vip" in profile.segments)
"""
VIP = """kind: segment
id: vip
version: 1
condition: profile.tier == "gold"
"""
BUYERS = """kind: segment
id: buyers
version: 1
condition: count("order.completed", duration("720h")) >= 1
"""
NUDGE = """id: cart_nudge
version: 1
entry: {segment: cart_abandoners}
re_entry: {policy: always}
exit_when:
  - {name: gone, left_segment: cart_abandoners}
steps:
  pause: {type: wait, duration: 30m, next: mail}
  mail:
    type: send
    channel: email
    template: cart_nudge
    subscription_group: product_news
    next: later
  later: {type: wait, duration: 2h, next: text}
  text: {type: send, channel: sms, template: cart_sms}
"""
NEWS = """id: news
version: 1
entry: {event: catalog.published}
re_entry: {policy: always}
steps:
  mail: {type: send, channel: email, template: news, subscription_group: product_news}
"""


def _event(customer: str, n: int, etype: str, at: datetime, props: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"{customer}-{n}",
            "type": etype,
            "identifiers": {
                "customer_id": customer,
                "email": f"{customer}@example.com",
                "phone": "+15550001",
            },
            "occurred_at": at.isoformat(),
            "source": "test",
            "properties": props or {},
        }
    )


def _stories(t0: datetime) -> list[bytes]:
    """Six customers (all with marketing consent on email but ``e``):

    - a: a cart, then nothing: in the segment, the nudge after 30 min, out by time alone 1 h after;
    - b: unsubscribed from product_news: never in the segment, and the news send is refused;
    - c: a cart, an order 10 min later: out on the event (before the nudge); a buyer;
    - d: gold tier: a VIP, so never a cart abandoner;
    - e: no consent: the opt-out group's default does not apply, never in the segment;
    - f: a cart, and again 3 h later: in twice, two nudges."""
    m = timedelta(minutes=1)
    lines = []
    for c in "abcdef":
        lines.append(_event(c, 0, "account.created", t0))
        if c != "e":
            lines.append(
                _event(
                    c,
                    1,
                    "consent.changed",
                    t0 + m,
                    {"channel": "email", "category": "marketing", "granted": True},
                )
            )
    lines.append(
        _event("b", 2, "subscription.changed", t0 + 2 * m, {"group": "product_news", "subscribed": False})
    )
    lines.append(_event("d", 2, "profile.updated", t0 + 2 * m, {"tier": "gold"}))
    for c in "abcdef":
        lines.append(_event(c, 3, "cart.updated", t0 + 10 * m))
        lines.append(_event(c, 4, "catalog.published", t0 + 11 * m))
    lines.append(_event("c", 5, "order.completed", t0 + 20 * m))
    lines.append(_event("f", 6, "cart.updated", t0 + 190 * m))
    return lines


def test_segments_and_an_opt_out_group_match_simulate(
    settings: Settings, tmp_path: Path, actions: ActionReader
) -> None:
    folder = tmp_path / "journeys"
    folder.mkdir()
    files = []
    for name, text in (("cart.yaml", CART), ("vip.yaml", VIP), ("buyers.yaml", BUYERS),
                       ("nudge.yaml", NUDGE), ("news.yaml", NEWS)):  # fmt: skip
        (folder / name).write_text(text)
        files.append(folder / name)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    t0 = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    events = _stories(t0)
    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(b"\n".join(events) + b"\n")
    now = int(time.time() * 1000)
    state_file, out, decided = (
        tmp_path / "state.json",
        tmp_path / "actions.jsonl",
        tmp_path / "decisions.jsonl",
    )
    simulate_file(folder, events_file, out_path=out, until_ms=now, policy_path=policy,
                  decisions_path=decided, state_out=state_file)  # fmt: skip
    expected = by_id(orjson.loads(line) for line in out.read_bytes().splitlines())
    decisions = [orjson.loads(line) for line in decided.read_bytes().splitlines()]
    templates = sorted((a["customer_id"], a["template_id"]) for a in expected.values())
    assert templates == [
        ("a", "cart_nudge"), ("a", "news"), ("c", "news"), ("d", "news"),
        ("f", "cart_nudge"), ("f", "cart_nudge"), ("f", "news"),
    ], templates  # fmt: skip
    refused = {(d["customer_id"], d["reason"]) for d in decisions if d["kind"] != "sent"}
    assert refused == {("b", "not_subscribed"), ("e", "no_consent")}
    sim_sizes = {
        r["segment"]: r["members"]
        for r in orjson.loads(_cli(settings, "segments", "--from-simulate", str(state_file), "--json"))
    }
    assert sim_sizes == {"buyers": 1, "cart_abandoners": 0, "vip": 1}
    assert read_state_file(state_file).customers["a"].profile.segments == {}

    deploy(settings, [*files, policy])
    produce(settings, events)
    worker = WorkerProcess(settings, tmp_path / "worker.log", extra_env={"ORCH_LATENESS_HOURS": "0"})
    worker.start().wait_ready()
    try:
        actions.wait_for_ids(set(expected), describe=expected)
        got = read_decisions(settings, expect=len(decisions))
        actions.settle()

        seen: list[dict[str, int]] = [{}]

        def sizes() -> dict[str, int] | None:
            rows = orjson.loads(_cli(settings, "segments", "--json"))
            seen[0] = {r["segment"]: r["members"] for r in rows}
            return seen[0] if seen[0] == sim_sizes else None

        try:
            wait_until(sizes, timeout=60, what=f"the live segment sizes to be simulate's {sim_sizes}")
        except TimeoutError:
            raise AssertionError(f"live sizes {seen[0]}, simulate's {sim_sizes}") from None
        status, page = worker.get_json("/segments/")
        _, metrics = scrape(worker)
    finally:
        worker.stop()
    assert by_id(actions.records) == expected
    assert {d["decision_id"]: d for d in got} == {d["decision_id"]: d for d in decisions}
    assert status == 200
    assert page["cluster_wide"] is True
    assert {r["segment"]: (r["members"], r["members_here"]) for r in page["segments"]} == {
        "buyers": (1, 1), "cart_abandoners": (0, 0), "vip": (1, 1)
    }  # fmt: skip

    def sample(name: str, segment: str) -> float:
        return metrics.get((name, frozenset({("segment", segment)})), 0.0)

    # a and c once, f twice: four entries, four exits (a and f by time alone, c on its order)
    assert sample("orchestrator_segment_entries_total", "cart_abandoners") == 4
    assert sample("orchestrator_segment_exits_total", "cart_abandoners") == 4
    assert sample("orchestrator_segment_members", "vip") == 1
    assert sample("orchestrator_segment_members", "cart_abandoners") == 0
    exits = metrics.get(
        ("orchestrator_exits_total", frozenset({("journey", "cart_nudge"), ("reason", "gone")}))
    )
    assert exits == 4


def _campaign(at: datetime) -> str:
    return f"""kind: campaign
id: vip_news
version: 1
name: News for VIPs
audience: {{segment: vip}}
send: {{channel: email, template: vip_news, subscription_group: product_news}}
schedule: {{at: "{at.strftime("%Y-%m-%dT%H:%M:%SZ")}"}}
deliver_within: 2h
"""


def _campaign_stories(t0: datetime) -> list[bytes]:
    """Five customers (marketing consent on email but ``c``); the campaign at t0 + 30 min, to the VIPs:

    - a: gold before it: sent;
    - b: gold, unsubscribed from product_news: refused (not_subscribed);
    - c: gold, no consent: refused (no_consent);
    - d: never gold: nothing;
    - e: gold 30 min after the campaign's time, within its delivery window: sent then."""
    m = timedelta(minutes=1)
    lines = []
    for c in "abcde":
        lines.append(_event(c, 0, "account.created", t0))
        if c != "c":
            consent = {"channel": "email", "category": "marketing", "granted": True}
            lines.append(_event(c, 1, "consent.changed", t0 + m, consent))
    lines.append(
        _event("b", 2, "subscription.changed", t0 + 2 * m, {"group": "product_news", "subscribed": False})
    )
    for c in "abc":
        lines.append(_event(c, 3, "profile.updated", t0 + 3 * m, {"tier": "gold"}))
    lines.append(_event("e", 3, "profile.updated", t0 + 60 * m, {"tier": "gold"}))
    return lines


def test_a_campaign_s_counts_from_kafka_the_worker_s_page_and_simulate_agree(
    settings: Settings, tmp_path: Path, actions: ActionReader
) -> None:
    """The workers deliver a campaign as simulate does, and `orchestrator campaigns` (from Kafka, from the
    worker's /campaigns/, from simulate's state file) shows the same rows."""
    folder = tmp_path / "journeys"
    folder.mkdir()
    t0 = (datetime.now(UTC) - timedelta(days=2)).replace(second=0, microsecond=0)
    files = []
    for name, text in (("vip.yaml", VIP), ("vip_news.yaml", _campaign(t0 + timedelta(minutes=30)))):
        (folder / name).write_text(text)
        files.append(folder / name)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    events = _campaign_stories(t0)
    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(b"\n".join(events) + b"\n")
    state_file, out = tmp_path / "state.json", tmp_path / "actions.jsonl"
    result = simulate_file(files, events_file, out_path=out, until_ms=int(time.time() * 1000),
                           policy_path=policy, state_out=state_file)  # fmt: skip
    assert result.campaigns == {
        "vip_news": {"scheduled": 4, "sent": 2, "unsent_no_consent": 1, "unsent_not_subscribed": 1}
    }
    expected = by_id(orjson.loads(line) for line in out.read_bytes().splitlines())
    assert sorted(a["customer_id"] for a in expected.values()) == ["a", "e"]
    simulated = orjson.loads(_cli(settings, "campaigns", "--from-simulate", str(state_file), "--json"))
    assert [(r["campaign"], r["audience"], r["sent"], r["suppressed"]) for r in simulated] == [
        ("vip_news", 4, 2, 2)
    ]

    deploy(settings, [*files, policy])
    produce(settings, events)
    worker = WorkerProcess(settings, tmp_path / "worker.log", extra_env={"ORCH_LATENESS_HOURS": "0"})
    worker.start().wait_ready()
    try:
        actions.wait_for_ids(set(expected), describe=expected)
        actions.settle()
        seen: list[Any] = [None]

        def rows() -> list[dict[str, Any]] | None:
            seen[0] = orjson.loads(_cli(settings, "campaigns", "--json"))
            return seen[0] if seen[0] == simulated else None

        try:
            wait_until(rows, timeout=60, what="the campaign's counts from Kafka to be simulate's")
        except TimeoutError:
            raise AssertionError(f"from Kafka {seen[0]}, from simulate {simulated}") from None
        status, page = worker.get_json("/campaigns/")
        try:  # (no token: refused, like every page with customer counts)
            urllib.request.urlopen(worker.url + "/campaigns/", timeout=5)
            unauthorized = 200
        except urllib.error.HTTPError as exc:
            unauthorized = exc.code
        wrong = subprocess.run(
            [sys.executable, "-m", "orchestrator", "campaigns", "--worker", worker.url],
            env={**os.environ, **settings_env(settings), "ORCH_API_TOKEN": "wrong"},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        from_worker = orjson.loads(_cli(settings, "campaigns", "--worker", worker.url, "--json"))
        table = _cli(settings, "campaigns", "--worker", worker.url)
        _, metrics = scrape(worker)
    finally:
        worker.stop()
    assert by_id(actions.records) == expected
    assert status == 200
    assert unauthorized == 401
    assert wrong.returncode == 2
    assert "HTTP 401 unauthorized: wrong token" in wrong.stderr
    assert page["cluster_wide"] is True
    assert [{k: v for k, v in r.items() if k != "here"} for r in page["campaigns"]] == simulated
    # one worker owns every partition: its share is the whole
    here = page["campaigns"][0]["here"]
    assert here == {k: simulated[0][k] for k in here}
    assert from_worker == page["campaigns"]
    assert "  suppressed 2 (no_consent 1, not_subscribed 1)" in table.splitlines()
    assert table.splitlines()[-1] == "(cluster-wide)"

    def sample(outcome: str) -> float:
        labels = frozenset({("campaign", "vip_news"), ("outcome", outcome)})
        return metrics.get(("orchestrator_campaign_outcomes_total", labels), 0.0)

    assert {o: sample(o) for o in result.campaigns["vip_news"]} == result.campaigns["vip_news"]
    assert metrics.get(("orchestrator_campaigns_loaded", frozenset())) == 1
