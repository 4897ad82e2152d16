"""The HTTP side of the metrics port: /metrics, and the ops dashboard beside it (aiohttp).

It runs in a thread of the supervisor with an event loop of its own, so the supervisor's loop over its
workers stays as it was; the socket is bound before the thread starts, so a taken port stops
``sentinel serve`` with one line (ConfigError) before any worker exists.

Paths (all GET, read-only):

- ``/metrics``: the workers' aggregated metrics, Prometheus text format (gzip when asked for);
- ``/dashboard/`` and ``/dashboard/decision``: the pages, ``/dashboard/static/...`` their scripts, styles
  and the vendored Chart.js: no data in them, so they are public;
- ``/dashboard/api/figures`` (the latest figures), ``/dashboard/api/feed`` (the same, pushed as
  server-sent events every ``dashboard_update_ms``), ``/dashboard/api/decisions/{transaction_id}``: with
  ``auth_mode = jwt`` these need ``Authorization: Bearer <token>`` with the role ``ops-viewer``
  (checked like the gRPC port's tokens: same issuer, audience, keys), else 401 or 403 with the reason.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from sentinel.config import Settings
from sentinel.server.auth import Refused, bearer_token
from sentinel.server.dashboard.lookup import LedgerReads
from sentinel.server.dashboard.sampler import Sampler
from sentinel.server.ledger_service import TRANSACTION_ID_RULE, valid_transaction_id
from sentinel.server.roles import OPS_VIEWER
from sentinel.server.signing_keys import signing_keys
from sentinel.server.tokens import TokenRefused, TokenValidator

log = structlog.get_logger("sentinel.dashboard")

STATIC = Path(__file__).parent / "static"
FEED_KEEPALIVE_S = 15.0
# The pages load nothing from elsewhere and run no inline script: a browser refuses anything else.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
SAMPLER_TASK = web.AppKey("sampler_task", asyncio.Task[None])
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OpsHttp:
    """The metrics port's server, in a daemon thread of the supervisor (``start``)."""

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self._settings = settings
        self._registry = registry
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    def start(self, listener: socket.socket) -> None:
        """Serve on ``listener`` (bound and listening) in a thread; return once it accepts connections."""
        thread = threading.Thread(target=self._run, args=(listener,), name="sentinel-ops-http", daemon=True)
        thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure

    def _run(self, listener: socket.socket) -> None:
        try:
            asyncio.run(self._serve(listener))
        except BaseException as exc:  # reported to start(), or logged once running
            if not self._ready.is_set():
                self._failure = exc
                self._ready.set()
            else:
                log.exception("ops_http_stopped")

    async def _serve(self, listener: socket.socket) -> None:
        app = build_app(self._settings, self._registry)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, listener).start()
        self._ready.set()
        await asyncio.Event().wait()  # until the process ends (a daemon thread)


def build_app(settings: Settings, registry: CollectorRegistry) -> web.Application:
    """The application: /metrics always, the dashboard when ``dashboard_enabled``."""
    app = web.Application(middlewares=[_security_headers])

    async def metrics(request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression()
        return response

    app.router.add_get("/metrics", metrics)
    if settings.dashboard_enabled:
        Dashboard(settings, registry).add_routes(app)
    return app


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if request.path.startswith("/dashboard"):
        response.headers.update(SECURITY_HEADERS)
    return response


class Dashboard:
    """The dashboard's routes, its sampler and its ledger reads."""

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self._settings = settings
        self._registry = registry
        self._tokens: TokenValidator | None = None
        self._ledger: LedgerReads | None = None
        self._sampler: Sampler | None = None

    def add_routes(self, app: web.Application) -> None:
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        app.router.add_get("/dashboard", _redirect_to("/dashboard/"))
        app.router.add_get("/dashboard/", _page("index.html"))
        app.router.add_get("/dashboard/decision", _page("decision.html"))
        app.router.add_static("/dashboard/static/", STATIC, follow_symlinks=True)
        app.router.add_get("/dashboard/api/figures", self._guarded(self._figures))
        app.router.add_get("/dashboard/api/feed", self._guarded(self._feed))
        app.router.add_get("/dashboard/api/decisions/{transaction_id}", self._guarded(self._decision))

    async def _open(self, app: web.Application) -> None:
        """Built in the server's loop: the sampler's events and the clients belong to it."""
        if self._settings.authentication_enabled:
            self._tokens = TokenValidator.from_settings(self._settings, signing_keys(self._settings))
        self._ledger = LedgerReads(self._settings)
        self._sampler = Sampler(self._settings, self._registry, self._ledger)
        app[SAMPLER_TASK] = asyncio.create_task(self._sampler.run())

    async def _close(self, app: web.Application) -> None:
        app[SAMPLER_TASK].cancel()

    def _guarded(self, handler: Handler) -> Handler:
        """``handler`` for callers with the role ops-viewer (anyone with auth_mode = none)."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            if self._tokens is not None:
                refusal = await self._refusal(request)
                if refusal is not None:
                    status, reason = refusal
                    log.warning(
                        "dashboard_request_refused",
                        path=request.path,
                        status=status,
                        reason=reason,
                        peer=request.remote,
                    )
                    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
                    return web.json_response({"error": reason}, status=status, headers=headers)
            return await handler(request)

        return guarded

    async def _refusal(self, request: web.Request) -> tuple[int, str] | None:
        """(status, reason) when the request may not read the dashboard's data, else None."""
        assert self._tokens is not None
        try:
            token = bearer_token(
                [("authorization", value) for value in request.headers.getall("Authorization", [])]
            )
        except Refused as refused:
            return 401, refused.reason
        if token is None:
            return 401, "missing bearer token"
        try:
            caller = await self._tokens.caller(token)
        except TokenRefused as exc:
            return 401, str(exc)
        if OPS_VIEWER not in caller.roles:
            return 403, f"the dashboard needs the role {OPS_VIEWER}"
        return None

    async def _figures(self, request: web.Request) -> web.Response:
        assert self._sampler is not None
        figures = self._sampler.latest or await self._sampler.next_figures(FEED_KEEPALIVE_S)
        if figures is None:
            return web.json_response({"error": "no figures computed yet"}, status=503)
        return web.json_response(figures)

    async def _feed(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: the figures each time they are computed, a comment when idle."""
        assert self._sampler is not None
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        with self._sampler.watching():
            if self._sampler.latest is not None:
                await response.write(_event(self._sampler.latest))
            while True:
                figures = await self._sampler.next_figures(FEED_KEEPALIVE_S)
                await response.write(b": keep-alive\n\n" if figures is None else _event(figures))

    async def _decision(self, request: web.Request) -> web.Response:
        assert self._ledger is not None
        transaction_id = request.match_info["transaction_id"]
        if not valid_transaction_id(transaction_id):
            return web.json_response({"error": f"transaction_id {TRANSACTION_ID_RULE}"}, status=400)
        try:
            found = await self._ledger.decision(transaction_id)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            return web.json_response({"error": f"the ledger cannot be read: {exc!r}"}, status=503)
        if found is None:
            return web.json_response(
                {"error": f"transaction_id {transaction_id!r}: no decision is recorded for it"}, status=404
            )
        return web.json_response(found)


def _event(figures: dict[str, Any]) -> bytes:
    return b"event: figures\ndata: " + json.dumps(figures, separators=(",", ":")).encode() + b"\n\n"


def _page(name: str) -> Handler:
    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / name)

    return page


def _redirect_to(location: str) -> Handler:
    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(location)

    return redirect
