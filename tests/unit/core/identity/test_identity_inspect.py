"""`orchestrator simulate --state-out` and `orchestrator inspect CUSTOMER --from-simulate`."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from identity_helpers import CART, T0, H, M, line

from orchestrator.cli import main
from orchestrator.cli.inspect import customer_document, render
from orchestrator.core.engine.state import CustomerState
from orchestrator.simulate.state_file import read_state_file


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    (journeys / "cart.yaml").write_text(CART)
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b"\n".join(
            [
                line(
                    "profile.updated",
                    T0 - H,
                    {"customer_id": "C", "email": "known@example.com"},
                    {"tier": "gold"},
                ),
                line("cart.updated", T0, {"anonymous_id": "a1"}, {"item_count": 2}),
                line("account.login", T0 + 10 * M, {"customer_id": "C", "anonymous_id": "a1"}),
            ]
        )
    )
    out = tmp_path / "state.json"
    code = main(["simulate", "--journeys", str(journeys), "--events", str(events), "--state-out", str(out)])
    assert code == 0
    return out


def test_state_file_round_trips(state_file: Path) -> None:
    sim = read_state_file(state_file)
    assert set(sim.customers) == {"C"}
    assert sim.graph.lookup("anonymous_id:a1") == "C"
    assert sim.graph.lookup("email:KNOWN@example.com") == "C"
    assert sim.graph.lookup("email:nobody@x") is None


def test_inspect_by_old_key_shows_the_canonical_customer(
    state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", "anonymous_id:a1", "--from-simulate", str(state_file)]) == 0
    text = capsys.readouterr().out
    assert "customer C (asked: anonymous_id:a1)" in text
    assert "aliases: anonymous_id:a1" in text
    assert "email: known@example.com" in text
    assert "cart v1 #1: at wait_1h since 2025-03-03T09:00:00Z, wakes 2025-03-03T10:00:00Z" in text


def test_inspect_json(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "C", "--from-simulate", str(state_file), "--json"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["identities"] == {"anonymous_id": ["a1"], "customer_id": ["C"], "email": ["known@example.com"]}
    assert doc["profile"]["attributes"] == {"tier": "gold"}
    assert doc["profile"]["consent"]["email"] == {"marketing": False, "transactional": True}
    assert [(i["journey"], i["step"], i["next_wakeup"]) for i in doc["instances"]] == [
        ("cart", "wait_1h", "2025-03-03T10:00:00Z")
    ]
    assert doc["next_wakeup"] == "2025-03-03T10:00:00Z"
    state = read_state_file(state_file).customers["C"]
    assert render(customer_document(state)).startswith("customer C")


def test_inspect_unknown_customer_or_bad_file(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "nobody", "--from-simulate", str(state_file)]) == 2
    assert "no customer 'nobody'" in capsys.readouterr().err
    bad = state_file.with_name("bad.json")
    bad.write_text("[]")
    assert main(["inspect", "C", "--from-simulate", str(bad)]) == 2
    assert "not a state file" in capsys.readouterr().err


def test_inspect_shows_the_subscription_choices() -> None:
    state = CustomerState.new("C")
    assert "subscription choices" not in render(customer_document(state))
    state.profile.subscriptions = {"news": [False, T0], "offers": [True, T0 + H]}
    doc = customer_document(state)
    assert doc["profile"]["subscriptions"]["news"] == {"subscribed": False, "at": "2025-03-03T09:00:00Z"}
    assert "subscription choices: news no (2025-03-03T09:00:00Z), offers yes (2025-03-03T10:00:00Z)" in (
        render(doc)
    )
