"""Load journey files: YAML text -> validated, compiled :class:`JourneyDefinition`.

``load_journey_text(text, source_name)`` is what the runtime calls for definitions received on the
journeys topic; ``load_journey_file(path)`` what the CLI and tests call. Both raise
:class:`~orchestrator.exceptions.JourneyValidationError` listing *every* problem found, each as
``file:line: field: message``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path as FsPath
from typing import Any

import orjson

from orchestrator.contracts.events import SEGMENT_ENTERED, SEGMENT_LEFT
from orchestrator.core.journey.durations import DAY_MS
from orchestrator.core.journey.graph import check_graph
from orchestrator.core.journey.model import (
    AUTO_CHANNEL,
    CHANNEL_CHOICES,
    STATUSES,
    STEP_KINDS,
    BranchStep,
    Entry,
    ExitRule,
    ExitStep,
    Goal,
    JourneyDefinition,
    ReEntry,
    SendStep,
    SplitBranch,
    SplitStep,
    Step,
    UpdateStep,
    WaitStep,
)
from orchestrator.core.journey.reader import NAME_RE, SEGMENT_ID_RE, Reader, did_you_mean
from orchestrator.core.journey.yamlsrc import Path, compose_text, read_source
from orchestrator.exceptions import JourneyValidationError

__all__ = ["DEFAULT_HISTORY_WINDOW_MS", "load_journey_file", "load_journey_text", "read_send_step"]

DEFAULT_HISTORY_WINDOW_MS = 30 * DAY_MS
"""How far back event history is kept by default; conditions may not look further."""

_TOP = (
    "id", "version", "name", "description", "status", "migrate", "entry", "re_entry", "goals",
    "exit_when", "start", "steps", "holdout_window", "default_timezone",
)  # fmt: skip
_ENTRY = ("event", "events", "condition", "becomes_true", "key", "max_keys", "segment")
_RULE = ("name", "event", "events", "condition", "entered_segment", "left_segment")
"""The fields of a goal or an exit rule."""
_SEND_TIMES = ("immediate", "optimal")
MAX_WITHIN_MS = 7 * DAY_MS
"""The longest window ``send_time: optimal`` may hold a send for."""


def load_journey_text(
    text: str, source_name: str = "<text>", *, history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS
) -> JourneyDefinition:
    """Parse, compile and validate one journey; raises JourneyValidationError with all problems."""
    doc = compose_text(text, source_name)
    reader = Reader(doc, history_window_ms)
    if doc.value is None and reader.problems:
        raise JourneyValidationError(reader.problems)
    definition = _journey(reader, doc.value)
    if definition is not None:
        check_graph(definition, reader)
    if reader.problems or definition is None:
        raise JourneyValidationError(reader.problems or [f"{source_name}:1: (root): invalid journey"])
    return definition


def load_journey_file(
    path: str | FsPath, *, history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS
) -> JourneyDefinition:
    """Load one journey file (see :func:`load_journey_text`)."""
    text, problem = read_source(path)
    if text is None:
        raise JourneyValidationError([problem or f"{path}:1: (file): cannot read the file"])
    return load_journey_text(text, str(path), history_window_ms=history_window_ms)


def _content_hash(data: dict[str, Any]) -> str:
    meaning = {k: v for k, v in data.items() if k not in ("status", "name", "description")}
    return hashlib.blake2b(orjson.dumps(meaning, option=orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()


def _journey(r: Reader, value: Any) -> JourneyDefinition | None:
    data = r.mapping(value, (), allowed=_TOP, required=("id", "version", "entry", "steps"))
    if data is None:
        return None
    jid = r.name(data, "id", ())
    version = r.integer(data, "version", (), default=1, minimum=1)
    status = r.choice(data, "status", (), STATUSES, "active")
    entry = _entry(r, data.get("entry"), ("entry",)) if "entry" in data else Entry()
    re_entry = _re_entry(r, data.get("re_entry"), ("re_entry",))
    goals = _goals(r, data.get("goals"), ("goals",), Goal)
    exits = _goals(r, data.get("exit_when"), ("exit_when",), ExitRule)
    steps = _steps(r, data.get("steps"), ("steps",))
    start = r.string(data, "start", ()) or (next(iter(steps)) if steps else None)
    holdout_window = r.duration(data, "holdout_window", (), default=14 * DAY_MS) or 14 * DAY_MS
    if jid is None or start is None:
        return None
    event_types: set[str] = set(entry.events)
    for g in (*goals, *exits):
        event_types |= g.events
    for s in steps.values():
        if isinstance(s, WaitStep):
            event_types |= s.event_types
    return JourneyDefinition(
        id=jid,
        version=version,
        name=r.string(data, "name", (), default=jid) or jid,
        description=r.string(data, "description", (), default="") or "",
        entry=entry,
        start=start,
        steps=steps,
        re_entry=re_entry,
        goals=tuple(goals),  # type: ignore[arg-type]
        exits=tuple(exits),  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        migrate=r.boolean(data, "migrate", (), False),
        holdout_window_ms=holdout_window,
        default_timezone=r.zone(data, "default_timezone", ()),
        max_lookback_ms=r.max_lookback_ms,
        source_name=r.doc.source_name,
        content_hash=_content_hash(data),
        event_types=frozenset(event_types),
        condition_rules=any(not g.events for g in (*goals, *exits))
        or any(isinstance(s, WaitStep) and s.mode in ("condition", "until") for s in steps.values()),
    )


def _entry(r: Reader, value: Any, path: Path) -> Entry:
    data = r.mapping(value, path, allowed=_ENTRY)
    if data is None:
        return Entry()
    if "event" in data and "events" in data:
        r.error(path, "write either 'event' or 'events', not both")
    events = r.event_types(data, "event", path) | r.event_types(data, "events", path)
    condition = r.condition(data, "condition", path)
    becomes_true = r.condition(data, "becomes_true", path)
    segment = _segment_name(r, data, "segment", path)
    if "segment" in data:
        if {"event", "events", "becomes_true", "key"} & data.keys():
            r.error(
                (*path, "segment"), "a segment entry is its own trigger: no 'event', 'becomes_true' or 'key'"
            )
        events = frozenset({SEGMENT_ENTERED})
    elif "event" not in data and "events" not in data and "becomes_true" not in data:
        r.error(
            path,
            "needs a trigger: 'event'/'events' (with an optional 'condition'), 'becomes_true' or 'segment'",
        )
    if "becomes_true" in data and "condition" in data:
        r.error((*path, "condition"), "with 'becomes_true', put the whole test in 'becomes_true'")
    key = r.condition(data, "key", path)
    if key is not None and "becomes_true" in data:
        r.error((*path, "key"), "a keyed journey is entered on events: the key is read from the event")
    if "max_keys" in data and "key" not in data:
        r.error((*path, "max_keys"), "'max_keys' only applies to a keyed journey ('key')")
    max_keys = r.integer(data, "max_keys", path, default=20, minimum=1)
    return Entry(
        events=events,
        condition=condition,
        becomes_true=becomes_true,
        key=key,
        max_keys=max_keys,
        segment=segment,
    )


def _segment_name(r: Reader, data: dict[str, Any], key: str, path: Path) -> str | None:
    """A segment id at ``key`` (the segment need not be deployed yet: ``orchestrator validate`` given the
    segment files checks that it is)."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not SEGMENT_ID_RE.match(value):
        r.error((*path, key), f"{value!r} is not a segment id (lower-case letters, digits and _)")
        return None
    return value


