"""Model files (kind: model): read back as written, problems with file:line, the deployment timeline."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.core.learning.loader import dump_model, is_model_text, load_model_file, load_model_text
from orchestrator.core.learning.model import BranchStats, ChannelStats, EngagementModel, HourStats
from orchestrator.core.learning.registry import ModelRegistry
from orchestrator.exceptions import ModelValidationError

ROOT = Path(__file__).resolve().parents[4]
EXAMPLE = ROOT / "journeys" / "run_stage" / "engagement_model.yaml"


def _model(version: int = 1, **kw: object) -> EngagementModel:
    hours = HourStats(tuple(range(168)), tuple(h // 2 for h in range(168)))
    fields: dict[str, object] = {
        "id": "engagement", "version": version, "fitted_from_ms": 1_738_368_000_000,
        "fitted_to_ms": 1_740_960_000_000, "counts": {"events": 9, "actions": 4}, "prior_weight": 12.5,
        "channels": {"email": ChannelStats(10, 3, 3, 1), "sms": ChannelStats(0, 0)},
        "hours": {"email": hours},
        "splits": {"winback": {"ab": {"a": BranchStats(10, 2), "b": BranchStats(12, 5)}}},
    }  # fmt: skip
    fields.update(kw)
    return EngagementModel(**fields)  # type: ignore[arg-type]


def test_a_written_model_reads_back_equal() -> None:
    model = _model()
    text = dump_model(model)
    assert is_model_text(text)
    again = load_model_text(text, "m.yaml")
    assert replace(again, name="", source_name="<text>", content_hash="") == model
    assert dump_model(again) == text
    assert again.content_hash == load_model_text(text, "other.yaml").content_hash


def test_the_example_model_loads_and_gives_priors() -> None:
    model = load_model_file(EXAMPLE)
    assert model.key == "engagement@1"
    prior = model.hour_prior("email")
    assert prior is not None
    assert sum(prior) == pytest.approx(1.0)
    assert max(range(168), key=lambda h: prior[h]) % 24 == 18  # evenings
    assert model.hour_prior("fax") is None
    assert model.branch_stats("smart_winback", "offer")["free_shipping"].rate > 0.1


def test_a_model_without_data_is_valid() -> None:
    text = (
        "kind: model\nid: empty\nversion: 1\n"
        'fitted: {from: "2025-01-01T00:00:00Z", to: "2025-01-08T00:00:00Z"}\n'
    )
    model = load_model_text(text)
    assert (model.channels, model.hours, model.splits) == ({}, {}, {})
    assert model.hour_prior("email") is None


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("prior_weight: 12.5", "prior_weight: -1", "m.yaml:9: prior_weight: must be above 0"),
        (
            "  email: {sends: 10, engaged: 3,",
            "  email: {sends: 1, engaged: 3,",
            "channels.email.engaged: 3 answered",
        ),
        ('  from: "2025-02-01', '  from: "yesterday', "fitted.from: 'yesterday"),
        ("  sms: {", "  telegram: {", "channels.telegram: unknown field"),
        ('"a": {entered: 10, converted: 2}', '"a": {entered: 1, converted: 2}', "2 conversions of 1 entries"),
    ],
)
def test_problems_name_the_file_line_and_field(old: str, new: str, problem: str) -> None:
    text = dump_model(_model())
    assert old in text
    with pytest.raises(ModelValidationError) as exc:
        load_model_text(text.replace(old, new), "m.yaml")
    assert any(problem in p for p in exc.value.problems), exc.value.problems
    assert all(p.startswith("m.yaml:") for p in exc.value.problems)


def test_hour_lists_must_have_168_values() -> None:
    text = dump_model(_model()).replace("sends: [0, 1, 2,", "sends: [1, 2,")
    with pytest.raises(ModelValidationError, match=r"hour_of_week.email.sends: expected a list of 168"):
        load_model_text(text, "m.yaml")


def test_the_timeline_picks_the_model_in_force_at_a_time() -> None:
    def loaded(version: int, weight: float) -> EngagementModel:
        return load_model_text(dump_model(_model(version, prior_weight=weight)))

    registry = ModelRegistry()
    assert registry.current(0) is None
    registry.deploy(loaded(1, 1.0), 1000)
    registry.deploy(loaded(2, 3.0), 5000)
    assert registry.current(999) is None
    assert registry.current(1000).version == 1  # type: ignore[union-attr]
    assert registry.current(5000).version == 2  # type: ignore[union-attr]
    with pytest.raises(ModelValidationError, match="already deployed with different content"):
        registry.deploy(loaded(2, 4.0), 9000)
    registry.deploy(loaded(2, 3.0), 9000)  # the same content again: fine
