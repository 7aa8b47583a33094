"""Typed reading of a YAML document with problems that name file, line and field.

A :class:`Reader` walks the plain values of a :class:`~orchestrator.core.journey.yamlsrc.SourceDoc`
and collects every problem instead of stopping at the first one.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from orchestrator.contracts.events import EVENT_TYPE_PATTERN, EVENT_TYPE_RULE, RESERVED_TYPE_PREFIX
from orchestrator.core.cel import compile_condition
from orchestrator.core.journey.durations import parse_duration
from orchestrator.core.journey.model import Condition
from orchestrator.core.journey.yamlsrc import Path, SourceDoc, format_path
from orchestrator.exceptions import ConditionError

__all__ = ["EVENT_TYPE_RE", "NAME_RE", "SEGMENT_ID_RE", "Reader", "did_you_mean"]

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
SEGMENT_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
"""A segment id is a CEL field name: ``profile.segments.<id>`` must read it."""
EVENT_TYPE_RE = re.compile(EVENT_TYPE_PATTERN)
_MISSING = object()


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close choice exists, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Reader:
    """Reads values at paths of one document; each problem is ``file:line: field: message``."""

    def __init__(self, doc: SourceDoc, history_window_ms: int) -> None:
        self.doc = doc
        self.history_window_ms = history_window_ms
        self.problems: list[str] = list(doc.problems)
        self.max_lookback_ms = 0
        self.broken_steps: set[str] = set()
        """Steps with problems of their own: references to them are not reported again."""

    # -- reporting --------------------------------------------------------------------------
    def error(self, path: Path, message: str, *, line: int | None = None) -> None:
        where = line if line is not None else self.doc.key_line(path)
        self.problems.append(f"{self.doc.source_name}:{where}: {format_path(path)}: {message}")

    # -- structure --------------------------------------------------------------------------
    def mapping(
        self,
        value: Any,
        path: Path,
        *,
        allowed: Iterable[str],
        required: Iterable[str] = (),
    ) -> dict[str, Any] | None:
        """``value`` as a mapping whose keys are all in ``allowed`` and include ``required``."""
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {_kind(value)}")
            return None
        allowed_set = set(allowed)
        for key in value:
            if key not in allowed_set:
                hint = did_you_mean(key, allowed_set)
                listed = ", ".join(sorted(allowed_set))
                self.error((*path, key), f"unknown field{hint}; allowed: {listed}")
        for key in required:
            if key not in value:
                self.error((*path, key), "required field is missing")
        return value

    def get(self, data: dict[str, Any], key: str) -> Any:
        return data.get(key, _MISSING)

    def string(self, data: dict[str, Any], key: str, path: Path, *, default: str | None = None) -> str | None:
        value = data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.error((*path, key), f"expected text, got {_kind(value)}")
            return default
        text = str(value).strip()
        if not text:
            self.error((*path, key), "must not be empty")
            return default
        return text

    def name(self, data: dict[str, Any], key: str, path: Path) -> str | None:
        text = self.string(data, key, path)
        if text is not None and not NAME_RE.match(text):
            self.error(
                (*path, key), f"{text!r} is not a valid name (lower-case letters, digits, '_' and '-')"
            )
            return None
        return text

    def choice(self, data: dict[str, Any], key: str, path: Path, choices: Iterable[str], default: str) -> str:
        text = self.string(data, key, path)
        options = list(choices)
        if text is None:
            return default
        if text not in options:
            self.error(
                (*path, key),
                f"unknown value {text!r}{did_you_mean(text, options)}; one of: {', '.join(options)}",
            )
            return default
        return text

    def boolean(self, data: dict[str, Any], key: str, path: Path, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.error((*path, key), f"expected true or false, got {_kind(value)}")
            return default
        return value

    def integer(self, data: dict[str, Any], key: str, path: Path, *, default: int, minimum: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error((*path, key), f"expected a whole number, got {_kind(value)}")
            return default
        if value < minimum:
            self.error((*path, key), f"must be at least {minimum}")
            return default
        return value

    def number(self, data: dict[str, Any], key: str, path: Path) -> float | None:
        value = data.get(key)
        if value is None:
            self.error((*path, key), "required field is missing")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error((*path, key), f"expected a number, got {_kind(value)}")
            return None
        return float(value)

    def duration(
        self, data: dict[str, Any], key: str, path: Path, *, default: int | None = None
    ) -> int | None:
        value = data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.error((*path, key), f"expected a duration like 24h, got {_kind(value)}")
            return default
        if isinstance(value, int):
            self.error((*path, key), f"write a unit: {value}s, {value}m, {value}h or {value}d")
            return default
        try:
            ms = parse_duration(value)
        except ValueError as exc:
            self.error((*path, key), str(exc))
            return default
        if ms <= 0:
            self.error((*path, key), "must be longer than zero")
            return default
        return ms

    def time_of_day(
        self, data: dict[str, Any], key: str, path: Path, *, example: str = "09:30"
    ) -> tuple[int, int] | None:
        """``"HH:MM"`` at ``key`` as (hour, minute); None when absent or not a time (then reported)."""
        if key not in data:
            return None
        value = data[key]
        text = value if isinstance(value, str) else ""
        if isinstance(value, int) and not isinstance(value, bool):
            text = f"{value // 60:02d}:{value % 60:02d}"  # YAML 1.1 reads an unquoted 09:30 as 570
        parts = text.split(":")
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            hour, minute = int(parts[0]), int(parts[1])
            if 0 <= hour < 24 and 0 <= minute < 60:
                return (hour, minute)
        self.error((*path, key), f'{value!r} is not a time of day (write "HH:MM", e.g. "{example}")')
        return None

    def zone(self, data: dict[str, Any], key: str, path: Path) -> str | None:
        """An IANA time zone name at ``key``; None when absent or unknown (then reported)."""
        from orchestrator.core.engine.clock import zone  # (the engine package imports the journey model)

        name = self.string(data, key, path)
        if name is not None and zone(name, strict=True) is None:
            self.error((*path, key), f"unknown time zone {name!r} (write an IANA name like Europe/Paris)")
            return None
        return name

    def event_types(self, data: dict[str, Any], key: str, path: Path) -> frozenset[str]:
        """One event type or a list of them (``event: a.b`` or ``events: [a.b, c.d]``)."""
        value = data.get(key)
        if value is None:
            return frozenset()
        items = value if isinstance(value, list) else [value]
        out: set[str] = set()
        for i, item in enumerate(items):
            at = (*path, key, i) if isinstance(value, list) else (*path, key)
            if not isinstance(item, str) or not EVENT_TYPE_RE.match(item):
                self.error(at, f"{item!r} is not an event type: {EVENT_TYPE_RULE}")
                continue
            if item.startswith(RESERVED_TYPE_PREFIX):
                self.error(
                    at,
                    f"{item!r}: types starting with {RESERVED_TYPE_PREFIX!r} are the engine's own; for a "
                    "segment, write 'segment:' in the entry, 'left_segment:' or 'entered_segment:' in a "
                    "goal or exit rule",
                )
                continue
            out.add(item)
        if isinstance(value, list) and not items:
            self.error((*path, key), "must list at least one event type")
        return frozenset(out)

    def condition(self, data: dict[str, Any], key: str, path: Path) -> Condition | None:
        """Compile the CEL text at ``key``; compile, type and lookback problems are reported."""
        value = data.get(key)
        if value is None:
            return None
        at = (*path, key)
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str | int | float):
            self.error(at, f"expected a CEL expression as text, got {_kind(value)}")
            return None
        source = str(value)
        try:
            compiled = compile_condition(source)
        except ConditionError as exc:
            column = int(getattr(exc, "column", 0) or 0)
            reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
            line = self.doc.line(at) + source[: max(column - 1, 0)].count("\n")
            where = f"column {column}: " if column else ""
            self.error(at, f"CEL: {where}{reason}", line=line)
            return None
        lookback = int(compiled.max_lookback_ms or 0)
        if lookback > self.history_window_ms:
            self.error(
                at,
                f"looks back {lookback // 3_600_000}h but event history is only kept for "
                f"{self.history_window_ms // 3_600_000}h",
            )
        self.max_lookback_ms = max(self.max_lookback_ms, lookback)
        return Condition(source=source, compiled=compiled)

    def expressions(self, data: dict[str, Any], key: str, path: Path) -> tuple[tuple[str, Condition], ...]:
        """A mapping ``name: CEL expression`` (personalization, update ``set``)."""
        value = data.get(key)
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.error((*path, key), f"expected a mapping of name: expression, got {_kind(value)}")
            return ()
        out: list[tuple[str, Condition]] = []
        for name in value:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
                self.error((*path, key, name), f"{name!r} is not a valid field name")
                continue
            cond = self.condition(value, name, (*path, key))
            if cond is not None:
                out.append((name, cond))
        return tuple(out)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {
        dict: "a mapping",
        list: "a list",
        str: "text",
        bool: "true/false",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)
