"""The small AST the parser produces and the checker and compiler walk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "And",
    "Binary",
    "Call",
    "Comprehension",
    "Cond",
    "Has",
    "Ident",
    "Index",
    "ListLit",
    "Literal",
    "MapLit",
    "Neg",
    "Node",
    "Not",
    "Or",
    "Select",
    "children",
]


@dataclass(frozen=True, eq=False)
class Node:
    col: int  # 1-based column of the token that names the operation


@dataclass(frozen=True, eq=False)
class Literal(Node):
    value: Any  # int, UInt, float, str, bytes, bool, None


@dataclass(frozen=True, eq=False)
class Ident(Node):
    name: str
    absolute: bool = False  # written with a leading dot (.y): never resolved within a container


@dataclass(frozen=True, eq=False)
class Select(Node):
    operand: Node
    field: str


@dataclass(frozen=True, eq=False)
class Has(Node):
    operand: Node
    field: str


@dataclass(frozen=True, eq=False)
class Index(Node):
    operand: Node
    index: Node


@dataclass(frozen=True, eq=False)
class Call(Node):
    name: str
    target: Node | None  # receiver of a method call, None for a global call
    args: tuple[Node, ...]


@dataclass(frozen=True, eq=False)
class ListLit(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, eq=False)
class MapLit(Node):
    entries: tuple[tuple[Node, Node], ...]


@dataclass(frozen=True, eq=False)
class Cond(Node):
    test: Node
    then: Node
    orelse: Node


@dataclass(frozen=True, eq=False)
class And(Node):
    terms: tuple[Node, ...]


@dataclass(frozen=True, eq=False)
class Or(Node):
    terms: tuple[Node, ...]


@dataclass(frozen=True, eq=False)
class Not(Node):
    operand: Node


@dataclass(frozen=True, eq=False)
class Neg(Node):
    operand: Node


@dataclass(frozen=True, eq=False)
class Binary(Node):
    op: str  # + - * / % < <= > >= == != in
    left: Node
    right: Node


@dataclass(frozen=True, eq=False)
class Comprehension(Node):
    """A macro over a list (or a map's keys): all, exists, exists_one, map, filter."""

    macro: str
    target: Node
    var: str
    predicate: Node | None  # the filter of map/3 and filter, the condition of all/exists/exists_one
    transform: Node | None  # the value of map


def children(node: Node) -> list[Node]:
    """The nodes directly under ``node`` (the parser's range checks, the cost estimate)."""
    out: list[Node] = []
    for name in node.__dataclass_fields__:
        v = getattr(node, name)
        if isinstance(v, Node):
            out.append(v)
        elif isinstance(v, tuple):
            for item in v:
                if isinstance(item, Node):
                    out.append(item)
                elif isinstance(item, tuple):
                    out.extend(x for x in item if isinstance(x, Node))
    return out
