"""What an SMS or a push notification says: the one place an sms or push action becomes its text.

With templates deployed (``kind: template``, docs/templates.md), :class:`TemplateSmsRenderer` and
:class:`TemplatePushRenderer` render the action's template (the version it names, else the one in force at
its ``created_at``) with the action's personalization: an SMS template's ``body``; a push template's
``title``, ``body`` and ``data``. A template that cannot be rendered whole (missing, a variable the action
does not give, a template of another channel) is a render error: the action is dead-lettered
``render_failed`` with the reason. Before any template is deployed, a plain rendering, the same for every
action:

- **SMS** (:func:`render_sms`): the personalization's ``body`` when it is a string; else one line
  ``key: value`` per personalization field, sorted by key (lists and objects as JSON); else the action's
  ``template_id``;
- **push** (:func:`render_push`): title the personalization's ``title`` (a string), else the
  ``template_id``; body its ``body`` (a string), else none; data every other field, as a string (lists
  and objects as JSON).

Limits that the providers would refuse anyway are render errors here, with the number: an SMS body of
more than :data:`MAX_SMS_CHARS` characters (Twilio's), a push whose notification and data take more than
:data:`MAX_PUSH_BYTES` bytes (FCM's), a data key FCM reserves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from orchestrator.connectors.errors import RenderError
from orchestrator.contracts.actions import ChannelAction
from orchestrator.core.template import RenderedMessage, TemplateRegistry
from orchestrator.core.template.render import render_action
from orchestrator.exceptions import TemplateRenderError

__all__ = [
    "MAX_PUSH_BYTES",
    "MAX_SMS_CHARS",
    "PushParts",
    "PushRenderer",
    "SmsParts",
    "SmsRenderer",
    "TemplatePushRenderer",
    "TemplateSmsRenderer",
    "check_push",
    "render_push",
    "render_sms",
]

MAX_SMS_CHARS = 1600
"""The longest body Twilio sends (split into up to 10 segments of 160 GSM-7 or 70 UCS-2 characters)."""
MAX_PUSH_BYTES = 4096
"""FCM's limit on a message's notification and data together (JSON, bytes)."""
RESERVED_DATA_KEYS = frozenset({"from", "notification", "message_type"})
"""Data keys FCM refuses (and any starting with ``google.`` or ``gcm.``)."""


@dataclass(frozen=True, slots=True)
class SmsParts:
    body: str
    template: str | None = None
    """``<template id> v<version>`` when rendered from a deployed template."""


@dataclass(frozen=True, slots=True)
class PushParts:
    title: str
    """Empty: none (the app's name shows)."""
    body: str = ""
    data: dict[str, str] = field(default_factory=dict)
    template: str | None = None


SmsRenderer = Callable[[ChannelAction], SmsParts]
PushRenderer = Callable[[ChannelAction], PushParts]


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise RenderError(f"a personalization value cannot be shown: {exc}") from None


def check_sms(body: str) -> str:
    if not body.strip():
        raise RenderError("the SMS body is empty")
    if len(body) > MAX_SMS_CHARS:
        raise RenderError(f"the SMS body has {len(body)} characters, over {MAX_SMS_CHARS} (Twilio's limit)")
    return body


def check_push(parts: PushParts) -> PushParts:
    """``parts`` when FCM would take them: a title or a body, no reserved data key, within
    :data:`MAX_PUSH_BYTES`."""
    if not parts.title.strip() and not parts.body.strip():
        raise RenderError("the push has neither a title nor a body")
    for key in parts.data:
        if not key or key in RESERVED_DATA_KEYS or key.startswith(("google.", "gcm.")):
            raise RenderError(f"the push data key {key!r} is reserved by FCM")
    size = len(orjson.dumps({"title": parts.title, "body": parts.body, "data": parts.data}))
    if size > MAX_PUSH_BYTES:
        raise RenderError(f"the push takes {size} bytes, over {MAX_PUSH_BYTES} (FCM's limit)")
    return parts


def render_sms(action: ChannelAction) -> SmsParts:
    """The plain SMS (the module's docstring says how)."""
    given = action.personalization.get("body")
    if isinstance(given, str) and given.strip():
        return SmsParts(check_sms(given))
    lines = [f"{k}: {_shown(v)}" for k, v in sorted(action.personalization.items())]
    return SmsParts(check_sms("\n".join(lines) if lines else action.template_id))


def render_push(action: ChannelAction) -> PushParts:
    """The plain push notification (the module's docstring says how)."""
    p = action.personalization
    title = p.get("title")
    body = p.get("body")
    data = {str(k): _shown(v) for k, v in sorted(p.items()) if k not in ("title", "body")}
    return check_push(
        PushParts(
            title=title if isinstance(title, str) and title.strip() else action.template_id,
            body=body if isinstance(body, str) else "",
            data=data,
        )
    )


def _rendered(registry: TemplateRegistry, action: ChannelAction) -> RenderedMessage:
    try:
        return render_action(registry, action)
    except TemplateRenderError as exc:
        raise RenderError(f"template: {exc}") from None


class TemplateSmsRenderer:
    """An :data:`SmsRenderer` on the deployed templates (``registry``, replaced as deployments come);
    :func:`render_sms` while none is deployed."""

    def __init__(self, registry: TemplateRegistry | None = None) -> None:
        self.registry = registry if registry is not None else TemplateRegistry()

    def __call__(self, action: ChannelAction) -> SmsParts:
        registry = self.registry
        if not len(registry):
            return render_sms(action)
        message = _rendered(registry, action)
        named = f"{message.template_id} v{message.template_version}"
        if message.body is None:
            raise RenderError(f"template {named}: no body")
        return SmsParts(check_sms(message.body), template=named)


class TemplatePushRenderer:
    """A :data:`PushRenderer` on the deployed templates; :func:`render_push` while none is deployed."""

    def __init__(self, registry: TemplateRegistry | None = None) -> None:
        self.registry = registry if registry is not None else TemplateRegistry()

    def __call__(self, action: ChannelAction) -> PushParts:
        registry = self.registry
        if not len(registry):
            return render_push(action)
        message = _rendered(registry, action)
        named = f"{message.template_id} v{message.template_version}"
        return check_push(
            PushParts(message.title or "", message.body or "", dict(message.data), template=named)
        )
