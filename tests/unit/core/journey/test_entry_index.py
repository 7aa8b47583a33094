"""The entry index only skips journeys an event cannot enter: the same entries as testing them all."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.contracts.engine_event import Event
from orchestrator.core.customer import CustomerLogic
from orchestrator.core.journey import JourneyRegistry, load_journey_text
from orchestrator.core.journey.entry_index import required_text

T0 = 1_741_000_000_000


def test_the_text_an_entry_condition_requires() -> None:
    assert required_text('event.source == "pos"') == (("source",), "pos")
    assert required_text('"vip" == event.properties.segment') == (("properties", "segment"), "vip")
    assert required_text('event.properties.total > 5 && event.properties.segment == "vip"') == (
        ("properties", "segment"),
        "vip",
    )
    for free in (
        'event.source != "pos"',
        'event.source == "a" || event.source == "b"',
        "event.properties.n == 1",
        'profile.tier == "gold"',
        'journey.entry_event.source == "pos"',
        "event.properties.segment == event.source",
        "not a condition ((",
    ):
        assert required_text(free) is None, free


CONDITIONS = [
    'event.properties.segment == "vip"',
    'event.properties.segment == "lapsed"',
    '"1" == event.properties.segment',
    'event.source == "pos" && event.properties.segment == "vip"',
    'event.properties.segment == "vip" || event.source == "pos"',
    "event.properties.n > 2",
    None,
]


def _registry(indexed: bool) -> JourneyRegistry:
    class Unindexed(JourneyRegistry):
        def entry_candidates(self, event_type: str, event: dict[str, Any]) -> tuple[str, ...]:
            return self.entered_by(event_type)

    registry = JourneyRegistry() if indexed else Unindexed()
    for i, condition in enumerate(CONDITIONS):
        cond = "" if condition is None else f"  condition: '{condition}'\n"
        text = (
            f"id: j{i}\nversion: 1\nname: J{i}\nentry:\n  event: segment.entered\n{cond}"
            "re_entry: {policy: always}\n"
            "steps:\n  hi: {type: send, channel: email, category: transactional, template: t}\n"
        )
        registry.deploy(load_journey_text(text, f"j{i}.yaml"), 0)
    return registry


values = st.one_of(
    st.sampled_from(["vip", "lapsed", "1", "VIP", ""]), st.integers(0, 3), st.none(), st.just({"a": 1})
)


@settings(max_examples=200, deadline=None)
@given(
    segment=st.one_of(st.just(None), values),
    source=st.sampled_from(["pos", "web"]),
    n=st.one_of(st.integers(0, 5), st.text(max_size=2)),
)
def test_the_same_journeys_are_entered_with_and_without_the_index(segment: Any, source: str, n: Any) -> None:
    properties: dict[str, Any] = {"n": n}
    if segment is not None:
        properties["segment"] = segment
    entered = []
    for indexed in (True, False):
        event = Event(
            event_id="e1", type="segment.entered", identifiers=(("customer_id", "c1"),),
            occurred_ms=T0, source=source, properties=properties,
        )  # fmt: skip
        out = CustomerLogic(_registry(indexed)).on_event("c1", None, event, T0)
        entered.append([(t.journey_id, t.kind) for t in out.transitions])
    assert entered[0] == entered[1]


def test_an_event_enters_the_journeys_its_text_selects() -> None:
    event = Event(
        event_id="e1", type="segment.entered", identifiers=(("customer_id", "c1"),), occurred_ms=T0,
        source="pos", properties={"segment": "vip", "n": 3},
    )  # fmt: skip
    registry = _registry(indexed=True)
    assert list(registry.entry_candidates("segment.entered", event.view())) == ["j0", "j3", "j4", "j5", "j6"]
    out = CustomerLogic(registry).on_event("c1", None, event, T0)
    assert [t.journey_id for t in out.transitions if t.kind == "entered"] == ["j0", "j3", "j4", "j5", "j6"]
