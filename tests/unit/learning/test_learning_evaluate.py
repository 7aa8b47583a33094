"""The synthetic history with known preferences, and ``orchestrator evaluate`` on it: the choices beat
random where preferences are strong, the same input gives the same output, and no data says so."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from orchestrator.cli import main
from orchestrator.learning.evaluate import EvaluateOptions, evaluate, format_table
from orchestrator.learning.fit import fit_model, load_journeys
from orchestrator.learning.history import LearningError, read_files
from orchestrator.learning.synthetic import SPLIT_RATES, generate, load_truth


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    generate(300, 4, seed=7, out=out)
    return out


def test_the_generator_is_deterministic_and_writes_valid_files(synthetic: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(300, 4, seed=7, out=again)
    for name in ("events.jsonl", "actions.jsonl", "decisions.jsonl", "truth.json"):
        assert (again / name).read_bytes() == (synthetic / name).read_bytes()
    other = tmp_path / "other"
    generate(300, 4, seed=8, out=other)
    assert (other / "events.jsonl").read_bytes() != (synthetic / "events.jsonl").read_bytes()
    history = read_files(
        synthetic / "events.jsonl", synthetic / "actions.jsonl", synthetic / "decisions.jsonl"
    )
    assert history.skipped == 0
    assert {s.channel for s in history.sends} == {"email", "sms", "push"}
    truth = load_truth(synthetic / "truth.json")
    assert len(truth) == 300
    c = next(iter(truth.values()))
    assert len(c.affinity) == 168
    assert max(c.affinity) == 1.0
    assert {j.id for j in load_journeys([synthetic / "journeys"])} == {"digest", "nudge", "promo"}


def test_fit_on_the_synthetic_history_sees_the_split_and_the_rates(synthetic: Path) -> None:
    history = read_files(
        synthetic / "events.jsonl", synthetic / "actions.jsonl", synthetic / "decisions.jsonl"
    )
    bounds = history.bounds()
    assert bounds is not None
    model = fit_model(history, bounds[0], bounds[1] + 1, journeys=load_journeys([synthetic / "journeys"]))
    branches = model.splits["promo"]["ab"]
    assert set(branches) == {"a", "b"}  # the holdout sends nothing: not counted
    assert SPLIT_RATES["b"] > SPLIT_RATES["a"]
    assert branches["b"].rate > branches["a"].rate
    for ch in ("email", "sms", "push"):
        stats = model.channels[ch]
        assert 0 < stats.engaged < stats.sends
        assert sum(model.hours[ch].sends) == stats.sends


def test_choices_beat_random_where_preferences_are_strong(synthetic: Path) -> None:
    truth = load_truth(synthetic / "truth.json")
    result = evaluate(read_files(synthetic / "events.jsonl", synthetic / "actions.jsonl"), truth=truth)
    st = result["send_time"]
    assert st["pairs"] > 50
    assert st["hit_hour_of_day"]["chosen"] > st["hit_hour_of_day"]["random"]
    # (the hour of the week is too sparse for an ordering on 300 customers: one week of test data)
    p = st["true_probability"]
    assert p["chosen"] > p["best_hour"] > p["random"]
    assert p["chosen"] > p["ten_am"]
    ch = result["channel"]
    assert ch["customers"] > 200
    assert ch["true_probability"]["chosen"] >= ch["true_probability"]["random"]
    table = format_table(result)
    assert "true answer probability" in table
    assert "chosen/random" in table


def test_evaluate_is_deterministic(synthetic: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [f"--{name}={synthetic / f'{name}.jsonl'}" for name in ("events", "actions", "decisions")]
    files.append(f"--truth={synthetic / 'truth.json'}")
    args = ["evaluate", *files, "--journeys", str(synthetic / "journeys"), "--train", "0.7", "--json"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first
    result = orjson.loads(first)
    assert result["train"] == 0.7
    assert set(result["send_time"]["hit_hour_of_week"]) == {"chosen", "best_hour", "ten_am", "random"}
    other = evaluate(
        read_files(synthetic / "events.jsonl", synthetic / "actions.jsonl"), EvaluateOptions(seed=3)
    )
    assert (
        other["send_time"]["hit_hour_of_week"]["chosen"] == result["send_time"]["hit_hour_of_week"]["chosen"]
    )


def test_no_data_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(LearningError, match="no events in the history: nothing to evaluate"):
        evaluate(read_files(empty, empty))
    assert main(["evaluate", "--events", str(empty), "--actions", str(empty)]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    with pytest.raises(LearningError, match="--train must be between 0 and 1"):
        evaluate(read_files(empty, empty), EvaluateOptions(train=1.5))
