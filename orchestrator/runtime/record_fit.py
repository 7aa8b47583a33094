"""Keeping a stored customer record under its size limit: what may be trimmed, least harmful first
(:func:`fit_record`). Over the limit, a record's changelog message would pass Kafka's 1 MB."""

from __future__ import annotations

from typing import Any

import orjson

from orchestrator.exceptions import StateLimitError

__all__ = ["fit_record"]

Record = dict[str, Any]


def _trims(record: Record, strict: bool) -> list[tuple[str, Any]]:
    """What may go, least harmful first: each a (name, step) whose step removes some and says whether
    it removed anything. Events (``strict``) stop at the outbox's last entry; wake-ups and hand-overs
    may also lose the whole outbox (a crash right now could not re-send their outputs), then the
    largest attributes, then the entry events journey instances keep."""
    state = record.get("s") or {}
    profile = state.get("p") or {}

    def finished() -> bool:  # the journeys it finished lately (kept for inspect only), oldest first
        done: list[Any] = state.get("f", [])
        if not done:
            return False
        del done[0]
        return True

    def history() -> bool:  # the oldest half of the event history (seen()/count() look back less)
        rows: list[Any] = profile.get("history", [])
        if not rows:
            return False
        del rows[: max(1, len(rows) // 2)]
        return True

    def seen() -> bool:  # the oldest half of the remembered event ids (dedupe looks back less)
        ids: dict[str, int] = state.get("d", {})
        if not ids:
            return False
        for key in sorted(ids, key=lambda k: ids[k])[: max(1, len(ids) // 2)]:
            del ids[key]
        return True

    def outbox() -> bool:  # older messages' outputs: a crash before their offsets are committed needs them
        out: list[Any] = record.get("out", [])
        if len(out) <= (0 if not strict else 1):
            return False
        del out[: -1 if strict else len(out)]
        return True

    def attributes() -> bool:  # the largest attribute
        attrs: dict[str, Any] = profile.get("attributes", {})
        if not attrs:
            return False
        del attrs[max(attrs, key=lambda k: len(orjson.dumps(attrs[k])))]
        return True

    def entry_events() -> bool:  # the entry events kept by journey instances (event.* in conditions)
        dropped = False
        for instance in state.get("i", []):
            dropped = instance.pop("ev", None) is not None or dropped
        return dropped

    steps = [("finished", finished), ("history", history), ("seen", seen), ("outbox", outbox)]
    if not strict:
        steps += [("attributes", attributes), ("entry_events", entry_events)]
    return steps


def fit_record(record: Record, limit: int, *, strict: bool = True) -> tuple[bytes, list[str]]:
    """``record`` encoded within ``limit`` bytes, trimming (in place, see :func:`_trims`) the finished
    journeys kept for inspection, then the event history, then the remembered event ids, then the
    outbox (and, not ``strict``, more); the names of what was trimmed. Raises
    :class:`~orchestrator.exceptions.StateLimitError` when that is not enough: with ``strict`` (an
    event) the message is set aside and the state stays as it was."""
    trimmed: list[str] = []
    data = orjson.dumps(record)
    for name, step in _trims(record, strict):
        while len(data) > limit and step():
            if name not in trimmed:
                trimmed.append(name)
            data = orjson.dumps(record)
        if len(data) <= limit:
            return data, trimmed
    raise StateLimitError(
        f"the customer's state would be {len(data)} bytes, over the limit of {limit} even after trimming "
        f"{', '.join(trimmed) or 'nothing'}: its attributes, journey instances or held messages fill it"
    )
