"""The worker's read-only page (``/ui/``), rendered on the server: no build step, no JavaScript, no
external resource (docs/operations.md: "The worker's page").

Pure functions from plain data to HTML (the routes in :mod:`orchestrator.runtime.ui_pages` gather the
data from the same functions as the JSON pages): every value is escaped with :func:`html.escape`; the
CSS is inline; the only inline markup not made here is the journey's picture, the SVG Graphviz draws
(:func:`orchestrator.pictures.journey_svg`, its XML prolog taken away by
:func:`~orchestrator.pictures.inline_svg`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

import orjson

from orchestrator.pictures import inline_svg

__all__ = [
    "customer_page",
    "inline_svg",
    "journey_page",
    "login_page",
    "not_found_page",
    "overview_page",
    "page",
    "unauthorized_page",
]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center;
flex-wrap:wrap}
header a{color:#fff;text-decoration:none;font-weight:600}
header form{margin:0;display:flex;gap:.4em}
main{padding:1em 1.6em;max-width:1200px}
h1{font-size:1.5em;margin:.3em 0}h2{font-size:1.15em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff;margin:.3em 0 1em}
th,td{border:1px solid #d7dbe3;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef0f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#5a6272}.warn{background:#fff4d6;border:1px solid #e8c15a;padding:.4em .8em}
.error{background:#fde2e1;border:1px solid #d9534f;padding:.4em .8em}
.gauge{display:inline-block;width:160px;height:.9em;background:#e3e6ec;border-radius:3px;
vertical-align:middle;margin-right:.5em}
.gauge span{display:block;height:100%;background:#2f7ed8;border-radius:3px}
.picture{background:#fff;border:1px solid #d7dbe3;padding:.5em;overflow:auto}
.picture svg{max-width:100%;height:auto}
footer{padding:1em 1.6em;color:#5a6272}
code{background:#eef0f4;padding:0 .2em}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _when(ms: int | None) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, table_id: str | None = None, numeric: int = 0
) -> str:
    """A table; the last ``numeric`` columns are right-aligned numbers. Cells are escaped unless they are
    :class:`_Raw`."""
    ident = f' id="{_e(table_id)}"' if table_id else ""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="n"' if i >= len(row) - numeric else ""
            text = cell.html if isinstance(cell, _Raw) else _e(cell)
            cells.append(f"<td{cls}>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not body:
        return f'<p class="note"{ident}>none</p>'
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""
    return f"<table{ident}>{thead}<tbody>{''.join(body)}</tbody></table>"


class _Raw:
    """Markup made here (already escaped), put into a table cell as is."""

    __slots__ = ("html",)

    def __init__(self, html: str) -> None:
        self.html = html


def _lookup_form(value: str = "") -> str:
    return (
        '<form method="get" action="/ui/customers" role="search">'
        f'<input name="key" id="lookup-key" placeholder="customer key or kind:value" value="{_e(value)}" '
        'size="28" required><button type="submit">look up</button></form>'
    )


def page(title: str, body: str, *, signed_in: bool = True, refresh: int | None = None) -> str:
    """A whole page: header (links, customer lookup, log out), ``body``, footer."""
    meta = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    nav = (
        '<a href="/ui/">journeys</a>'
        + _lookup_form()
        + '<form method="post" action="/ui/logout"><button type="submit">log out</button></form>'
        if signed_in
        else "<span>journey orchestrator</span>"
    )
    now = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="referrer" content="no-referrer">{meta}<title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body><header>{nav}</header><main>{body}</main>"
        f'<footer>read-only · rendered {now} · <a href="">refresh</a></footer></body></html>'
    )


def login_page(error: str | None = None, *, signed_in: bool = False) -> str:
    """The login form: the API token in a password field, posted to ``/ui/login``."""
    shown = f'<p class="error" id="login-error">{_e(error)}</p>' if error else ""
    already = (
        '<p class="note" id="signed-in">You are signed in. <a href="/ui/">To the journeys</a>.</p>'
        if signed_in
        else ""
    )
    body = (
        "<h1>Sign in</h1>"
        f"{shown}{already}"
        "<p>This worker's page is read-only and private: sign in with the worker's API token "
        "(<code>api_token</code>, <code>ORCH_API_TOKEN</code>).</p>"
        '<form method="post" action="/ui/login" id="login">'
        '<label>API token <input type="password" name="token" id="token" autocomplete="off" '
        'required size="40"></label> <button type="submit" id="sign-in">sign in</button></form>'
    )
    return page("Sign in", body, signed_in=False)


def unauthorized_page(reason: str) -> str:
    """What a page under /ui/ shows without a login: why, and the login form (no data)."""
    if "no api_token" in reason:
        body = f'<h1>Not available</h1><p class="error" id="login-error">unauthorized: {_e(reason)}</p>'
        return page("Not available", body, signed_in=False)
    return login_page(f"unauthorized: {reason}")


def not_found_page(message: str) -> str:
    body = (
        f'<h1>Not found</h1><p class="warn" id="not-found">{_e(message)}</p>'
        '<p><a href="/ui/">The journeys</a></p>'
    )
    return page("Not found", body)


def _versions_cell(versions: Sequence[Mapping[str, Any]], in_force: int | None) -> str:
    parts = []
    for v in versions:
        mark = " (in force)" if v.get("version") == in_force else ""
        parts.append(
            f"v{_e(v.get('version'))} {_e(v.get('status'))} from {_e(_when(v.get('effective_from_ms')))}"
            f"{_e(mark)}"
        )
    return "<br>".join(parts)


def _scope(cluster_wide: bool, partitions_here: Sequence[int]) -> str:
    if cluster_wide:
        return '<p class="note" id="scope">Counts: cluster-wide (every customer partition).</p>'
    here = ", ".join(str(p) for p in partitions_here) or "none"
    return (
        '<p class="warn" id="scope">Counts: <strong>this worker only</strong> (partitions '
        f"{_e(here)}): the counts changelog could not be read from Kafka just now.</p>"
    )


def overview_page(
    summary: Mapping[str, Any],
    *,
    in_force: Mapping[str, int | None],
    funnels: Mapping[str, Any],
    segments: Sequence[Mapping[str, Any]],
    cluster_wide: bool,
    partitions_here: Sequence[int] = (),
) -> str:
    """``/ui/``: the journeys deployed with their versions and how many entered / are in them now; the
    segments with their sizes; campaigns, policies, models and what was refused."""
    rows = []
    for jid, versions in sorted((summary.get("journeys") or {}).items()):
        f = funnels.get(jid) or {}
        now = sum((f.get("occupancy") or {}).values())
        link = _Raw(f'<a href="/ui/journeys/{_e(quote(jid, safe=""))}" class="journey">{_e(jid)}</a>')
        rows.append(
            (
                link,
                _Raw(_versions_cell(versions, in_force.get(jid))),
                f.get("entered", 0),
                now,
                f.get("converted", 0),
            )
        )
    body = ["<h1>Journeys</h1>", _scope(cluster_wide, partitions_here)]
    body.append(
        _table(
            ("journey", "versions", "entered", "in it now", "converted"), rows, table_id="journeys", numeric=3
        )
    )
    body.append("<h2>Segments</h2>")
    body.append(
        _table(
            ("segment", "version", "status", "name", "members"),
            (
                (
                    s.get("segment"),
                    s.get("version") or "—",
                    s.get("status"),
                    s.get("name"),
                    s.get("members", 0),
                )
                for s in segments
            ),
            table_id="segments",
            numeric=1,
        )
    )
    campaigns = summary.get("campaigns") or {}
    if campaigns:
        body.append("<h2>Campaigns</h2>")
        body.append(
            _table(
                ("campaign", "versions"),
                ((cid, _Raw(_versions_cell(vs, None))) for cid, vs in sorted(campaigns.items())),
                table_id="campaigns",
            )
        )
    policies = summary.get("policies") or []
    if policies:
        body.append("<h2>Policies</h2>")
        body.append(
            _table(
                ("policy", "effective from"),
                ((p.get("policy") or "none", _when(p.get("effective_from_ms"))) for p in policies),
                table_id="policies",
            )
        )
    models = summary.get("models") or []
    if models:
        body.append("<h2>Models</h2>")
        body.append(
            _table(
                ("model", "effective from"),
                ((m.get("model"), _when(m.get("effective_from_ms"))) for m in models),
                table_id="models",
            )
        )
    refused = summary.get("refused") or []
    body.append("<h2>Refused deployments</h2>")
    body.append(
        _table(
            ("where", "key", "error"),
            ((r.get("where"), r.get("key"), r.get("error")) for r in refused),
            table_id="refused",
        )
    )
    return page("Journeys", "".join(body))


def _gauge(now: int, whole: int) -> str:
    share = 0.0 if whole <= 0 else min(1.0, now / whole)
    return (
        f'<span class="gauge" role="meter" aria-valuenow="{now}" aria-valuemin="0" aria-valuemax="{whole}">'
        f'<span style="width:{share * 100:.1f}%"></span></span>'
    )


def _counts_table(counts: Mapping[str, Any], what: str, table_id: str) -> str:
    return _table((what, "customers"), sorted(counts.items()), table_id=table_id, numeric=1)


def journey_page(
    journey_id: str,
    *,
    name: str = "",
    description: str = "",
    versions: Sequence[Mapping[str, Any]] = (),
    in_force: int | None = None,
    steps: Sequence[tuple[str, str]] = (),
    funnel: Mapping[str, Any] | None = None,
    svg: str | None = None,
    svg_note: str | None = None,
    cluster_wide: bool = True,
    partitions_here: Sequence[int] = (),
    refresh: int | None = None,
) -> str:
    """``/ui/journeys/<id>``: the picture of the version in force with its counts, then the counts as
    tables: entries, where customers are now (a gauge per step), arrivals, exits, goals, splits."""
    f = funnel or {}
    entered = int(f.get("entered", 0))
    occupancy: Mapping[str, int] = f.get("occupancy") or {}
    arrivals: Mapping[str, int] = f.get("steps") or {}
    now_total = sum(occupancy.values())
    title = f"{journey_id}" + (f" — {name}" if name and name != journey_id else "")
    body = [f'<h1 id="journey" data-journey="{_e(journey_id)}">{_e(title)}</h1>']
    if description:
        body.append(f"<p>{_e(description)}</p>")
    version = f"v{in_force}" if in_force else "none"
    body.append(
        f'<p>Version in force: <strong id="in-force">{_e(version)}</strong>'
        ' · <a href="?refresh=10">refresh every 10 s</a></p>'
    )
    body.append(_scope(cluster_wide, partitions_here))
    body.append(
        '<table id="totals"><tbody>'
        f'<tr><th>entered</th><td class="n" id="entered">{entered}</td></tr>'
        f'<tr><th>in the journey now</th><td class="n" id="in-now">{now_total}</td></tr>'
        f'<tr><th>converted</th><td class="n" id="converted">{int(f.get("converted", 0))}</td></tr>'
        f'<tr><th>exited</th><td class="n" id="exited">{sum((f.get("exits") or {}).values())}</td></tr>'
        "</tbody></table>"
    )
    body.append("<h2>Picture</h2>")
    if svg:
        body.append(f'<div class="picture" id="picture">{inline_svg(svg)}</div>')
    else:
        body.append(f'<p class="warn" id="picture-missing">{_e(svg_note or "no picture")}</p>')
    body.append("<h2>Where customers are now</h2>")
    known = [s for s, _ in steps]
    order = list(steps) + [(s, "?") for s in sorted({*occupancy, *arrivals} - set(known))]
    gauge_whole = max(entered, now_total, 1)
    step_rows = []
    for step, kind in order:
        now = int(occupancy.get(step, 0))
        cell = _Raw(f'{_gauge(now, gauge_whole)}<span class="now" data-step="{_e(step)}">{now} now</span>')
        step_rows.append((step, kind, cell, int(arrivals.get(step, 0))))
    body.append(_table(("step", "kind", "now", "arrived"), step_rows, table_id="steps", numeric=1))
    body.append("<h2>Goals</h2>")
    body.append(_counts_table(f.get("goals") or {}, "goal", "goals"))
    body.append("<h2>Exits</h2>")
    body.append(_counts_table(f.get("exits") or {}, "reason", "exits"))
    splits = f.get("splits") or {}
    if splits:
        body.append("<h2>Split branches</h2>")
        split_rows = [
            (
                step,
                branch,
                int(c.get("entered", 0)),
                int(c.get("converted", 0)),
                f"{100 * float(c.get('conversion_rate', 0.0)):.1f} %",
            )
            for step, branches in sorted(splits.items())
            for branch, c in sorted(branches.items())
        ]
        body.append(
            _table(
                ("split", "branch", "entered", "converted", "rate"), split_rows, table_id="splits", numeric=3
            )
        )
    edges = f.get("edges") or {}
    if edges:
        body.append("<h2>Moves between steps</h2>")
        edge_rows = [
            (a or "(entry)", b, n) for key, n in sorted(edges.items()) for a, _, b in [key.partition(">")]
        ]
        body.append(_table(("from", "to", "moves"), edge_rows, table_id="edges", numeric=1))
    skipped = f.get("skipped_sends") or {}
    if skipped:
        body.append("<h2>Sends that made no action</h2>")
        body.append(_counts_table(skipped, "step: reason", "skipped"))
    body.append("<h2>Versions</h2>")
    body.append(
        _table(
            ("version", "status", "effective from", ""),
            (
                (
                    v.get("version"),
                    v.get("status"),
                    _when(v.get("effective_from_ms")),
                    "in force" if v.get("version") == in_force else "",
                )
                for v in versions
            ),
            table_id="versions",
        )
    )
    return page(f"Journey {journey_id}", "".join(body), refresh=refresh)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def customer_page(asked: str = "", doc: Mapping[str, Any] | None = None, message: str | None = None) -> str:
    """``/ui/customers``: the lookup form, then the customer (the document ``orchestrator inspect`` shows:
    :func:`orchestrator.cli.inspect.customer_document`) or why there is none."""
    body = ["<h1>Customer</h1>", _lookup_form(asked)]
    if message:
        body.append(f'<p class="warn" id="not-found">{_e(message)}</p>')
    if doc is None:
        return page("Customer", "".join(body))
    prof = doc.get("profile") or {}
    head = f'<h2 id="customer" data-key="{_e(doc.get("customer_key"))}">{_e(doc.get("customer_key"))}</h2>'
    body.append(head)
    if doc.get("asked") and doc.get("asked") != doc.get("customer_key"):
        body.append(f'<p class="note">asked: {_e(doc["asked"])}</p>')
    facts: list[tuple[str, Any]] = [
        (
            "identities",
            "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted((doc.get("identities") or {}).items())),
        ),
        ("aliases", ", ".join(doc.get("aliases") or []) or "none"),
        (
            "time zone",
            prof.get("timezone")
            if prof.get("timezone_known", True)
            else f"{prof.get('timezone')} (not given, assumed)",
        ),
        ("seen", f"{prof.get('first_seen')} .. {prof.get('last_seen')}"),
        (
            "addresses",
            ", ".join(f"{ch} {a}" for ch, a in sorted((prof.get("addresses") or {}).items())) or "none",
        ),
        (
            "consent",
            "; ".join(
                f"{ch} " + ", ".join(f"{c} {'yes' if ok else 'no'}" for c, ok in cats.items())
                for ch, cats in (prof.get("consent") or {}).items()
            ),
        ),
        (
            "segments",
            ", ".join(f"{s} (since {t})" for s, t in (prof.get("segments") or {}).items()) or "none",
        ),
        ("next wake-up", doc.get("next_wakeup") or "none"),
    ]
    facts += [(f"attribute {k}", _json(v)) for k, v in sorted((prof.get("attributes") or {}).items())]
    body.append(_table(("", ""), facts, table_id="profile"))
    body.append("<h2>Running journeys</h2>")
    body.append(
        _table(
            ("journey", "version", "entry", "at step", "since", "next wake-up", "holdout"),
            (
                (
                    i.get("journey"),
                    i.get("version"),
                    i.get("entry_seq"),
                    i.get("step"),
                    i.get("entered_at"),
                    i.get("next_wakeup") or "waiting for an event",
                    "yes" if i.get("held_out") else "",
                )
                for i in doc.get("instances") or []
            ),
            table_id="instances",
        )
    )
    held = doc.get("held_sends") or []
    if held:
        body.append("<h2>Held sends</h2>")
        body.append(
            _table(
                ("action", "journey", "channel", "until"),
                ((h.get("action_id"), h.get("journey"), h.get("channel"), h.get("release")) for h in held),
                table_id="held",
            )
        )
    body.append("<h2>Finished lately</h2>")
    body.append(
        _table(
            ("journey", "version", "outcome", "at step", "steps", "entered", "finished"),
            (
                (
                    f.get("journey"),
                    f.get("version"),
                    f"goal {f.get('reason')}" if f.get("outcome") == "goal" else f"exited: {f.get('reason')}",
                    f.get("step"),
                    " → ".join(f.get("steps") or []),
                    f.get("entered_at"),
                    f.get("finished_at"),
                )
                for f in doc.get("finished") or []
            ),
            table_id="finished",
        )
    )
    notes = doc.get("notes") or []
    body += [f'<p class="note">note: {_e(n)}</p>' for n in notes]
    body.append(f'<h2>Timeline <span class="note">(time zone {_e(prof.get("timezone"))})</span></h2>')
    body.append(
        _table(
            ("local time", "what"),
            ((t.get("local"), t.get("what")) for t in doc.get("timeline") or []),
            table_id="timeline",
        )
    )
    return page(f"Customer {doc.get('customer_key')}", "".join(body))
