"""Qualified names: variables with dotted names (``a.b.c`` declared as one variable) and a container
(a namespace, ``com.example``), resolved as the spec says. A name, or a field selection whose root is
not a macro's variable, is the first declared of: the name within the container and each of its
parents (``com.example.y``, ``com.y``), then the name itself; each with the longest dotted prefix of the
selection first (``a.b.c``, then ``a.b`` and field ``c``, then ``a``). A leading dot (``.y``) skips the
container."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any

from .nodes import Comprehension, Ident, Node, Select

__all__ = ["qualify"]


def qualify(node: Node, declared: Collection[str], container: str = "") -> Node:
    """``node`` with qualified names resolved (unchanged when no declared name has a dot and there is
    no container)."""
    names = frozenset(declared)
    if not container and not any("." in n for n in names):
        return node
    parts = container.split(".") if container else []
    prefixes = tuple(".".join(parts[:i]) + "." for i in range(len(parts), 0, -1))
    return _Resolver(names, prefixes).walk(node, frozenset())


@dataclasses.dataclass(frozen=True)
class _Resolver:
    declared: frozenset[str]
    prefixes: tuple[str, ...]
    """The container and its parents, longest first, each ending in a dot."""

    def resolve(self, root: Ident, fields: list[str]) -> Node | None:
        """The node for ``root.fields...`` when a qualified name matches, else None."""
        names = [root.name, *fields]
        for prefix in ("",) if root.absolute else (*self.prefixes, ""):
            for cut in range(len(names), 0, -1):
                name = prefix + ".".join(names[:cut])
                if name in self.declared:
                    out: Node = Ident(root.col, name, absolute=root.absolute)
                    for field in names[cut:]:
                        out = Select(root.col, out, field)
                    return out
        return None

    def walk(self, node: Node, bound: frozenset[str]) -> Node:
        if isinstance(node, Ident | Select):
            fields: list[str] = []
            cur: Node = node
            while isinstance(cur, Select):
                fields.append(cur.field)
                cur = cur.operand
            if isinstance(cur, Ident) and (cur.absolute or cur.name not in bound):
                fields.reverse()
                found = self.resolve(cur, fields)
                if found is not None:
                    return found
        inner = bound | {node.var} if isinstance(node, Comprehension) else bound
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if isinstance(value, Node):
                scope = bound if isinstance(node, Comprehension) and f.name == "target" else inner
                changes[f.name] = self.walk(value, scope)
            elif isinstance(value, tuple) and value and isinstance(value[0], Node | tuple):
                changes[f.name] = tuple(
                    self.walk(v, inner) if isinstance(v, Node) else tuple(self.walk(x, inner) for x in v)
                    for v in value
                )
        return dataclasses.replace(node, **changes) if changes else node
