"""What an email says: the one place an action becomes a subject, a text part and an HTML part.

Templates come later (``orchestrator/core/template/``); until then :func:`render_email` renders every
action the same plain, documented way, so that the email connector works and is testable end to end:

- **subject**: the personalization's ``subject`` when it is a string, else the action's ``template_id``;
- **text**: one line ``key: value`` per personalization field but ``subject``, sorted by key (lists and
  objects as JSON), then, for a marketing email, ``Unsubscribe: <link>``;
- **HTML**: the same, escaped: the subject as a heading, the fields as a definition list and the
  unsubscribe link as a link.

A :data:`EmailRenderer` is any callable ``(action, unsubscribe_url) -> EmailMessageParts``; the email
provider takes one (``SmtpProvider(renderer=...)``), so the template renderer replaces this one without
touching the provider. It raises :class:`~orchestrator.connectors.errors.RenderError` (or anything: the
runtime dead-letters the action ``render_failed``) rather than return a half-rendered message.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from orchestrator.connectors.errors import RenderError
from orchestrator.contracts.actions import ChannelAction

__all__ = ["MAX_SUBJECT_CHARS", "EmailMessageParts", "EmailRenderer", "render_email"]

MAX_SUBJECT_CHARS = 998
"""RFC 5322's longest line; a longer subject is a render error (a template gone wrong)."""


@dataclass(frozen=True, slots=True)
class EmailMessageParts:
    """The rendered content of one email; headers (From, To, Message-ID, List-Unsubscribe) are the
    provider's."""

    subject: str
    text: str
    html: str


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
