"""Which journeys an event may enter, found without testing every entry condition.

Many journeys share an entry event type and tell themselves apart by an equality on the event
(``event.properties.segment == "lapsed_90d"``, ``event.source == "pos"``). For each event type the
:class:`EntryIndex` keeps those journeys by the path and the text they require, so an event is tested
only against the journeys whose required text it carries (and those without such a requirement). A
pre-filter only: every candidate's condition is still tested, so the result is the same as testing all
of them. Only a string literal is indexed: in CEL a string equals only the same string, and a missing
field or another type makes ``==`` false (or an error, which counts as false).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.cel.nodes import And, Binary, Ident, Literal, Node, Select
from orchestrator.core.cel.parser import parse

__all__ = ["EntryIndex", "required_text"]

Path = tuple[str, ...]
Requirement = tuple[Path, str] | None


def required_text(source: str) -> tuple[Path, str] | None:
    """``(path under event, text)`` when the condition can hold only if ``event.<path> == text``: the
    condition is such an equality, or a conjunction (``&&``) with one. None otherwise."""
    try:
        node = parse(source)
    except Exception:
        return None
    terms = node.terms if isinstance(node, And) else (node,)
    for term in terms:
        found = _equality(term)
        if found is not None:
            return found
    return None


def _equality(node: Node) -> tuple[Path, str] | None:
    if not isinstance(node, Binary) or node.op != "==":
        return None
    for side, other in ((node.left, node.right), (node.right, node.left)):
        path = _event_path(side)
        if path and isinstance(other, Literal) and type(other.value) is str:
            return path, other.value
    return None


def _event_path(node: Node) -> Path | None:
    fields: list[str] = []
    while isinstance(node, Select):
        fields.append(node.field)
        node = node.operand
    if isinstance(node, Ident) and node.name == "event" and fields:
        return tuple(reversed(fields))
    return None


@dataclass(slots=True)
class EntryIndex:
    """The journeys one event type may enter, in their order, and those that require a text."""

    order: tuple[str, ...]
    position: dict[str, int] = field(default_factory=dict)
    always: list[str] = field(default_factory=list)
    """Journeys tested on every event of the type."""
    by_text: dict[Path, dict[str, set[str]]] = field(default_factory=dict)
    """Path -> required text -> journeys (a journey whose versions require different texts is in each)."""

    @classmethod
    def build(
        cls, order: Iterable[str], requirements: dict[str, list[tuple[Path, str] | None]]
    ) -> EntryIndex:
        """``requirements``: per journey, what each of its versions entered by the type requires
        (None: nothing); a journey is indexed only when every version requires a text."""
        index = cls(tuple(order))
        index.position = {jid: i for i, jid in enumerate(index.order)}
        for jid in index.order:
            needs = requirements.get(jid) or [None]
            if any(n is None for n in needs):
                index.always.append(jid)
                continue
            for path, text in (n for n in needs if n is not None):
                index.by_text.setdefault(path, {}).setdefault(text, set()).add(jid)
        return index

    def candidates(self, event: dict[str, Any]) -> tuple[str, ...] | list[str]:
        """The journeys whose entry condition ``event`` (its condition view) may satisfy, in order."""
        if not self.by_text:
            return self.order
        found = set(self.always)
        for path, texts in self.by_text.items():
            value: Any = event
            for name in path:
                if type(value) is not dict:
                    break
                value = value.get(name)
            else:
                if type(value) is str:
                    found.update(texts.get(value, ()))
        if len(found) == len(self.order):
            return self.order
        return sorted(found, key=self.position.__getitem__)