def _re_entry(r: Reader, value: Any, path: Path) -> ReEntry:
    if value is None:
        return ReEntry()
    data = r.mapping(value, path, allowed=("policy", "cooldown", "max_concurrent"))
    if data is None:
        return ReEntry()
    policy = r.choice(data, "policy", path, ("never", "cooldown", "always"), "never")
    cooldown = r.duration(data, "cooldown", path) or 0
    if policy == "cooldown" and not cooldown:
        r.error((*path, "cooldown"), "policy 'cooldown' needs a cooldown duration, e.g. 7d")
    if policy != "cooldown" and "cooldown" in data:
        r.error((*path, "cooldown"), f"a cooldown only applies with policy 'cooldown', not {policy!r}")
    max_concurrent = r.integer(data, "max_concurrent", path, default=1, minimum=1)
    return ReEntry(policy=policy, cooldown_ms=cooldown, max_concurrent=max_concurrent)  # type: ignore[arg-type]


def _goals(r: Reader, value: Any, path: Path, cls: type[Goal] | type[ExitRule]) -> list[Goal | ExitRule]:
    if value is None:
        return []
    if not isinstance(value, list):
        r.error(path, "expected a list of {name, event(s), condition}")
        return []
    out: list[Goal | ExitRule] = []
    names: set[str] = set()
    for i, item in enumerate(value):
        at = (*path, i)
        data = r.mapping(
            item,
            at,
            allowed=_RULE,
            required=("name",),
        )
        if data is None:
            continue
        name = r.name(data, "name", at)
        events = r.event_types(data, "event", at) | r.event_types(data, "events", at)
        condition = r.condition(data, "condition", at)
        changes = [k for k in ("entered_segment", "left_segment") if k in data]
        segment = _segment_name(r, data, changes[0], at) if changes else None
        if changes:
            if len(changes) > 1 or "event" in data or "events" in data:
                r.error(
                    (*at, changes[-1]), "one trigger per rule: an event, 'entered_segment' or 'left_segment'"
                )
            events = frozenset({SEGMENT_ENTERED if changes[0] == "entered_segment" else SEGMENT_LEFT})
        elif "event" not in data and "events" not in data and "condition" not in data:
            r.error(at, "needs 'event'/'events', 'entered_segment'/'left_segment', a 'condition', or both")
        if name is None:
            continue
        if name in names:
            r.error((*at, "name"), f"duplicate name {name!r}")
        names.add(name)
        out.append(cls(name=name, events=events, condition=condition, segment=segment))
    return out


