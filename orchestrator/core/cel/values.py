"""CEL value types that plain Python lacks: uint, timestamp, duration, and their parsing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import CelEvaluationError

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "TYPE_DENOTATIONS",
    "TYPE_NAMES",
    "UINT_MAX",
    "Duration",
    "Timestamp",
    "TypeValue",
    "UInt",
    "parse_duration",
    "parse_timestamp",
    "to_timestamp",
    "zone",
]

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
UINT_MAX = 2**64 - 1
_NS = 1_000_000_000
# protobuf limits: timestamps 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z, durations +-10000 years.
TS_MIN_NS = -62135596800 * _NS
TS_MAX_NS = 253402300799 * _NS + 999_999_999
DUR_MAX_NS = 315576000000 * _NS + 999_999_999
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UInt(int):
    """A CEL ``uint``: a Python int marked unsigned (arithmetic results must be re-wrapped)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{int(self)}u"


class TypeValue:
    """A CEL type as a value: what ``type(x)`` gives and what ``int``, ``string``, ``list`` ... name."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return type(other) is TypeValue and other.name == self.name

    def __hash__(self) -> int:
        return hash(("type", self.name))

    def __repr__(self) -> str:
        return self.name


TYPE_NAMES = {
    "int": "int", "uint": "uint", "double": "double", "bool": "bool", "string": "string", "bytes": "bytes",
    "list": "list", "map": "map", "null_type": "null_type", "type": "type",
    "timestamp": "google.protobuf.Timestamp", "duration": "google.protobuf.Duration",
}  # fmt: skip
"""A value's kind (:func:`~.ops.type_name`) -> the name of its CEL type."""
TYPE_DENOTATIONS = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)
"""Identifiers that denote a type as a value (unless a variable of that name is declared)."""


class Duration:
    """A CEL duration, in nanoseconds."""

    __slots__ = ("ns",)

    def __init__(self, ns: int) -> None:
        if not -DUR_MAX_NS <= ns <= DUR_MAX_NS:
            raise CelEvaluationError("duration out of range")
        self.ns = ns

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and other.ns == self.ns

    def __lt__(self, other: Duration) -> bool:
        return self.ns < other.ns

    def __le__(self, other: Duration) -> bool:
        return self.ns <= other.ns

    def __gt__(self, other: Duration) -> bool:
        return self.ns > other.ns

    def __ge__(self, other: Duration) -> bool:
        return self.ns >= other.ns

    def __hash__(self) -> int:
        return hash(("duration", self.ns))

    def __repr__(self) -> str:
        return f"duration({str(self)!r})"

    def __str__(self) -> str:
        sign = "-" if self.ns < 0 else ""
        seconds, nanos = divmod(abs(self.ns), _NS)
        frac = f".{nanos:09d}".rstrip("0") if nanos else ""
        return f"{sign}{seconds}{frac}s"


