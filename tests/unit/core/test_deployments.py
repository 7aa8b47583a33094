"""The one acceptance rule for deployment records (workers and `orchestrator deploy` alike): a poisoned
record is refused with its reason, never raised, and the last good version stays."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.contracts import JourneyDeployment
from orchestrator.core.campaign import load_campaign_text
from orchestrator.core.deployments import MAX_RECORD_BYTES, DeploymentBook
from orchestrator.core.journey import JourneyRegistry
from orchestrator.exceptions import JourneyValidationError
from orchestrator.kafka.deploy import check_deployments, prepare_deployments

ROOT = Path(__file__).resolve().parents[3]
WELCOME = (ROOT / "journeys" / "welcome.yaml").read_text()
POLICY = (ROOT / "journeys" / "policy.yaml").read_text()
AT = datetime(2025, 1, 1, tzinfo=UTC)


def _record(text: str, *, version: int = 1, kind: str = "journey", jid: str = "welcome") -> JourneyDeployment:
    return JourneyDeployment(
        kind=kind, journey_id=jid, version=version, effective_from=AT, source_name=f"{jid}.yaml", text=text
    )  # type: ignore[arg-type]


def _book() -> DeploymentBook:
    return DeploymentBook(JourneyRegistry())


def test_a_good_journey_and_policy_are_applied() -> None:
    book = _book()
    assert book.apply(b"k", _record(WELCOME).to_json(), where="journeys[0]@0") is None
    policy_id = orjson.loads(orjson.dumps(POLICY.split("id:")[1].split()[0]))
    assert (
        book.apply(b"p", _record(POLICY, kind="policy", jid=policy_id).to_json(), where="journeys[0]@1")
        is None
    )
    assert book.applied == 2
    assert book.summary()["journeys"]["welcome"][0]["version"] == 1
    assert book.summary()["refused"] == []


POISON = {
    "not json": b"not json",
    "python tag": _record("id: !!python/name:os.system welcome\nversion: 1\n").to_json(),
    "alias bomb": _record(
        "a: &a [x,x,x,x,x,x,x,x,x]\n"
        + "".join(
            f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefg", "bcdefgh", strict=True)
        )
    ).to_json(),
    "deep": _record("id: welcome\nsteps: " + "[" * 3000 + "]" * 3000 + "\n").to_json(),
    "huge version in text": _record("id: welcome\nversion: " + "9" * 5000 + "\n").to_json(),
    "huge version in record": _record(WELCOME).to_json().replace(b'"version":1', b'"version":' + b"9" * 5000),
    "too large": b'{"text": "' + b"x" * (MAX_RECORD_BYTES + 1) + b'"}',
    "id mismatch": _record(WELCOME, jid="other").to_json(),
    "wrong kind": orjson.dumps({**orjson.loads(_record(WELCOME).to_json()), "kind": "newsletter"}),
    "journey as campaign": _record(WELCOME, kind="campaign").to_json(),
    "not utf8": b'{"journey_id": "\xff"}',
}


def test_every_poisoned_record_is_refused_with_a_reason_and_the_last_good_stays() -> None:
    book = _book()
    assert book.apply(b"good", _record(WELCOME).to_json(), where="journeys[0]@0") is None
    for n, (name, value) in enumerate(POISON.items(), 1):
        refusal = book.apply(name.encode(), value, where=f"journeys[0]@{n}")
        assert refusal is not None, name
        assert refusal.problems, name
        assert refusal.key == name
    assert len(book.refusals) == len(POISON)
    assert [d["version"] for d in book.summary()["journeys"]["welcome"]] == [1]
    assert book.applied == 1


def test_same_version_with_other_content_is_refused_and_named() -> None:
    existing = [(b"welcome@1", _record(WELCOME).to_json(), "journeys[0]@0")]
    changed = _record(WELCOME.replace("welcome_email_v1", "welcome_email_v2"))
    assert changed.text != WELCOME
    problems = check_deployments(existing, [changed], 30 * 86_400_000)
    assert len(problems) == 2
    assert problems[0].startswith("welcome.yaml:1: version:")
    assert "already deployed with different content" in problems[0]
    # and what changed, against the version on the topic (issue 18, trap 3)
    assert problems[1].startswith("the change against the deployed version:\n--- welcome v1 (deployed)")
    assert "-    template: welcome_email_v1" in problems[1]
    assert "+    template: welcome_email_v2" in problems[1]
    # the same content again, or a new version, is fine
    assert check_deployments(existing, [_record(WELCOME)], 30 * 86_400_000) == []
    bumped = WELCOME.replace("version: 1", "version: 2", 1)
    assert check_deployments(existing, [_record(bumped, version=2)], 30 * 86_400_000) == []


def test_refusals_kept_are_bounded() -> None:
    book = _book()
    for n in range(200):
        book.apply(b"junk", b"junk", where=f"journeys[0]@{n}")
    assert len(book.refusals) == 50
    assert book.refusals[-1].where == "journeys[0]@199"


@given(st.binary(max_size=500))
def test_any_bytes_are_applied_or_refused_never_raised(value: bytes) -> None:
    book = _book()
    refusal = book.apply(None, value, where="journeys[0]@0")
    assert refusal is not None or book.applied == 1


SEGMENT = "kind: segment\nid: vip\nversion: 1\ncondition: \"profile.tier == 'gold'\"\n"


def test_a_segment_is_deployed_and_a_cycle_is_refused_with_its_reason() -> None:
    book = _book()
    record = _record(SEGMENT, kind="segment", jid="vip")
    assert record.key == f"segment:vip@1@{int(AT.timestamp() * 1000)}"
    assert book.apply(record.key.encode(), record.to_json(), where="journeys[0]@0") is None
    assert [d.id for d in book.segment_registry.in_force(int(AT.timestamp() * 1000))] == ["vip"]
    assert book.summary()["segments"]["vip"][0]["version"] == 1
    reads_b = "kind: segment\nid: a\nversion: 1\ncondition: \"'b' in profile.segments\"\n"
    reads_a = "kind: segment\nid: b\nversion: 1\ncondition: \"'a' in profile.segments\"\n"
    assert (
        book.apply(b"a", _record(reads_b, kind="segment", jid="a").to_json(), where="journeys[0]@1") is None
    )
    refusal = book.apply(b"b", _record(reads_a, kind="segment", jid="b").to_json(), where="journeys[0]@2")
    assert refusal is not None
    assert "segments would read each other in a cycle: a -> b -> a" in refusal.problems[0]
    wrong = book.apply(b"c", _record(SEGMENT, kind="segment", jid="other").to_json(), where="journeys[0]@3")
    assert wrong is not None
    assert "record says segment other v1, the file says vip v1" in wrong.problems[0]


def test_check_deployments_refuses_a_segment_cycle_before_it_is_published() -> None:
    reads_b = "kind: segment\nid: a\nversion: 1\ncondition: \"'b' in profile.segments\"\n"
    reads_a = "kind: segment\nid: b\nversion: 1\ncondition: \"'a' in profile.segments\"\n"
    existing = [(b"a", _record(reads_b, kind="segment", jid="a").to_json(), "journeys[0]@0")]
    problems = check_deployments(existing, [_record(reads_a, kind="segment", jid="b")], 30 * 86_400_000)
    assert any("cycle" in p for p in problems), problems


CAMPAIGN = """kind: campaign
id: spring_sale
version: 1
audience: {segment: vip}
send: {channel: email, template: spring_sale_v1}
schedule: {date: 2025-03-12, local_time: "10:00", default_timezone: Europe/Berlin}
"""


def test_a_campaign_is_deployed_under_its_own_key_and_listed() -> None:
    book = _book()
    record = _record(CAMPAIGN, kind="campaign", jid="spring_sale")
    at_ms = int(AT.timestamp() * 1000)
    assert record.key == f"campaign:spring_sale@1@{at_ms}"
    assert book.apply(record.key.encode(), record.to_json(), where="journeys[0]@0") is None
    assert [(d.id, d.version) for d in book.campaign_registry.in_force(at_ms)] == [("spring_sale", 1)]
    assert book.campaign_registry.in_force(at_ms - 1) == ()
    assert book.summary()["campaigns"] == {
        "spring_sale": [{"version": 1, "status": "active", "effective_from_ms": at_ms}]
    }
    assert book.last_applied.startswith("campaign spring_sale v1 from ")
    # (a journey, a segment: their registries are not touched)
    assert book.summary()["journeys"] == {}
    assert book.summary()["segments"] == {}


def test_a_campaign_record_whose_id_or_file_is_wrong_is_refused_with_its_reason() -> None:
    book = _book()
    wrong = book.apply(b"c", _record(CAMPAIGN, kind="campaign", jid="other").to_json(), where="journeys[0]@0")
    assert wrong is not None
    assert wrong.problems == (
        "other.yaml:1: id: record says campaign other v1, the file says spring_sale v1",
    )
    broken = _record(CAMPAIGN.replace("channel: email", "channel: fax"), kind="campaign", jid="spring_sale")
    refusal = book.apply(b"d", broken.to_json(), where="journeys[0]@1")
    assert refusal is not None
    assert refusal.problems[0].startswith("spring_sale.yaml:5: send.channel: unknown value 'fax'")
    assert len(book.campaign_registry) == 0


def test_check_deployments_refuses_a_changed_campaign_of_the_same_version() -> None:
    first = _record(CAMPAIGN, kind="campaign", jid="spring_sale")
    existing = [(first.key.encode(), first.to_json(), "journeys[0]@0")]
    changed = _record(
        CAMPAIGN.replace("spring_sale_v1", "spring_sale_v2"), kind="campaign", jid="spring_sale"
    )
    problems = check_deployments(existing, [changed], 30 * 86_400_000)
    assert problems[0] == (
        "spring_sale.yaml:1: version: campaign spring_sale version 1 is already deployed with different "
        "content; give the changed campaign a new version number"
    )
    assert "+send: {channel: email, template: spring_sale_v2}" in problems[1]
    paused = _record(CAMPAIGN + "status: paused\n", kind="campaign", jid="spring_sale")
    assert check_deployments(existing, [paused], 30 * 86_400_000) == []  # (a status change: same content)


def test_prepare_deployments_tells_a_campaign_file_from_the_others(tmp_path: Path) -> None:
    (tmp_path / "spring.yaml").write_text(CAMPAIGN)
    (tmp_path / "vip.yaml").write_text(SEGMENT)
    (tmp_path / "welcome.yaml").write_text(WELCOME)
    records = prepare_deployments(sorted(tmp_path.glob("*.yaml")), AT)
    assert [(r.kind, r.journey_id) for r in records] == [
        ("campaign", "spring_sale"), ("segment", "vip"), ("journey", "welcome"),
    ]  # fmt: skip
    assert records[0].content_hash == load_campaign_text(CAMPAIGN).content_hash
    (tmp_path / "broken.yaml").write_text(CAMPAIGN.replace("10:00", "26:00"))
    with pytest.raises(JourneyValidationError) as err:
        prepare_deployments([tmp_path / "broken.yaml"], AT)
    assert err.value.problems == [
        f"{tmp_path}/broken.yaml:6: schedule.local_time: '26:00' is not a time of day "
        '(write "HH:MM", e.g. "10:00")'
    ]
