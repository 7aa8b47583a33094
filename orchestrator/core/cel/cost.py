"""The cost budget of a condition: macros (``all``, ``exists``, ``map`` ...) may iterate at most
:data:`COST_BUDGET` times in one evaluation, nested ones counted together.

- **At load time** (:func:`estimate`): the most a condition can iterate, from the bounds on its data: a
  list in an event has at most :data:`DATA_ITEMS` items (``max_properties``, counted over all levels, so
  the lists inside one event's items hold that many together), the history :data:`HISTORY_ITEMS`
  records, a literal list its length. Macros nested over independent lists multiply
  (``items.all(a, items.all(b, ...))``: 1,000 times 1,000); a macro over a part of the outer macro's element
  does not (``items.exists(i, i.tags.exists(t, ...))``: 1,000 in all). Over the budget: refused, with
  the column of the outer macro.
- **At run time** (:data:`BUDGET`): every macro charges the size of what it iterates before it starts;
  past the budget the condition fails with a run-time error (as a missing key would). Strings, bytes and
  lists made by ``+`` are limited to :data:`MAX_GROWN` items (``ops.add``).
"""

from __future__ import annotations

from collections.abc import Collection

from .errors import CelEvaluationError
from .nodes import Comprehension, Ident, ListLit, MapLit, Node, children

__all__ = [
    "BUDGET",
    "COST_BUDGET",
    "DATA_ITEMS",
    "HISTORY_ITEMS",
    "MAX_GROWN",
    "Budget",
    "estimate",
    "free_names",
]

COST_BUDGET = 100_000
"""Macro iterations one evaluation may make (about 0.1 s at worst)."""
DATA_ITEMS = 1_000
"""At most this many list items in one event's properties, counted over all levels (``max_properties``)."""
HISTORY_ITEMS = 200
"""At most this many records in ``history`` (the profile's ``history_max``)."""
MAX_GROWN = 1_000_000
"""Characters, bytes or items a ``+`` may make."""


class Budget:
    """What is left of the current evaluation's budget: ``left[0]``, reset by ``evaluate``, decreased by
    each macro before it iterates (a list, so the closures change it in place without a method call).
    One per process: conditions are evaluated one at a time (the runtime's event loop, simulate)."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = [COST_BUDGET]

    def reset(self) -> None:
        self.left[0] = COST_BUDGET


def over_budget() -> CelEvaluationError:
    return CelEvaluationError(
        f"the condition went over its cost budget ({COST_BUDGET:,} macro iterations in one evaluation)"
    )


BUDGET = Budget()


def free_names(node: Node) -> set[str]:
    """The identifiers ``node`` reads that it does not bind itself."""
    if isinstance(node, Ident):
        return {node.name}
    names: set[str] = set()
    for child in children(node):
        names |= free_names(child)
    if isinstance(node, Comprehension):
        inner = set()
        for part in (node.predicate, node.transform):
            if part is not None:
                inner |= free_names(part)
        names = free_names(node.target) | (inner - {node.var})
    return names


def _size(node: Node, history: bool) -> int:
    """The most items ``node`` can hold when a macro iterates it."""
    if isinstance(node, ListLit):
        return len(node.items)
    if isinstance(node, MapLit):
        return len(node.entries)
    if isinstance(node, Ident) and node.name == "history" and history:
        return HISTORY_ITEMS
    if isinstance(node, Comprehension) and node.macro in ("map", "filter"):
        return _size(node.target, history)
    return DATA_ITEMS


def estimate(node: Node, declared: Collection[str]) -> tuple[int, Node | None]:
    """The most macro iterations one evaluation of ``node`` can make, and the outermost macro of the
    costliest nesting (None without macros)."""
    history = "history" in declared
    worst: list[tuple[int, Node | None]] = [(0, None)]

    def walk(n: Node, runs: int, loops: tuple[tuple[str, Comprehension], ...]) -> int:
        """Iterations made by ``n`` when it is evaluated ``runs`` times, inside ``loops``."""
        if not isinstance(n, Comprehension):
            return sum(walk(child, runs, loops) for child in children(n))
        spent = walk(n.target, runs, loops)
        size = _size(n.target, history)
        outer = [var for var, _ in loops]
        if set(outer) & free_names(n.target) and not isinstance(n.target, ListLit | MapLit):
            # a part of an outer macro's element: all those parts together hold at most DATA_ITEMS
            iterations = min(runs * size, DATA_ITEMS)
        else:
            iterations = runs * size
        inside = (*loops, (n.var, n))
        for part in (n.predicate, n.transform):
            if part is not None:
                spent += walk(part, iterations, inside)
        total = spent + iterations
        top = loops[0][1] if loops else n
        if total > worst[0][0]:
            worst[0] = (total, top)
        return total

    total = walk(node, 1, ())
    return total, worst[0][1] if total else None