def _steps(r: Reader, value: Any, path: Path) -> dict[str, Step]:
    if not isinstance(value, dict):
        r.error(path, "expected a mapping of step id: step")
        return {}
    if not value:
        r.error(path, "a journey needs at least one step")
    steps: dict[str, Step] = {}
    for sid, body in value.items():
        at = (*path, sid)
        if not NAME_RE.match(sid):
            r.error(at, f"{sid!r} is not a valid step id (lower-case letters, digits, '_' and '-')")
            continue
        step = _step(r, sid, body, at)
        if step is not None:
            steps[sid] = step
        else:
            r.broken_steps.add(sid)
    return steps


_COMMON = ("type", "description")
_ALLOWED: dict[str, tuple[str, ...]] = {
    "send": (
        *_COMMON, "channel", "category", "template", "campaign", "personalization", "send_time", "on_unsent",
        "subscription_group", "next", "channels", "within", "between",
    ),
    "wait": (
        *_COMMON, "duration", "until_time", "timezone", "until_event", "until_condition", "timeout",
        "until", "before", "after", "if_past", "weekdays", "next",
    ),
    "branch": (*_COMMON, "branches", "default"),
    "split": (*_COMMON, "branches", "salt", "adaptive"),
    "update": (*_COMMON, "set", "next"),
    "exit": (*_COMMON, "reason"),
}  # fmt: skip


def _step(r: Reader, sid: str, body: Any, at: Path) -> Step | None:
    if not isinstance(body, dict):
        r.error(at, "expected a mapping with a 'type'")
        return None
    kind = r.choice(body, "type", at, STEP_KINDS, "")
    if "type" not in body:
        r.error((*at, "type"), f"required field is missing; one of: {', '.join(STEP_KINDS)}")
    if not kind:
        return None
    data = r.mapping(body, at, allowed=_ALLOWED[kind])
    if data is None:
        return None
    nxt = r.string(data, "next", at)
    if kind == "send":
        return read_send_step(r, sid, data, at, nxt)
    if kind == "wait":
        return _wait(r, sid, data, at, nxt)
    if kind == "branch":
        return _branch(r, sid, data, at)
    if kind == "split":
        return _split(r, sid, data, at)
    if kind == "update":
        if "set" not in data:
            r.error((*at, "set"), "required field is missing")
        return UpdateStep(id=sid, assignments=r.expressions(data, "set", at), next=nxt)
    return ExitStep(id=sid, reason=r.string(data, "reason", at, default="exit_step") or "exit_step")


