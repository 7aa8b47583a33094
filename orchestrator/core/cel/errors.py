"""Errors of the CEL compiler: both derive from :class:`orchestrator.exceptions.ConditionError`."""

from __future__ import annotations

from orchestrator.exceptions import ConditionError

__all__ = ["CelCompileError", "CelEvaluationError", "caret_line"]


def caret_line(source: str, column: int) -> str:
    """The source line holding ``column`` (1-based, counted over the whole source) and a caret under it."""
    offset = max(column - 1, 0)
    start = source.rfind("\n", 0, offset) + 1
    end = source.find("\n", offset)
    line = source[start : end if end >= 0 else len(source)]
    return f"    {line}\n    {' ' * (offset - start)}^"


class CelCompileError(ConditionError):
    """A condition does not parse, compile or type-check.

    ``column`` is 1-based and counts characters from the start of the source (a multi-line
    condition counts its newlines too), so a validator can add it to the condition's position
    in a journey file. ``reason`` is the message without the position.
    """

    def __init__(self, reason: str, column: int, source: str) -> None:
        super().__init__(f"column {column}: {reason}\n{caret_line(source, column)}")
        self.reason = reason
        self.column = column
        self.source = source


class CelEvaluationError(ConditionError):
    """A condition failed while evaluating (no such key, division by zero, no matching overload...).

    ``column`` is the position of the operation that failed, when known (else 0).
    """

    def __init__(self, reason: str, column: int = 0) -> None:
        super().__init__(reason if column <= 0 else f"column {column}: {reason}")
        self.reason = reason
        self.column = column
