"""A connector's HTTP server: ``/metrics``, ``/healthz``, ``/readyz`` and the channel's own routes (the
email connector's unsubscribe links, ``/u/<token>``, open pixel ``/o/`` and click redirects ``/c/``; the
webhooks receiver's ``/twilio/status/`` and ``/push/``).

It binds ``connector_web_host`` (loopback unless configured otherwise). The unsubscribe links must be
reachable by recipients: put a reverse proxy (TLS) in front that forwards those paths only. Request bodies
over ``max_body`` (:data:`~orchestrator.connectors.unsubscribe.MAX_BODY_BYTES` unless told) are refused
(413), and there is no access log: a link's path carries a customer key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from aiohttp import web

from orchestrator.connectors.metrics import ConnectorMetrics
from orchestrator.connectors.unsubscribe import MAX_BODY_BYTES
from orchestrator.runtime.metrics import CONTENT_TYPE

__all__ = ["ConnectorWeb"]

log = logging.getLogger("orchestrator.connector")


class ConnectorWeb:
    """``await start()`` serves until ``await close()``."""

    def __init__(
        self,
        host: str,
        port: int,
        metrics: ConnectorMetrics,
        *,
        ready: Callable[[], bool] = lambda: True,
        routes: Sequence[web.RouteDef] = (),
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.host, self.port = host, port
        self.app = web.Application(client_max_size=max_body)

        async def metrics_page(_: web.Request) -> web.Response:
            return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

        async def healthz(_: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        async def readyz(_: web.Request) -> web.Response:
            ok = ready()
            return web.json_response({"ready": ok}, status=200 if ok else 503)

        self.app.add_routes(
            [
                web.get("/metrics", metrics_page),
                web.get("/healthz", healthz),
                web.get("/readyz", readyz),
                *routes,
            ]
        )
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        log.info("connector HTTP server on http://%s:%d", self.host, self.port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