def read_send_step(r: Reader, sid: str, data: dict[str, Any], at: Path, nxt: str | None) -> SendStep | None:
    """The send step ``sid`` whose fields are ``data`` (a mapping at ``at`` whose keys were checked):
    channel, template, category, personalization, subscription group, send time ... (a campaign's
    ``send`` block reads the same way). None when it cannot be built (the problems are reported)."""
    channel = r.string(data, "channel", at)
    choices = (*CHANNEL_CHOICES, AUTO_CHANNEL)
    if channel is None:
        r.error((*at, "channel"), f"required field is missing; one of: {', '.join(choices)}")
    elif channel not in choices:
        r.choice(data, "channel", at, choices, "")
    category = r.choice(data, "category", at, ("marketing", "transactional"), "marketing")
    group = r.name(data, "subscription_group", at)
    if channel == AUTO_CHANNEL:
        channels = _auto_channels(r, data, at, group)
        template = channels[0][1] if channels else None
    else:
        channels = ()
        if "channels" in data:
            r.error((*at, "channels"), "only with 'channel: auto' (the channels it chooses from)")
        template = r.string(data, "template", at) if not isinstance(data.get("template"), dict) else None
        if template is None and isinstance(data.get("template"), dict):
            r.error(
                (*at, "template"), "a template per channel is only for 'channel: auto'; name one template"
            )
        elif template is None:
            r.error((*at, "template"), "required field is missing (the template id the connector renders)")
    send_time = r.choice(data, "send_time", at, _SEND_TIMES, "immediate")
    within_ms, between = _send_window(r, data, at, send_time)
    on_unsent = r.choice(data, "on_unsent", at, ("continue", "exit"), "continue")
    personalization = r.expressions(data, "personalization", at)
    campaign = r.string(data, "campaign", at) or ""
    if channel not in choices or template is None:
        return None
    return SendStep(
        id=sid,
        channel=channel,
        category=category,
        template=template,
        campaign=campaign,
        personalization=personalization,
        send_time=send_time,
        on_unsent=on_unsent,  # type: ignore[arg-type]
        subscription_group=group,
        next=nxt,
        channels=channels,
        within_ms=within_ms,
        between=between,
    )


def _auto_channels(
    r: Reader, data: dict[str, Any], at: Path, group: str | None
) -> tuple[tuple[str, str], ...]:
    """``channel: auto``: ``channels`` (at least two, each once) and ``template``, one per channel."""
    listed = data.get("channels")
    if group is not None:
        r.error(
            (*at, "subscription_group"),
            "a subscription group belongs to one channel: not with 'channel: auto'",
        )
    if not isinstance(listed, list) or len(listed) < 2:
        r.error(
            (*at, "channels"),
            f"'channel: auto' needs a list of at least two of: {', '.join(CHANNEL_CHOICES)}",
        )
        return ()
    channels: list[str] = []
    for i, ch in enumerate(listed):
        if ch not in CHANNEL_CHOICES:
            r.error(
                (*at, "channels", i),
                f"unknown channel {ch!r}{did_you_mean(str(ch), CHANNEL_CHOICES)}; one of: "
                f"{', '.join(CHANNEL_CHOICES)}",
            )
        elif ch in channels:
            r.error((*at, "channels", i), f"{ch} is listed twice")
        else:
            channels.append(ch)
    templates = data.get("template")
    if not isinstance(templates, dict):
        r.error(
            (*at, "template"),
            "with 'channel: auto': a template per channel, like {email: offer_email, sms: offer_sms}",
        )
        return ()
    out: list[tuple[str, str]] = []
    for key in templates:
        if key not in channels:
            r.error(
                (*at, "template", key), f"{key!r} is not one of the step's channels ({', '.join(channels)})"
            )
    for ch in channels:
        name = r.string(templates, ch, (*at, "template"))
        if name is None:
            r.error((*at, "template", ch), f"required field is missing (the {ch} template)")
        else:
            out.append((ch, name))
    return tuple(out) if len(out) == len(channels) and len(listed) == len(channels) else ()


def _send_window(
    r: Reader, data: dict[str, Any], at: Path, send_time: str
) -> tuple[int, tuple[int, int] | None]:
    """``within`` and ``between`` of ``send_time: optimal``."""
    if send_time != "optimal":
        for key in ("within", "between"):
            if key in data:
                r.error((*at, key), "only with 'send_time: optimal'")
        return 0, None
    within = r.duration(data, "within", at)
    if within is None and "within" not in data:
        r.error((*at, "within"), "required field is missing with 'send_time: optimal' (the window, like 24h)")
    if within is not None and within > MAX_WITHIN_MS:
        r.error(
            (*at, "within"), f"at most {MAX_WITHIN_MS // DAY_MS}d (a send held longer is a wait, then a send)"
        )
        within = None
    between = None
    if "between" in data:
        value = data["between"]
        if not isinstance(value, list) or len(value) != 2:
            r.error((*at, "between"), 'expected two local times, like ["08:00", "21:00"]')
        else:
            bounds = {"start": value[0], "end": value[1]}
            start = r.time_of_day(bounds, "start", (*at, "between"), example="08:00")
            end = r.time_of_day(bounds, "end", (*at, "between"), example="21:00")
            if start is not None and end is not None:
                between = (start[0] * 60 + start[1], end[0] * 60 + end[1])
                if between[0] == between[1]:
                    r.error((*at, "between"), "the start and the end are the same time")
                    between = None
    return within or 0, between


