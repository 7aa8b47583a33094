"""The cel-spec conformance tests (tests/unit/core/cel/spec/, google/cel-spec at a pinned commit) as
cases for our CEL: which files are core, which tests apply (no protobuf messages), how an expected
value reads. Used by test_cel_spec.py."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textproto import Text, Word, parse

from orchestrator.core.cel import UInt

SPEC = Path(__file__).parent / "spec"
CORE_FILES = (
    "basic", "comparisons", "conversions", "dynamic", "fields", "fp_math", "integer_math", "lists", "logic",
    "macros", "namespace", "parse", "plumbing", "string", "timestamps", "type_deduction",
)  # fmt: skip
"""The core language's files. Left out: the extensions (``*_ext``, ``optionals``, and ``macros2``: the
two-variable comprehensions of "comprehensions v2") and the files about protobuf messages (``proto2``,
``proto3``, ``wrappers``, ``enums``, ``unknowns``)."""

PROTO_WORDS = ("google.protobuf.", "TestAllTypes", "cel.expr.conformance", "NestedMessage", "GlobalEnum")
"""A test whose expression or bindings name these needs protobuf messages: not applicable."""


@dataclass
class Case:
    file: str
    section: str
    name: str
    expr: str
    bindings: dict[str, Any] = field(default_factory=dict)
    value: Any = None
    error: bool = False
    disable_check: bool = False
    check_only: bool = False
    container: str = ""
    declared: list[str] = field(default_factory=list)
    """Names the test's type environment declares (variables, without their types)."""
    not_applicable: str | None = None
    """Why the test does not apply to a CEL without protobuf messages (None: it applies)."""

    @property
    def id(self) -> str:
        return f"{self.file}/{self.section}/{self.name}"


class NotApplicable(Exception):
    pass


def _scalar(v: Any) -> str:
    return v.text if isinstance(v, Text | Word) else str(v)


def decode(message: dict[str, list[Any]]) -> Any:
    """A ``cel.expr.Value`` message as a Python value of our CEL."""
    ((kind, (v,)),) = message.items()
    if kind == "int64_value":
        return int(_scalar(v))
    if kind == "uint64_value":
        return UInt(int(_scalar(v)))
    if kind == "double_value":
        text = _scalar(v).lower()
        if text in ("inf", "infinity"):
            return math.inf
        if text in ("-inf", "-infinity"):
            return -math.inf
        return math.nan if text == "nan" else float(text)
    if kind == "string_value":
        return v.text
    if kind == "bytes_value":
        return v.raw
    if kind == "bool_value":
        return _scalar(v) == "true"
    if kind == "null_value":
        return None
    if kind == "list_value":
        return [decode(x) for x in v.get("values", [])]
    if kind == "map_value":
        return {_key(decode(e["key"][0])): decode(e["value"][0]) for e in v.get("entries", [])}
    if kind == "type_value":
        return TypeName(_scalar(v))
    raise NotApplicable(f"a {kind} value")


@dataclass(frozen=True)
class TypeName:
    """An expected CEL type value (``type(1)`` is ``int``)."""

    name: str


def _key(k: Any) -> Any:
    return k


def _binding(message: dict[str, list[Any]]) -> Any:
    if "value" in message:
        return decode(message["value"][0])
    raise NotApplicable("a binding that is not a value")


def _case(file: str, section: str, test: dict[str, list[Any]]) -> Case:
    one = {k: v[0] for k, v in test.items()}
    case = Case(file, section, _scalar(one["name"]), _scalar(one.get("expr", Text(b""))))
    case.disable_check = _scalar(one.get("disable_check", Word("false"))) == "true"
    case.check_only = _scalar(one.get("check_only", Word("false"))) == "true"
    try:
        words = case.expr + repr(test.get("bindings")) + repr(test.get("type_env"))
        if any(w in words for w in PROTO_WORDS) or "object_value" in repr(test):
            raise NotApplicable("protobuf messages")
        case.container = _scalar(one.get("container", Text(b"")))
        if case.container.startswith(("google.protobuf", "cel.expr")):
            raise NotApplicable("protobuf messages")
        for declared in test.get("type_env", []):
            case.declared.append(_scalar(declared["name"][0]))
        if "disable_macros" in one:
            raise NotApplicable("macros turned off")
        for b in test.get("bindings", []):
            case.bindings[_scalar(b["key"][0])] = _binding(b["value"][0])
        if "value" in one:
            case.value = decode(one["value"])
        elif "typed_result" in one:
            result = one["typed_result"]
            if "result" not in result:
                raise NotApplicable("the checker's deduced type only (type parameters, optionals)")
            case.value = decode(result["result"][0])
        elif "eval_error" in one:
            case.error = True
        elif "unknown" in one or "any_eval_errors" in one or "any_unknowns" in one:
            raise NotApplicable("unknowns")
        else:
            case.value = True  # no expected value: the expression is true
    except NotApplicable as why:
        case.not_applicable = str(why)
    return case


def cases(files: tuple[str, ...] = CORE_FILES) -> Iterator[Case]:
    for name in files:
        doc = parse((SPEC / f"{name}.textproto").read_text(encoding="utf-8"))
        for section in doc.get("section", []):
            for test in section.get("test", []):
                yield _case(name, _scalar(section["name"][0]), test)
