"""The worker's page rendered from fake data (orchestrator/runtime/ui.py): its structure read back with
html.parser; every value escaped; nothing external (no script, no link, no remote image)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import orjson

from orchestrator.runtime.ui import (
    customer_page,
    journey_page,
    login_page,
    overview_page,
    unauthorized_page,
)

EVIL = '<script>alert("x")</script>'


class Page(HTMLParser):
    """The elements of a page: tags with attributes, the text of each element with an id, table rows."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text_by_id: dict[str, str] = {}
        self.rows: dict[str, list[list[str]]] = {}
        self._open: list[str | None] = []
        self._table: list[str | None] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag in ("input", "meta", "br", "link", "img"):
            return
        self._open.append(a.get("id"))
        if a.get("id"):
            self.text_by_id.setdefault(a["id"] or "", "")
        if tag == "table":
            self._table.append(a.get("id"))
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            self.rows.setdefault(self._table[-1] or "", []).append(self._row)
            self._row = None
        elif tag == "table" and self._table:
            self._table.pop()
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for ident in self._open:
            if ident:
                self.text_by_id[ident] += data
        if self._cell is not None:
            self._cell.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


def _self_contained(p: Page) -> None:
    assert not p.all("script")
    assert not p.all("link")
    assert not p.all("iframe")
    assert all(not (a.get("src") or "").startswith(("http", "//")) for _, a in p.tags)


SUMMARY: dict[str, Any] = {
    "journeys": {
        "welcome": [
            {"version": 1, "status": "active", "effective_from_ms": 1_735_689_600_000},
            {"version": 2, "status": "active", "effective_from_ms": 1_740_000_000_000},
        ],
        EVIL: [{"version": 1, "status": "paused", "effective_from_ms": 0}],
    },
    "policies": [{"policy": "default@1", "effective_from_ms": 0}],
    "segments": {},
    "campaigns": {"spring": [{"version": 1, "status": "active", "effective_from_ms": 0}]},
    "templates": {},
    "models": [],
    "refused": [{"where": "journeys[0]@4", "key": "broken", "error": f"broken.yaml:3: steps: {EVIL}"}],
    "applied": 4,
}
FUNNEL: dict[str, Any] = {
    "journey_id": "welcome",
    "entered": 5,
    "steps": {"welcome_email": 5, "wait_open": 5, "sms_allowed": 2, "welcome_sms": 1},
    "actions": 6,
    "goals": {"first_order": 1},
    "converted": 1,
    "exits": {"opened_email": 2, "no_sms_consent": 1},
    "skipped_sends": {},
    "decisions": {},
    "splits": {"ab": {"a": {"entered": 3, "converted": 1, "conversion_rate": 0.3333}}},
    "edges": {">welcome_email": 5, "welcome_email>wait_open": 5},
    "occupancy": {"wait_open": 1},
}
STEPS = [
    ("welcome_email", "send"),
    ("wait_open", "wait"),
    ("sms_allowed", "branch"),
    ("welcome_sms", "send"),
    ("opened", "exit"),
]


def test_overview_lists_journeys_versions_segments_and_refusals() -> None:
    html = overview_page(
        SUMMARY,
        in_force={"welcome": 2, EVIL: None},
        funnels={"welcome": FUNNEL},
        segments=[{"segment": "vip", "version": 1, "status": "active", "name": "VIPs", "members": 7}],
        cluster_wide=True,
    )
    assert EVIL not in html  # escaped everywhere
    p = Page(html)
    _self_contained(p)
    journeys = p.rows["journeys"]
    assert journeys[0] == ["journey", "versions", "entered", "in it now", "converted"]
    welcome = next(r for r in journeys if r[0] == "welcome")
    assert welcome[2:] == ["5", "1", "1"]
    assert "v2 active from 2025-02-19 21:20:00 UTC (in force)" in welcome[1]
    assert any(r[0] == EVIL for r in journeys)  # shown as text
    links = [a["href"] for a in p.all("a") if "journey" in (a.get("class") or "")]
    assert "/ui/journeys/welcome" in links
    assert all(h and h.startswith("/ui/journeys/") and "<" not in h for h in links)
    assert p.rows["segments"][1] == ["vip", "1", "active", "VIPs", "7"]
    assert p.rows["campaigns"][1][0] == "spring"
    assert EVIL in p.rows["refused"][1][2]
    assert "cluster-wide" in p.text_by_id["scope"]


def test_overview_says_when_only_this_worker_counts() -> None:
    html = overview_page(
        SUMMARY, in_force={}, funnels={}, segments=[], cluster_wide=False, partitions_here=[0, 2]
    )
    p = Page(html)
    assert "this worker only" in p.text_by_id["scope"]
    assert "0, 2" in p.text_by_id["scope"]
    assert "none" in p.text_by_id["segments"]


