"""Receipts' pure parts: the signed tokens of the open pixel, click links, SMS status callbacks and push
receipts (sign, verify, tamper, kinds kept apart, rotation), the links rewritten in the HTML part (quotes,
character references, mailto: and the unsubscribe link left alone), the pixel's GIF, the events and their
ids, and the email's endpoints over real HTTP on loopback (a publisher that collects instead of Kafka)."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.connectors import signing
from orchestrator.connectors.metrics import ConnectorMetrics
from orchestrator.connectors.receipts import (
    MAX_RECEIPT_TOKEN_CHARS,
    MAX_TARGET_CHARS,
    PIXEL_GIF,
    ReceiptLinks,
    ReceiptScope,
    email_receipt_routes,
    receipt_event,
    sent_event,
    sign_receipt,
    trackable,
    verify_receipt,
)
from orchestrator.connectors.render import EmailMessageParts, TemplateEmailRenderer, rewrite_links
from orchestrator.connectors.smtp import SmtpConfig, SmtpProvider
from orchestrator.connectors.unsubscribe import UnsubscribeLinks, UnsubscribeScope, sign_token, verify_token
from orchestrator.connectors.web import ConnectorWeb
from orchestrator.contracts import ChannelAction, CustomerEvent
from orchestrator.core.template import TemplateRegistry, load_template_text
from orchestrator.exceptions import ConfigError

KEY, OLD = "current-key-0123456789", "previous-key-0123456789"
BASE = "https://mail.shop.example"
AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def action(**extra: Any) -> ChannelAction:
    values: dict[str, Any] = {
        "action_id": "act_5f0c1e2d3b4a59687766554433221100",
        "channel": "email",
        "category": "marketing",
        "customer_id": "email:ann@example.com",
        "recipient": "ann@example.com",
        "journey_id": "welcome",
        "journey_version": 1,
        "step_id": "welcome_email",
        "template_id": "welcome_email_v1",
        "campaign": "welcome",
        "personalization": {"first_name": "Ann"},
        "created_at": AT,
        **extra,
    }
    return ChannelAction.model_validate(values)


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


# -- tokens ------------------------------------------------------------------------------------------------
def test_tokens_round_trip_for_every_kind_and_name_the_action() -> None:
    a = action()
    links = ReceiptLinks(BASE + "/", [KEY])
    target = "https://shop.example/spring?utm_source=email&x=%C3%A9"
    made = {
        "open": links.open_url(a),
        "click": links.click_url(a, target),
        "sms_status": links.sms_status_url(a.model_copy(update={"channel": "sms"})),
        "push": links.push_receipt_url(a.model_copy(update={"channel": "push"})),
    }
    paths = {"open": "/o/", "click": "/c/", "sms_status": "/twilio/status/", "push": "/push/"}
    for kind, url in made.items():
        assert url is not None
        assert url.startswith(BASE + paths[kind]), url
        scope = verify_receipt(token_of(url), [KEY], kind)  # type: ignore[arg-type]
        assert scope is not None, kind
        assert (scope.action_id, scope.customer_id, scope.campaign, scope.journey) == (
            a.action_id,
            "email:ann@example.com",
            "welcome",
            "welcome",
        )
        assert scope.channel == {"open": "email", "click": "email", "sms_status": "sms", "push": "push"}[kind]
        assert scope.url == (target if kind == "click" else None)
    assert links.open_url(a) == links.open_url(a)  # deterministic: one pixel per action
    # short enough for any client: an open token is about 200 characters, a click's adds its URL's
    assert len(token_of(made["open"])) < 250
    assert len(token_of(made["click"] or "")) < 250 + len(target) * 4 // 3


def test_a_token_of_one_kind_is_no_token_of_another_nor_an_unsubscribe_link() -> None:
    a = action()
    links = ReceiptLinks(BASE, [KEY])
    opened, clicked = token_of(links.open_url(a)), token_of(links.click_url(a, "https://x.example/") or "")
    assert verify_receipt(opened, [KEY], "click") is None
    assert verify_receipt(clicked, [KEY], "open") is None
    assert verify_receipt(opened, [KEY], "push") is None
    # the same payload signed as another kind (the version is signed too) does not verify
    as_push = ReceiptScope("push", a.action_id, a.customer_id, "push", "welcome", "welcome")
    _, payload, signature = sign_receipt(as_push, KEY).split(".")
    assert verify_receipt(f"p1.{payload}.{signature}", [KEY], "push") == as_push
    assert verify_receipt(f"o1.{payload}.{signature}", [KEY], "open") is None
    # unsubscribe and receipt tokens are signed under separate domains with the same key
    unsubscribe = sign_token(UnsubscribeScope(a.customer_id, "email", action_id=a.action_id), KEY)
    assert verify_receipt(unsubscribe, [KEY], "open") is None
    forged = signing.sign("u1", {"c": a.customer_id, "h": "email", "k": "marketing"}, KEY, domain=b"x")
    assert verify_token(forged, [KEY]) is None
    assert verify_token(opened.replace("o1.", "u1.", 1), [KEY]) is None


def test_tampered_forged_and_malformed_tokens_are_refused() -> None:
    a = action()
    token = token_of(ReceiptLinks(BASE, [KEY]).click_url(a, "https://shop.example/") or "")
    version, payload, signature = token.split(".")
    evil = token_of(ReceiptLinks(BASE, [KEY]).click_url(a, "https://evil.example/") or "").split(".")[1]
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for bad in [
        f"{version}.{evil}.{signature}",  # another target under this signature: never an open redirect
        f"{version}.{payload}.{flipped}",
        f"{version}.{payload}.{signature}A",
        f"{version}.{payload}",
        f"{version}.{payload}.{signature}!",
        token_of(ReceiptLinks(BASE, ["someone-elses-key-0123"]).click_url(a, "https://shop.example/") or ""),
        "",
        "c1..",
        "c1." + "A" * MAX_RECEIPT_TOKEN_CHARS + ".AAAA",
    ]:
        assert verify_receipt(bad, [KEY], "click") is None, bad
    assert verify_receipt(token, [], "click") is None


def test_a_signed_payload_with_bad_fields_is_still_refused() -> None:
    def forge(version: str, payload: dict[str, str]) -> str:
        return signing.sign(version, payload, KEY, domain=b"orchestrator receipt\x1f", size=16)

    good = {"a": "act_1", "c": "cust-ada", "h": "email", "j": "welcome"}
    assert verify_receipt(forge("o1", good), [KEY], "open") is not None
    assert verify_receipt(forge("c1", {**good, "u": "https://x.example/"}), [KEY], "click") is not None
    for version, kind, payload in [
        ("o1", "open", {**good, "a": ""}),
        ("o1", "open", {**good, "c": ""}),
        ("o1", "open", {**good, "h": "sms"}),  # an email pixel names the email channel
        ("o1", "open", {**good, "u": "https://x.example/"}),
        ("c1", "click", good),  # a click without its target
        ("c1", "click", {**good, "u": "javascript:alert(1)"}),
        ("c1", "click", {**good, "u": "//evil.example/"}),
        ("c1", "click", {**good, "u": "https://x.example/a b"}),
        ("c1", "click", {**good, "u": "https://x.example/\r\nSet-Cookie: a=b"}),
        ("s1", "sms_status", good),  # an SMS callback's token names the sms channel
    ]:
        assert verify_receipt(forge(version, payload), [KEY], kind) is None, payload  # type: ignore[arg-type]


def test_key_rotation_signs_with_the_new_key_and_accepts_the_old_one() -> None:
    a = action()
    old = ReceiptLinks(BASE, [OLD]).open_url(a)
    rotated = ReceiptLinks(BASE, [KEY, OLD])
    assert verify_receipt(token_of(old), rotated.keys, "open") is not None
    assert verify_receipt(token_of(rotated.open_url(a)), [KEY], "open") is not None
    assert verify_receipt(token_of(old), [KEY], "open") is None  # the old key dropped: its links stop


@pytest.mark.parametrize(
    ("url", "keys", "message"),
    [
        ("mail.example", [KEY], "public base URL"),
        ("https://mail.example/?a=1", [KEY], "public base URL"),
        ("https://mail.example", [], "not set"),
        ("https://mail.example", ["short"], "at least 16"),
    ],
)
def test_links_need_a_base_url_and_a_long_key(url: str, keys: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ReceiptLinks(url, keys)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://shop.example/a?b=1&c=%20d#top", "https://shop.example/a?b=1&c=%20d#top"),
        ("HTTP://Shop.Example/", "HTTP://Shop.Example/"),
        ("https://shop.example/é?q=ü", "https://shop.example/%C3%A9?q=%C3%BC"),
        ("mailto:ann@example.com", None),
        ("tel:+15550100", None),
        ("javascript:alert(1)", None),
        ("/relative/path", None),
        ("//shop.example/protocol-relative", None),
        ("https://shop.example/a b", None),
        ("https://shop.example/\nx", None),
        ("https://[::1/", None),
        ("https://shop.example/" + "x" * MAX_TARGET_CHARS, None),
    ],
)
def test_what_a_link_may_redirect_to(url: str, expected: str | None) -> None:
    assert trackable(url) == expected


# -- the HTML part ---------------------------------------------------------------------------------------
def test_links_are_rewritten_as_a_browser_reads_them_and_nothing_else_changes() -> None:
    page = (
        "<html><body>\r\n"
        '<p><a href="https://shop.example/a?x=1&amp;y=2">double</a> '
        "<a href='https://shop.example/b'>single</a> "
        "<A HREF = https://shop.example/c>unquoted, upper</A> "
        '<a class="btn" title="a > b" href=" https://shop.example/d ">spaces, a > in a value</a>\n'
        '<a data-href="https://shop.example/data" href="mailto:ann@example.com">mail</a> '
        '<a href="tel:+15550100">call</a> <a href="#top">anchor</a> <a href>empty</a> <a name="x">name</a>\n'
        '<area shape="rect" href="https://shop.example/map">'
        '<!-- <a href="https://shop.example/comment"> -->'
        '<!--[if mso]><v:roundrect href="https://shop.example/vml"></v:roundrect><![endif]-->'
        "<script>var s = \"<a href='https://shop.example/script'>\";</script>"
        '<a href="https://mail.shop.example/u/u1.abc.def">Unsubscribe</a>'
        "</p></body></html>\n"
    )
    seen: list[str] = []

    def rewrite(url: str) -> str | None:
        seen.append(url)
        return None if url.startswith(("mailto:", "tel:", "#")) else f"T<{url}>&"

    out = rewrite_links(page, rewrite)
    assert seen == [
        "https://shop.example/a?x=1&y=2",  # character references decoded: the URL a browser requests
        "https://shop.example/b",
        "https://shop.example/c",
        "https://shop.example/d",
        "mailto:ann@example.com",
        "tel:+15550100",
        "#top",
        "https://shop.example/map",
        "https://mail.shop.example/u/u1.abc.def",
    ]
    assert '<a href="T&lt;https://shop.example/a?x=1&amp;y=2&gt;&amp;">double</a>' in out
    assert '<a href="T&lt;https://shop.example/b&gt;&amp;">single</a>' in out
    assert '<A HREF = "T&lt;https://shop.example/c&gt;&amp;">unquoted, upper</A>' in out
    assert '<a class="btn" title="a > b" href="T&lt;https://shop.example/d&gt;&amp;">' in out
    assert '<a data-href="https://shop.example/data" href="mailto:ann@example.com">' in out
    assert '<area shape="rect" href="T&lt;https://shop.example/map&gt;&amp;">' in out
    # comments (Outlook's too), scripts, and what the rewrite left: byte for byte
    for kept in [
        '<!-- <a href="https://shop.example/comment"> -->',
        '<v:roundrect href="https://shop.example/vml">',
        "<script>var s = \"<a href='https://shop.example/script'>\";</script>",
        '<a href="tel:+15550100">call</a> <a href="#top">anchor</a> <a href>empty</a> <a name="x">name</a>\n',
        "<html><body>\r\n",
    ]:
        assert kept in out
    assert rewrite_links(page, lambda url: None) == page
    assert rewrite_links("no tags at all", rewrite) == "no tags at all"


def _provider(renderer: Any = None) -> SmtpProvider:
    config = SmtpConfig(host="127.0.0.1", port=2525, sender="news@shop.example", security="none")
    links = UnsubscribeLinks(BASE, [KEY])
    tracking = ReceiptLinks(BASE, [KEY])
    if renderer is None:
        return SmtpProvider(config, links, tracking=tracking)
    return SmtpProvider(config, links, renderer=renderer, tracking=tracking)


def _parts(raw: bytes) -> tuple[str, str, str]:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    text, page = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert text is not None
    assert page is not None
    return str(parsed["List-Unsubscribe"])[1:-1], text.get_content(), page.get_content()


TEMPLATE = """kind: template
id: welcome_email_v1
version: 3
channel: email
variables: {first_name: {default: there}}
subject: "Welcome, {{ first_name }}"
text: "Hi {{ first_name }}, see https://shop.example/new"
html: >-
  <html><body><p>Hi {{ first_name }}, see <a href="https://shop.example/new?a=1&amp;b=2">what is new</a>
  or <a href="mailto:help@shop.example">write</a>.</p></body></html>
