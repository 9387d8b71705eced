"""Which new connections the server takes: a global cap and a cap per client address.

Every open socket, HTTP or WebSocket, holds a file descriptor. With no cap, 20,000 idle TCP
connections (the process's descriptor limit) left `/health` unreachable and nothing logged
(issue 8): the listening socket's `accept()` fails with EMFILE, asyncio backs off, and even
the database cannot open a file. So the global cap sits `reserve` descriptors below
RLIMIT_NOFILE: what is over it is answered 503 and closed, and existing sockets, the
database, media files and the 503 answers themselves keep working.

`ConnectionGate` is shared by every connection of one server; it holds the server's `Limits`
(config/limits.py), the very object its service holds, for the uvicorn protocols in `guard.http`
and `guard.websocket` too.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ...config import Limits, Settings
from ...protocol.errors import Unavailable

log = logging.getLogger("medreq.limits")

RETRY_AFTER = 5  # seconds a refused client is told to wait
LOG_EVERY = 10.0  # at most one "refused" warning per this many seconds


class ConnectionGate:
    """Counts open connections per client address; says whether one more may come in."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.per_client: dict[str, int] = {}
        self.refused = 0
        self.lingering = 0  # refused sockets still open while their answer drains
        self._last_log = 0.0

    def admit(self, client: str, open_now: int) -> bool:
        """Whether a new connection from `client` may stay, `open_now` being open already
        (itself excluded). An admitted connection must be `release`d when it ends."""
        limits = self.limits
        held = self.per_client.get(client, 0)
        per_client = limits.max_connections_per_client
        if open_now >= limits.max_connections or (per_client and held >= per_client):
            self._note_refusal(client, open_now, held)
            return False
        self.per_client[client] = held + 1
        return True

    def refusal(self, client: str) -> Unavailable:
        """What a connection `admit` refused is answered: which cap it met and what raises it."""
        limits = self.limits
        per_client = limits.max_connections_per_client
        if per_client and self.per_client.get(client, 0) >= per_client:
            message = (
                f"too many connections from your address: this server allows {per_client} per address "
                "(medreq serve --max-connections-per-client N, or MEDREQ_MAX_CONNECTIONS_PER_CLIENT; 0 for no cap)"
            )
        else:
            message = (
                f"too many connections: this server holds at most {limits.max_connections} "
                "(medreq serve --max-connections N, or MEDREQ_MAX_CONNECTIONS, within the descriptor limit, ulimit -n)"
            )
        return Unavailable(message, retry_after=RETRY_AFTER)

    def release(self, client: str) -> None:
        held = self.per_client.get(client, 0) - 1
        if held > 0:
            self.per_client[client] = held
        else:
            self.per_client.pop(client, None)

    def _note_refusal(self, client: str, open_now: int, held: int) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY:  # an attack must not also flood the log
            self._last_log = now
            log.warning(
                "connection limit: refusing new connections (%d open, %d from %s; cap %d, %d per "
                "client; %d refused so far)",
                open_now, held, client, self.limits.max_connections,
                self.limits.max_connections_per_client, self.refused,
            )  # fmt: skip


def gate_for(server_state: Any, config: Any) -> ConnectionGate:
    """The gate shared by every protocol instance of one uvicorn server (made on first use,
    with the limits of the medreq app uvicorn loaded)."""
    gate: ConnectionGate | None = getattr(server_state, "medreq_gate", None)
    if gate is None:
        gate = ConnectionGate(_limits_of(config.loaded_app))
        server_state.medreq_gate = gate
    return gate


def _limits_of(app: Any) -> Limits:
    """The limits of the medreq service behind `app` (the defaults for another app)."""
    for _ in range(10):  # uvicorn wraps the app in a few middlewares
        limits = getattr(getattr(getattr(app, "state", None), "service", None), "limits", None)
        if isinstance(limits, Limits):
            return limits
        app = getattr(app, "app", None)
        if app is None:
            break
    return Limits.of(Settings())
