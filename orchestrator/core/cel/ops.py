"""Runtime semantics of CEL operators over plain Python values.

Values: int (CEL int), UInt (uint), float (double), str, bytes, bool, None (null), list/tuple (list),
dict/Mapping (map), Timestamp or aware datetime (timestamp), Duration. ``bool`` is never a number here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .cost import MAX_GROWN
from .errors import CelEvaluationError
from .values import INT_MAX, INT_MIN, UINT_MAX, Duration, Timestamp, TypeValue, UInt

__all__ = [
    "BINARY",
    "add",
    "cel_eq",
    "cel_in",
    "div",
    "ge",
    "gt",
    "index",
    "le",
    "lt",
    "mod",
    "mul",
    "ne",
    "neg",
    "select",
    "sub",
    "type_name",
]

_NUM = (int, UInt, float)
_LISTS = (list, tuple)


def type_name(v: Any) -> str:
    t = type(v)
    if t is bool:
        return "bool"
    if t is int:
        return "int"
    if t is UInt:
        return "uint"
    if t is float:
        return "double"
    if t is str:
        return "string"
    if t is bytes:
        return "bytes"
    if v is None:
        return "null_type"
    if isinstance(v, Timestamp | datetime):
        return "timestamp"
    if t is Duration:
        return "duration"
    if isinstance(v, _LISTS):
        return "list"
    if isinstance(v, Mapping):
        return "map"
    if t is TypeValue:
        return "type"
    return t.__name__


def no_overload(op: str, *args: Any) -> CelEvaluationError:
    types = ", ".join(type_name(a) for a in args)
    return CelEvaluationError(f"no matching overload for '{op}' applied to ({types})")


def _norm(v: Any) -> Any:
    """Datetimes from the activation become Timestamps; everything else is left as is."""
    if isinstance(v, datetime):
        return Timestamp.from_datetime(v)
    return v


# ---------------------------------------------------------------- equality
def cel_eq(a: Any, b: Any) -> bool:
    """CEL heterogeneous equality: values of different kinds are unequal, numbers compare by value."""
    ta, tb = type(a), type(b)
    if ta is tb and (ta is str or ta is int or ta is float or ta is bool):
        return bool(a == b)
    if ta in _NUM and tb in _NUM:
        if ta is float or tb is float:  # an int and a double compare as doubles (the spec)
            return float(a) == float(b)
        return bool(a == b)
    if isinstance(a, _LISTS):
        if not isinstance(b, _LISTS) or len(a) != len(b):
            return False
        return all(cel_eq(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping):
        if not isinstance(b, Mapping) or len(a) != len(b):
            return False
        for k, v in a.items():
            found, other = _map_find(b, k)
            if not found or not cel_eq(v, other):
                return False
        return True
    if isinstance(a, datetime) or isinstance(b, datetime):
        a, b = _norm(a), _norm(b)
    if type(a) is not type(b):
        return False
    return bool(a == b)


def ne(a: Any, b: Any) -> bool:
    return not cel_eq(a, b)


# ---------------------------------------------------------------- ordering
_ORDERED = frozenset({int, UInt, float, str, bytes, bool, Timestamp, Duration})


def _cmp_args(op: str, a: Any, b: Any) -> tuple[Any, Any]:
    ta, tb = type(a), type(b)
    if ta is tb and ta in _ORDERED:
        return a, b
    if ta in _NUM and tb in _NUM:
        if ta is float or tb is float:  # as doubles: 9223372036854775807 < 9223372036854775808.0 is false
            return float(a), float(b)
        return a, b
    a, b = _norm(a), _norm(b)
    if type(a) is type(b) and type(a) in (Timestamp, Duration):
        return a, b
    raise no_overload(op, a, b)


def lt(a: Any, b: Any) -> bool:
    x, y = _cmp_args("<", a, b)
    return bool(x < y)


def le(a: Any, b: Any) -> bool:
    x, y = _cmp_args("<=", a, b)
    return bool(x <= y)


def gt(a: Any, b: Any) -> bool:
    x, y = _cmp_args(">", a, b)
    return bool(x > y)


def ge(a: Any, b: Any) -> bool:
    x, y = _cmp_args(">=", a, b)
    return bool(x >= y)


# ---------------------------------------------------------------- arithmetic
def _int_result(r: int) -> int:
    if INT_MIN <= r <= INT_MAX:
        return r
    raise CelEvaluationError("int overflow")


def _uint_result(r: int) -> UInt:
    if 0 <= r <= UINT_MAX:
        return UInt(r)
    raise CelEvaluationError("uint overflow")


def _grown(n: int) -> None:
    if n > MAX_GROWN:
        raise CelEvaluationError(f"'+' would make a value of {n:,} items (more than {MAX_GROWN:,})")


def add(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is type(b):
        if ta is int:
            return _int_result(a + b)
        if ta is float:
            return a + b
        if ta is str or ta is bytes:
            _grown(len(a) + len(b))
            return a + b
        if ta is UInt:
            return _uint_result(a + b)
    if isinstance(a, _LISTS) and isinstance(b, _LISTS):
        _grown(len(a) + len(b))
        return [*a, *b]
    a, b = _norm(a), _norm(b)
    ta, tb = type(a), type(b)
    if ta is Duration and tb is Duration:
        return Duration(a.ns + b.ns)
    if ta is Timestamp and tb is Duration:
        return Timestamp(a.ns + b.ns)
    if ta is Duration and tb is Timestamp:
        return Timestamp(a.ns + b.ns)
    raise no_overload("+", a, b)


def sub(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is type(b):
        if ta is int:
            return _int_result(a - b)
        if ta is float:
            return a - b
        if ta is UInt:
            return _uint_result(a - b)
    a, b = _norm(a), _norm(b)
    ta, tb = type(a), type(b)
    if ta is Duration and tb is Duration:
        return Duration(a.ns - b.ns)
    if ta is Timestamp and tb is Duration:
        return Timestamp(a.ns - b.ns)
    if ta is Timestamp and tb is Timestamp:
        diff = a.ns - b.ns
        if not INT_MIN <= diff <= INT_MAX:  # as cel-go (and the conformance suite): about +-292 years
            raise CelEvaluationError("duration out of range")
        return Duration(diff)
    raise no_overload("-", a, b)


def mul(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is type(b):
        if ta is int:
            return _int_result(a * b)
        if ta is float:
            return a * b
        if ta is UInt:
            return _uint_result(a * b)
    raise no_overload("*", a, b)


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def div(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is type(b):
        if ta is int or ta is UInt:
            if b == 0:
                raise CelEvaluationError("division by zero")
            q = _trunc_div(a, b)
            return _int_result(q) if ta is int else UInt(q)
        if ta is float:
            if b == 0.0:  # IEEE 754, as the spec: x/0.0 is an infinity, 0.0/0.0 is NaN
                if a == 0.0 or math.isnan(a):
                    return math.nan
                return math.copysign(math.inf, a) * math.copysign(1.0, b)
            return a / b
    raise no_overload("/", a, b)


def mod(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is type(b) and (ta is int or ta is UInt):
        if b == 0:
            raise CelEvaluationError("modulus by zero")
        r = a - b * _trunc_div(a, b)
        return r if ta is int else UInt(r)
    raise no_overload("%", a, b)


def neg(a: Any) -> Any:
    ta = type(a)
    if ta is int:
        return _int_result(-a)
    if ta is float:
        return -a
    if ta is Duration:
        return Duration(-a.ns)
    raise no_overload("-_", a)


# ---------------------------------------------------------------- containers
def _map_find(m: Mapping[Any, Any], k: Any) -> tuple[bool, Any]:
    tk = type(k)
    if tk is str:
        if k in m:
            return True, m[k]
        return False, None
    if tk is bool:
        for kk, v in m.items():
            if type(kk) is bool and kk == k:
                return True, v
        return False, None
    if tk in _NUM:
        for kk, v in m.items():
            if type(kk) in _NUM and kk == k:
                return True, v
        return False, None
    raise CelEvaluationError(f"unsupported map key type '{type_name(k)}'")


def index(container: Any, key: Any) -> Any:
    if isinstance(container, Mapping):
        found, v = _map_find(container, key)
        if found:
            return v
        raise CelEvaluationError(f"no such key: {key!r}")
    if isinstance(container, _LISTS):
        tk = type(key)
        if tk is int or tk is UInt or (tk is float and key.is_integer()):
            i = int(key)
            if 0 <= i < len(container):
                return container[i]
            raise CelEvaluationError(f"index out of range: {i}")
        raise no_overload("_[_]", container, key)
    raise no_overload("_[_]", container, key)


def select(operand: Any, field: str) -> Any:
    if isinstance(operand, Mapping):
        if field in operand:  # (not try/except KeyError: a missing attribute is common, one raise)
            return operand[field]
        raise CelEvaluationError(f"no such key: '{field}'")
    raise CelEvaluationError(f"type '{type_name(operand)}' does not support field selection ('.{field}')")


def cel_in(item: Any, container: Any) -> bool:
    if isinstance(container, _LISTS):
        if type(item) is str:
            return any(type(x) is str and x == item for x in container)
        return any(cel_eq(item, x) for x in container)
    if isinstance(container, Mapping):
        try:
            return _map_find(container, item)[0]
        except CelEvaluationError:
            return False
    raise no_overload("in", item, container)


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": add,
    "-": sub,
    "*": mul,
    "/": div,
    "%": mod,
    "<": lt,
    "<=": le,
    ">": gt,
    ">=": ge,
    "==": cel_eq,
    "!=": ne,
    "in": cel_in,
}
