"""The routes of the worker's read-only page (``/ui/``): they gather the data the JSON pages serve (the
same functions, no HTTP call to itself) and render it with :mod:`orchestrator.runtime.ui`.

- ``/ui/``: journeys and versions, what is in force, entries and customers in each now; segments and
  their sizes; campaigns, policies, models; refused deployments;
- ``/ui/journeys/<id>``: the picture of the version in force with the cluster's counts, and the counts
  as tables (occupancy per step as gauges);
- ``/ui/customers?key=…``: what ``orchestrator inspect`` shows of one customer, the timeline as a table;
- ``/ui/login`` (``GET``: the form; ``POST``: the token → the login cookie, :mod:`.ui_auth`) and
  ``/ui/logout``.

Who may see them is the token middleware's business (:mod:`orchestrator.runtime.web`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web as aioweb
from faust.web import View

from orchestrator.cli.inspect import customer_document, recent_decisions
from orchestrator.config import secret_list
from orchestrator.core.journey import JourneyDefinition
from orchestrator.pictures import journey_svg
from orchestrator.runtime.funnels import funnels_from_changelog
from orchestrator.runtime.segment_sizes import segment_report, sizes_from_changelog
from orchestrator.runtime.ui import (
    customer_page,
    journey_page,
    login_page,
    not_found_page,
    overview_page,
    page,
)
from orchestrator.runtime.ui_auth import COOKIE_NAME, clear_login_cookie, cookie_valid, set_login_cookie

if TYPE_CHECKING:
    import faust

    from orchestrator.runtime.app import WorkerApp

__all__ = ["HEADERS", "html_response", "register_ui_pages", "see_other"]

log = logging.getLogger("orchestrator.worker")

Changelog = list[tuple[int, int, bytes | None, bytes | None]]

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""Every /ui/ answer: nothing but this page's own markup and inline CSS runs; not framed; not cached."""

DECISIONS_SHOWN = 20
"""The customer's last policy decisions read from the decisions topic for the timeline."""


def html_response(text: str, status: int = 200, headers: dict[str, str] | None = None) -> aioweb.Response:
    return aioweb.Response(
        text=text,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={**HEADERS, **(headers or {})},
    )


def _in_force(definitions: list[tuple[JourneyDefinition, int]], now_ms: int) -> JourneyDefinition | None:
    """Of a journey's deployments (definition, effective from) in deployment order, the one in force at
    ``now_ms``: the latest effective at or before it (of equal times, the later deployed)."""
    best: tuple[int, int, JourneyDefinition] | None = None
    for seq, (d, start) in enumerate(definitions):
        if start <= now_ms and (best is None or (start, seq) >= best[:2]):
            best = (start, seq, d)
    return None if best is None else best[2]


