"""A message template as an immutable Python object, compiled and ready to render.

A :class:`TemplateDefinition` is what a template file (``kind: template``, docs/templates.md) becomes
after loading and validation: its parts (an email's subject, HTML and text; an SMS's body; a push's
title, body and data) compiled once by Jinja2's sandbox, and the variables it reads declared, each
required or with a default. What rendering gives is a :class:`RenderedMessage`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from jinja2 import Template

__all__ = [
    "PARTS",
    "PART_LIMITS",
    "RenderedMessage",
    "TemplateChannel",
    "TemplateDefinition",
    "TemplatePart",
    "TemplateVariable",
]

TemplateChannel = Literal["email", "sms", "push"]

PARTS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "text", "html"),
    "sms": ("body",),
    "push": ("title", "body", "data"),
}
"""The parts of each channel's templates, in the order they render."""

PART_LIMITS: dict[tuple[str, str], tuple[int, int]] = {
    ("email", "subject"): (1_000, 1_000),
    ("email", "text"): (100_000, 200_000),
    ("email", "html"): (200_000, 500_000),
    ("sms", "body"): (1_600, 1_600),
    ("push", "title"): (250, 250),
    ("push", "body"): (2_000, 2_000),
    ("push", "data"): (1_000, 1_000),
}
"""(channel, part) -> (characters of template text, characters rendered) at most; for push ``data``,
each value's."""


@dataclass(frozen=True, slots=True)
class TemplateVariable:
    """A value the template reads by name: the action's ``personalization`` value of that name, else
    ``default``; a ``required`` one has no default (missing: the message is not rendered)."""

    name: str
    required: bool
    default: Any = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class TemplatePart:
    """One compiled part: ``name`` is ``subject``, ``html``, ``text``, ``body``, ``title`` or
    ``data.<key>``."""

    name: str
    source: str
    compiled: Template = field(compare=False)
    max_chars: int
    """Characters it may render to."""
    one_line: bool = False
    """A subject or a title: line breaks in what it renders become spaces."""
    line: int = 1
    """The file's line where the part's text starts (messages name it)."""


@dataclass(frozen=True, slots=True)
class TemplateDefinition:
    """One version of one template."""

    id: str
    version: int
    channel: TemplateChannel
    name: str
    description: str
    parts: tuple[TemplatePart, ...]
    variables: tuple[TemplateVariable, ...] = ()
    profile_fields: frozenset[str] | None = frozenset()
    """The fields of ``profile`` the parts read (``profile.first_name``: ``first_name``); None when they
    read it as a whole (a loop over it, a field named by a value): what a renderer's profile view must
    hold."""
    source_name: str = "<text>"
    content_hash: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.id, self.version)

    @property
    def required(self) -> tuple[str, ...]:
        """The names of the required variables."""
        return tuple(v.name for v in self.variables if v.required)

    def variable(self, name: str) -> TemplateVariable | None:
        return next((v for v in self.variables if v.name == name), None)


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A template rendered for one message: every part, whole (a part that cannot be rendered raises,
    nothing is half-rendered). ``parts`` by name in the channel's order (:data:`PARTS`), without
    ``data``; ``data``: a push's data values by key."""

    template_id: str
    template_version: int
    channel: TemplateChannel
    parts: dict[str, str]
    data: dict[str, str] = field(default_factory=dict)

    @property
    def subject(self) -> str | None:
        return self.parts.get("subject")

    @property
    def html(self) -> str | None:
        return self.parts.get("html")

    @property
    def text(self) -> str | None:
        return self.parts.get("text")

    @property
    def body(self) -> str | None:
        return self.parts.get("body")

    @property
    def title(self) -> str | None:
        return self.parts.get("title")

    def to_dict(self) -> dict[str, Any]:
        return {
            "template_id": self.template_id,
            "template_version": self.template_version,
            "channel": self.channel,
            **self.parts,
            **({"data": dict(self.data)} if self.data else {}),
        }
