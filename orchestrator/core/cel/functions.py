"""CEL standard functions of the supported subset: signatures (for the checker) and implementations."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, tzinfo
from functools import lru_cache
from typing import Any, Protocol

import re2  # type: ignore[import-untyped]

from .celtypes import CelType
from .errors import CelEvaluationError
from .ops import no_overload, type_name
from .values import (
    INT_MAX,
    INT_MIN,
    TYPE_NAMES,
    UINT_MAX,
    Duration,
    Timestamp,
    TypeValue,
    UInt,
    parse_duration,
    parse_timestamp,
    to_timestamp,
    zone,
)

__all__ = ["FUNCTIONS", "Function", "compile_regex"]

T = CelType
_ANY = T.DYN
_LIST, _MAP = T.list_of(T.DYN), T.map_of(T.DYN, T.DYN)


@dataclass(frozen=True)
class Function:
    """One function: ``overloads`` are (parameter types, result type); methods list the receiver first."""

    name: str
    method: bool
    overloads: tuple[tuple[tuple[CelType, ...], CelType], ...]
    impl: Callable[..., Any]


# ---------------------------------------------------------------- size and strings
def _size(v: Any) -> int:
    if isinstance(v, str | bytes | list | tuple | Mapping):
        return len(v)
    raise no_overload("size", v)


def _str_args(name: str, s: Any, arg: Any) -> tuple[str, str]:
    if type(s) is str and type(arg) is str:
        return s, arg
    raise no_overload(name, s, arg)


def _contains(s: Any, sub: Any) -> bool:
    a, b = _str_args("contains", s, sub)
    return b in a


def _starts_with(s: Any, prefix: Any) -> bool:
    a, b = _str_args("startsWith", s, prefix)
    return a.startswith(b)


def _ends_with(s: Any, suffix: Any) -> bool:
    a, b = _str_args("endsWith", s, suffix)
    return a.endswith(b)


MAX_REGEX_LENGTH = 500


class Regex(Protocol):
    """A compiled pattern of ``matches`` (RE2's)."""

    def search(self, text: str) -> object | None: ...


@lru_cache(maxsize=1)
def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # (a refused pattern is our error to report, not a line on stderr)
    options.never_capture = True
    return options


@lru_cache(maxsize=512)
def compile_regex(pattern: str) -> Regex:
    """A regular expression for ``matches``, with RE2's syntax and semantics (the spec's): linear time
    in the text, whatever the pattern; no backreferences or lookaround. Raises CelEvaluationError for a
    pattern RE2 refuses, with its reason."""
    if len(pattern) > MAX_REGEX_LENGTH:
        raise CelEvaluationError(f"regular expression longer than {MAX_REGEX_LENGTH} characters")
    try:
        compiled: Regex = re2.compile(pattern, _re2_options())
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise CelEvaluationError(f"invalid regular expression {pattern!r}: {reason} (RE2 syntax)") from None
    return compiled


def _matches(s: Any, pattern: Any) -> bool:
    a, b = _str_args("matches", s, pattern)
    return compile_regex(b).search(a) is not None


_LOWER = {c: c + 32 for c in range(65, 91)}
_UPPER = {c + 32: c for c in range(65, 91)}


def _lower_ascii(s: Any) -> str:
    if type(s) is str:
        return s.translate(_LOWER)
    raise no_overload("lowerAscii", s)


def _upper_ascii(s: Any) -> str:
    if type(s) is str:
        return s.translate(_UPPER)
    raise no_overload("upperAscii", s)


# ---------------------------------------------------------------- conversions
_INT_TEXT = re.compile(r"[+-]?\d+\Z")


def _to_int(v: Any) -> int:
    t = type(v)
    if t is int:
        return v  # type: ignore[no-any-return]
    if t is UInt:
        if v > INT_MAX:
            raise CelEvaluationError("int overflow converting uint")
        return int(v)
    if t is float:
        # (as the spec's conformance tests: both ends excluded, -2^63 itself is out of range)
        if math.isnan(v) or not (-(2.0**63) < v < 2.0**63):
            raise CelEvaluationError("double out of int range")
        return int(v)
    if t is str:
        if not _INT_TEXT.match(v) or not INT_MIN <= int(v) <= INT_MAX:
            raise CelEvaluationError(f"cannot convert {v!r} to int")
        return int(v)
    if t is Timestamp or t.__name__ == "datetime":
        return to_timestamp(v).ns // 1_000_000_000
    raise no_overload("int", v)


def _to_uint(v: Any) -> UInt:
    t = type(v)
    if t is UInt:
        return v  # type: ignore[no-any-return]
    if t is int:
        if v < 0:
            raise CelEvaluationError("negative int converted to uint")
        return UInt(v)
    if t is float:
        if math.isnan(v) or not (0 <= v < 2.0**64):
            raise CelEvaluationError("double out of uint range")
        return UInt(int(v))
    if t is str:
        if not _INT_TEXT.match(v) or not 0 <= int(v) <= UINT_MAX:
            raise CelEvaluationError(f"cannot convert {v!r} to uint")
        return UInt(int(v))
    raise no_overload("uint", v)


def _to_double(v: Any) -> float:
    t = type(v)
    if t is float:
        return v  # type: ignore[no-any-return]
    if t is int or t is UInt:
        return float(v)
    if t is str:
        try:
            return float(v)
        except ValueError:
            raise CelEvaluationError(f"cannot convert {v!r} to double") from None
    raise no_overload("double", v)


def _format_double(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    text = repr(v)
    return text[:-2] if text.endswith(".0") else text


def _to_string(v: Any) -> str:
    t = type(v)
    if t is str:
        return v  # type: ignore[no-any-return]
    if t is bool:
        return "true" if v else "false"
    if t is int or t is UInt:
        return str(int(v))
    if t is float:
        return _format_double(v)
    if t is bytes:
        try:
            return v.decode("utf-8")  # type: ignore[no-any-return]
        except UnicodeDecodeError:
            raise CelEvaluationError("bytes are not valid UTF-8") from None
    if t is Duration:
        return str(v)
    if t is Timestamp or t.__name__ == "datetime":
        return str(to_timestamp(v))
    raise no_overload("string", v)


def _to_bool(v: Any) -> bool:
    if type(v) is bool:
        return bool(v)
    if type(v) is str:
        if v in ("true", "True", "TRUE", "t", "1"):
            return True
        if v in ("false", "False", "FALSE", "f", "0"):
            return False
        raise CelEvaluationError(f"cannot convert {v!r} to bool")
    raise no_overload("bool", v)


def _to_bytes(v: Any) -> bytes:
    if type(v) is bytes:
        return bytes(v)
    if type(v) is str:
        return v.encode("utf-8")
    raise no_overload("bytes", v)


def _timestamp(v: Any) -> Timestamp:
    if type(v) is str:
        return parse_timestamp(v)
    if type(v) is int:
        return Timestamp(v * 1_000_000_000)
    if type(v) is Timestamp or type(v).__name__ == "datetime":
        return to_timestamp(v)
    raise no_overload("timestamp", v)


def _duration(v: Any) -> Duration:
    if type(v) is str:
        return parse_duration(v)
    if type(v) is Duration:
        return v
    raise no_overload("duration", v)


def _dyn(v: Any) -> Any:
    return v


# ---------------------------------------------------------------- timestamp / duration accessors
def _local(ts: Any, tz: Any, name: str) -> Any:
    if tz is None:
        tzi: tzinfo = UTC
    elif type(tz) is str:
        tzi = zone(tz)
    else:
        raise no_overload(name, ts, tz)
    return to_timestamp(ts).to_datetime(tzi)


def _accessor(name: str, fn: Callable[[Any], int], dur: Callable[[int], int] | None) -> Callable[..., int]:
    def get(v: Any, tz: Any = None) -> int:
        if type(v) is Duration:
            if dur is None or tz is not None:
                raise no_overload(name, v)
            return dur(v.ns)
        if type(v) is not Timestamp and type(v).__name__ != "datetime":
            raise no_overload(name, v)
        return fn(_local(v, tz, name))

    get.__name__ = name
    return get


def _trunc(ns: int, unit: int) -> int:
    q = abs(ns) // unit
    return q if ns >= 0 else -q


_ACCESSORS: dict[str, tuple[Callable[[Any], int], Callable[[int], int] | None]] = {
    "getFullYear": (lambda d: d.year, None),
    "getMonth": (lambda d: d.month - 1, None),  # 0-11, as in CEL
    "getDate": (lambda d: d.day, None),  # 1-31
    "getDayOfMonth": (lambda d: d.day - 1, None),  # 0-30
    "getDayOfWeek": (lambda d: (d.weekday() + 1) % 7, None),  # 0 = Sunday
    "getDayOfYear": (lambda d: d.timetuple().tm_yday - 1, None),  # 0-365
    "getHours": (lambda d: d.hour, lambda ns: _trunc(ns, 3600 * 10**9)),
    "getMinutes": (lambda d: d.minute, lambda ns: _trunc(ns, 60 * 10**9)),
    "getSeconds": (lambda d: d.second, lambda ns: _trunc(ns, 10**9)),
    # timestamps: the millisecond field; durations: the millisecond part (not the total), as in CEL
    "getMilliseconds": (
        lambda d: d.microsecond // 1000,
        lambda ns: (abs(ns) % 10**9) // 10**6 * (1 if ns >= 0 else -1),
    ),
}


def _type_of(v: Any) -> TypeValue:
    return TypeValue(TYPE_NAMES[type_name(v)])


def _build() -> dict[tuple[str, bool], Function]:
    num_str = (T.INT, T.UINT, T.DOUBLE, T.STRING)
    table: list[Function] = [
        Function("size", False, tuple(((t,), T.INT) for t in (T.STRING, T.BYTES, _LIST, _MAP)), _size),
        Function("size", True, tuple(((t,), T.INT) for t in (T.STRING, T.BYTES, _LIST, _MAP)), _size),
        Function("contains", True, (((T.STRING, T.STRING), T.BOOL),), _contains),
        Function("startsWith", True, (((T.STRING, T.STRING), T.BOOL),), _starts_with),
        Function("endsWith", True, (((T.STRING, T.STRING), T.BOOL),), _ends_with),
        Function("matches", True, (((T.STRING, T.STRING), T.BOOL),), _matches),
        Function("matches", False, (((T.STRING, T.STRING), T.BOOL),), _matches),
        Function("lowerAscii", True, (((T.STRING,), T.STRING),), _lower_ascii),
        Function("upperAscii", True, (((T.STRING,), T.STRING),), _upper_ascii),
        Function("int", False, tuple(((t,), T.INT) for t in (*num_str, T.TIMESTAMP)), _to_int),
        Function("uint", False, tuple(((t,), T.UINT) for t in num_str), _to_uint),
        Function("double", False, tuple(((t,), T.DOUBLE) for t in num_str), _to_double),
        Function(
            "string",
            False,
            tuple(((t,), T.STRING) for t in (*num_str, T.BYTES, T.BOOL, T.TIMESTAMP, T.DURATION)),
            _to_string,
        ),
        Function("bool", False, (((T.BOOL,), T.BOOL), ((T.STRING,), T.BOOL)), _to_bool),
        Function("bytes", False, (((T.BYTES,), T.BYTES), ((T.STRING,), T.BYTES)), _to_bytes),
        Function(
            "timestamp", False, tuple(((t,), T.TIMESTAMP) for t in (T.STRING, T.INT, T.TIMESTAMP)), _timestamp
        ),
        Function("duration", False, (((T.STRING,), T.DURATION), ((T.DURATION,), T.DURATION)), _duration),
        Function("dyn", False, (((_ANY,), _ANY),), _dyn),
        Function("type", False, (((_ANY,), T.TYPE),), _type_of),
    ]
    for name, (fn, dur) in _ACCESSORS.items():
        sigs: list[tuple[tuple[CelType, ...], CelType]] = [
            ((T.TIMESTAMP,), T.INT),
            ((T.TIMESTAMP, T.STRING), T.INT),
        ]
        if dur is not None:
            sigs.append(((T.DURATION,), T.INT))
        table.append(Function(name, True, tuple(sigs), _accessor(name, fn, dur)))
    return {(f.name, f.method): f for f in table}


FUNCTIONS: dict[tuple[str, bool], Function] = _build()
