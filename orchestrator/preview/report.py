"""The impact preview as text (aligned tables, for people) and as JSON (for machines).

The JSON keys are stable (docs/simulate.md, "Before you deploy: the impact preview")::

    journey, old {file, version}, new {file, version, migrate, status, from, from_rule},
    events {file, first, last}, until {at, rule}, deployed_in_both [files],
    runs {old, new: {events_read, events_applied, invalid_lines, customers, actions, waiting}},
    sends {old, new, unchanged, added, removed, moved, changed},
    by_step [{journey, step, channel, old, new, added, removed, moved, changed}],
    customers {changed, of, limit, shown [{customer, changes [change]}]},
    funnels {journey id: {changed, old, new}}   (old/new: the funnel's to_dict, docs/simulate.md)
    inside {at, migrate, moves, leaves, stays, limit, shown [{customer, key, step, entered_at, outcome,
            to_step, reason}]}

A change: ``{kind: added|removed|moved|changed, journey, step, channel, template, old_at, new_at,
differs: {field: {old, new}}}`` (``old_at`` null when added, ``new_at`` null when removed). Times are
ISO 8601 UTC with milliseconds. ``limit`` 0: everything is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.engine.clock import iso_from_ms
from orchestrator.core.funnel import JourneyFunnel
from orchestrator.core.journey.model import BranchStep, SplitStep, WaitStep
from orchestrator.preview.compare import Change
from orchestrator.preview.diff import Preview

__all__ = [
    "DEFAULT_LIMIT",
    "Section",
    "change_dict",
    "funnel_rows",
    "report_dict",
    "report_text",
    "sections",
    "table",
]

DEFAULT_LIMIT = 20
"""Customers listed by default (``--limit``)."""

_SIGNS = {"added": "+", "removed": "-", "moved": "~", "changed": "*"}


def _iso(ms: int | None) -> str | None:
    return iso_from_ms(ms) if ms is not None else None


def change_dict(c: Change) -> dict[str, Any]:
    s = c.send
    differs: dict[str, Any] = {}
    if c.old is not None and c.new is not None:
        a, b = c.old.fields(), c.new.fields()
        differs = {f: {"old": a.get(f), "new": b.get(f)} for f in c.fields}
    return {
        "kind": c.kind,
        "journey": s.journey,
        "step": s.step,
        "channel": s.channel,
        "template": s.template,
        "old_at": _iso(c.old.at_ms if c.old else None),
        "new_at": _iso(c.new.at_ms if c.new else None),
        "differs": differs,
    }


def _shown(n: int, limit: int) -> int:
    return n if limit <= 0 else min(n, limit)


def _run_dict(result: Any) -> dict[str, Any]:
    return {
        "events_read": result.events_read,
        "events_applied": result.events_applied,
        "invalid_lines": len(result.invalid),
        "customers": result.customers,
        "actions": result.actions,
        "waiting": result.waiting,
    }


def _funnels(p: Preview) -> dict[str, dict[str, Any]]:
    old, new = p.old_run.funnel.to_dict(), p.new_run.funnel.to_dict()
    out: dict[str, dict[str, Any]] = {}
    for jid in sorted({*old, *new, p.journey_id}):
        a, b = old.get(jid, JourneyFunnel(jid).to_dict()), new.get(jid, JourneyFunnel(jid).to_dict())
        out[jid] = {"changed": a != b, "old": a, "new": b}
    return out


def report_dict(p: Preview, *, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """The preview as JSON-ready data (the keys of the module's docstring)."""
    kinds = {k: sum(1 for c in p.changes if c.kind == k) for k in ("added", "removed", "moved", "changed")}
    customers = p.by_customer()
    shown = list(customers.items())[: _shown(len(customers), limit)]
    return {
        "journey": p.journey_id,
        "old": {"file": str(p.old_path), "version": p.old.version},
        "new": {
            "file": str(p.new_path),
            "version": p.new.version,
            "migrate": p.new.migrate,
            "status": p.new.status,
            "from": iso_from_ms(p.at_ms),
            "from_rule": p.at_rule,
        },
        "events": {
            "file": str(p.events_path),
            "first": iso_from_ms(p.first_event_ms),
            "last": iso_from_ms(p.last_event_ms),
        },
        "until": {"at": iso_from_ms(p.until_ms), "rule": p.until_rule},
        "deployed_in_both": list(p.others),
        "runs": {"old": _run_dict(p.old_run), "new": _run_dict(p.new_run)},
        "sends": {"old": p.old_run.actions, "new": p.new_run.actions, "unchanged": p.unchanged, **kinds},
        "by_step": [r.to_dict() for r in p.rows],
        "customers": {
            "changed": len(customers),
            "of": max(p.old_run.customers, p.new_run.customers),
            "limit": limit,
            "shown": [{"customer": k, "changes": [change_dict(c) for c in v]} for k, v in shown],
        },
        "funnels": _funnels(p),
        "inside": {
            "at": iso_from_ms(p.at_ms),
            "migrate": p.new.migrate,
            **{o: sum(1 for i in p.inside if i.outcome == o) for o in ("moves", "leaves", "stays")},
            "limit": limit,
            "shown": [
                {
                    "customer": i.customer,
                    "key": i.key,
                    "step": i.step,
                    "entered_at": iso_from_ms(i.entered_ms),
                    "outcome": i.outcome,
                    "to_step": i.to_step,
                    "reason": i.reason,
                }
                for i in p.inside[: _shown(len(p.inside), limit)]
            ],
        },
    }


# -- text ------------------------------------------------------------------------------------------
def table(
    headers: list[str], rows: list[list[str]], *, right: set[int] | None = None, indent: int = 2
) -> list[str]:
    """Aligned columns (``right``: the columns aligned right, numbers), two spaces apart."""
    right = right or set()
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return (" " * indent + "  ".join(out)).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _signed(n: int) -> str:
    return f"{n:+d}" if n else ""


def funnel_rows(
    old: dict[str, Any], new: dict[str, Any], order: list[str], forks: set[str] | None = None
) -> list[tuple[str, str, str, str]]:
    """(what, old, new, change) of two funnels (:meth:`JourneyFunnel.to_dict`): entries, arrivals per
    step (in ``order``, then the others), the ways taken out of each fork (``forks``: branch and split
    steps, waits with a timeout; None: the steps left by more than one way in either run), each split
    branch's entries, conversions and rate, goals, exits, actions, where customers still are."""
    out: list[tuple[str, str, str, str]] = []

    def counts(label: str, a: int, b: int) -> None:
        out.append((label, str(a), str(b), _signed(b - a)))

    def keyed(prefix: str, field: str, keys: list[str] | None = None) -> None:
        a, b = old.get(field, {}), new.get(field, {})
        every = keys if keys is not None else sorted({*a, *b})
        for k in every:
            if k in a or k in b:
                counts(f"{prefix}{k}", int(a.get(k, 0)), int(b.get(k, 0)))

    counts("entered", int(old.get("entered", 0)), int(new.get("entered", 0)))
    steps = [*order, *sorted({*old.get("steps", {}), *new.get("steps", {})} - set(order))]
    keyed("step ", "steps", steps)
    edges_a, edges_b = old.get("edges", {}), new.get("edges", {})
    for edge in sorted({*edges_a, *edges_b}):
        src, _, dst = edge.partition(">")
        fan_out = {e for e in {*edges_a, *edges_b} if e.partition(">")[0] == src}
        if src and (src in forks if forks is not None else len(fan_out) > 1):
            counts(f"  {src} -> {dst}", int(edges_a.get(edge, 0)), int(edges_b.get(edge, 0)))
    splits_a, splits_b = old.get("splits", {}), new.get("splits", {})
    for step in sorted({*splits_a, *splits_b}):
        for branch in sorted({*splits_a.get(step, {}), *splits_b.get(step, {})}):
            a = splits_a.get(step, {}).get(branch, {})
            b = splits_b.get(step, {}).get(branch, {})
            counts(f"split {step}/{branch} entered", int(a.get("entered", 0)), int(b.get("entered", 0)))
            counts(f"split {step}/{branch} converted", int(a.get("converted", 0)), int(b.get("converted", 0)))
            ra, rb = float(a.get("conversion_rate", 0.0)) * 100, float(b.get("conversion_rate", 0.0)) * 100
            delta = f"{rb - ra:+.1f} pt" if round(rb - ra, 1) else ""
            out.append((f"split {step}/{branch} rate", f"{ra:.1f} %", f"{rb:.1f} %", delta))
    keyed("goal ", "goals")
    counts("converted", int(old.get("converted", 0)), int(new.get("converted", 0)))
    keyed("exit ", "exits")
    counts("actions", int(old.get("actions", 0)), int(new.get("actions", 0)))
    keyed("skipped ", "skipped_sends")
    keyed("still at ", "occupancy")
    return out


def _change_text(c: Change) -> list[str]:
    s = c.send
    when = iso_from_ms(c.at_ms)
    if c.kind == "moved" and c.new is not None:
        when = f"{when} -> {iso_from_ms(c.new.at_ms)}"
    what = [f"{_SIGNS[c.kind]} {c.kind}", f"{s.journey}/{s.step}", s.channel, s.template, when]
    if c.fields:
        what.append(", ".join(c.fields))
    return what


@dataclass
class Section:
    """One part of the report, for the text and the HTML page alike: a title, notes, a table, and what
    the limit left out."""

    title: str
    notes: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    right: set[int] = field(default_factory=set)
    """The columns of numbers (aligned right)."""
    more: str = ""
    headless: bool = False
    """A table of facts: no header row."""


def sections(p: Preview, *, limit: int = DEFAULT_LIMIT) -> list[Section]:
    """The report's sections, in order: the facts, the sends by step and channel, the customers whose
    sends change, the funnels, who is inside the old version at ``at``."""
    data = report_dict(p, limit=limit)
    old_v, new_v = f"v{p.old.version}", f"v{p.new.version}"
    runs = data["runs"]["old"]
    facts = [
        ["events", f"{p.events_path}: {runs['events_read']} read, {runs['invalid_lines']} invalid"],
        [f"{new_v} from", f"{iso_from_ms(p.at_ms)} ({p.at_rule})"],
        ["timers until", f"{iso_from_ms(p.until_ms)} ({p.until_rule})"],
        [
            "migrate",
            "yes: customers inside move" if p.new.migrate else "no: customers inside stay on " + old_v,
        ],
    ]
    if p.others:
        facts.append(["in both runs", f"{len(p.others)} other files (--journeys, --policy)"])
    title = f"Impact preview of journey {p.journey_id}: {old_v} -> {new_v} ({p.old_path} -> {p.new_path})"
    out = [Section(title, headers=["", ""], rows=facts, headless=True)]
    sends = data["sends"]
    out.append(
        Section(
            f"Sends: {sends['old']} with {old_v}, {sends['new']} with {new_v}: {sends['added']} added, "
            f"{sends['removed']} removed, {sends['moved']} moved, {sends['changed']} changed, "
            f"{sends['unchanged']} unchanged",
            headers=["journey", "step", "channel", old_v, new_v, "added", "removed", "moved", "changed"],
            rows=[
                [
                    r.journey,
                    r.step,
                    r.channel,
                    *(str(n) for n in (r.old, r.new, r.added, r.removed, r.moved, r.changed)),
                ]
                for r in p.rows
            ],
            right=set(range(3, 9)),
        )
    )
    customers = data["customers"]
    rows: list[list[str]] = []
    for customer, changes in list(p.by_customer().items())[: _shown(customers["changed"], limit)]:
        for i, c in enumerate(changes):
            rows.append([customer if i == 0 else "", *_change_text(c)])
    headers = ["customer", "change", "journey/step", "channel", "template", "at", "differs"]
    width = max((len(r) for r in rows), default=len(headers) - 1)
    hidden = customers["changed"] - len(customers["shown"])
    out.append(
        Section(
            f"Customers whose sends change: {customers['changed']} of {customers['of']}",
            headers=headers[:width],
            rows=[r + [""] * (width - len(r)) for r in rows],
            more=f"... and {hidden} more customers (--limit N, 0: all)" if hidden > 0 else "",
        )
    )
    funnels = data["funnels"]
    order = list(p.new.steps) + [s for s in p.old.steps if s not in p.new.steps]
    for jid, f in funnels.items():
        mine = jid == p.journey_id
        if mine or f["changed"]:
            found = funnel_rows(f["old"], f["new"], order if mine else [], _forks(p) if mine else None)
            corner = f"funnel of {jid}" + ("" if f["changed"] else " (unchanged)")
            out.append(
                Section(
                    "",
                    headers=[corner, old_v, new_v, "change"],
                    rows=[list(r) for r in found],
                    right={1, 2, 3},
                )
            )
    same = [jid for jid, f in funnels.items() if jid != p.journey_id and not f["changed"]]
    if same:
        out.append(Section("Funnels unchanged: " + ", ".join(same)))
    out.append(_inside(p, data["inside"], limit))
    return out


def report_text(p: Preview, *, limit: int = DEFAULT_LIMIT) -> str:
    """The preview for the terminal: sections with aligned tables."""
    lines: list[str] = []
    for n, s in enumerate(sections(p, limit=limit)):
        if n:
            lines.append("")
        if s.title:
            lines.append(s.title)
        lines += [f"  {note}" for note in s.notes]
        if s.rows:
            found = table(s.headers, s.rows, right=s.right, indent=0 if not s.title else 2)
            lines += found[1:] if s.headless else found
        if s.more:
            lines.append(f"  {s.more}")
    return "\n".join(lines) + "\n"


def _forks(p: Preview) -> set[str]:
    """The steps of either version with several ways out."""
    return {
        sid
        for d in (p.old, p.new)
        for sid, step in d.steps.items()
        if isinstance(step, BranchStep | SplitStep) or (isinstance(step, WaitStep) and step.timeout_next)
    }


def _inside(p: Preview, inside: dict[str, Any], limit: int) -> Section:
    old_v, new_v = f"v{p.old.version}", f"v{p.new.version}"
    head = f"Customers inside {old_v} at {inside['at']}"
    if not p.inside:
        why = " (the new version from the first event: nobody is inside yet)" if not p.at_given else ""
        return Section(f"{head}: none{why}")
    counts = f"{inside['moves']} move, {inside['leaves']} leave, {inside['stays']} stay"
    if p.new.status == "archived":
        rule = f"{new_v} is archived: they leave (reason archived)"
    elif p.new.migrate:
        rule = (
            f"{new_v} says migrate: true: at their next event or timer they move to the same step of "
            f"{new_v}, or leave when it has no step of that id and type"
        )
    else:
        rule = f"{new_v} does not migrate: they stay on {old_v} until they finish (new entries get {new_v})"
    rows = [
        [
            i.customer + (f" [{i.key}]" if i.key else ""),
            i.step,
            iso_from_ms(i.entered_ms),
            i.outcome,
            i.to_step or "",
            i.reason,
        ]
        for i in p.inside[: _shown(len(p.inside), limit)]
    ]
    hidden = len(p.inside) - len(rows)
    return Section(
        f"{head}: {len(p.inside)} ({counts})",
        notes=[rule],
        headers=["customer", "step", "entered", "outcome", "to step", "why"],
        rows=rows,
        more=f"... and {hidden} more (--limit N, 0: all)" if hidden > 0 else "",
    )
