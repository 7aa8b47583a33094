"""``orchestrator fit`` on small hand-made files: rates per send, local hours across DST, the range,
split branches and conversions, the written file, no data, and bad lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.cli import main
from orchestrator.core.learning.loader import dump_model, load_model_file, load_model_text
from orchestrator.core.learning.timing import local_hour_of_week
from orchestrator.learning.fit import FitOptions, branch_send_steps, fit_model, load_journeys
from orchestrator.learning.history import History, read_files

T0 = "2026-01-05T"  # a Monday, winter (Berlin: UTC+1)


def event(eid: str, etype: str, at: str, who: str, *, key: bool = False, **extra: Any) -> dict[str, Any]:
    ids = {"customer_key": who} if key else {"customer_id": who}
    return {"event_id": eid, "type": etype, "identifiers": ids, "occurred_at": at, "source": "test", **extra}


def action(aid: str, ch: str, who: str, at: str, journey: str = "j", step: str = "s") -> dict[str, Any]:
    return {
        "action_id": aid, "channel": ch, "category": "marketing", "customer_id": who, "recipient": "x@y.z",
        "journey_id": journey, "journey_version": 1, "step_id": step, "template_id": "t", "created_at": at,
    }  # fmt: skip


def decision(
    aid: str, ch: str, who: str, at: str, journey: str, step: str, kind: str = "sent"
) -> dict[str, Any]:
    return {
        "decision_id": f"dec_{aid}_{kind}", "kind": kind, "reason": "allowed", "customer_id": who,
        "action_id": aid, "original_action_id": aid, "journey_id": journey, "journey_version": 1,
        "step_id": step, "category": "marketing", "channel": ch, "original_channel": ch, "at": at,
    }  # fmt: skip


def write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else orjson.dumps(r).decode()) + "\n" for r in rows))
    return path


def history(
    tmp_path: Path, events: list[Any], actions: list[Any], decisions: list[Any] | None = None
) -> History:
    d = write(tmp_path / "d.jsonl", decisions) if decisions is not None else None
    return read_files(write(tmp_path / "e.jsonl", events), write(tmp_path / "a.jsonl", actions), d)


def ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


RANGE = (ms("2026-01-01T00:00:00Z"), ms("2026-12-31T00:00:00Z"))


def test_rates_are_per_send_not_per_event(tmp_path: Path) -> None:
    h = history(
        tmp_path,
        [
            event("o1", "email.opened", f"{T0}10:00:00Z", "c1", key=True, action_id="a1"),
            event("o2", "email.opened", f"{T0}11:00:00Z", "c1", key=True, action_id="a1"),  # 2nd open: once
            event("k1", "email.clicked", f"{T0}11:05:00Z", "c1", key=True, action_id="a1"),
            event("o3", "email.opened", f"{T0}12:00:00Z", "c2", key=True, action_id="nosuch"),  # no send
            event("o4", "email.opened", f"{T0}12:00:00Z", "c2", key=True),  # no action id
            event("o5", "email.opened", "2026-01-12T12:00:00Z", "c3", key=True, action_id="a3"),  # too late
            event("s1", "sms.clicked", f"{T0}10:30:00Z", "c1", key=True, action_id="a4"),
        ],
        [
            action("a1", "email", "c1", f"{T0}09:00:00Z"),
            action("a2", "email", "c2", f"{T0}09:00:00Z"),
            action("a3", "email", "c3", f"{T0}09:00:00Z"),
            action("a4", "sms", "c1", f"{T0}10:00:00Z"),
        ],
    )
    model = fit_model(h, *RANGE)
    email = model.channels["email"]
    assert (email.sends, email.engaged, email.opened, email.clicked) == (3, 1, 1, 1)
    assert (model.channels["sms"].sends, model.channels["sms"].engaged) == (1, 1)
    hours = model.hours["email"]
    assert (hours.sends[9], hours.engaged[9]) == (3, 1)  # Monday 09:00 UTC (no zone known)
    assert (sum(hours.sends), sum(hours.engaged)) == (3, 1)
    assert model.counts == {"events": 7, "actions": 4, "decisions": 0, "customers": 3}


def test_attribution_window_is_an_option(tmp_path: Path) -> None:
    h = history(
        tmp_path,
        [event("o5", "email.opened", "2026-01-09T12:00:00Z", "c3", key=True, action_id="a3")],
        [action("a3", "email", "c3", f"{T0}09:00:00Z")],
    )
    assert fit_model(h, *RANGE).channels["email"].engaged == 0  # 4 days > 3 days
    assert fit_model(h, *RANGE, FitOptions(attribution_ms=5 * 86_400_000)).channels["email"].engaged == 1


def test_local_hour_across_dst(tmp_path: Path) -> None:
    # 09:00 in Berlin: 08:00 UTC in January (CET), 07:00 UTC in July (CEST); both Mondays
    h = history(
        tmp_path,
        [
            event(
                "z", "profile.updated", "2025-12-01T00:00:00Z", "c1", properties={"timezone": "Europe/Berlin"}
            ),
            event("o1", "email.opened", "2026-01-05T08:30:00Z", "c1", key=True, action_id="jan"),
        ],
        [
            action("jan", "email", "c1", "2026-01-05T08:00:00Z"),
            action("jul", "email", "c1", "2026-07-06T07:00:00Z"),
        ],
    )
    model = fit_model(h, *RANGE)  # the zone was set before the range: it still applies
    monday_9 = 9
    assert model.hours["email"].sends[monday_9] == 2
    assert model.hours["email"].engaged[monday_9] == 1
    assert local_hour_of_week(ms("2026-07-06T07:00:00Z"), "Europe/Berlin") == monday_9


def test_zone_is_the_latest_before_the_send(tmp_path: Path) -> None:
    h = history(
        tmp_path,
        [
            event("z1", "profile.updated", f"{T0}00:00:00Z", "c1", properties={"timezone": "Asia/Tokyo"}),
            event(
                "z2",
                "profile.updated",
                f"{T0}12:00:00Z",
                "c1",
                properties={"attributes": {"timezone": "UTC"}},
            ),
        ],
        [action("a1", "email", "c1", f"{T0}09:00:00Z"), action("a2", "email", "c1", f"{T0}13:00:00Z")],
    )
    sends = fit_model(h, *RANGE).hours["email"].sends
    assert sends[18] == 1  # 09:00 UTC = 18:00 in Tokyo
    assert sends[13] == 1  # after the change: UTC


def test_range_filtering(tmp_path: Path) -> None:
    h = history(
        tmp_path,
        [
            event("o1", "email.opened", "2026-01-05T10:00:00Z", "c1", key=True, action_id="in"),
            event("o2", "email.opened", "2026-03-05T10:00:00Z", "c2", key=True, action_id="out"),
        ],
        [
            action("in", "email", "c1", "2026-01-05T09:00:00Z"),
            action("out", "email", "c2", "2026-03-05T09:00:00Z"),
        ],
    )
    model = fit_model(h, ms("2026-01-01T00:00:00Z"), ms("2026-02-01T00:00:00Z"))
    assert (model.channels["email"].sends, model.channels["email"].engaged) == (1, 1)
    assert model.counts == {"events": 1, "actions": 1, "decisions": 0, "customers": 1}
    assert (model.fitted_from_ms, model.fitted_to_ms) == (
        ms("2026-01-01T00:00:00Z"),
        ms("2026-02-01T00:00:00Z"),
    )


SPLIT_JOURNEY = """\
id: promo
version: 1
entry:
  event: promo.eligible
