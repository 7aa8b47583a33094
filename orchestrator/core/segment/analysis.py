"""What an audience condition reads, found in its syntax tree: the other segments it names, and the
uses of ``now`` outside seen()/count() (refused: a segment's membership is re-checked on events and when
counted events leave their windows, and a condition on the clock alone would change at no such moment).

:func:`check_audience_condition` applies the rules of an audience condition — a segment's, or the one a
campaign narrows its segment with — while a file is read: no ``event``, no ``journey``, no ``now`` alone,
``profile.segments`` only to name a segment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.core.cel.nodes import Binary, Call, Has, Ident, Index, Literal, Node, Select, children
from orchestrator.core.cel.parser import parse
from orchestrator.core.journey.model import Condition
from orchestrator.core.journey.reader import Reader
from orchestrator.core.journey.yamlsrc import Path

__all__ = ["SEGMENT_NOW_REASON", "ConditionReads", "analyse", "check_audience_condition"]

_HISTORY_CALLS = ("seen", "count")
SEGMENT_NOW_REASON = (
    "membership is re-checked on the customer's events and when an event counted by seen()/count() "
    "leaves its window"
)
"""Why a segment's condition may not read ``now`` (the campaign loader gives its own reason)."""


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


def analyse(
    source: str, *, subject: str = "a segment", now_reason: str = SEGMENT_NOW_REASON
) -> ConditionReads:
    """The segments ``source`` names and the problems of its uses of ``profile.segments`` and ``now``
    (``source`` compiles: the parser does not fail here). ``subject`` and ``now_reason`` word the refusal
    of ``now``: "<subject> may not read 'now': <now_reason>; ..."."""
    reads = ConditionReads()
    now_problem = (
        f"{subject} may not read 'now': {now_reason}; count events in a window instead "
        '(seen("page.viewed", duration("1h")))'
    )
    _walk(parse(source), reads, frozenset(), now_problem)
    return reads


def check_audience_condition(
    r: Reader,
    condition: Condition,
    at: Path,
    *,
    subject: str = "a segment",
    now_reason: str = SEGMENT_NOW_REASON,
) -> frozenset[str]:
    """Report at ``at`` each read an audience condition may not make (``event``, ``journey``, ``now``
    alone, ``profile.segments`` as a whole; CEL problems with their column); return the segments it
    names. ``subject`` names what the condition belongs to in the messages ("a segment")."""
    not_read = {
        "event": f"{subject} is about the customer, not one event: it reads 'profile' and the event "
        "history (seen()/count() with a window), not 'event'",
        "journey": f"{subject} is not part of a journey: it reads 'profile' and the event history, not "
        "'journey'",
    }
    for name in sorted(condition.compiled.referenced & not_read.keys()):
        r.error(at, not_read[name])
    reads = analyse(condition.source, subject=subject, now_reason=now_reason)
    line = r.doc.line(at)
    for column, message in reads.problems:
        r.error(at, f"CEL: column {column}: {message}", line=line)
    return frozenset(reads.segments)


def _walk(node: Node, reads: ConditionReads, local: frozenset[str], now_problem: str) -> None:
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
        reads.problems.append((node.col, now_problem))
        return
    if isinstance(node, Call) and node.target is None and node.name in _HISTORY_CALLS:
        for arg in node.args:  # (the window is a duration literal; the type and the filter may read)
            _walk(arg, reads, local, now_problem)
        return
    var = getattr(node, "var", None)
    inner = local | {var} if isinstance(var, str) else local
    for child in children(node):
        _walk(child, reads, inner, now_problem)


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
