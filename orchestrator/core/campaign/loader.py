"""Load campaign files: YAML text -> validated :class:`CampaignDefinition`, problems as
``file:line: field: message``.

A campaign file says ``kind: campaign`` at its top level (how ``orchestrator validate``, ``deploy`` and
the simulator tell it from a journey, a policy or a segment in the same folder)::

    kind: campaign
    id: spring_sale
    version: 1
    audience:
      segment: cart_abandoners
      condition: profile.country == "US"
    send: {channel: email, template: spring_sale_v1, subscription_group: product_news}
    schedule: {date: 2025-03-12, local_time: "10:00", default_timezone: Europe/Berlin}
    deliver_within: 2h

The audience condition follows a segment's rules (:func:`~orchestrator.core.segment.analysis.
check_audience_condition`); the ``send`` block reads like a journey's send step. The schedule is one
instant for everyone (``at``) or a wall-clock time in each customer's zone (``date`` + ``local_time``),
once or every so many days. Every field and rule: docs/campaigns.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path as FsPath
from typing import Any

import orjson

from orchestrator.core.campaign.model import (
    CAMPAIGN_STATUSES,
    CampaignDefinition,
    CampaignSchedule,
)
from orchestrator.core.journey.durations import DAY_MS
from orchestrator.core.journey.loader import DEFAULT_HISTORY_WINDOW_MS, read_send_step
from orchestrator.core.journey.model import Condition, SendStep
from orchestrator.core.journey.reader import SEGMENT_ID_RE, Reader
from orchestrator.core.journey.yamlsrc import Path, compose_text, read_source
from orchestrator.core.segment.analysis import check_audience_condition
from orchestrator.exceptions import CampaignValidationError

__all__ = [
    "CAMPAIGN_KIND",
    "DEFAULT_DELIVER_WITHIN_MS",
    "MAX_DELIVER_WITHIN_MS",
    "MAX_EVERY_DAYS",
    "MAX_OCCURRENCES",
    "MAX_PACE_PER_SECOND",
    "is_campaign_file",
    "is_campaign_text",
    "load_campaign_file",
    "load_campaign_text",
]

CAMPAIGN_KIND = "campaign"
DEFAULT_DELIVER_WITHIN_MS = 2 * 3_600_000
MAX_DELIVER_WITHIN_MS = 7 * DAY_MS
MAX_OCCURRENCES = 1000
MAX_EVERY_DAYS = 365
"""Longest recurrence step: with :data:`MAX_OCCURRENCES` the last occurrence stays within the calendar."""
MAX_PACE_PER_SECOND = 100_000
FIRST_YEAR, LAST_YEAR = 1970, 2999
"""The years a schedule's first occurrence may fall in."""

