"""The one acceptance rule for deployment records (workers and `orchestrator deploy` alike): a poisoned
record is refused with its reason, never raised, and the last good version stays."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.contracts import JourneyDeployment
from orchestrator.core.deployments import MAX_RECORD_BYTES, DeploymentBook
from orchestrator.core.journey import JourneyRegistry
from orchestrator.kafka.deploy import check_deployments

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
    "wrong kind": orjson.dumps({**orjson.loads(_record(WELCOME).to_json()), "kind": "campaign"}),
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