def register_ui_pages(
    app: faust.App, w: WorkerApp, counts_changelog: Callable[[str], Awaitable[Changelog | None]]
) -> None:
    """Mount the /ui/ pages on the worker's app (``counts_changelog``: the counts table's changelog as
    it is now, or None when the broker cannot be read)."""

    def tokens() -> tuple[str, ...]:
        return secret_list(w.settings.api_token)

    async def funnels() -> tuple[dict[str, Any], Changelog | None]:
        records = await counts_changelog("ui")
        return (w.funnels.totals() if records is None else funnels_from_changelog(records)), records

    @app.page("/ui")
    async def ui_root(web: Any, request: Any) -> Any:
        return see_other("/ui/")

    @app.page("/ui/")
    async def ui_overview(web: Any, request: Any) -> Any:
        now = int(time.time() * 1000)
        registry = w.book.registry
        in_force: dict[str, int | None] = {}
        for jid in registry.journey_ids():
            current = registry.current(jid, now)
            in_force[jid] = current.version if current else None
        counts, records = await funnels()
        here = w.segment_sizes.totals()
        sizes = here if records is None else sizes_from_changelog(records)
        return html_response(
            overview_page(
                w.book.summary(),
                in_force=in_force,
                funnels=counts,
                segments=segment_report(w.book.segment_registry, sizes, now),
                cluster_wide=records is not None,
                partitions_here=sorted(w.funnels.partitions),
            )
        )

    @app.page("/ui/journeys/{journey_id}")
    async def ui_journey(web: Any, request: Any, journey_id: str) -> Any:
        deployments = w.book.registry.deployments(journey_id)
        if not deployments:
            return html_response(not_found_page(f"no journey {journey_id!r} is deployed"), status=404)
        now = int(time.time() * 1000)
        definition = _in_force([(d.definition, d.effective_from_ms) for d in deployments], now)
        shown = definition or max(deployments, key=lambda d: (d.effective_from_ms, d.seq)).definition
        counts, records = await funnels()
        funnel = counts.get(journey_id)
        svg, note = await _picture(shown, funnel)
        if definition is None:
            note = (
                note + "; " if note else ""
            ) + f"no version is in force yet: the picture is v{shown.version}"
        try:
            refresh = (
                min(max(int(request.query.get("refresh", "0")), 5), 3600)
                if "refresh" in request.query
                else None
            )
        except ValueError:
            refresh = None
        return html_response(
            journey_page(
                journey_id,
                name=shown.name,
                description=shown.description,
                versions=[
                    {
                        "version": d.definition.version,
                        "status": d.definition.status,
                        "effective_from_ms": d.effective_from_ms,
                    }
                    for d in deployments
                ],
                in_force=definition.version if definition else None,
                steps=[(sid, step.kind) for sid, step in shown.steps.items()],
                funnel=funnel,
                svg=svg,
                svg_note=note,
                cluster_wide=records is not None,
                partitions_here=sorted(w.funnels.partitions),
                refresh=refresh,
            )
        )

    @app.page("/ui/customers")
    async def ui_customers(web: Any, request: Any) -> Any:
        asked = str(request.query.get("key", "")).strip()[:500]
        if not asked:
            return html_response(customer_page())
        doc, message = await _customer(w, asked)
        return html_response(customer_page(asked, doc, message), status=200 if doc is not None else 404)

    @app.page("/ui/login")
    class UiLogin(View):
        """``GET``: the form; ``POST``: the token, then the login cookie and the overview when it is
        one of the worker's tokens."""

        async def get(self, request: aioweb.Request, **kwargs: Any) -> aioweb.StreamResponse:
            accepted = tokens()
            signed_in = _signed_in(request, accepted)
            return html_response(
                login_page(None, signed_in=signed_in),
                status=200 if signed_in else 401,
            )

        async def post(self, request: aioweb.Request, **kwargs: Any) -> aioweb.StreamResponse:
            accepted = tokens()
            form = await request.post()
            given = str(form.get("token", "")).strip()
            matching = [t for t in accepted if _same(given, t)]
            if not given and _signed_in(request, accepted):
                return html_response(login_page(None, signed_in=True))  # nothing asked: signed in already
            if not matching:
                await asyncio.sleep(0.2)  # (a little friction for guessing)
                return html_response(login_page("wrong token"), status=401)
            response = see_other("/ui/")
            set_login_cookie(response, matching[0], secure=request.secure)
            return response

    @app.page("/ui/logout")
    class UiLogout(View):
        """``POST``: forget the login cookie (a form button on every page); ``GET``: that button alone."""

        async def get(self, request: aioweb.Request, **kwargs: Any) -> aioweb.StreamResponse:
            return html_response(page("Log out", "<h1>Log out</h1><p>The button above ends this login.</p>"))

        async def post(self, request: aioweb.Request, **kwargs: Any) -> aioweb.StreamResponse:
            response = see_other("/ui/login")
            clear_login_cookie(response)
            return response


def see_other(target: str) -> aioweb.Response:
    """A redirect (303: the next request is a GET) to a page of this server."""
    return aioweb.Response(status=303, headers={**HEADERS, "Location": target})


def _same(given: str, token: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def _signed_in(request: aioweb.Request, accepted: tuple[str, ...]) -> bool:
    """The request carries a valid login cookie or the bearer header."""
    from orchestrator.runtime.web import authorized  # (web imports this module)

    if cookie_valid(request.cookies.get(COOKIE_NAME), accepted):
        return True
    return authorized(request.headers.get("Authorization"), accepted)


async def _picture(
    definition: JourneyDefinition, funnel: dict[str, Any] | None
) -> tuple[str | None, str | None]:
    """The journey's SVG with its counts (Graphviz in a thread), or None and why not."""
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(None, journey_svg, definition, funnel), None
    except Exception as exc:  # Graphviz missing or failing: the tables still say it all
        log.warning("ui: drawing %s failed: %s", definition.id, exc)
        return None, f"no picture: {exc}"


async def _customer(w: WorkerApp, asked: str) -> tuple[dict[str, Any] | None, str | None]:
    """The inspect document of the customer ``asked`` (a key, an old key merged away or ``kind:value``),
    or None and why."""
    key = asked
    identities: dict[str, list[str]] | None = None
    aliases: list[str] | None = None
    graph = w.identify.graph
    if graph is not None:
        found = graph.lookup(asked)
        if found is not None:
            key, identities, aliases = found, graph.identities(found), graph.aliases(found)
    raw = w.customers.get(key)
    for _hop in range(3):
        record = w.processor.decode(raw)
        if record is None or "moved" not in record:
            break
        key = str(record["moved"])
        raw = w.customers.get(key)
    state = w.processor.state_of(raw)
    if state is None:
        return None, (
            f"no customer {asked!r} on this worker: unknown, or kept by another worker (a customer lives "
            "on the worker that owns its partition; open that worker's page)"
        )
    loop = asyncio.get_running_loop()
    notes: list[str] = []
    try:
        decisions = await loop.run_in_executor(None, recent_decisions, w.settings, key, DECISIONS_SHOWN, 5.0)
    except Exception as exc:  # the broker: the timeline without the decisions, said so
        log.warning("ui: reading the decisions of %s failed: %s", key, exc)
        decisions, notes = [], [f"the policy's decisions could not be read: {exc}"]
    doc = customer_document(
        state, identities=identities, aliases=aliases, asked=asked, source="live", decisions=decisions
    )
    doc["notes"] = [*doc["notes"], *notes]
    return doc, None
