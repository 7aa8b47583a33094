"""Load policy files: YAML text -> validated :class:`Policy`, problems as ``file:line: field: message``.

A policy file says ``kind: policy`` at its top level (that is how ``orchestrator validate`` and the
simulator tell it from a journey file in the same folder). ``load_policy_text(text, source_name)`` is
what the runtime calls for policies received from a deployment; ``load_policy_file(path)`` what the
CLI and tests call. Both raise :class:`~orchestrator.exceptions.PolicyValidationError` listing every
problem. The YAML reading (line numbers, duplicate keys, typed fields) is the journey language's.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path as FsPath
from typing import Any

import orjson

from orchestrator.contracts.events import ENGAGEMENT_TYPES
from orchestrator.core.journey.loader import DEFAULT_HISTORY_WINDOW_MS
from orchestrator.core.journey.reader import Reader
from orchestrator.core.journey.yamlsrc import Path, compose_text, read_source
from orchestrator.core.policy.model import (
    CHANNELS,
    EngagementRule,
    FrequencyCap,
    Policy,
    QuietHours,
    RateLimit,
    SubscriptionGroup,
)
from orchestrator.exceptions import PolicyValidationError

__all__ = [
    "GROUP_ID_MAX",
    "POLICY_KIND",
    "is_policy_file",
    "is_policy_text",
    "load_policy_file",
    "load_policy_text",
]

POLICY_KIND = "policy"
_TOP = (
    "kind", "id", "version", "description", "fallback", "frequency_caps", "quiet_hours",
    "engagement_suppression", "rate_limits", "subscription_groups",
)  # fmt: skip
_CAP = ("name", "channels", "max", "per")
_QUIET = ("start", "end", "channels", "action", "timezone", "default_timezone")
_ENGAGEMENT = ("name", "channels", "events", "within", "same_campaign")
_RATE = ("per_second", "burst")
_GROUP = ("id", "channel", "default", "description")
_GROUP_DEFAULTS = ("opt_in", "opt_out")
GROUP_ID_MAX = 64
"""Longest subscription group id (the profile keeps customers' choices under it)."""
_KIND_LINE = re.compile(r"^kind:\s*['\"]?policy['\"]?\s*(#.*)?$", re.MULTILINE)


def is_policy_text(text: str) -> bool:
    """True when the YAML text has ``kind: policy`` at its top level (a line starting in column 1)."""
    return _KIND_LINE.search(text) is not None


def is_policy_file(path: str | FsPath) -> bool:
    text, _ = read_source(path)
    return text is not None and is_policy_text(text)


def load_policy_text(text: str, source_name: str = "<text>") -> Policy:
    """Parse and validate one policy; raises PolicyValidationError with all problems."""
    doc = compose_text(text, source_name)
    reader = Reader(doc, DEFAULT_HISTORY_WINDOW_MS)
    if doc.value is None:
        raise PolicyValidationError(reader.problems or [f"{source_name}:1: (root): the file is empty"])
    policy = _policy(reader, doc.value)
    if reader.problems or policy is None:
        raise PolicyValidationError(reader.problems or [f"{source_name}:1: (root): invalid policy"])
    return policy


def load_policy_file(path: str | FsPath) -> Policy:
    """Load one policy file (see :func:`load_policy_text`)."""
    text, problem = read_source(path)
    if text is None:
        raise PolicyValidationError([problem or f"{path}:1: (file): cannot read the file"])
    return load_policy_text(text, str(path))


def _policy(r: Reader, value: Any) -> Policy | None:
    data = r.mapping(value, (), allowed=_TOP, required=("kind", "id", "version"))
    if data is None:
        return None
    if "kind" in data and data["kind"] != POLICY_KIND:
        r.error(("kind",), f"expected 'policy', got {data['kind']!r}")
    pid = r.name(data, "id", ())
    version = r.integer(data, "version", (), default=1, minimum=1)
    policy = Policy(
        id=pid or "policy",
        version=version,
        description=r.string(data, "description", (), default="") or "",
        fallback=_fallback(r, data.get("fallback"), ("fallback",)),
        caps=_caps(r, data.get("frequency_caps"), ("frequency_caps",)),
        quiet_hours=_quiet(r, data.get("quiet_hours"), ("quiet_hours",)),
        engagement=_engagement(r, data.get("engagement_suppression"), ("engagement_suppression",)),
        rate_limits=_rates(r, data.get("rate_limits"), ("rate_limits",)),
        subscription_groups=_groups(r, data.get("subscription_groups"), ("subscription_groups",)),
        source_name=r.doc.source_name,
        content_hash=_content_hash(data),
    )
    return policy if pid is not None else None


def _content_hash(data: dict[str, Any]) -> str:
    meaning = {k: v for k, v in data.items() if k != "description"}
    return hashlib.blake2b(orjson.dumps(meaning, option=orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()


def _channels(r: Reader, value: Any, path: Path, *, default_all: bool) -> frozenset[str]:
    """A channel or a list of them (``all`` or omitted: every channel when ``default_all``)."""
    if value is None or value == "all":
        if not default_all:
            r.error(path, "required field is missing")
        return frozenset(CHANNELS)
    items = value if isinstance(value, list) else [value]
    out: set[str] = set()
    for i, item in enumerate(items):
        at = (*path, i) if isinstance(value, list) else path
        if item not in CHANNELS:
            r.error(at, f"unknown channel {item!r}; one of: {', '.join(CHANNELS)}")
        else:
            out.add(item)
    if not items:
        r.error(path, "must list at least one channel")
    return frozenset(out)


def _list(r: Reader, value: Any, path: Path) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        r.error(path, "expected a list of rules")
        return []
    return value


def _unique_name(r: Reader, data: dict[str, Any], path: Path, seen: set[str]) -> str | None:
    name = r.name(data, "name", path)
    if name is not None and name in seen:
        r.error((*path, "name"), f"another rule is already named {name!r}")
    if name is not None:
        seen.add(name)
    return name


def _fallback(r: Reader, value: Any, path: Path) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    data = r.mapping(value, path, allowed=CHANNELS)
    if data is None:
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for channel, targets in data.items():
        if channel not in CHANNELS:
            continue
        at = (*path, channel)
        chosen = _channels(r, targets, at, default_all=False)
        if channel in chosen:
            r.error(at, f"a channel cannot fall back to itself ({channel})")
        order = targets if isinstance(targets, list) else [targets]
        out[channel] = tuple(c for c in order if c in chosen and c != channel)
    return out


def _caps(r: Reader, value: Any, path: Path) -> tuple[FrequencyCap, ...]:
    out: list[FrequencyCap] = []
    seen: set[str] = set()
    for i, item in enumerate(_list(r, value, path)):
        at = (*path, i)
        data = r.mapping(item, at, allowed=_CAP, required=("name", "max", "per"))
        if data is None:
            continue
        name = _unique_name(r, data, at, seen)
        maximum = r.integer(data, "max", at, default=0, minimum=0)
        window = r.duration(data, "per", at)
        channels = _channels(r, data.get("channels"), (*at, "channels"), default_all=True)
        if window is not None and window > DEFAULT_HISTORY_WINDOW_MS:
            r.error((*at, "per"), "a cap window may be at most 30d (sends are remembered that long)")
        if name is not None and window is not None and "max" in data:
            out.append(FrequencyCap(name=name, channels=channels, max=maximum, window_ms=window))
    return tuple(out)


def _quiet(r: Reader, value: Any, path: Path) -> QuietHours | None:
    if value is None:
        return None
    data = r.mapping(value, path, allowed=_QUIET, required=("start", "end"))
    if data is None:
        return None
    start = r.time_of_day(data, "start", path, example="21:00")
    end = r.time_of_day(data, "end", path, example="21:00")
    if start is not None and start == end:
        r.error((*path, "end"), "quiet hours must not start and end at the same time")
    action = r.choice(data, "action", path, ("hold", "drop"), "hold")
    tz = r.zone(data, "timezone", path)
    fallback = r.zone(data, "default_timezone", path)
    channels = _channels(r, data.get("channels"), (*path, "channels"), default_all=True)
    if start is None or end is None:
        return None
    return QuietHours(
        start=start,
        end=end,
        channels=channels,
        action=action,  # type: ignore[arg-type]
        timezone=tz,
        default_timezone=fallback,
    )


def _engagement(r: Reader, value: Any, path: Path) -> tuple[EngagementRule, ...]:
    out: list[EngagementRule] = []
    seen: set[str] = set()
    for i, item in enumerate(_list(r, value, path)):
        at = (*path, i)
        data = r.mapping(item, at, allowed=_ENGAGEMENT, required=("name", "channels", "events", "within"))
        if data is None:
            continue
        name = _unique_name(r, data, at, seen)
        channels = _channels(r, data.get("channels"), (*at, "channels"), default_all=False)
        events = r.event_types(data, "events", at)
        listed = data.get("events")
        for j, ev in enumerate(listed if isinstance(listed, list) else []):
            if isinstance(ev, str) and ev in events and ev not in ENGAGEMENT_TYPES:
                known = ", ".join(sorted(ENGAGEMENT_TYPES))
                r.error((*at, "events", j), f"{ev!r} is not an engagement event; one of: {known}")
        within = r.duration(data, "within", at)
        if within is not None and within > DEFAULT_HISTORY_WINDOW_MS:
            r.error((*at, "within"), "may be at most 30d (engagement is remembered that long)")
        same = r.boolean(data, "same_campaign", at, True)
        if name is not None and within is not None and events:
            out.append(
                EngagementRule(
                    name=name,
                    channels=channels,
                    events=frozenset(e for e in events if e in ENGAGEMENT_TYPES),
                    within_ms=within,
                    same_campaign=same,
                )
            )
    return tuple(out)


def _rates(r: Reader, value: Any, path: Path) -> dict[str, RateLimit]:
    if value is None:
        return {}
    data = r.mapping(value, path, allowed=CHANNELS)
    if data is None:
        return {}
    out: dict[str, RateLimit] = {}
    for channel, spec in data.items():
        if channel not in CHANNELS:
            continue
        at = (*path, channel)
        body = spec if isinstance(spec, dict) else {"per_second": spec}
        fields = r.mapping(body, at, allowed=_RATE, required=("per_second",))
        if fields is None:
            continue
        rate = r.number(fields, "per_second", at)
        if rate is not None and rate <= 0:
            r.error((*at, "per_second"), "must be more than zero")
            continue
        if rate is None:
            continue
        burst = r.integer(fields, "burst", at, default=max(1, int(rate)), minimum=1)
        out[channel] = RateLimit(channel=channel, per_second=rate, burst=burst)
    return out


def _groups(r: Reader, value: Any, path: Path) -> dict[str, SubscriptionGroup]:
    out: dict[str, SubscriptionGroup] = {}
    seen: set[str] = set()
    if value is not None and not isinstance(value, list):
        r.error(path, "expected a list of groups")
        return out
    for i, item in enumerate(value or []):
        at = (*path, i)
        data = r.mapping(item, at, allowed=_GROUP, required=("id", "channel", "default"))
        if data is None:
            continue
        gid = r.name(data, "id", at)
        if gid is not None and len(gid) > GROUP_ID_MAX:
            r.error((*at, "id"), f"a group id may have at most {GROUP_ID_MAX} characters")
            gid = None
        elif gid is not None and gid in seen:
            r.error((*at, "id"), f"another group is already named {gid!r}")
            gid = None
        elif gid is not None:
            seen.add(gid)
        channel = data.get("channel")
        if isinstance(channel, list):
            r.error((*at, "channel"), f"a group belongs to one channel: one of {', '.join(CHANNELS)}")
            channel = None
        elif channel is not None:
            channel = r.choice(data, "channel", at, CHANNELS, "") or None
        default = r.choice(data, "default", at, _GROUP_DEFAULTS, "")
        description = r.string(data, "description", at, default="") or ""
        if gid is not None and channel is not None and default:
            out[gid] = SubscriptionGroup(
                id=gid,
                channel=channel,
                default=default,  # type: ignore[arg-type]
                description=description,
            )
    return out