SVG = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">
<!-- Generated by graphviz -->
<svg width="100pt" height="50pt" xmlns="http://www.w3.org/2000/svg"><g class="node" id="welcome_email">
<title>welcome_email</title><text>welcome_email</text><text>now: 1</text></g></svg>
"""


def test_journey_page_shows_the_picture_and_the_counts() -> None:
    html = journey_page(
        "welcome",
        name="Welcome series",
        description="Welcome email",
        versions=SUMMARY["journeys"]["welcome"],
        in_force=2,
        steps=STEPS,
        funnel=FUNNEL,
        svg=SVG,
        cluster_wide=True,
    )
    assert "<?xml" not in html
    assert "<!DOCTYPE svg" not in html
    p = Page(html)
    _self_contained(p)
    assert p.all("svg")
    assert "welcome_email" in p.text_by_id["picture"]
    assert p.text_by_id["entered"] == "5"
    assert p.text_by_id["in-now"] == "1"
    assert p.text_by_id["converted"] == "1"
    assert p.text_by_id["exited"] == "3"
    assert p.text_by_id["in-force"] == "v2"
    steps = {r[0]: r for r in p.rows["steps"][1:]}
    assert list(steps) == [s for s, _ in STEPS]  # the definition's order
    assert steps["wait_open"][2] == "1 now"
    assert steps["wait_open"][3] == "5"
    assert steps["welcome_email"][2] == "0 now"
    gauges = [a for a in p.all("span") if a.get("role") == "meter"]
    assert len(gauges) == len(STEPS)
    assert {a["aria-valuenow"] for a in gauges} == {"0", "1"}
    assert p.rows["exits"][1:] == [["no_sms_consent", "1"], ["opened_email", "2"]]
    assert p.rows["goals"][1:] == [["first_order", "1"]]
    assert p.rows["splits"][1] == ["ab", "a", "3", "1", "33.3 %"]
    assert ["(entry)", "welcome_email", "5"] in p.rows["edges"]
    assert p.rows["versions"][2][-1] == "in force"


def test_journey_page_without_counts_or_picture() -> None:
    html = journey_page(
        EVIL, steps=[("a", "wait")], svg=None, svg_note=f"no picture: {EVIL}", cluster_wide=False, refresh=10
    )
    assert EVIL not in html
    p = Page(html)
    assert p.text_by_id["entered"] == "0"
    assert "no picture" in p.text_by_id["picture-missing"]
    assert "this worker only" in p.text_by_id["scope"]
    assert p.text_by_id["in-force"] == "none"
    assert any(a.get("http-equiv") == "refresh" and a.get("content") == "10" for a in p.all("meta"))


DOC: dict[str, Any] = {
    "source": "live",
    "asked": "email:ann@example.com",
    "customer_key": "w-ann",
    "aliases": ["old-ann"],
    "identities": {"customer_id": ["w-ann"], "email": ["ann@example.com"]},
    "profile": {
        "timezone": "Europe/Berlin",
        "timezone_known": True,
        "attributes": {"first_name": EVIL},
        "addresses": {"email": "ann@example.com"},
        "consent": {"email": {"marketing": True}},
        "segments": {},
        "first_seen": "2025-03-03T08:58:00Z",
        "last_seen": "2025-03-03T09:00:00Z",
    },
    "instances": [
        {
            "journey": "welcome",
            "version": 1,
            "entry_seq": 1,
            "step": "wait_open",
            "entered_at": "2025-03-03T09:00:00Z",
            "next_wakeup": "2025-03-04T09:00:00Z",
            "held_out": False,
            "splits": {},
        }
    ],
    "held_sends": [],
    "finished": [],
    "next_wakeup": "2025-03-04T09:00:00Z",
    "notes": [],
    "timeline": [
        {"at": "2025-03-03T09:00:00Z", "local": "2025-03-03 10:00:00 CET", "what": "event account.created"},
        {"at": "2025-03-03T09:00:00Z", "local": "2025-03-03 10:00:00 CET", "what": "entered welcome v1"},
    ],
}


def test_customer_page_shows_profile_journeys_and_timeline() -> None:
    html = customer_page("email:ann@example.com", DOC)
    assert EVIL not in html
    p = Page(html)
    _self_contained(p)
    assert p.text_by_id["customer"] == "w-ann"
    profile = {r[0]: r[1] for r in p.rows["profile"]}
    assert profile["attribute first_name"] == orjson.dumps(EVIL).decode()
    assert "email: ann@example.com" in profile["identities"]
    assert p.rows["instances"][1][:4] == ["welcome", "1", "1", "wait_open"]
    assert p.rows["timeline"][1:] == [
        ["2025-03-03 10:00:00 CET", "event account.created"],
        ["2025-03-03 10:00:00 CET", "entered welcome v1"],
    ]
    forms = [a for a in p.all("form") if a.get("action") == "/ui/customers"]
    assert forms
    assert all(a.get("method") == "get" for a in forms)
    key_inputs = [a for a in p.all("input") if a.get("id") == "lookup-key"]
    assert any(a.get("value") == "email:ann@example.com" for a in key_inputs)


def test_an_unknown_customer_says_so() -> None:
    p = Page(customer_page(EVIL, None, f"no customer {EVIL!r} on this worker"))
    assert "no customer" in p.text_by_id["not-found"]
    assert "customer" not in p.text_by_id or not p.rows.get("timeline")


def test_login_and_unauthorized_pages_show_no_data_and_post_the_token() -> None:
    p = Page(login_page("wrong token"))
    form = next(a for a in p.all("form") if a.get("id") == "login")
    assert form["method"] == "post"
    assert form["action"] == "/ui/login"
    token = next(a for a in p.all("input") if a.get("name") == "token")
    assert token["type"] == "password"
    assert p.text_by_id["login-error"] == "wrong token"
    assert not [a for a in p.all("input") if a.get("type") == "hidden"]  # the page asked is not echoed
    assert not any(a.get("action") == "/ui/logout" for a in p.all("form"))  # not signed in: no menu
    assert (
        "no api_token"
        in Page(unauthorized_page("no api_token is configured on this worker")).text_by_id["login-error"]
    )
