"""Running the server under uvicorn, in one process or `settings.workers`.

uvicorn's own shutdown closes WebSockets with 1012; the protocol (docs/protocol.md) asks for
1001 ("going away"). That is the WebSocket protocol class's doing (`web/ws_guard.py`, given to
uvicorn in `uvicorn_config`): on shutdown it lets the app close each socket with 1001 after
what it already queued, so a plain `uvicorn.Server` does it, in a worker process too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from dataclasses import fields
from typing import Any

import uvicorn
from uvicorn.supervisors import multiprocess

from .backup import serving
from .config import ENV_PREFIX, Settings
from .logs import log_config
from .metrics import MULTIPROC_ENV
from .storage import Store
from .web import create_app
from .web.http_guard import GuardedHttpProtocol
from .web.ws_guard import GuardedWebSocketProtocol

log = logging.getLogger("medreq")


def uvicorn_config(settings: Settings, app: Any, **extra: Any) -> uvicorn.Config:
    trusted = settings.trusted_proxy_list
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        # httptools and websockets-sansio, with the limits they lack (docs/security.md)
        http=GuardedHttpProtocol,
        ws=GuardedWebSocketProtocol,
        timeout_keep_alive=settings.keep_alive_timeout,
        ws_max_size=settings.ws_max_frame,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        ws_per_message_deflate=settings.ws_compression,
        log_level=settings.log_level,
        log_config=log_config(settings.log_level, settings.log_format),
        # X-Forwarded-For/-Proto are believed only from configured proxies (none by default):
        # uvicorn's own default trusts 127.0.0.1, which let a client on the same host pick the
        # address its login attempts were counted under.
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        timeout_graceful_shutdown=10,
        lifespan="on",
        **extra,
    )


def serve(settings: Settings) -> None:
    """Apply migrations, then serve (in `settings.workers` processes)."""
    # held while serving: `medreq db restore` refuses to swap the data under a running server
    with serving(settings.data_dir):
        _serve(settings)


def _serve(settings: Settings) -> None:
    asyncio.run(_migrate(settings))
    if settings.workers > 1:
        # the workers must sign with one key: make it here, not in each (they would race to
        # create the key file); a single process gets it where the service is built
        _export(settings.ensure_secret())
        config = uvicorn_config(
            settings, "medreq.web.app:app_from_env", factory=True, workers=settings.workers
        )
        # Workers count into files in a private directory that every scrape sums (metrics.py);
        # a fresh one per run, so no count survives from an earlier run.
        with tempfile.TemporaryDirectory(prefix="medreq-metrics-") as metrics_dir:
            os.environ[MULTIPROC_ENV] = metrics_dir
            multiprocess.Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.Server(uvicorn_config(settings, create_app(settings, migrate=False))).run()


async def _migrate(settings: Settings) -> None:
    store = Store(settings.database_url)
    try:
        await store.migrate()
    finally:
        await store.close()


def _export(settings: Settings) -> None:
    """Hand the resolved settings to worker processes through the environment."""
    for f in fields(settings):
        value = getattr(settings, f.name)
        if value is not None:
            os.environ[ENV_PREFIX + f.name.upper()] = str(value)
