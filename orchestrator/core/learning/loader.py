"""Load and write model files (``kind: model``): YAML text <-> :class:`EngagementModel`, problems as
``file:line: field: message``.

What ``orchestrator fit`` writes, and what ``validate``/``deploy`` read::

    kind: model
    id: engagement
    version: 3
    fitted:                       # the range read and what was in it
      from: "2026-11-01T00:00:00Z"
      to: "2026-11-29T00:00:00Z"
      events: 120000
      actions: 8000
      decisions: 9100
      customers: 5000
    prior_weight: 10              # the population counts as this many of a customer's own observations
    channels:                     # per send: answered (opened or clicked) and each kind
      email: {sends: 5000, engaged: 1100, opened: 1050, clicked: 210}
    hour_of_week:                 # per local hour of the week (0 = Monday 00:00): 168 numbers each
      email: {sends: [...], engaged: [...]}
    splits:                       # journey -> split step -> branch: entered and converted
      welcome: {subject_test: {a: {entered: 400, converted: 31}, b: {entered: 410, converted: 52}}}
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from pathlib import Path as FsPath
from typing import Any

import orjson

from orchestrator.core.engine.clock import iso_from_ms
from orchestrator.core.journey.reader import Reader
from orchestrator.core.journey.yamlsrc import Path, compose_text, read_source
from orchestrator.core.learning.model import (
    HOURS_OF_WEEK,
    MODEL_CHANNELS,
    BranchStats,
    ChannelStats,
    EngagementModel,
    HourStats,
)
from orchestrator.exceptions import ModelValidationError

__all__ = [
    "MAX_SPLIT_ENTRIES",
    "MODEL_KIND",
    "dump_model",
    "is_model_file",
    "is_model_text",
    "load_model_file",
    "load_model_text",
]

MODEL_KIND = "model"
MAX_SPLIT_ENTRIES = 500
"""Most split steps (over all journeys) a model may carry."""
MAX_PRIOR_WEIGHT = 10_000.0
_TOP = ("kind", "id", "version", "name", "description", "fitted", "prior_weight", "channels", "hour_of_week",
        "splits")  # fmt: skip
_FITTED = ("from", "to", "events", "actions", "decisions", "customers")
_CHANNEL = ("sends", "engaged", "opened", "clicked")
_KIND_LINE = re.compile(r"^kind:\s*['\"]?model['\"]?\s*(#.*)?$", re.MULTILINE)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")


def is_model_text(text: str) -> bool:
    """True when the YAML text has ``kind: model`` at its top level (a line starting in column 1)."""
    return _KIND_LINE.search(text) is not None


def is_model_file(path: str | FsPath) -> bool:
    text, _ = read_source(path)
    return text is not None and is_model_text(text)


def load_model_text(text: str, source_name: str = "<text>") -> EngagementModel:
    """Parse and check one model; raises ModelValidationError with every problem."""
    doc = compose_text(text, source_name)
    reader = Reader(doc, 0)
    if doc.value is None:
        raise ModelValidationError(reader.problems or [f"{source_name}:1: (root): the file is empty"])
    model = _model(reader, doc.value)
    if reader.problems or model is None:
        raise ModelValidationError(reader.problems or [f"{source_name}:1: (root): invalid model"])
    return model


def load_model_file(path: str | FsPath) -> EngagementModel:
    text, problem = read_source(path)
    if text is None:
        raise ModelValidationError([problem or f"{path}:1: (file): cannot read the file"])
    return load_model_text(text, str(path))


def _time_ms(r: Reader, data: dict[str, Any], key: str, path: Path) -> int | None:
    value = data.get(key)
    if value is None:
        r.error((*path, key), "required field is missing (an ISO 8601 time, like 2026-11-01T00:00:00Z)")
        return None
    text = str(value).strip()
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        r.error((*path, key), f"{text!r} is not an ISO 8601 time (like 2026-11-01T00:00:00Z)")
        return None
    if at.tzinfo is None:
        r.error((*path, key), f"{text!r} has no zone: write it in UTC with a Z")
        return None
    return int(at.timestamp() * 1000)


def _count(r: Reader, data: dict[str, Any], key: str, path: Path) -> int | None:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        r.error((*path, key), f"expected a whole number of at least 0, got {value!r}")
        return None
    return value


def _model(r: Reader, value: Any) -> EngagementModel | None:
    data = r.mapping(value, (), allowed=_TOP, required=("kind", "id", "version", "fitted"))
    if data is None:
        return None
    if "kind" in data and data["kind"] != MODEL_KIND:
        r.error(("kind",), f"expected 'model', got {data['kind']!r}")
    mid = r.name(data, "id", ())
    version = r.integer(data, "version", (), default=1, minimum=1)
    fitted = r.mapping(data.get("fitted", {}), ("fitted",), allowed=_FITTED, required=("from", "to"))
    start = end = None
    counts: dict[str, int] = {}
    if fitted is not None:
        start = _time_ms(r, fitted, "from", ("fitted",))
        end = _time_ms(r, fitted, "to", ("fitted",))
        if start is not None and end is not None and end < start:
            r.error(("fitted", "to"), "is before fitted.from")
        for key in _FITTED[2:]:
            n = _count(r, fitted, key, ("fitted",))
            if n is not None and key in fitted:
                counts[key] = n
    weight = 10.0
    if "prior_weight" in data:
        found = r.number(data, "prior_weight", ())
        if found is not None and not 0.0 < found <= MAX_PRIOR_WEIGHT:
            r.error(("prior_weight",), f"must be above 0 and at most {MAX_PRIOR_WEIGHT:g}")
        elif found is not None:
            weight = found
    channels = _channels(r, data.get("channels"))
    hours = _hours(r, data.get("hour_of_week"))
    splits = _splits(r, data.get("splits"))
    if mid is None or start is None or end is None:
        return None
    return EngagementModel(
        id=mid,
        version=version,
        fitted_from_ms=start,
        fitted_to_ms=end,
        counts=counts,
        prior_weight=weight,
        channels=channels,
        hours=hours,
        splits=splits,
        name=r.string(data, "name", (), default=mid) or mid,
        description=r.string(data, "description", (), default="") or "",
        source_name=r.doc.source_name,
        content_hash=_content_hash(data),
    )


def _channel_map(r: Reader, value: Any, path: Path) -> dict[str, Any]:
    if value is None:
        return {}
    data = r.mapping(value, path, allowed=MODEL_CHANNELS)
    return data or {}


def _channels(r: Reader, value: Any) -> dict[str, ChannelStats]:
    out: dict[str, ChannelStats] = {}
    for channel, spec in _channel_map(r, value, ("channels",)).items():
        at: Path = ("channels", channel)
        data = r.mapping(spec, at, allowed=_CHANNEL, required=("sends", "engaged"))
        if data is None:
            continue
        nums = [_count(r, data, k, at) for k in _CHANNEL]
        if any(n is None for n in nums):
            continue
        sends, engaged, opened, clicked = (n or 0 for n in nums)
        if engaged > sends:
            r.error((*at, "engaged"), f"{engaged} answered sends of {sends} sends: at most the sends")
            continue
        out[channel] = ChannelStats(sends, engaged, opened, clicked)
    return out


def _hour_list(r: Reader, data: dict[str, Any], key: str, path: Path) -> tuple[int, ...] | None:
    value = data.get(key)
    if not isinstance(value, list) or len(value) != HOURS_OF_WEEK:
        got = f"{len(value)} values" if isinstance(value, list) else type(value).__name__
        r.error((*path, key), f"expected a list of {HOURS_OF_WEEK} whole numbers (one per hour), got {got}")
        return None
    for i, n in enumerate(value):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            r.error((*path, key, i), f"expected a whole number of at least 0, got {n!r}")
            return None
    return tuple(value)


def _hours(r: Reader, value: Any) -> dict[str, HourStats]:
    out: dict[str, HourStats] = {}
    for channel, spec in _channel_map(r, value, ("hour_of_week",)).items():
        at: Path = ("hour_of_week", channel)
        data = r.mapping(spec, at, allowed=("sends", "engaged"), required=("sends", "engaged"))
        if data is None:
            continue
        sends = _hour_list(r, data, "sends", at)
        engaged = _hour_list(r, data, "engaged", at)
        if sends is None or engaged is None:
            continue
        over = [h for h in range(HOURS_OF_WEEK) if engaged[h] > sends[h]]
        if over:
            r.error((*at, "engaged", over[0]), f"hour {over[0]}: more answered sends than sends")
            continue
        out[channel] = HourStats(sends, engaged)
    return out


def _splits(r: Reader, value: Any) -> dict[str, dict[str, dict[str, BranchStats]]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        r.error(("splits",), "expected a mapping: journey -> split step -> branch -> {entered, converted}")
        return {}
    out: dict[str, dict[str, dict[str, BranchStats]]] = {}
    entries = 0
    for journey, steps in value.items():
        if not isinstance(steps, dict):
            r.error(("splits", journey), "expected a mapping: split step -> branch -> {entered, converted}")
            continue
        for step, branches in steps.items():
            entries += 1
            at: Path = ("splits", journey, step)
            if entries > MAX_SPLIT_ENTRIES:
                r.error(at, f"more than {MAX_SPLIT_ENTRIES} split steps")
                return out
            if not isinstance(branches, dict) or not branches:
                r.error(at, "expected a mapping: branch -> {entered, converted}")
                continue
            for branch, spec in branches.items():
                b_at: Path = (*at, branch)
                if not _NAME.match(str(branch)):
                    r.error(b_at, f"{branch!r} is not a branch name")
                    continue
                data = r.mapping(
                    spec, b_at, allowed=("entered", "converted"), required=("entered", "converted")
                )
                if data is None:
                    continue
                entered = _count(r, data, "entered", b_at)
                converted = _count(r, data, "converted", b_at)
                if entered is None or converted is None:
                    continue
                if converted > entered:
                    r.error((*b_at, "converted"), f"{converted} conversions of {entered} entries")
                    continue
                out.setdefault(str(journey), {}).setdefault(str(step), {})[str(branch)] = BranchStats(
                    entered, converted
                )
    return out


def _content_hash(data: dict[str, Any]) -> str:
    meaning = {k: v for k, v in data.items() if k not in ("name", "description")}
    return hashlib.blake2b(orjson.dumps(meaning, option=orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()


def dump_model(model: EngagementModel) -> str:
    """The model as a model file (what ``orchestrator fit`` writes); :func:`load_model_text` reads it back
    to an equal model."""
    lines = [
        f"kind: {MODEL_KIND}",
        f"id: {model.id}",
        f"version: {model.version}",
    ]
    if model.name and model.name != model.id:
        lines.append(f"name: {orjson.dumps(model.name).decode()}")
    if model.description:
        lines.append(f"description: {orjson.dumps(model.description).decode()}")
    lines += [
        "fitted:",
        f'  from: "{iso_from_ms(model.fitted_from_ms)}"',
        f'  to: "{iso_from_ms(model.fitted_to_ms)}"',
        *(f"  {k}: {model.counts[k]}" for k in _FITTED[2:] if k in model.counts),
        f"prior_weight: {model.prior_weight:g}",
    ]
    if model.channels:
        lines.append("channels:")
        for ch in MODEL_CHANNELS:
            s = model.channels.get(ch)
            if s is not None:
                counts = f"sends: {s.sends}, engaged: {s.engaged}, opened: {s.opened}, clicked: {s.clicked}"
                lines.append(f"  {ch}: {{{counts}}}")
    if model.hours:
        lines.append("hour_of_week:")
        for ch in MODEL_CHANNELS:
            h = model.hours.get(ch)
            if h is not None:
                lines += [
                    f"  {ch}:",
                    f"    sends: [{', '.join(map(str, h.sends))}]",
                    f"    engaged: [{', '.join(map(str, h.engaged))}]",
                ]
    if model.splits:
        lines.append("splits:")
        for journey in sorted(model.splits):
            lines.append(f"  {orjson.dumps(journey).decode()}:")
            for step in sorted(model.splits[journey]):
                lines.append(f"    {orjson.dumps(step).decode()}:")
                for branch, b in sorted(model.splits[journey][step].items()):
                    counts = f"entered: {b.entered}, converted: {b.converted}"
                    lines.append(f"      {orjson.dumps(branch).decode()}: {{{counts}}}")
    return "\n".join(lines) + "\n"
