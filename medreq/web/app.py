"""The ASGI application: the service (assembled by `medreq.bootstrap`) behind the routes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from ..bootstrap import build_service
from ..config import Settings
from ..protocol.errors import NotFound
from ..service import MedreqService
from ..telemetry import metrics
from . import observe
from .cors import with_cors
from .http import EXCEPTION_HANDLERS, error_response
from .origin import client_base_url
from .ratelimit import RateLimiter
from .rest import openapi, pages, routes
from .rest.direct import DirectRoutes
from .socket import connection, sessions
from .socket import endpoint as websocket

log = logging.getLogger("medreq")

# The collector's young-generation threshold, raised from CPython's 700 (net new tracked
# objects): with thousands of sockets pinged every few seconds, objects that live a moment
# (a ping's frames, its pong deadline, a /health connection) were caught alive by young
# collections, promoted, and counted towards full collections, each of which walks every
# socket's objects: 1-2.5 s with 18,000 sockets on this 2-core machine, every ~10 s, while
# nothing else ran (docs/benchmarks-history.md, issue 14). At 10,000 a young collection stays near
# 10 ms and there was no full collection while 18,000 sockets idled; 50,000 made young
# collections themselves take up to 300 ms.
GC_THRESHOLDS = (10_000, 20, 10)


class MedreqApp:
    """The ASGI app: WebSockets go straight to their endpoint, the rest through Starlette."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state = app.state
        self.http = with_cors(DirectRoutes(app, routes.routes), app.state.ws_origins)
        self.service: MedreqService = app.state.service
        self.observer: observe.Observer = app.state.observer  # websockets: see websocket.dispatch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and _CONTROL.search(scope["path"]):
            # Route patterns end in `$`, which also matches before a final newline: without this,
            # `/medicine/request/5/%0A` was request 5. No medreq path holds a control character.
            await _no_such_path(scope, receive, send)
        elif scope["type"] == "websocket":
            await websocket.dispatch(self.app, scope, receive, send)
        elif scope["type"] == "http":
            with self.service.for_client(client_base_url(scope)):
                await self.observer.http(self.http, scope, receive, send)
        else:
            await self.http(scope, receive, send)  # lifespan


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


async def _no_such_path(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await websocket.unknown_path(WebSocket(scope, receive, send))
    else:
        await error_response(NotFound("no such endpoint"))(scope, receive, send)


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> MedreqApp:
    """The medreq server. `migrate=False` when the caller already applied migrations."""
    settings = settings or Settings.load()
    service = build_service(settings)  # with the JWT secret it makes or reads (bootstrap)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start(migrate=migrate)  # the hub, webhook delivery and pruning too
        # Modules, tables and compiled statements live as long as the process: move them out
        # of the collector's way, so a full collection with many sockets open stays short.
        # No gc.collect() first: it found ~280 unreachable objects among ~114,000 and took
        # 55-60 ms of CPU before the server could accept (issue 14, docs/benchmarks-history.md); those
        # few are frozen with the rest instead.
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        tasks = [
            asyncio.create_task(
                sessions.watch(service, app.state.connections, interval=settings.revocation_poll_interval),
                name="medreq-session-watch",
            )
        ]
        if metrics.enabled and metrics.multiprocess_mode():
            tasks.append(asyncio.create_task(metrics.flush_every(1.0), name="medreq-metrics-flush"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await connection.close_all(app.state.connections)
            await service.close()

    app = Starlette(
        routes=[*routes.routes, *observe.routes, *openapi.routes, *pages.routes],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.connections = set()
    app.state.ws_origins = settings.cors_origin_list
    app.state.observer = observe.Observer(json_logs=settings.log_format == "json")
    metrics.enable(bool(settings.metrics_token))
    app.state.rest_limiter = RateLimiter(
        settings.rest_rate, settings.rest_burst, enabled=settings.rate_limit_enabled, name="rest"
    )
    app.state.ws_limiter = RateLimiter(
        settings.ws_rate, settings.ws_burst, enabled=settings.rate_limit_enabled, name="ws"
    )
    return MedreqApp(app)


def app_from_env() -> MedreqApp:
    """Factory for uvicorn workers: settings from the environment `medreq serve` exported."""
    return create_app(Settings.load(), migrate=False)
