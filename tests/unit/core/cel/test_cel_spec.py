"""The official CEL conformance tests (google/cel-spec ``tests/simple/testdata``, the core files, under
spec/ with their license and pinned commit) run against our CEL: every test that applies (no protobuf
messages) passes, except those docs/cel.md lists as deliberately unsupported. The pass rate per file is
printed at the end of the run (conftest.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from spec_cases import CORE_FILES, Case, TypeName, cases

from orchestrator.core.cel import CelCompileError, CelEvaluationError, CelType
from orchestrator.core.cel import _compile as compile_with
from orchestrator.core.cel.values import TypeValue

DOCS = Path(__file__).resolve().parents[4] / "docs" / "cel.md"

ALL = list(cases())
APPLICABLE = [c for c in ALL if c.not_applicable is None]

UNSUPPORTED: dict[str, str] = {}
"""Test id -> why our CEL deliberately differs (each is listed in docs/cel.md)."""

RESULTS: dict[str, list[int]] = {}
"""File -> [passed, failed, not applicable], filled as the tests run (printed by conftest.py)."""


def same(actual: Any, expected: Any) -> bool:
    """Equal and of the same CEL type (1 and 1.0, 1 and 1u, 1 and true differ; NaN is NaN)."""
    if isinstance(expected, TypeName):
        return type(actual) is TypeValue and actual.name == expected.name
    if isinstance(expected, float) and isinstance(actual, float) and math.isnan(expected):
        return math.isnan(actual)
    if type(actual) is not type(expected):
        return (
            isinstance(actual, list | tuple) and isinstance(expected, list) and same(list(actual), expected)
        )
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(map(same, actual, expected))
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(same(actual[k], expected[k]) for k in expected)
    return bool(actual == expected)


def outcome(case: Case) -> str | None:
    """None when our CEL gives what the test expects, else what it gave."""
    variables = dict.fromkeys([*case.declared, *case.bindings], CelType.DYN)
    try:
        compiled = compile_with(case.expr, variables, check=not case.disable_check, container=case.container)
    except CelCompileError as exc:
        return None if case.error else f"refused: {exc.reason}"
    if case.check_only:
        return None
    try:
        got = compiled.evaluate(case.bindings)
    except CelEvaluationError as exc:
        return None if case.error else f"error: {exc.reason}"
    if case.error:
        return f"{got!r} where an error was expected"
    return None if same(got, case.value) else f"{got!r} where {case.value!r} was expected"


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_spec(case: Case) -> None:
    counts = RESULTS.setdefault(case.file, [0, 0, 0])
    if case.not_applicable is not None:
        counts[2] += 1
        pytest.skip(f"does not apply: {case.not_applicable}")
    if case.id in UNSUPPORTED:
        counts[1] += 1
        pytest.skip(f"deliberately unsupported: {UNSUPPORTED[case.id]}")
    failed = outcome(case)
    counts[0 if failed is None else 1] += 1
    assert failed is None, f"{case.expr!r}: {failed}"


def test_the_suite_is_what_we_think() -> None:
    """The files are the pinned ones, and most of their tests apply."""
    assert {c.file for c in ALL} == set(CORE_FILES)
    assert len(ALL) == 1465
    assert len(APPLICABLE) >= 1090
    passing = len(APPLICABLE) - len(UNSUPPORTED)
    assert passing / len(APPLICABLE) >= 0.98


def test_every_deliberate_difference_is_in_the_docs() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [test_id for test_id in UNSUPPORTED if f"`{test_id}`" not in text]
    assert missing == [], f"docs/cel.md does not list: {missing}"
