"""What a segment's condition reads, found in its syntax tree: the other segments it names, and the
uses of ``now`` outside seen()/count() (refused: membership is re-checked on events and when counted
events leave their windows, and a condition on the clock alone would change at no such moment)."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.core.cel.nodes import Binary, Call, Has, Ident, Index, Literal, Node, Select, children
from orchestrator.core.cel.parser import parse

__all__ = ["ConditionReads", "analyse"]

_HISTORY_CALLS = ("seen", "count")


@dataclass
class ConditionReads:
    segments: set[str] = field(default_factory=set)
    """Segments named through ``profile.segments``."""
    problems: list[tuple[int, str]] = field(default_factory=list)
    """(column, message) of each use the segment language refuses."""


def _is_segments(node: Node) -> bool:
    """``profile.segments``."""
    return (
        isinstance(node, Select)
        and node.field == "segments"
        and isinstance(node.operand, Ident)
        and node.operand.name == "profile"
    )


def analyse(source: str) -> ConditionReads:
    """The segments ``source`` names and the problems of its uses of ``profile.segments`` and ``now``
    (``source`` compiles: the parser does not fail here)."""
    reads = ConditionReads()
    _walk(parse(source), reads, frozenset())
    return reads


def _walk(node: Node, reads: ConditionReads, local: frozenset[str]) -> None:
    named = _named_segment(node)
    if named is not None:
        reads.segments.add(named)
        return
    if _is_segments(node):
        reads.problems.append(
            (
                node.col,
                "name the segment: '\"vip\" in profile.segments' (or profile.segments.vip, "
                "has(profile.segments.vip)); profile.segments may not be used as a whole",
            )
        )
        return
    if isinstance(node, Ident) and node.name == "now" and "now" not in local:
        reads.problems.append(
            (
                node.col,
                "a segment may not read 'now': membership is re-checked on the customer's events and "
                "when an event counted by seen()/count() leaves its window; count events in a window "
                'instead (seen("page.viewed", duration("1h")))',
            )
        )
        return
    if isinstance(node, Call) and node.target is None and node.name in _HISTORY_CALLS:
        for arg in node.args:  # (the window is a duration literal; the type and the filter may read)
            _walk(arg, reads, local)
        return
    var = getattr(node, "var", None)
    inner = local | {var} if isinstance(var, str) else local
    for child in children(node):
        _walk(child, reads, inner)


def _named_segment(node: Node) -> str | None:
    """The segment a membership test names: ``profile.segments.vip``, ``has(profile.segments.vip)``,
    ``profile.segments["vip"]``, ``"vip" in profile.segments``."""
    if isinstance(node, Select | Has) and _is_segments(node.operand):
        return node.field
    if isinstance(node, Index) and _is_segments(node.operand):
        index = node.index
        return index.value if isinstance(index, Literal) and isinstance(index.value, str) else None
    if isinstance(node, Binary) and node.op == "in" and _is_segments(node.right):
        left = node.left
        return left.value if isinstance(left, Literal) and isinstance(left.value, str) else None
    return None