goals:
  - name: ordered
    event: order.completed
steps:
  ab:
    type: split
    branches:
      - name: a
        percent: 45
        next: mail_a
      - name: b
        percent: 45
        next: wait_b
      - name: control
        percent: 10
        holdout: true
  mail_a:
    type: send
    channel: email
    category: marketing
    template: promo_a
    campaign: promo
    next: common
  wait_b:
    type: wait
    duration: 1d
    next: mail_b
  mail_b:
    type: send
    channel: email
    category: marketing
    template: promo_b
    campaign: promo
    next: common
  common:
    type: send
    channel: email
    category: marketing
    template: reminder
    campaign: promo
"""


def test_split_branches_and_conversions(tmp_path: Path) -> None:
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "promo.yaml").write_text(SPLIT_JOURNEY)
    journeys = load_journeys([tmp_path / "journeys"])
    split = journeys[0].steps["ab"]
    assert branch_send_steps(journeys[0], split) == {"a": {"mail_a"}, "b": {"mail_b"}}  # type: ignore[arg-type]
    day = 86_400_000
    rows = [
        # a: c1 converts within the window, c2 too late, c3 never; b: c4 and c5 convert
        ("c1", "mail_a", "2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z"),
        ("c2", "mail_a", "2026-01-05T09:00:00Z", "2026-01-20T09:00:00Z"),
        ("c3", "mail_a", "2026-01-05T09:00:00Z", None),
        ("c4", "mail_b", "2026-01-05T09:00:00Z", "2026-01-05T10:00:00Z"),
        ("c5", "mail_b", "2026-01-05T09:00:00Z", "2026-01-07T09:00:00Z"),
    ]
    events = [event(f"g{c}", "order.completed", g, c) for c, _, _, g in rows if g]
    events.append(event("early", "order.completed", "2026-01-04T09:00:00Z", "c3"))  # before entering
    acts = [action(f"{c}_{s}", "email", c, at, "promo", s) for c, s, at, _ in rows]
    acts.append(action("c1_common", "email", "c1", "2026-01-05T10:00:00Z", "promo", "common"))
    decs = [decision(f"{c}_{s}", "email", c, at, "promo", s) for c, s, at, _ in rows]
    decs.append(decision("c6_mail_b", "email", "c6", "2026-01-05T09:00:00Z", "promo", "mail_b", "suppressed"))
    with_decisions = fit_model(history(tmp_path, events, acts, decs), *RANGE, journeys=journeys)
    branches = with_decisions.splits["promo"]["ab"]
    assert {b: (s.entered, s.converted) for b, s in branches.items()} == {"a": (3, 1), "b": (3, 2)}
    # without decisions: the actions say who entered (c6 was suppressed: no action)
    actions_only = fit_model(history(tmp_path, events, acts), *RANGE, journeys=journeys)
    branches = actions_only.splits["promo"]["ab"]
    assert {b: (s.entered, s.converted) for b, s in branches.items()} == {"a": (3, 1), "b": (2, 2)}
    longer = fit_model(history(tmp_path, events, acts), *RANGE, FitOptions(conversion_ms=20 * day), journeys)
    assert longer.splits["promo"]["ab"]["a"].converted == 2


def test_the_written_file_loads_back_equal(tmp_path: Path) -> None:
    (tmp_path / "promo.yaml").write_text(SPLIT_JOURNEY)
    h = history(
        tmp_path,
        [
            event(
                "z",
                "profile.updated",
                "2026-01-01T00:00:00Z",
                "c1",
                properties={"timezone": "America/New_York"},
            ),
            event("o1", "push.opened", f"{T0}10:00:00Z", "c1", key=True, action_id="p1"),
            event("g", "order.completed", f"{T0}12:00:00Z", "c1"),
        ],
        [
            action("p1", "push", "c1", f"{T0}09:00:00Z"),
            action("m1", "email", "c1", f"{T0}09:00:00Z", "promo", "mail_a"),
        ],
    )
    model = fit_model(h, *RANGE, FitOptions("eng", 4, 25.0), load_journeys([tmp_path / "promo.yaml"]))
    back = load_model_text(dump_model(model))
    assert back == model
    assert back.hour_prior("push") is not None
    assert back.splits["promo"]["ab"]["a"].converted == 1


def test_no_data_gives_a_valid_model_with_zero_counts(tmp_path: Path) -> None:
    model = fit_model(history(tmp_path, [], []), *RANGE)
    assert model.counts == {"events": 0, "actions": 0, "decisions": 0, "customers": 0}
    assert (model.channels, model.hours, model.splits) == ({}, {}, {})
    assert load_model_text(dump_model(model)) == model


def test_cli_skips_bad_lines_naming_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = write(
        tmp_path / "e.jsonl",
        [
            event("o1", "email.opened", f"{T0}10:00:00Z", "c1", key=True, action_id="a1"),
            "{not json",
            {"event_id": "x", "type": "email.opened"},
        ],
    )
    actions = write(
        tmp_path / "a.jsonl", [action("a1", "email", "c1", f"{T0}09:00:00Z"), "", '{"action_id": 3}']
    )
    previous = tmp_path / "prev.yaml"
    previous.write_text(dump_model(fit_model(History(), *RANGE, FitOptions(version=6))))
    out = tmp_path / "model.yaml"
    code = main(["fit", "--events", str(events), "--actions", str(actions), "--from", "2026-01-01T00:00:00Z",
                 "--to", "2026-02-01T00:00:00Z", "--previous", str(previous), "-o", str(out)])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert f"{events}:2: not an event: not valid JSON" in err
    assert f"{events}:3: not an event: field 'identifiers': is required" in err
    assert f"{actions}:3: not an action:" in err
    assert "skipped 3 invalid line(s)" in err
    model = load_model_file(out)
    assert model.version == 7
    assert (model.channels["email"].sends, model.channels["email"].engaged) == (1, 1)


def test_cli_says_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "-o", str(tmp_path / "m.yaml")]) == 2
    assert "needs --events FILE and --actions FILE" in capsys.readouterr().err
    missing = tmp_path / "nope.jsonl"
    assert main(["fit", "--events", str(missing), "--actions", str(missing), "-o", str(tmp_path / "m")]) == 2
    assert f"{missing}: no such file" in capsys.readouterr().err
