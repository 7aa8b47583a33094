"""The CEL condition compiler: journey conditions in CEL, compiled once into Python closures.

``compile_condition(source)`` parses (lark, ``cel.lark``), type-checks what can be known statically and
compiles the tree into closures over a fixed set of operations; no Python source is ever evaluated.
See docs/cel.md for the supported subset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .celtypes import CelType
from .checker import Checker
from .compiler import Compiler, Fn
from .cost import BUDGET, COST_BUDGET, estimate
from .errors import CelCompileError, CelEvaluationError
from .ops import type_name
from .parser import parse
from .qualified import qualify
from .values import Duration, Timestamp, UInt

__all__ = [
    "DEFAULT_VARIABLES",
    "CelCompileError",
    "CelEvaluationError",
    "CelType",
    "CompiledCondition",
    "Duration",
    "Timestamp",
    "UInt",
    "compile_condition",
]

DEFAULT_VARIABLES: Mapping[str, CelType] = {
    "profile": CelType.DYN_MAP,
    "event": CelType.DYN_MAP,
    "history": CelType.list_of(CelType.DYN_MAP),
    "now": CelType.TIMESTAMP,
    "journey": CelType.DYN_MAP,
}


class CompiledCondition:
    """A compiled condition. Evaluate it with a plain mapping of the declared variables.

    The activation holds plain Python values (dict, list, str, int, float, bool, None, aware datetime);
    the time is ``now_ms`` (epoch milliseconds, int) or ``now`` (aware datetime); CEL sees it as the
    timestamp ``now``. ``history`` is a sequence of records (mappings with ``type`` and ``at_ms``),
    newest last.
    """

    __slots__ = (
        "_budgeted", "_fn", "_selected", "_windows", "max_lookback_ms", "referenced", "result_type", "source",
    )  # fmt: skip

    def __init__(
        self,
        source: str,
        fn: Fn,
        max_lookback_ms: int,
        referenced: frozenset[str],
        result_type: CelType,
        selected: Mapping[str, frozenset[str]] | None = None,
        budgeted: bool = False,
        windows: tuple[Fn, ...] = (),
    ):
        self.source = source
        self._budgeted = budgeted
        """It has macros: each evaluation starts with a full cost budget (cost.py)."""
        self.max_lookback_ms = max_lookback_ms
        self.referenced = referenced
        self.result_type = result_type
        self._fn = fn
        self._selected = dict(selected or {})
        self._windows = windows

    @property
    def reads_history_records(self) -> bool:
        """It uses ``history`` itself (``history.exists(...)``), not only through seen()/count() (which
        read an activation's ``history_rows`` when given: the stored rows, no record per event)."""
        return "history" in self.referenced and self.fields_read("history") != frozenset()

    @property
    def time_dependent(self) -> bool:
        """It counts events in windows (seen()/count()): its value may change as time passes."""
        return bool(self._windows)

    def next_change_ms(self, activation: Mapping[str, Any]) -> int | None:
        """The earliest time after the activation's ``now`` at which an event its seen()/count() calls
        count leaves its window (or a later one enters it): when its value may next change with no new
        event. None when no counted event would (or it has no windows)."""
        soonest: int | None = None
        for window in self._windows:
            change = window(activation)
            if change is not None and (soonest is None or change < soonest):
                soonest = change
        return soonest

    def fields_read(self, variable: str) -> frozenset[str] | None:
        """The fields of ``variable`` the condition reads (``profile.email`` reads ``email``); None
        when it may read any (it uses the variable as a whole: a map function, has(), an argument)."""
        return self._selected.get(variable)

    def evaluate(self, activation: Mapping[str, Any]) -> Any:
        """The condition's value; raises CelEvaluationError on a runtime error (no such key, overflow...)."""
        if self._budgeted:
            BUDGET.left[0] = COST_BUDGET
        try:
            return self._fn(activation)
        except CelEvaluationError:
            raise
        except RecursionError:
            raise CelEvaluationError("evaluation nested too deeply") from None
        except Exception as exc:
            raise CelEvaluationError(f"{type(exc).__name__}: {exc}") from None

    def test(self, activation: Mapping[str, Any]) -> bool:
        """The condition's bool value; raises CelEvaluationError on a runtime error or a non-bool result."""
        v = self.evaluate(activation)
        if v is True or v is False:
            return v
        raise CelEvaluationError(f"the condition gave a {type_name(v)}, not a bool")

    def __repr__(self) -> str:
        return f"CompiledCondition({self.source!r})"


def compile_condition(source: str, *, variables: Mapping[str, CelType] | None = None) -> CompiledCondition:
    """Parse, check and compile ``source``; raises ConditionError (CelCompileError, with ``.column``).

    ``variables`` are the top-level names a condition may use, with their static types (default:
    profile, event, history, now, journey). The history functions seen()/count() need ``history``.
    """
    return _compile(source, variables, check=True)


def _compile(
    source: str,
    variables: Mapping[str, CelType] | None,
    *,
    check: bool,
    container: str = "",
    budget: bool = True,
) -> CompiledCondition:
    """compile_condition, with static type errors optionally off (the conformance suite's disable_check)
    and names resolved within a ``container`` (a namespace; journeys declare none)."""
    declared = DEFAULT_VARIABLES if variables is None else variables
    node = qualify(parse(source), declared, container)
    checker = Checker(source, declared)
    if check:
        result_type = checker.check(node)
    else:
        checker.lenient = True
        result_type = checker.check(node)
    iterations, where = estimate(node, declared)
    if iterations > COST_BUDGET and where is not None:
        raise CelCompileError(
            f"this condition can make up to {iterations:,} macro iterations per evaluation (macros over "
            f"lists nested in each other), more than the cost budget of {COST_BUDGET:,}: iterate over a part "
            "of the outer element, or over a shorter list",
            where.col,
            source,
        )
    compiler = Compiler(source, declared, budget=budget)
    fn = compiler.compile(node)
    selected = {
        name: frozenset(fields) for name, fields in compiler.selected.items() if name not in compiler.whole
    }
    selected.update({name: frozenset() for name in checker.referenced - compiler.whole - selected.keys()})
    return CompiledCondition(
        source,
        fn,
        compiler.max_lookback_ms,
        frozenset(checker.referenced),
        result_type,
        selected,
        budgeted=budget and where is not None,
        windows=tuple(compiler.windows),
    )
