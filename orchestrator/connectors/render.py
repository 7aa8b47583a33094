"""What an email says: the one place an action becomes a subject, a text part and an HTML part.

With templates deployed (``kind: template``, docs/templates.md), :class:`TemplateEmailRenderer` renders
the action's template (its version in force at the action's time, or the one the action names) in the
sandbox, with the action's personalization; the unsubscribe link is added at the end of both parts, and
the message names the template version it was rendered with (header ``X-Orchestrator-Template``). A
template that cannot be rendered whole (a missing variable, no such template) is a render error: the
action is dead-lettered ``render_failed`` with the reason. Before any template is deployed,
:func:`render_email` renders every action the same plain, documented way:

- **subject**: the personalization's ``subject`` when it is a string, else the action's ``template_id``;
- **text**: one line ``key: value`` per personalization field but ``subject``, sorted by key (lists and
  objects as JSON), then, for a marketing email, ``Unsubscribe: <link>``;
- **HTML**: the same, escaped: the subject as a heading, the fields as a definition list and the
  unsubscribe link as a link.

**Opens and clicks** (``email_tracking``, on by default): whatever renderer made the parts,
:func:`with_tracking` then rewrites each ``http(s)`` link of the HTML part (``href`` of ``<a>`` and
``<area>``, but the unsubscribe link and links to the connector itself) to a signed redirect
``{connector_public_url}/c/<token>`` and adds a 1x1 image ``{connector_public_url}/o/<token>`` at the end
of the HTML part (:mod:`orchestrator.connectors.receipts`). The text part is left as it is: its reader
sees the real links.

A :data:`EmailRenderer` is any callable ``(action, unsubscribe_url) -> EmailMessageParts``; the email
provider takes one (``SmtpProvider(renderer=...)``), so the template renderer replaces this one without
touching the provider. It raises :class:`~orchestrator.connectors.errors.RenderError` (or anything: the
runtime dead-letters the action ``render_failed``) rather than return a half-rendered message.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

import orjson

from orchestrator.connectors.errors import RenderError
from orchestrator.contracts.actions import ChannelAction
from orchestrator.core.template import TemplateRegistry
from orchestrator.core.template.render import render_action
from orchestrator.exceptions import TemplateRenderError

if TYPE_CHECKING:
    from orchestrator.connectors.receipts import ReceiptLinks

__all__ = [
    "MAX_SUBJECT_CHARS",
    "EmailMessageParts",
    "EmailRenderer",
    "TemplateEmailRenderer",
    "add_pixel",
    "render_email",
    "rewrite_links",
    "with_tracking",
]

MAX_SUBJECT_CHARS = 998
"""RFC 5322's longest line; a longer subject is a render error (a template gone wrong)."""


@dataclass(frozen=True, slots=True)
class EmailMessageParts:
    """The rendered content of one email; headers (From, To, Message-ID, List-Unsubscribe) are the
    provider's."""

    subject: str
    text: str
    html: str
    template: str | None = None
    """``<template id> v<version>`` when rendered from a deployed template."""


EmailRenderer = Callable[[ChannelAction, str | None], EmailMessageParts]
"""(action, its unsubscribe link or None) -> the message's parts."""


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def render_email(action: ChannelAction, unsubscribe_url: str | None) -> EmailMessageParts:
    """The default rendering (the module's docstring says how)."""
    given = action.personalization.get("subject")
    subject = given if isinstance(given, str) and given.strip() else action.template_id
    if "\r" in subject or "\n" in subject:
        raise RenderError("the subject has a line break")
    if not subject.strip():
        raise RenderError("the subject is empty (no personalization subject and an empty template_id)")
    if len(subject) > MAX_SUBJECT_CHARS:
        raise RenderError(f"the subject has {len(subject)} characters, over {MAX_SUBJECT_CHARS}")
    try:
        fields = [(str(k), _shown(v)) for k, v in sorted(action.personalization.items()) if k != "subject"]
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise RenderError(f"a personalization value cannot be shown: {exc}") from None
    lines = [f"{k}: {v}" for k, v in fields]
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in fields)
    body = [f"<h1>{html.escape(subject)}</h1>"]
    if items:
        body.append(f"<dl>{items}</dl>")
    if unsubscribe_url is not None:
        lines += ["", f"Unsubscribe: {unsubscribe_url}"]
        body.append(f'<p><a href="{html.escape(unsubscribe_url, quote=True)}">Unsubscribe</a></p>')
    text = "\n".join(lines) + "\n"
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>'
        f"{html.escape(subject)}</title></head><body>{''.join(body)}</body></html>\n"
    )
    return EmailMessageParts(subject=subject, text=text, html=page)


