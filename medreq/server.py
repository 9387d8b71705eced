"""Running the server under uvicorn, in one process or `settings.workers`.

Before anything is written, `serve` binds its port (and hands the socket to uvicorn), then
takes the data dir: an exclusive `flock` on `<data dir>/server.lock` for the server's whole
life on SQLite (a shared one on PostgreSQL, where several servers may share a data dir), with
its pid and address written in the file. A second server on the same SQLite data dir, or on a
port in use, is refused with a `StartError` saying who holds it, and a start that fails
removes the data dir it created (only that: never one that existed). `medreq db restore` takes
the same lock exclusively, so it never swaps the data under a running server.

uvicorn's own shutdown closes WebSockets with 1012; the protocol (docs/protocol.md) asks for
1001 ("going away"). That is the WebSocket protocol class's doing (`web/guard/websocket.py`, given to
uvicorn in `uvicorn_config`): on shutdown it lets the app close each socket with 1001 after
what it already queued, so a plain `uvicorn.Server` does it, in a worker process too.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.supervisors import multiprocess

from .bootstrap import open_store
from .config import ENV_PREFIX, Settings
from .files import open_private_lock
from .storage.backup import LOCK_FILE
from .telemetry.logs import log_config
from .telemetry.metrics import MULTIPROC_ENV
from .web import create_app
from .web.guard.http import GuardedHttpProtocol
from .web.guard.websocket import GuardedWebSocketProtocol

log = logging.getLogger("medreq")


class StartError(Exception):
    """The server cannot start; the message says why and what to do. Nothing was left behind."""


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
    """Bind the port, hold the data dir, apply migrations, then serve (in `settings.workers`
    processes). `StartError` when the port or the data dir is taken."""
    created = _first_missing(settings.data_dir)
    start = _Start()
    try:
        with _bound(settings) as sock, holding(settings, _address(settings, sock)):
            _serve(settings, sock, start)
    finally:
        if not start.served and created is not None:  # this start made it: leave nothing behind
            shutil.rmtree(created, ignore_errors=True)


@dataclass
class _Start:
    served: bool = False  # the server started: whatever it wrote is data, kept however it ends


def _serve(settings: Settings, sock: socket.socket, start: _Start) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    try:
        asyncio.run(_migrate(settings))
    except (OSError, SQLAlchemyError) as exc:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        raise StartError(f"cannot open the database {where}: {exc}") from None
    if settings.workers > 1:
        # the workers must sign with one key: make it here, not in each (they would race to
        # create the key file); a single process gets it where the service is built
        _export(settings.ensure_secret())
        config = uvicorn_config(
            settings, "medreq.web.app:app_from_env", factory=True, workers=settings.workers
        )
        # Workers count into files in a private directory that every scrape sums (metrics.py);
        # a fresh one per run, so no count survives from an earlier run.
        _say_where(settings, sock)
        with tempfile.TemporaryDirectory(prefix="medreq-metrics-") as metrics_dir:
            os.environ[MULTIPROC_ENV] = metrics_dir
            sock.set_inheritable(True)
            start.served = True  # the workers may have started: never remove their data
            multiprocess.Multiprocess(config, sockets=[sock]).run()
        return
    server = uvicorn.Server(uvicorn_config(settings, create_app(settings, migrate=False)))
    _say_where(settings, sock)
    try:
        server.run(sockets=[sock])  # a failed application startup raises SystemExit(3)
    finally:
        start.served = server.started


@contextlib.contextmanager
def _bound(settings: Settings) -> Iterator[socket.socket]:
    """The server's listening address, bound before anything is written (uvicorn listens on it)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise StartError(f"cannot listen on {settings.host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: restarts need no wait
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartError(
                    f"port {settings.port} is in use (is another medreq serve running? use --port)"
                ) from None
            raise StartError(f"cannot listen on {settings.host} port {settings.port}: {exc.strerror}") from None
        yield sock
    finally:
        sock.close()


def _say_where(settings: Settings, sock: socket.socket) -> None:
    """uvicorn's "running on" line, which it leaves out for a socket it is given (after its
    config set the logging up)."""
    where = _address(settings, sock)
    log.info("medreq serve on %s (pid %d, data dir %s); Ctrl-C to stop", where, os.getpid(), settings.data_dir)


def _address(settings: Settings, sock: socket.socket) -> str:
    host = settings.host
    return f"http://{f'[{host}]' if ':' in host else host}:{sock.getsockname()[1]}"


@contextlib.contextmanager
def holding(settings: Settings, address: str) -> Iterator[None]:
    """The data dir's lock for a server's life: exclusive on SQLite (one server per database;
    a second one's requests would never reach the first one's sockets), shared on PostgreSQL.
    The file says who holds it, for the next one refused."""
    path = settings.data_dir / LOCK_FILE
    with os.fdopen(open_private_lock(path), "r+") as handle:
        try:  # shared: waits while a `db restore` finishes
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB if settings.is_sqlite else fcntl.LOCK_SH)
        except BlockingIOError:
            holder = handle.read(200).strip()
            who = f"another medreq serve ({holder})" if holder else "another medreq process (serve or db restore)"
            raise StartError(
                f"the data dir {settings.data_dir.resolve()} is in use by {who}: stop it, or give this "
                "server another --data-dir"
            ) from None
        if settings.is_sqlite:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}, {address}\n")
            handle.flush()
        try:
            yield
        finally:
            if settings.is_sqlite:
                handle.truncate(0)


def _first_missing(path: Path) -> Path | None:
    """The outermost of `path` and its parents that does not exist yet (what creating it makes)."""
    missing = None
    for candidate in (path.absolute(), *path.absolute().parents):
        if candidate.exists():
            return missing
        missing = candidate
    return missing


async def _migrate(settings: Settings) -> None:
    store = open_store(settings)
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