_TOP = (
    "kind", "id", "version", "name", "description", "status", "audience", "send", "journey", "schedule",
    "deliver_within", "pace",
)  # fmt: skip
_AUDIENCE = ("segment", "condition")
_SEND = (
    "channel", "template", "category", "subscription_group", "personalization", "on_unsent", "channels",
    "send_time", "within", "between",
)  # fmt: skip
_SCHEDULE = ("at", "date", "local_time", "default_timezone", "every", "occurrences")
_KIND_LINE = re.compile(r"^kind:\s*['\"]?campaign['\"]?\s*(#.*)?$", re.MULTILINE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NOW_REASON = "the audience is checked at each member's send time, which the schedule sets"


def is_campaign_text(text: str) -> bool:
    """True when the YAML text has ``kind: campaign`` at its top level (a line starting in column 1)."""
    return _KIND_LINE.search(text) is not None


def is_campaign_file(path: str | FsPath) -> bool:
    text, _ = read_source(path)
    return text is not None and is_campaign_text(text)


def load_campaign_text(
    text: str, source_name: str = "<text>", *, history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS
) -> CampaignDefinition:
    """Parse and validate one campaign; raises CampaignValidationError with all problems."""
    doc = compose_text(text, source_name)
    reader = Reader(doc, history_window_ms)
    if doc.value is None:
        raise CampaignValidationError(reader.problems or [f"{source_name}:1: (root): the file is empty"])
    campaign = _campaign(reader, doc.value)
    if reader.problems or campaign is None:
        raise CampaignValidationError(reader.problems or [f"{source_name}:1: (root): invalid campaign"])
    return campaign


def load_campaign_file(
    path: str | FsPath, *, history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS
) -> CampaignDefinition:
    """Load one campaign file (see :func:`load_campaign_text`)."""
    text, problem = read_source(path)
    if text is None:
        raise CampaignValidationError([problem or f"{path}:1: (file): cannot read the file"])
    return load_campaign_text(text, str(path), history_window_ms=history_window_ms)


def _campaign(r: Reader, value: Any) -> CampaignDefinition | None:
    data = r.mapping(value, (), allowed=_TOP, required=("kind", "id", "version", "audience", "schedule"))
    if data is None:
        return None
    if "kind" in data and data["kind"] != CAMPAIGN_KIND:
        r.error(("kind",), f"expected 'campaign', got {data['kind']!r}")
    cid = r.name(data, "id", ())
    version = r.integer(data, "version", (), default=1, minimum=1)
    status = r.choice(data, "status", (), CAMPAIGN_STATUSES, "active")
    segment, condition = _audience(r, data)
    send, journey = _what(r, data, cid)
    schedule = _schedule(r, data)
    deliver_within = _deliver_within(r, data)
    pace = _pace(r, data)
    if cid is None or segment is None or schedule is None or (send is None and journey is None):
        return None
    return CampaignDefinition(
        id=cid,
        version=version,
        name=r.string(data, "name", (), default=cid) or cid,
        description=r.string(data, "description", (), default="") or "",
        segment=segment,
        schedule=schedule,
        condition=condition,
        send=send,
        journey=journey,
        deliver_within_ms=deliver_within,
        pace_per_second=pace,
        status=status,  # type: ignore[arg-type]
        max_lookback_ms=r.max_lookback_ms,
        source_name=r.doc.source_name,
        content_hash=_content_hash(data),
    )


def _audience(r: Reader, top: dict[str, Any]) -> tuple[str | None, Condition | None]:
    """(segment id, narrowing condition) of ``audience``."""
    path: Path = ("audience",)
    if "audience" not in top:  # (reported as missing)
        return None, None
    data = r.mapping(top["audience"], path, allowed=_AUDIENCE, required=("segment",))
    if data is None:
        return None, None
    segment = data.get("segment")
    if "segment" in data and (not isinstance(segment, str) or not SEGMENT_ID_RE.match(segment)):
        r.error((*path, "segment"), f"{segment!r} is not a segment id (lower-case letters, digits and _)")
        segment = None
    condition = r.condition(data, "condition", path)
    if condition is not None:
        check_audience_condition(
            r, condition, (*path, "condition"), subject="a campaign's audience", now_reason=_NOW_REASON
        )
    return segment if isinstance(segment, str) else None, condition


def _what(r: Reader, data: dict[str, Any], cid: str | None) -> tuple[SendStep | None, str | None]:
    """What each member gets: (the send step, None) or (None, the journey id)."""
    if "send" in data and "journey" in data:
        r.error(("journey",), "write either 'send' (one message) or 'journey' (enter a journey), not both")
    elif "send" not in data and "journey" not in data:
        r.error(
            ("send",),
            "required field is missing: write 'send' (the message each member gets) or 'journey' (the "
            "journey each member enters)",
        )
    journey = r.name(data, "journey", ()) if "journey" in data else None
    if "journey" in data and data["journey"] is None:
        r.error(("journey",), "must name a journey (its id)")
    if "send" not in data:
        return None, journey
    path: Path = ("send",)
    block = r.mapping(data["send"], path, allowed=_SEND)
    step = read_send_step(r, "send", block, path, None) if block is not None else None
    if step is None:
        return None, journey
    return dataclasses.replace(step, campaign=cid or ""), journey


def _schedule(r: Reader, top: dict[str, Any]) -> CampaignSchedule | None:
    path: Path = ("schedule",)
    if "schedule" not in top:  # (reported as missing)
        return None
    data = r.mapping(top["schedule"], path, allowed=_SCHEDULE)
    if data is None:
        return None
    local = "date" in data or "local_time" in data
    at_ms = local_day = local_time = zone = None
    if "at" in data and local:
        r.error(
            (*path, "at"),
            "write either 'at' (one instant for everyone) or 'date' with 'local_time' (a time in each "
            "customer's zone), not both",
        )
    elif "at" in data:
        at_ms = _instant(r, data, path)
    elif local:
        if "date" not in data:
            r.error((*path, "local_time"), "'local_time' needs 'date': the local day of the first occurrence")
        if "local_time" not in data:
            r.error((*path, "date"), "'date' needs 'local_time': the wall-clock time in each customer's zone")
        local_day = _day(r, data, path) if "date" in data else None
        local_time = r.time_of_day(data, "local_time", path, example="10:00")
    else:
        r.error(
            (*path, "at"),
            "required field is missing: write 'at' (an ISO 8601 time with a zone, one instant for everyone) "
            "or 'date' and 'local_time' (a time in each customer's zone)",
        )
    if "default_timezone" in data and "local_time" not in data:
        r.error(
            (*path, "default_timezone"),
            "only applies with 'local_time': the zone of customers whose zone is unknown",
        )
    else:
        zone = r.zone(data, "default_timezone", path)
    every_days, occurrences = _recurrence(r, data, path)
    if at_ms is None and (local_day is None or local_time is None):
        return None
    return CampaignSchedule(
        at_ms=at_ms,
        local_day=local_day,
        local_time=local_time,
        default_timezone=zone,
        every_days=every_days,
        occurrences=occurrences,
    )


def _instant(r: Reader, data: dict[str, Any], path: Path) -> int | None:
    """``at``: an ISO 8601 time with a zone, as epoch milliseconds."""
    value = data["at"]
    at = (*path, "at")
    example = "2025-03-12T10:00:00Z or 2025-03-12T10:00:00+01:00"
    try:
        moment = datetime.fromisoformat(value.strip()) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        r.error(at, f"{value!r} is not an ISO 8601 time (write {example})")
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        r.error(
            at,
            f"{value!r} has no zone: write Z or an offset ({example}); for a time in each customer's own "
            "zone write 'date' and 'local_time' instead",
        )
        return None
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        r.error(at, f"must be between {FIRST_YEAR} and {LAST_YEAR}")
        return None
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _day(r: Reader, data: dict[str, Any], path: Path) -> int | None:
    """``date``: a calendar day (``2025-03-12``), as days since 1970-01-01."""
    value = data["date"]
    try:
        day = date.fromisoformat(value.strip()) if isinstance(value, str) else None
    except ValueError:
        day = None
    if day is None:
        r.error((*path, "date"), f"{value!r} is not a date (write YYYY-MM-DD, e.g. 2025-03-12)")
        return None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        r.error((*path, "date"), f"must be between {FIRST_YEAR} and {LAST_YEAR}")
        return None
    return (day - date(1970, 1, 1)).days


def _recurrence(r: Reader, data: dict[str, Any], path: Path) -> tuple[int | None, int]:
    """(``every`` in days or None, ``occurrences``): ``occurrences`` goes with ``every`` and only with it."""
    if "every" not in data:
        if "occurrences" in data:
            r.error((*path, "occurrences"), "only applies with 'every' (a campaign without it is sent once)")
        return None, 1
    every_ms = r.duration(data, "every", path)
    every_days = None
    if every_ms is not None:
        if every_ms % DAY_MS:
            r.error(
                (*path, "every"), "must be whole days (1d, 7d, 14d ...): each occurrence is a calendar day"
            )
        elif every_ms // DAY_MS > MAX_EVERY_DAYS:
            r.error((*path, "every"), f"must be at most {MAX_EVERY_DAYS}d")
        else:
            every_days = every_ms // DAY_MS
    if "occurrences" not in data:
        r.error(
            (*path, "occurrences"),
            f"required with 'every': how many occurrences in all (1 to {MAX_OCCURRENCES})",
            line=r.doc.key_line((*path, "every")),
        )
        return every_days, 1
    occurrences = r.integer(data, "occurrences", path, default=1, minimum=1)
    if occurrences > MAX_OCCURRENCES:
        r.error((*path, "occurrences"), f"must be at most {MAX_OCCURRENCES}")
        occurrences = 1
    return every_days, occurrences


def _deliver_within(r: Reader, data: dict[str, Any]) -> int:
    ms = r.duration(data, "deliver_within", (), default=DEFAULT_DELIVER_WITHIN_MS)
    if ms is not None and ms > MAX_DELIVER_WITHIN_MS:
        r.error(("deliver_within",), "must be at most 7d")
        return DEFAULT_DELIVER_WITHIN_MS
    return ms or DEFAULT_DELIVER_WITHIN_MS


def _pace(r: Reader, data: dict[str, Any]) -> float | None:
    if "pace" not in data:
        return None
    pace = r.number(data, "pace", ())
    if pace is not None and not 0 < pace <= MAX_PACE_PER_SECOND:
        r.error(("pace",), f"sends per second: more than 0 and at most {MAX_PACE_PER_SECOND}")
        return None
    return pace


def _content_hash(data: dict[str, Any]) -> str:
    meaning = {k: v for k, v in data.items() if k not in ("status", "name", "description")}
    return hashlib.blake2b(orjson.dumps(meaning, option=orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()