"""


@pytest.mark.parametrize("renderer", ["plain", "template"])
def test_the_provider_tracks_the_html_part_only_and_leaves_the_unsubscribe_link(renderer: str) -> None:
    a = action()
    if renderer == "template":
        registry = TemplateRegistry()
        registry.deploy(load_template_text(TEMPLATE), 0)
        provider = _provider(TemplateEmailRenderer(registry))
    else:
        provider = _provider()
    unsubscribe, text, page = _parts(provider.render(a))
    assert f'<a href="{unsubscribe}">Unsubscribe</a>' in page  # never tracked
    assert unsubscribe in text
    assert "/o/" not in text
    assert "/c/" not in text  # the text part shows the real links
    body_end = page.rindex("</body>")
    pixel = page.rindex('<img src="')
    assert page.index("Unsubscribe") < pixel < body_end  # the image is the last thing of the body
    src = page[pixel:].split('"')[1]
    assert src.startswith(f"{BASE}/o/")
    assert verify_receipt(token_of(src), [KEY], "open") == ReceiptScope.of("open", a)
    if renderer == "template":
        assert "https://shop.example/new" in text
        assert 'href="mailto:help@shop.example"' in page
        [tracked] = [part.split('"')[0] for part in page.split('href="')[1:] if f"{BASE}/c/" in part]
        scope = verify_receipt(token_of(tracked), [KEY], "click")
        assert scope is not None
        assert scope.url == "https://shop.example/new?a=1&b=2"
    else:
        assert "/c/" not in page  # the plain rendering has no link but the unsubscribe one


def test_a_message_without_a_body_tag_gets_its_image_at_the_end() -> None:
    def bare(a: ChannelAction, url: str | None) -> EmailMessageParts:
        return EmailMessageParts("Hi", "text", '<p><a href="https://shop.example/">shop</a></p>')

    _, _, page = _parts(_provider(bare).render(action(category="transactional")))
    assert page.rstrip().endswith('border:0">')
    assert f'href="{BASE}/c/' in page


def test_the_pixel_is_a_real_one_by_one_transparent_gif() -> None:
    gif = PIXEL_GIF
    assert gif[:6] == b"GIF89a"
    width, height, flags = int.from_bytes(gif[6:8], "little"), int.from_bytes(gif[8:10], "little"), gif[10]
    assert (width, height) == (1, 1)
    assert flags & 0x80  # a global colour table of 2 ** ((flags & 7) + 1) colours
    table = 3 * 2 ** ((flags & 7) + 1)
    at = 13 + table
    assert gif[at : at + 3] == b"!\xf9\x04"  # the graphic control extension
    assert gif[at + 3] & 1  # transparent ...
    transparent = gif[at + 6]  # ... colour index
    at += 8
    assert gif[at] == 0x2C  # the image descriptor
    assert (
        int.from_bytes(gif[at + 5 : at + 7], "little"),
        int.from_bytes(gif[at + 7 : at + 9], "little"),
    ) == (
        1,
        1,
    )
    at += 10
    min_code, size = gif[at], gif[at + 1]
    data = gif[at + 2 : at + 2 + size]
    assert gif[at + 2 + size :] == b"\x00;"  # the block terminator, then the trailer
    # LZW: codes of min_code + 1 bits, least significant bit first: clear, one pixel, end
    bits = int.from_bytes(data, "little")
    width_bits = min_code + 1
    codes = [(bits >> (width_bits * n)) & ((1 << width_bits) - 1) for n in range(3)]
    assert codes == [1 << min_code, transparent, (1 << min_code) + 1]


# -- events -------------------------------------------------------------------------------------------------
def test_receipts_name_the_customer_by_key_and_dedupe_by_action_day_and_link() -> None:
    a = action()
    opened = receipt_event(ReceiptScope.of("open", a), "opened", at=AT)
    assert opened.identifiers.items() == [("customer_key", "email:ann@example.com")]  # claims no identity
    assert (opened.type, opened.action_id, opened.campaign, opened.journey, opened.source) == (
        "email.opened",
        a.action_id,
        "welcome",
        "welcome",
        "connector.email",
    )
    assert opened.occurred_at == AT
    later = receipt_event(ReceiptScope.of("open", a), "opened", at=AT + timedelta(hours=3))
    next_day = receipt_event(ReceiptScope.of("open", a), "opened", at=AT + timedelta(days=1))
    assert later.event_id == opened.event_id  # a second open that day: the customer's dedupe drops it
    assert next_day.event_id != opened.event_id
    one = receipt_event(ReceiptScope.of("click", a, "https://a.example/"), "clicked", at=AT)
    other = receipt_event(ReceiptScope.of("click", a, "https://b.example/"), "clicked", at=AT)
    assert one.event_id != other.event_id  # two links: two clicks
    sent = sent_event(a, AT)
    assert (sent.type, sent.event_id) == ("email.sent", f"rcpt-{a.action_id}-sent")
    assert sent.properties == {"template_id": "welcome_email_v1"}
    sms = receipt_event(
        ReceiptScope.of("sms_status", a.model_copy(update={"channel": "sms"})), "failed", at=AT
    )
    assert (sms.type, sms.event_id) == ("sms.failed", f"rcpt-{a.action_id}-failed")
    huge = receipt_event(ReceiptScope("open", "x" * 500, "c", "email"), "opened", at=AT)
    assert len(huge.event_id) < 200
    assert huge.action_id == "x" * 500
    assert huge.campaign is None
    assert huge.journey is None


# -- the endpoints, over HTTP ---------------------------------------------------------------------------
async def test_the_pixel_and_the_links_publish_once_verified_and_never_redirect_elsewhere() -> None:
    published: list[tuple[CustomerEvent, str]] = []
    failing = False

    async def publish(event: CustomerEvent, key: str) -> None:
        if failing:
            raise OSError("broker down")
        published.append((event, key))

    metrics = ConnectorMetrics(process_metrics=False)
    metrics.start_channel("email")
    now = [AT]
    routes = email_receipt_routes([KEY, OLD], publish, metrics, clock=lambda: now[0])
    web = ConnectorWeb("127.0.0.1", 0, metrics, routes=routes)
    a = action()
    links = ReceiptLinks(BASE, [KEY])
    pixel, click = (
        urlsplit(links.open_url(a)).path,
        urlsplit(links.click_url(a, "https://shop.example/new?a=1") or "").path,
    )
    async with TestClient(TestServer(web.app)) as client:
        got = await client.get(pixel)
        assert (got.status, got.headers["Content-Type"], await got.read()) == (200, "image/gif", PIXEL_GIF)
        assert got.headers["Cache-Control"] == "no-store, private"
        [(event, key)] = published
        assert (event.type, key, event.identifiers.customer_key) == (
            "email.opened",
            a.customer_id,
            a.customer_id,
        )
        assert (event.action_id, event.campaign, event.journey, event.occurred_at) == (
            a.action_id,
            "welcome",
            "welcome",
            AT,
        )

        now[0] = AT + timedelta(minutes=5)
        assert (await client.get(pixel)).status == 200  # a second open: published, with the same event id
        assert published[1][0].event_id == event.event_id
        assert (await client.head(pixel)).status == 200  # a link checker: nothing published
        assert len(published) == 2

        moved = await client.get(click, allow_redirects=False)
        assert (moved.status, moved.headers["Location"]) == (302, "https://shop.example/new?a=1")
        assert moved.headers["Referrer-Policy"] == "no-referrer"  # the target never sees the token
        clicked = published[-1][0]
        assert (clicked.type, clicked.properties) == (
            "email.clicked",
            {"url": "https://shop.example/new?a=1"},
        )

        old = urlsplit(ReceiptLinks(BASE, [OLD]).open_url(a)).path
        assert (await client.get(old)).status == 200  # signed with the previous key: still accepted
        count = len(published)
        tampered_click = click[:-2] + ("AA" if not click.endswith("AA") else "BB")
        for bad in (
            pixel[:-2] + ("AA" if not pixel.endswith("AA") else "BB"),
            "/o/o1.e30.AAAA",
            click.replace("/c/", "/o/"),
        ):
            refused = await client.get(bad)
            assert refused.status == 400
            assert refused.headers["Content-Type"].startswith("text/plain")  # never the image
        refused = await client.get(tampered_click, allow_redirects=False)
        assert refused.status == 400
        assert "Location" not in refused.headers
        assert (await client.get(pixel.replace("/o/", "/c/"), allow_redirects=False)).status == 400
        assert len(published) == count

        failing = True  # the broker does not answer: the image and the redirect all the same
        assert (await client.get(pixel)).status == 200
        assert (await client.get(click, allow_redirects=False)).status == 302
        page = await (await client.get("/metrics")).text()

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    requests, receipts = (
        "orchestrator_connector_receipt_requests_total",
        "orchestrator_connector_receipts_total",
    )
    assert sample(requests, endpoint="open", outcome="published") == 3
    assert sample(requests, endpoint="open", outcome="ignored") == 1
    assert sample(requests, endpoint="open", outcome="refused") == 3
    assert sample(requests, endpoint="click", outcome="refused") == 2
    assert sample(requests, endpoint="open", outcome="failed") == 1
    assert sample(receipts, channel="email", type="opened", outcome="published") == 3
    assert sample(receipts, channel="email", type="clicked", outcome="failed") == 1
    assert f'{receipts}{{channel="email",outcome="published",type="sent"}} 0.0' in page
