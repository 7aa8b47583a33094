"""``orchestrator diff --html``: one self-contained page with the report's tables and both pictures side
by side (parsed with html.parser), every text escaped, and a page still written without Graphviz."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.exceptions import GraphvizMissingError
from orchestrator.preview import preview
from orchestrator.preview.page import render_page
from tests.unit.preview.preview_helpers import (
    WELCOME,
    WELCOME_EVENTS,
    WINBACK,
    WINBACK_EVENTS,
    more_offer_20,
    shorter_timeout,
    write_version,
)


class Page(HTMLParser):
    """What the tests look at: the tags met, the pictures' titles and svgs, the tables' header rows,
    and the text outside of the svgs."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.svgs = 0
        self.in_svg = 0
        self.pictures: list[str] = []
        self.headers: list[list[str]] = []
        self.text: list[str] = []
        self._picture = False
        self._h2 = False
        self._th: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "svg":
            self.svgs += 1
            self.in_svg += 1
        if tag == "div" and ("class", "picture") in attrs:
            self._picture = True
        if tag == "h2" and self._picture:
            self._h2 = True
        if tag == "thead":
            self._th = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.in_svg -= 1
        if tag == "h2":
            self._h2 = False
        if tag == "div":
            self._picture = False
        if tag == "thead" and self._th is not None:
            self.headers.append(self._th)
            self._th = None

    def handle_data(self, data: str) -> None:
        if self._h2:
            self.pictures.append(data)
        if self._th is not None and data.strip():
            self._th.append(data)
        if not self.in_svg:
            self.text.append(data)


def test_the_page_has_the_tables_and_both_pictures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = write_version(tmp_path, WINBACK, more_offer_20)
    out = tmp_path / "preview.html"
    code = main(["diff", str(WINBACK), str(new), "--events", str(WINBACK_EVENTS), "--html", str(out)])
    shown, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert shown.startswith("Impact preview of journey winback")  # (the text report is printed too)
    page = Page(out.read_text())
    assert page.tags[:2] == ["html", "head"]
    assert "style" in page.tags
    assert not {"script", "link", "img", "iframe"} & set(page.tags)  # self-contained, nothing to fetch
    assert page.svgs == 2
    assert page.pictures == ["v1: the old run", "v2: the new run"]
    text = "".join(page.text)
    assert "entered 20, converted 6, actions 18, exit holdout_window 1, exit no_response 13" in text
    assert page.headers == [
        ["journey", "step", "channel", "v1", "v2", "added", "removed", "moved", "changed"],
        ["customer", "change", "journey/step", "channel", "template", "at"],
        ["funnel of winback", "v1", "v2", "change"],
    ]
    assert "Customers whose sends change: 9 of 21" in text
    svg = out.read_text()
    assert "12 arrived" in svg  # v1's counts on its picture: email_10
    assert "15 arrived" in svg  # v2's: email_20


def test_every_text_is_escaped(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(WELCOME_EVENTS.read_text().replace('"w-ann"', '"<b>ann</b>&co"'))
    p = preview(WELCOME, write_version(tmp_path, WELCOME, shorter_timeout), events)
    assert "<b>ann</b>&co" in p.by_customer()
    page, problems = render_page(p)
    assert problems == []
    assert "<b>" not in page
    assert "&lt;b&gt;ann&lt;/b&gt;&amp;co" in page
    assert "<b>ann</b>&co" in "".join(Page(page).text)


def test_without_graphviz_the_page_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*_: object) -> str:
        raise GraphvizMissingError("Graphviz's 'dot' program is not installed <here>")

    monkeypatch.setattr("orchestrator.preview.page.journey_svg", missing)
    p = preview(WELCOME, write_version(tmp_path, WELCOME, shorter_timeout), WELCOME_EVENTS)
    page, problems = render_page(p)
    assert len(problems) == 2
    assert problems[0].startswith("v1: the old run: Graphviz's 'dot' program is not installed")
    parsed = Page(page)
    assert parsed.svgs == 0
    assert "picture not drawn: Graphviz's 'dot' program is not installed <here>" in "".join(parsed.text)
    assert len(parsed.headers) == 3  # the tables are all there


def test_the_page_is_the_same_twice(tmp_path: Path) -> None:
    new = write_version(tmp_path, WELCOME, shorter_timeout, migrate=True)
    first = render_page(preview(WELCOME, new, WELCOME_EVENTS, at_ms=1741006800000))
    assert first == render_page(preview(WELCOME, new, WELCOME_EVENTS, at_ms=1741006800000))
    assert "Customers inside v1 at 2025-03-03T13:00:00.000Z: 3 (3 move, 0 leave, 0 stay)" in first[0]
