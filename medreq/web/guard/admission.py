"""Which new connections the server takes: a global cap and a cap per client address.

Every open socket, HTTP or WebSocket, holds a file descriptor. With no cap, 20,000 idle TCP
connections (the process's descriptor limit) left `/health` unreachable and nothing logged
(issue 8): the listening socket's `accept()` fails with EMFILE, asyncio backs off, and even
the database cannot open a file. So the global cap sits `reserve` descriptors below
RLIMIT_NOFILE: what is over it is answered 503 and closed, and existing sockets, the
database, media files and the 503 answers themselves keep working.

`TransportLimits` is what the uvicorn protocols in `guard.http` and `guard.websocket` need from
`Settings`; `ConnectionGate` is shared by every connection of one server.
"""

from __future__ import annotations

import logging
import resource
import time
from dataclasses import dataclass
from typing import Any

from ...config import Settings
from ...protocol.errors import Unavailable

log = logging.getLogger("medreq.limits")

RETRY_AFTER = 5  # seconds a refused client is told to wait
LOG_EVERY = 10.0  # at most one "refused" warning per this many seconds


@dataclass(frozen=True)
class TransportLimits:
    max_header_bytes: int
    header_timeout: float
    body_timeout: float
    max_connections: int
    max_connections_per_client: int  # 0: no cap
    ws_max_unsent: int
    ws_send_timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> TransportLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            max_connections=connection_cap(settings.max_connections, settings.fd_reserve),
            max_connections_per_client=settings.max_connections_per_client,
            ws_max_unsent=settings.ws_max_unsent,
            ws_send_timeout=settings.ws_send_timeout,
        )


def connection_cap(configured: int, reserve: int) -> int:
    """The global cap: `configured` (0: no preference), never within `reserve` of the fd limit."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = max(1, soft - reserve) if soft != resource.RLIM_INFINITY else configured or 1_000_000
    return min(configured, ceiling) if configured > 0 else ceiling


class ConnectionGate:
    """Counts open connections per client address; says whether one more may come in."""

    def __init__(self, limits: TransportLimits) -> None:
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
    from the settings of the medreq app uvicorn loaded)."""
    gate: ConnectionGate | None = getattr(server_state, "medreq_gate", None)
    if gate is None:
        gate = ConnectionGate(TransportLimits.from_settings(_settings_of(config.loaded_app)))
        server_state.medreq_gate = gate
    return gate


def _settings_of(app: Any) -> Settings:
    for _ in range(10):  # uvicorn wraps the app in a few middlewares
        settings = getattr(getattr(app, "state", None), "settings", None)
        if isinstance(settings, Settings):
            return settings
        app = getattr(app, "app", None)
        if app is None:
            break
    return Settings()