class Timestamp:
    """A CEL timestamp: nanoseconds since the Unix epoch, UTC."""

    __slots__ = ("ns",)

    def __init__(self, ns: int) -> None:
        if not TS_MIN_NS <= ns <= TS_MAX_NS:
            raise CelEvaluationError("timestamp out of range")
        self.ns = ns

    @classmethod
    def from_datetime(cls, value: datetime) -> Timestamp:
        if value.tzinfo is None:
            raise CelEvaluationError("naive datetime: timestamps need a timezone")
        delta = value - _EPOCH
        return cls((delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000)

    def to_datetime(self, tz: tzinfo = UTC) -> datetime:
        """The instant as an aware datetime (microsecond precision) in ``tz``."""
        return (_EPOCH + timedelta(microseconds=self.ns // 1000)).astimezone(tz)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Timestamp) and other.ns == self.ns

    def __lt__(self, other: Timestamp) -> bool:
        return self.ns < other.ns

    def __le__(self, other: Timestamp) -> bool:
        return self.ns <= other.ns

    def __gt__(self, other: Timestamp) -> bool:
        return self.ns > other.ns

    def __ge__(self, other: Timestamp) -> bool:
        return self.ns >= other.ns

    def __hash__(self) -> int:
        return hash(("timestamp", self.ns))

    def __repr__(self) -> str:
        return f"timestamp({str(self)!r})"

    def __str__(self) -> str:
        seconds, nanos = divmod(self.ns, _NS)
        text = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
        if len(text) < 19:  # strftime does not pad years below 1000 everywhere
            year, rest = text.split("-", 1)
            text = f"{int(year):04d}-{rest}"
        frac = f".{nanos:09d}".rstrip("0") if nanos else ""
        return f"{text}{frac}Z"


def to_timestamp(value: Any) -> Timestamp:
    """``value`` as a Timestamp if it is one (or an aware datetime), else CelEvaluationError."""
    if type(value) is Timestamp:
        return value
    if isinstance(value, datetime):
        return Timestamp.from_datetime(value)
    raise CelEvaluationError("not a timestamp")


_TS_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)


def parse_timestamp(text: str) -> Timestamp:
    """An RFC 3339 timestamp such as ``2024-03-10T07:30:00Z`` or ``2024-03-10T02:30:00.5-05:00``."""
    m = _TS_RE.match(text)
    if m is None:
        raise CelEvaluationError(
            f"invalid timestamp {text!r} (expected RFC 3339, e.g. '2024-01-31T09:00:00Z')"
        )
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    nanos = int((m.group(7) or "").ljust(9, "0"))
    try:
        naive = datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError as exc:
        raise CelEvaluationError(f"invalid timestamp {text!r}: {exc}; out of range") from None
    offset = 0
    if m.group(9):
        offset = (int(m.group(10)) * 60 + int(m.group(11))) * 60 * (-1 if m.group(9) == "-" else 1)
    delta = naive - datetime(1970, 1, 1)
    seconds = delta.days * 86400 + delta.seconds + (second - min(second, 59)) - offset
    return Timestamp(seconds * _NS + nanos)


_DUR_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|h|m|s)")
_UNIT_NS = {"h": 3600 * _NS, "m": 60 * _NS, "s": _NS, "ms": 1_000_000, "us": 1000, "µs": 1000, "ns": 1}


def parse_duration(text: str) -> Duration:
    """A duration such as ``24h``, ``1h30m``, ``90s``, ``1.5s``, ``250ms``, ``-10m`` (Go syntax)."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return Duration(0)
    pos, total = 0, Decimal(0)
    if not body:
        raise CelEvaluationError(f"invalid duration {text!r}")
    while pos < len(body):
        m = _DUR_PART.match(body, pos)
        if m is None:
            raise CelEvaluationError(
                f"invalid duration {text!r} (expected e.g. '24h', '1h30m', '90s', '250ms')"
            )
        try:
            total += Decimal(m.group(1)) * _UNIT_NS[m.group(2)]
        except InvalidOperation:  # pragma: no cover - the regex only lets numbers through
            raise CelEvaluationError(f"invalid duration {text!r}") from None
        pos = m.end()
    ns = int(total)
    return Duration(-ns if text.startswith("-") else ns)


_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*\Z")
_OFFSET_RE = re.compile(r"([+-]?)(\d{2}):(\d{2})\Z")


@lru_cache(maxsize=256)
def zone(name: str) -> tzinfo:
    """A timezone from an IANA name (``Europe/Paris``) or a fixed offset (``+02:00``, ``-05:30``)."""
    m = _OFFSET_RE.match(name)
    if m is not None:
        minutes = int(m.group(2)) * 60 + int(m.group(3))
        return timezone(timedelta(minutes=-minutes if m.group(1) == "-" else minutes))
    if name in ("UTC", "Z"):
        return UTC
    if not _ZONE_NAME.match(name):
        raise CelEvaluationError(f"unknown timezone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CelEvaluationError(f"unknown timezone {name!r}") from None
