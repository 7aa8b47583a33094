"""Load segment files: YAML text -> validated :class:`SegmentDefinition`, problems as
``file:line: field: message``.

A segment file says ``kind: segment`` at its top level (how ``orchestrator validate``, ``deploy`` and the
simulator tell it from a journey or a policy in the same folder)::

    kind: segment
    id: cart_abandoners
    version: 1
    name: Cart abandoners with email consent
    condition: >
      seen("cart.updated", duration("24h")) && !seen("order.completed", duration("24h"))
      && profile.consent.email.marketing && !("vip" in profile.segments)

The condition reads ``profile`` and the event history (seen()/count() with windows); it may not read
``event`` or ``journey`` (a segment is about the customer, not one event) nor ``now`` outside
seen()/count(). The YAML reading (line numbers, duplicate keys, typed fields) is the journey language's.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path as FsPath
from typing import Any

import orjson

from orchestrator.core.journey.loader import DEFAULT_HISTORY_WINDOW_MS
from orchestrator.core.journey.reader import SEGMENT_ID_RE, Reader
from orchestrator.core.journey.yamlsrc import compose_text, read_source
from orchestrator.core.segment.analysis import check_audience_condition
from orchestrator.core.segment.model import SEGMENT_STATUSES, SegmentDefinition
from orchestrator.exceptions import SegmentValidationError

__all__ = [
    "SEGMENT_KIND",
    "is_segment_file",
    "is_segment_text",
    "load_segment_file",
    "load_segment_text",
]

SEGMENT_KIND = "segment"
_TOP = ("kind", "id", "version", "name", "description", "status", "condition")
_KIND_LINE = re.compile(r"^kind:\s*['\"]?segment['\"]?\s*(#.*)?$", re.MULTILINE)


def is_segment_text(text: str) -> bool:
    """True when the YAML text has ``kind: segment`` at its top level (a line starting in column 1)."""
    return _KIND_LINE.search(text) is not None


def is_segment_file(path: str | FsPath) -> bool:
    text, _ = read_source(path)
    return text is not None and is_segment_text(text)


def load_segment_text(
    text: str, source_name: str = "<text>", *, history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS
) -> SegmentDefinition:
    """Parse and validate one segment; raises SegmentValidationError with all problems."""
    doc = compose_text(text, source_name)
    reader = Reader(doc, history_window_ms)
    if doc.value is None:
        raise SegmentValidationError(reader.problems or [f"{source_name}:1: (root): the file is empty"])
    segment = _segment(reader, doc.value)
    if reader.problems or segment is None:
        raise SegmentValidationError(reader.problems or [f"{source_name}:1: (root): invalid segment"])
    return segment


def load_segment_file(
    path: str | FsPath, *, history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS
) -> SegmentDefinition:
    """Load one segment file (see :func:`load_segment_text`)."""
    text, problem = read_source(path)
    if text is None:
        raise SegmentValidationError([problem or f"{path}:1: (file): cannot read the file"])
    return load_segment_text(text, str(path), history_window_ms=history_window_ms)


def _segment(r: Reader, value: Any) -> SegmentDefinition | None:
    data = r.mapping(value, (), allowed=_TOP, required=("kind", "id", "version", "condition"))
    if data is None:
        return None
    if "kind" in data and data["kind"] != SEGMENT_KIND:
        r.error(("kind",), f"expected 'segment', got {data['kind']!r}")
    sid = data.get("id")
    if not isinstance(sid, str) or not SEGMENT_ID_RE.match(sid):
        if "id" in data:
            r.error(
                ("id",),
                f"{sid!r} is not a segment id: lower-case letters, digits and _, starting with a letter "
                "(up to 64; conditions read it as profile.segments.<id>)",
            )
        sid = None
    version = r.integer(data, "version", (), default=1, minimum=1)
    status = r.choice(data, "status", (), SEGMENT_STATUSES, "active")
    condition = r.condition(data, "condition", ())
    depends: frozenset[str] = frozenset()
    if condition is not None:
        named = check_audience_condition(r, condition, ("condition",))
        if sid is not None and sid in named:
            r.error(("condition",), f"segment {sid!r} reads its own membership")
        depends = named - {sid}
    if sid is None or condition is None:
        return None
    return SegmentDefinition(
        id=sid,
        version=version,
        name=r.string(data, "name", (), default=sid) or sid,
        description=r.string(data, "description", (), default="") or "",
        condition=condition,
        depends_on=depends,
        status=status,  # type: ignore[arg-type]
        max_lookback_ms=r.max_lookback_ms,
        source_name=r.doc.source_name,
        content_hash=_content_hash(data),
    )


def _content_hash(data: dict[str, Any]) -> str:
    meaning = {k: v for k, v in data.items() if k not in ("status", "name", "description")}
    return hashlib.blake2b(orjson.dumps(meaning, option=orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()
