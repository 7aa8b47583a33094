"""A simulate report as one self-contained HTML page (``orchestrator simulate ... --html FILE``).

Per journey: the funnel as bars (entered, then each step's arrivals in the journey's order, then goals
and exits), each split's branches (entered, converted, conversion rate; the holdout marked), the sends
that went out to nobody, and the journey's picture with its counts when its definition is known. Inline
CSS, no script, no external resource: the file can be mailed or attached. Every text is escaped with
:func:`html.escape`; the pictures are Graphviz's SVG, whose texts Graphviz escapes.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from orchestrator.core.journey.model import JourneyDefinition, SplitStep
from orchestrator.exceptions import PictureError
from orchestrator.pictures.dot import to_dot
from orchestrator.pictures.graph import journey_graph
from orchestrator.pictures.render import GRAPHVIZ_HINT, inline_svg, render_svg

__all__ = ["funnel_page"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#0f172a;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #e2e8f0;padding-bottom:.2em}
h3{font-size:1.05em;margin:1.2em 0 .4em}.muted{color:#64748b}
table{border-collapse:collapse;width:100%;margin:.3em 0}
td,th{padding:3px 8px;text-align:left;vertical-align:middle;border-bottom:1px solid #f1f5f9}
th{font-weight:600;color:#475569}td.n{text-align:right;font-variant-numeric:tabular-nums;width:5em}
td.label{width:28%}td.bar{width:55%}
.bar span{display:block;height:14px;border-radius:3px;background:#3b82f6;min-width:1px}
tr.goal .bar span{background:#16a34a}tr.exit .bar span{background:#ef4444}
tr.entered .bar span{background:#0f766e}
.tag{font-size:.8em;padding:1px 6px;border-radius:9px;background:#e2e8f0;margin-left:.4em}
.tag.holdout{background:#fde68a}.tag.now{background:#ea580c;color:#fff}
.picture{overflow:auto;border:1px solid #e2e8f0;border-radius:6px;padding:.5em;margin-top:.5em}
.picture svg{max-width:100%;height:auto}
.note{background:#fef9c3;padding:.4em .8em;border-radius:4px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _bar_row(kind: str, label: str, n: int, whole: int, extra: str = "") -> str:
    width = min(100.0, 100.0 * n / whole) if whole else 0.0
    pct = f"{100 * n / whole:.1f} %" if whole else ""
    return (
        f'<tr class="{kind}"><td class="label">{label}{extra}</td><td class="n">{n}</td>'
        f'<td class="bar"><span style="width:{width:.1f}%"></span></td><td class="n muted">{pct}</td></tr>'
    )


def _funnel(counts: Mapping[str, Any], definition: JourneyDefinition | None) -> str:
    entered = _int(counts.get("entered"))
    steps = _map(counts.get("steps"))
    occupancy = _map(counts.get("occupancy"))
    order = [s for s in definition.steps if s in steps] if definition is not None else []
    order += [s for s in steps if s not in order]
    rows = [_bar_row("entered", "<b>entered</b>", entered, entered)]
    for step in order:
        now = _int(occupancy.get(step))
        kind = definition.steps[step].kind if definition is not None and step in definition.steps else "step"
        badge = f'<span class="tag now">now: {now}</span>' if now else ""
        label = f"{_e(step)} <span class='muted'>{_e(kind)}</span>"
        rows.append(_bar_row("step", label, _int(steps[step]), entered, badge))
    for name, n in sorted(_map(counts.get("goals")).items()):
        rows.append(_bar_row("goal", f"goal <b>{_e(name)}</b>", _int(n), entered))
    for reason, n in sorted(_map(counts.get("exits")).items()):
        rows.append(_bar_row("exit", f"exit {_e(reason)}", _int(n), entered))
    head = '<tr><th></th><th class="n">customers</th><th></th><th class="n">of entered</th></tr>'
    return f"<table>{head}{''.join(rows)}</table>"


def _holdouts(definition: JourneyDefinition | None, step: str) -> set[str]:
    found = definition.steps.get(step) if definition is not None else None
    if isinstance(found, SplitStep):
        return {b.name for b in found.branches if b.holdout}
    return {"holdout"} if definition is None else set()


def _splits(counts: Mapping[str, Any], definition: JourneyDefinition | None) -> str:
    out = []
    for step, branches in sorted(_map(counts.get("splits")).items()):
        holdouts = _holdouts(definition, step)
        adaptive = definition is not None and getattr(definition.steps.get(step), "adaptive", False)
        rows = []
        for name, c in _map(branches).items():
            c = _map(c)
            n, conv = _int(c.get("entered")), _int(c.get("converted"))
            tag = '<span class="tag holdout">holdout</span>' if name in holdouts else ""
            rate = f"{100 * conv / n:.1f} %" if n else "-"
            rows.append(
                f"<tr><td>{_e(name)}{tag}</td><td class='n'>{n}</td><td class='n'>{conv}</td>"
                f"<td class='n'>{rate}</td></tr>"
            )
        title = f"split {_e(step)}" + (' <span class="tag">adaptive</span>' if adaptive else "")
        out.append(
            f"<h3>{title}</h3><table><tr><th>branch</th><th class='n'>entered</th>"
            f"<th class='n'>converted</th><th class='n'>conversion</th></tr>{''.join(rows)}</table>"
        )
    return "".join(out)


def _skipped(counts: Mapping[str, Any]) -> str:
    skipped = _map(counts.get("skipped_sends"))
    if not skipped:
        return ""
    items = "".join(f"<li>{_e(k)}: {_int(n)}</li>" for k, n in sorted(skipped.items()))
    return f"<h3>sends that made no message</h3><ul>{items}</ul>"


def _picture(definition: JourneyDefinition, counts: Mapping[str, Any]) -> str:
    try:
        svg = render_svg(to_dot(journey_graph(definition), counts))
    except PictureError as exc:
        text = GRAPHVIZ_HINT.split(", or ask")[0] if "not installed" in str(exc) else str(exc)
        return f'<p class="note">No picture: {_e(text)}.</p>'
    return f'<div class="picture">{inline_svg(svg)}</div>'


def funnel_page(
    report: Mapping[str, Any],
    definitions: Mapping[str, JourneyDefinition] | None = None,
    *,
    title: str = "Journey funnels",
    subtitle: str = "",
) -> str:
    """The HTML page of ``report`` (``SimulationResult.report()``): a section per journey of its
    ``journeys``; ``definitions`` (journey id -> definition): the journeys whose picture is drawn."""
    definitions = definitions or {}
    journeys = _map(report.get("journeys"))
    summary = (
        f"{_int(report.get('events_read'))} events read, {_int(report.get('events_applied'))} applied; "
        f"{_int(report.get('customers'))} customers; {_int(report.get('actions'))} actions"
    )
    sections = []
    for jid, counts in sorted(journeys.items()):
        counts = _map(counts)
        d = definitions.get(jid)
        name = f"{_e(d.name)} <span class='muted'>({_e(jid)} v{d.version})</span>" if d else _e(jid)
        entered, converted = _int(counts.get("entered")), _int(counts.get("converted"))
        rate = f"{100 * converted / entered:.1f} %" if entered else "-"
        parts = [
            f'<section id="journey-{_e(jid)}"><h2>{name}</h2>',
            f"<p>{entered} entered, {converted} converted ({rate}), "
            f"{_int(counts.get('actions'))} actions</p>",
            _funnel(counts, d),
            _splits(counts, d),
            _skipped(counts),
        ]
        if d is not None:
            parts.append(_picture(d, counts))
        parts.append("</section>")
        sections.append("".join(parts))
    if not sections:
        sections.append("<p>No journey was entered.</p>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class='muted'>{_e(subtitle)}{' · ' if subtitle else ''}{_e(summary)}</p>"
        + "".join(sections)
        + "</body></html>\n"
    )
