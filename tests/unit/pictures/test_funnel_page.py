"""``orchestrator simulate ... --html``: one self-contained page (no script, no external resource) with
each journey's funnel, its split branches (the holdout marked) and its picture; every text escaped."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from picture_helpers import EXAMPLES, JOURNEYS, example_counts, needs_dot

from orchestrator.cli import main
from orchestrator.core.journey import load_journey_file
from orchestrator.pictures.funnel_page import funnel_page


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href") or (k == "xlink:href")]

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(" ".join(data.split()))


def _page(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _self_contained(page: _Page) -> None:
    assert "script" not in page.tags
    assert "link" not in page.tags
    assert "img" not in page.tags
    assert all(not re.match(r"(https?:)?//", link) for link in page.links), page.links


@needs_dot
def test_simulate_html_has_the_funnel_splits_and_the_picture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "funnel.html"
    deployments = EXAMPLES / "smart_winback.deployments.yaml"
    events = EXAMPLES / "smart_winback.events.jsonl"
    args = ["simulate", "--deployments", str(deployments), "--events", str(events), "--html", str(out)]
    assert main(args) == 0
    assert f"funnel page written to {out}" in capsys.readouterr().out
    text = out.read_text()
    page = _page(text)
    _self_contained(page)
    assert "svg" in page.tags
    counts = example_counts("smart_winback", until=False)
    joined = " | ".join(page.text)
    assert "Smart win-back" in joined
    assert f"{counts['entered']} entered, {counts['converted']} converted" in joined
    for step, n in counts["steps"].items():
        assert re.search(rf"{step} \| \w+ \| (now: \d+ \| )?{n} \|", joined), step
    for step, n in counts["occupancy"].items():
        assert f"{step} | wait | now: {n}" in joined or f"{step} | split | now: {n}" in joined
    for branch, c in counts["splits"]["offer"].items():
        rate = f"{100 * c['converted'] / c['entered']:.1f} %"
        mark = " | holdout" if branch == "holdout" else ""
        assert f"{branch}{mark} | {c['entered']} | {c['converted']} | {rate}" in joined
    assert "split offer | adaptive" in joined
    assert "send: send_ten_off" in joined  # the picture's texts


def test_the_page_escapes_every_name() -> None:
    welcome = load_journey_file(JOURNEYS / "welcome.yaml")
    evil = '<script>alert("x")</script> & co'
    d = dataclasses.replace(welcome, name=evil)
    counts = {**example_counts("welcome"), "goals": {evil: 1}, "exits": {"<b>why</b>": 2}}
    text = funnel_page({"journeys": {"welcome": counts}}, {"welcome": d}, title=evil, subtitle=evil)
    assert "<script>" not in text
    assert "<b>why</b>" not in text
    page = _page(text)
    _self_contained(page)
    assert evil in page.text
    assert "exit <b>why</b>" in " ".join(page.text)


def test_without_dot_the_page_says_how_to_get_the_pictures(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    welcome = load_journey_file(JOURNEYS / "welcome.yaml")
    text = funnel_page({"journeys": {"welcome": example_counts("welcome")}}, {"welcome": welcome})
    assert "svg" not in _page(text).tags
    assert "install the Debian package graphviz" in text
    assert "6 entered" in text