def _wait(r: Reader, sid: str, data: dict[str, Any], at: Path, nxt: str | None) -> WaitStep | None:
    modes = [m for m in ("duration", "until_time", "until_event", "until_condition", "until") if m in data]
    if len(modes) != 1:
        r.error(
            at,
            "a wait needs exactly one of: duration, until_time, until_event, until_condition, until",
        )
        return None
    mode = modes[0]
    for key in ("before", "after", "if_past"):
        if key in data and mode != "until":
            r.error((*at, key), f"'{key}' only applies to 'until' (a time taken from data)")
    if mode == "until":
        return _wait_until(r, sid, data, at, nxt)
    for key in ("timezone", "weekdays"):
        if key in data and mode != "until_time":
            r.error((*at, key), f"'{key}' only applies to 'until_time'")
    if "timeout" in data and mode not in ("until_event", "until_condition"):
        r.error((*at, "timeout"), "'timeout' only applies to 'until_event' and 'until_condition'")
    if mode == "until_condition":
        return _wait_condition(r, sid, data, at, nxt)
    if mode == "duration":
        ms = r.duration(data, "duration", at)
        return None if ms is None else WaitStep(id=sid, mode="duration", duration_ms=ms, next=nxt)
    if mode == "until_time":
        tod = r.time_of_day(data, "until_time", at)
        tz = r.zone(data, "timezone", at)
        days = _weekdays(r, data, at)
        return (
            None
            if tod is None
            else WaitStep(id=sid, mode="time_of_day", time_of_day=tod, timezone=tz, weekdays=days, next=nxt)
        )
    ev_at = (*at, "until_event")
    ev = r.mapping(data["until_event"], ev_at, allowed=("event", "events", "of", "condition"))
    if "timeout" not in data:
        r.error((*at, "timeout"), "required field is missing: a wait for an event needs {after, next}")
        return None
    timeout = r.mapping(data["timeout"], (*at, "timeout"), allowed=("after", "next"), required=("after",))
    if ev is None or timeout is None:
        return None
    types = r.event_types(ev, "event", ev_at) | r.event_types(ev, "events", ev_at)
    if "event" not in ev and "events" not in ev:  # (a bad name is said once, where it is)
        r.error(ev_at, "needs 'event' or 'events': the event type(s) to wait for")
    after = r.duration(timeout, "after", (*at, "timeout"))
    return WaitStep(
        id=sid,
        mode="event",
        event_types=types,
        of_step=r.string(ev, "of", ev_at),
        condition=r.condition(ev, "condition", ev_at),
        timeout_ms=after or 0,
        timeout_next=r.string(timeout, "next", (*at, "timeout")),
        next=nxt,
    )


def _wait_until(r: Reader, sid: str, data: dict[str, Any], at: Path, nxt: str | None) -> WaitStep | None:
    """``until: <CEL time>`` with ``before:`` or ``after:`` a duration: a time taken from the data (the
    entry event, the profile), timed again when the customer's data changes before it comes."""
    if "before" in data and "after" in data:
        r.error(at, "write either 'before' or 'after', not both")
    before = r.duration(data, "before", at) if "before" in data else None
    after = r.duration(data, "after", at) if "after" in data else None
    if_past = r.choice(data, "if_past", at, ("continue", "exit"), "continue")
    until = r.condition(data, "until", at)
    if until is None:
        return None
    if "event" in until.compiled.referenced:
        r.error(
            (*at, "until"),
            "the time may not read 'event': it is timed again on each of the customer's events; read the "
            "event that started the journey as journey.entry_event (journey.entry_event.properties.x)",
        )
        return None
    return WaitStep(
        id=sid,
        mode="until",
        until=until,
        offset_ms=(after or 0) - (before or 0),
        if_past=if_past,  # type: ignore[arg-type]
        next=nxt,
    )