class _Text(HTMLParser):
    """The text of an HTML part (for a template with an HTML part only)."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def _text_of(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    return "\n".join(line.strip() for line in "".join(parser.chunks).splitlines() if line.strip()) + "\n"


class TemplateEmailRenderer:
    """An :data:`EmailRenderer` on the deployed templates (``registry``, replaced as deployments come:
    :attr:`registry`); :func:`render_email` while none is deployed."""

    def __init__(self, registry: TemplateRegistry | None = None) -> None:
        self.registry = registry if registry is not None else TemplateRegistry()

    def __call__(self, action: ChannelAction, unsubscribe_url: str | None) -> EmailMessageParts:
        registry = self.registry
        if not len(registry):
            return render_email(action, unsubscribe_url)
        try:
            message = render_action(registry, action)
        except TemplateRenderError as exc:
            raise RenderError(f"template: {exc}") from None
        subject = message.subject or ""
        if not subject.strip():
            raise RenderError(f"template {message.template_id} v{message.template_version}: empty subject")
        page = message.parts.get("html")
        text = message.parts.get("text")
        if text is None:
            text = _text_of(page or "")
        if page is None:
            page = f"<!DOCTYPE html>\n<html><body><pre>{html.escape(text)}</pre></body></html>\n"
        if unsubscribe_url is not None:
            text = f"{text.rstrip()}\n\nUnsubscribe: {unsubscribe_url}\n"
            link = f'<p><a href="{html.escape(unsubscribe_url, quote=True)}">Unsubscribe</a></p>'
            end = page.lower().rfind("</body>")
            page = page[:end] + link + page[end:] if end >= 0 else page + link
        return EmailMessageParts(
            subject, text, page, template=f"{message.template_id} v{message.template_version}"
        )


# -- opens and clicks -------------------------------------------------------------------------------
_LINK_TAGS = ("a", "area")
_TAG_NAME = re.compile(r"<[a-zA-Z][^\t\n\r\f />\x00]*(?:\s|/(?!>))*")
_ATTRIBUTE = re.compile(
    r"""((?<=['"\s/])[^\s/>][^\s/=>]*)(\s*=+\s*('[^']*'|"[^"]*"|(?!['"])[^>\s]*))?(?:\s|/(?!>))*"""
)  # (html.parser's own tolerant attribute syntax: the tag is read as the parser and browsers read it)


class _Links(HTMLParser):
    """Where the ``<a>`` and ``<area>`` start tags of a page are, and their ``href`` as read."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[tuple[int, int], str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _LINK_TAGS:
            href = next((value for name, value in attrs if name == "href"), None)
            text = self.get_starttag_text()
            if href is not None and text is not None:
                self.found.append((self.getpos(), text, href))

    handle_startendtag = handle_starttag


def _with_href(tag: str, href: str, new: str) -> str | None:
    """``tag`` (a start tag's text) with its first ``href``'s value replaced by ``new``; None when the
    tag does not read as the parser read it (left as it is)."""
    start = _TAG_NAME.match(tag)
    if start is None:
        return None
    at = start.end()
    while at < len(tag):
        m = _ATTRIBUTE.match(tag, at)
        if m is None or m.end() == at:
            return None
        if m.group(1).lower() == "href" and m.group(3) is not None:
            raw = m.group(3)
            if raw[:1] in ("'", '"'):
                raw = raw[1:-1]
            if html.unescape(raw) != href:
                return None
            begin, end = m.span(3)
            return f'{tag[:begin]}"{html.escape(new, quote=True)}"{tag[end:]}'
        at = m.end()
    return None


def rewrite_links(page: str, rewrite: Callable[[str], str | None]) -> str:
    """``page`` with the ``href`` of each ``<a>`` and ``<area>`` replaced by ``rewrite(url)``, ``url``
    being the link as a browser reads it (character references decoded, spaces around it trimmed); None
    leaves a link as it is. Everything else stays byte for byte: text, other attributes, comments (links in
    Outlook's conditional comments too), scripts and styles."""
    parser = _Links()
    parser.feed(page)
    parser.close()
    if not parser.found:
        return page
    starts = [0]
    starts += [m.end() for m in re.finditer("\n", page)]
    out: list[str] = []
    done = 0
    for (line, column), tag, href in parser.found:
        at = starts[line - 1] + column
        if page[at : at + len(tag)] != tag:
            continue  # (not where the parser said: leave it)
        target = rewrite(href.strip())
        new = _with_href(tag, href, target) if target is not None else None
        if new is None:
            continue
        out += [page[done:at], new]
        done = at + len(tag)
    out.append(page[done:])
    return "".join(out)


def add_pixel(page: str, src: str) -> str:
    """``page`` with a 1x1 image of ``src`` at the end of its body."""
    image = (
        f'<img src="{html.escape(src, quote=True)}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0">'
    )
    end = page.lower().rfind("</body>")
    return page[:end] + image + page[end:] if end >= 0 else page + image


def with_tracking(
    parts: EmailMessageParts, action: ChannelAction, links: ReceiptLinks, unsubscribe_url: str | None
) -> EmailMessageParts:
    """``parts`` with the HTML part's links tracked and the open pixel added (the module's docstring)."""

    def tracked(url: str) -> str | None:
        return None if url == unsubscribe_url else links.click_url(action, url)

    page = add_pixel(rewrite_links(parts.html, tracked), links.open_url(action))
    return dataclasses.replace(parts, html=page)
