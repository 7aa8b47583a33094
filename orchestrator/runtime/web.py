"""The worker's HTTP server: where it listens, who may ask what, and the pages it serves.

Private by default (docs/security.md):

- it binds ``web_host`` (loopback unless configured otherwise) — Faust's own ``web_bind`` would be
  0.0.0.0 whatever ``web_host`` says;
- every route but :data:`OPEN_PATHS` requires ``Authorization: Bearer <api_token>``, compared in
  constant time (``api_token`` may name two tokens, ``new,old``, while one is rotated); with no token
  configured those routes answer 401 and never data. The check is an
  aiohttp middleware, so it covers every route the server has, Faust's included;
- Faust's built-in pages that expose tables and internals (``/table/…``, ``/router/…``, ``/graph/``,
  ``/stats/``) are not mounted at all.

``/metrics``, ``/healthz`` and ``/readyz`` are open (probes and Prometheus) and carry no customer data.

The read-only page for people, ``/ui/`` (:mod:`orchestrator.runtime.ui_pages`), takes the same token, or
the login cookie ``POST /ui/login`` sets for it (:mod:`orchestrator.runtime.ui_auth`); the cookie is
accepted under ``/ui/`` only, and ``/ui/login`` is the one page there served without either.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web as aioweb

from orchestrator.config import Settings, secret_list
from orchestrator.kafka.deploy import read_whole_topic
from orchestrator.runtime.clock import FUTURE_SKEW_MS
from orchestrator.runtime.funnels import funnels_from_changelog
from orchestrator.runtime.metrics import CONTENT_TYPE
from orchestrator.runtime.reading import highwater_of, position_of
from orchestrator.runtime.releases import REPORT_COUNTS, campaign_report, counts_from_changelog
from orchestrator.runtime.segment_sizes import segment_report, sizes_from_changelog
from orchestrator.runtime.ui import unauthorized_page
from orchestrator.runtime.ui_auth import COOKIE_NAME, LOGIN_PATH, is_ui_path, ui_authorized
from orchestrator.runtime.ui_pages import html_response, register_ui_pages

if TYPE_CHECKING:
    import faust

    from orchestrator.runtime.app import WorkerApp

__all__ = ["OPEN_PATHS", "authorized", "register_pages", "web_options"]

log = logging.getLogger("orchestrator.worker")

OPEN_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
"""Paths served without a token: probes and Prometheus; none of them carries customer data."""


def authorized(header: str | None, tokens: str | tuple[str, ...] | None) -> bool:
    """True when ``header`` (the request's Authorization header) carries one of ``tokens``; never
    without a token. Every candidate is compared in constant time."""
    accepted = secret_list(tokens) if isinstance(tokens, str) or tokens is None else tokens
    if not accepted or not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    presented = given.strip().encode()
    matches = [hmac.compare_digest(presented, t.encode()) for t in accepted]
    return any(matches)


def _token_middleware(tokens: tuple[str, ...]) -> Any:
    @aioweb.middleware
    async def require_token(request: aioweb.Request, handler: Any) -> Any:
        path = request.path.rstrip("/") or "/"
        if path in OPEN_PATHS or authorized(request.headers.get("Authorization"), tokens):
            return await handler(request)
        reason = "a bearer token is required" if tokens else "no api_token is configured on this worker"
        if is_ui_path(path):
            # the worker's page: the login cookie instead of the header, on /ui/ pages only; the login
            # form is served to anyone (it answers 401 itself until the token is given)
            if tokens and (
                path == LOGIN_PATH or ui_authorized(path, request.cookies.get(COOKIE_NAME), tokens)
            ):
                return await handler(request)
            return html_response(unauthorized_page(reason), status=401)  # (not even the path asked)
        return aioweb.json_response(
            {"error": f"unauthorized: {reason}"}, status=401, headers={"WWW-Authenticate": "Bearer"}
        )

    return require_token


def web_options(settings: Settings) -> dict[str, Any]:
    """The :class:`faust.App` settings of the HTTP server."""
    tokens = secret_list(settings.api_token)
    return {
        "web_bind": settings.web_host,
        "web_host": settings.web_host,
        "web_port": settings.web_port,
        "web_in_thread": False,
        "web_application_options": {"middlewares": [_token_middleware(tokens)]},
        # Faust's pages of raw table rows and internals: not served at all.
        "web_tables_enabled": False,
        "web_router_enabled": False,
        "web_graph_enabled": False,
        "web_stats_enabled": False,
    }


def register_pages(app: faust.App, w: WorkerApp) -> None:
    """The worker's own pages (docs/runtime.md: the endpoints)."""

    @app.page("/customers/{customer_key}/")
    async def customer_view(web: Any, request: Any, customer_key: str) -> Any:
        raw = w.customers.get(customer_key)
        record = w.processor.decode(raw)
        if record is not None and "moved" in record:
            moved = {"error": f"customer {customer_key!r} was merged", "moved_to": record["moved"]}
            return web.json(moved, status=404)
        state = w.processor.state_of(raw)
        if state is None:
            return web.json({"error": f"no customer {customer_key!r} on this worker"}, status=404)
        return web.json(
            {
                "customer_key": customer_key,
                "profile": state.profile.to_dict(),
                "instances": [i.to_dict() for i in state.instances],
                "entries": state.entries,
                "seen_events": len(state.seen),
                "state": state.to_dict(),
                "clock_ms": state.clock_ms,
                "next_wakeup_ms": state.next_wakeup_ms(),
            }
        )

    @app.page("/identities/{name}/")
    async def identity_view(web: Any, request: Any, name: str) -> Any:
        graph = w.identify.graph
        if graph is None:
            return web.json({"error": "the identity graph is not on this worker"}, status=404)
        key = graph.lookup(name)
        if key is None:
            return web.json({"error": f"no customer known by {name!r}"}, status=404)
        body = {
            "asked": name,
            "customer_key": key,
            "identities": graph.identities(key),
            "aliases": graph.aliases(key),
        }
        return web.json(body)

    @app.page("/clock/")
    async def clock_view(web: Any, request: Any) -> Any:
        parts = {
            str(p): {
                "clock_ms": w.clocks.get(p),
                "watermarks": w.clocks.marks.get(p, {}),
                "pending_timers": w.timers.pending(p),
                "next_due_ms": w.timers.next_due(p),
            }
            for p in sorted(w.indexed)
        }
        t = w.settings.topics
        consumer = app.consumer
        sources: dict[str, Any] = {}
        for tp in sorted(app.assignor.assigned_actives()):
            if tp.topic != t.raw_events:
                continue
            sources[str(tp.partition)] = {
                "latest_ms": w.sources.latest.get(tp.partition),
                "sent_ms": w.sources.sent.get(tp.partition),
                "lag": w.lags.get(f"raw-{tp.partition}"),
                "processed": w.offsets.last(tp),
                "next": w.offsets.next.get(tp),
                "committed_by_worker": w.offsets.committed.get(tp),
                "highwater": highwater_of(app, tp),
                "committed": consumer._committed_offset.get(tp),  # type: ignore[attr-defined]
                "position": await position_of(app, tp),
                "read_offset": consumer._read_offset.get(tp),  # type: ignore[attr-defined]
                "read_by_faust": tp in (consumer._active_partitions or ()),  # type: ignore[attr-defined]
                "paused_by_faust": tp in consumer._paused_partitions,  # type: ignore[attr-defined]
            }
        stage = w.identify
        identify = (
            {"marks": stage.marks, "released_ms": stage.released_ms, "held": stage.held(), "last": stage.last}
            if stage.loaded
            else None
        )
        known = [c for c in (w.clocks.get(p) for p in w.indexed) if c]
        return web.json(
            {
                "now_ms": int(time.time() * 1000),
                "clock_ms": max(known) if known else None,
                "lateness_ms": w.settings.lateness_hours * 3_600_000 or None,
                "future_skew_ms": FUTURE_SKEW_MS,
                "partitions": parts,
                "raw_partitions": sources,
                "identify": identify,
            }
        )

    @app.page("/journeys/")
    async def journeys_view(web: Any, request: Any) -> Any:
        return web.json(w.book.summary())

    async def counts_changelog(page: str) -> list[tuple[int, int, bytes | None, bytes | None]] | None:
        """The ``segment_sizes`` changelog as it is now (every partition's counts); None when the broker
        cannot be read (the page then says so, with what this worker knows)."""
        topic = w.segment_sizes_table.changelog_topic.get_topic_name()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, read_whole_topic, w.settings, topic, 10.0)
        except Exception as exc:  # the broker: say so, with what this worker knows
            log.warning("%s: reading %s failed: %s", page, topic, exc)
            return None

    @app.page("/segments/")
    async def segments_view(web: Any, request: Any) -> Any:
        """Every segment with its members cluster-wide (the latest counts of every customer partition,
        from the ``segment_sizes`` changelog) and on this worker's partitions."""
        records = await counts_changelog("segments")
        wall = int(time.time() * 1000)
        here = w.segment_sizes.totals()
        cluster = None if records is None else sizes_from_changelog(records)
        rows = segment_report(w.book.segment_registry, cluster if cluster is not None else here, wall)
        for row in rows:
            row["members_here"] = here.get(row["segment"], 0)
        return web.json(
            {
                "segments": rows,
                "cluster_wide": cluster is not None,
                "partitions_here": sorted(w.segment_sizes.partitions),
            }
        )

    @app.page("/campaigns/")
    async def campaigns_view(web: Any, request: Any) -> Any:
        """Every campaign with its audience and what it did to its members, cluster-wide (the latest
        counts of every customer partition, from the ``segment_sizes`` changelog), and under ``here``
        the same numbers for this worker's partitions."""
        records = await counts_changelog("campaigns")
        wall = int(time.time() * 1000)
        registry = w.book.campaign_registry
        counts_here, sizes_here = w.campaign_counts.totals(), w.segment_sizes.totals()
        here = {r["campaign"]: r for r in campaign_report(registry, counts_here, sizes_here, wall)}
        if records is None:
            counts, sizes = counts_here, sizes_here
        else:
            counts, sizes = counts_from_changelog(records), sizes_from_changelog(records)
        rows = campaign_report(registry, counts, sizes, wall)
        for row in rows:
            mine = here.get(row["campaign"], {})
            row["here"] = {**{k: mine.get(k, 0) for k in REPORT_COUNTS}, "unsent": mine.get("unsent", {})}
        return web.json(
            {
                "campaigns": rows,
                "cluster_wide": records is not None,
                "partitions_here": sorted(w.segment_sizes.partitions),
            }
        )

    @app.page("/funnels/")
    async def funnels_view(web: Any, request: Any) -> Any:
        """Each journey's funnel cluster-wide (the latest counts of every customer partition, from the
        ``segment_sizes`` changelog): entries, arrivals per step, edges, where customers are now,
        goals, exits, split branches; under ``here`` this worker's partitions' (the shape of
        ``orchestrator simulate --report``'s ``journeys``)."""
        records = await counts_changelog("funnels")
        here = w.funnels.totals()
        return web.json(
            {
                "journeys": here if records is None else funnels_from_changelog(records),
                "here": here,
                "cluster_wide": records is not None,
                "partitions_here": sorted(w.funnels.partitions),
            }
        )

    register_ui_pages(app, w, counts_changelog)

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        await w.metrics.refresh(w)
        return web.bytes(w.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        journeys = w.feed is not None and w.feed.caught_up.is_set()
        stuck = [f"{tp.topic}[{tp.partition}]" for tp in w.stuck_partitions()]
        idle = w.idle_raw_partitions()
        ready = (
            recovered and journeys and not app.rebalancing and not app.in_recovery and not stuck and not idle
        )
        body = {
            "ready": ready,
            "recovered": recovered,
            "journeys_loaded": journeys,
            "rebalancing": bool(app.rebalancing),
            "stuck": stuck,
            "idle_raw_partitions": idle,
        }
        return web.json(body, status=200 if ready else 503)