def _wait_condition(r: Reader, sid: str, data: dict[str, Any], at: Path, nxt: str | None) -> WaitStep | None:
    """``until_condition: <CEL>`` with ``timeout: {after, next}``: the customer goes on when the condition
    holds (at once if it holds already), checked again on each of their events."""
    if "timeout" not in data:
        r.error((*at, "timeout"), "required field is missing: a wait until a condition needs {after, next}")
        return None
    timeout = r.mapping(data["timeout"], (*at, "timeout"), allowed=("after", "next"), required=("after",))
    condition = r.condition(data, "until_condition", at)
    if timeout is None or condition is None:
        return None
    if not condition.compiled.referenced - {"now"}:
        r.error(
            (*at, "until_condition"),
            "the condition only reads 'now': it is checked on the customer's events, and time alone never "
            "makes it true between them; wait with 'duration' or 'until_time' instead",
        )
        return None
    return WaitStep(
        id=sid,
        mode="condition",
        condition=condition,
        timeout_ms=r.duration(timeout, "after", (*at, "timeout")) or 0,
        timeout_next=r.string(timeout, "next", (*at, "timeout")),
        next=nxt,
    )


def _weekdays(r: Reader, data: dict[str, Any], at: Path) -> frozenset[int] | None:
    """``weekdays: [mon, tue, wed, thu, fri]`` (or ``weekdays: weekdays``) as day numbers, 0 = Monday."""
    from orchestrator.core.engine.clock import WEEKDAYS

    value = data.get("weekdays")
    if value is None:
        return None
    if value == "weekdays":
        return frozenset(range(5))
    if not isinstance(value, list) or not value:
        r.error((*at, "weekdays"), "expected a list of days, e.g. [mon, tue, wed, thu, fri], or 'weekdays'")
        return None
    days: set[int] = set()
    for i, day in enumerate(value):
        name = str(day).lower()[:3]
        if name not in WEEKDAYS or not isinstance(day, str):
            r.error((*at, "weekdays", i), f"{day!r} is not a day (write {', '.join(WEEKDAYS)})")
            continue
        days.add(WEEKDAYS.index(name))
    return frozenset(days) or None


def _branch(r: Reader, sid: str, data: dict[str, Any], at: Path) -> BranchStep | None:
    default = r.string(data, "default", at)
    if default is None:
        r.error((*at, "default"), "a branch needs a 'default' step for when no condition holds")
    items = data.get("branches")
    if not isinstance(items, list) or not items:
        r.error((*at, "branches"), "expected a non-empty list of {when, next}")
        return None
    branches = []
    for i, item in enumerate(items):
        b_at = (*at, "branches", i)
        b = r.mapping(item, b_at, allowed=("when", "next"), required=("when", "next"))
        if b is None:
            continue
        cond = r.condition(b, "when", b_at)
        nxt = r.string(b, "next", b_at)
        if cond is not None and nxt is not None:
            branches.append((cond, nxt))
    if default is None:
        return None
    return BranchStep(id=sid, branches=tuple(branches), default=default)


def _split(r: Reader, sid: str, data: dict[str, Any], at: Path) -> SplitStep | None:
    items = data.get("branches")
    if not isinstance(items, list) or len(items) < 2:
        r.error((*at, "branches"), "expected a list of at least two {name, percent, next, holdout}")
        return None
    out: list[SplitBranch] = []
    names: set[str] = set()
    total = 0
    for i, item in enumerate(items):
        b_at = (*at, "branches", i)
        b = r.mapping(
            item, b_at, allowed=("name", "percent", "next", "holdout"), required=("name", "percent")
        )
        if b is None:
            continue
        name = r.name(b, "name", b_at)
        percent = r.number(b, "percent", b_at)
        holdout = r.boolean(b, "holdout", b_at, False)
        nxt = r.string(b, "next", b_at)
        if nxt is None and not holdout and "next" not in b:
            r.error((*b_at, "next"), "required field is missing (only a holdout branch may omit it)")
        if percent is not None and not 0 < percent <= 100:
            r.error((*b_at, "percent"), "must be more than 0 and at most 100")
            percent = None
        if name in names:
            r.error((*b_at, "name"), f"duplicate branch name {name!r}")
        if name is None or percent is None:
            continue
        names.add(name)
        bp = round(percent * 100)
        total += bp
        out.append(SplitBranch(name=name, basis_points=bp, next=nxt, holdout=holdout))
    if len(out) == len(items) and total != 10_000:
        r.error((*at, "branches"), f"percentages add up to {total / 100:g}, not 100")
    salt = r.string(data, "salt", at, default="") or ""
    adaptive = r.boolean(data, "adaptive", at, False)
    if adaptive and sum(1 for b in out if not b.holdout) < 2:
        r.error((*at, "adaptive"), "needs at least two branches that are not a holdout (to choose between)")
    return SplitStep(id=sid, branches=tuple(out), salt=salt, adaptive=adaptive)
