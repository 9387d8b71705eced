"""Sockets live only as long as their access: expiry and revocation (docs/protocol.md §2, §4).

`watch` runs for the life of a worker. Every `interval` seconds it

- asks the service which accounts changed since the last look (`account_changes`: written in
  the same transaction as a disable, an approval or a password change, by any worker or by the
  operator CLI), and re-checks every socket of those accounts: one whose token no longer holds
  (account disabled, tokens revoked) is closed with 4401;
- closes with 4401 every socket whose access token has expired and was not renewed with
  `{"type":"auth"}`.

A poll rather than a pub/sub message: it needs no Redis, works for the CLI (another process)
and cannot be lost by a Redis restart. Its cost is one indexed query a second per worker, and
one pass over the worker's sockets (about 1 ms for 10,000 of them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from ...protocol import CloseCode
from ...protocol.errors import MedreqError
from ...service import MedreqService
from .connection import Connection

log = logging.getLogger("medreq.ws")


async def watch(service: MedreqService, connections: set[Connection], *, interval: float) -> None:
    last_change: int | None = None
    while True:
        try:
            if last_change is None:
                # at start, before this worker has cached any account: later changes count
                last_change = await service.last_account_change()
            else:
                last_change, changed = await service.account_changes(last_change)
                if changed:
                    await revoke(service, (c for c in list(connections) if c.caller.id in changed))
                close_expired(connections, time.time())
        except Exception:  # a database hiccup must not end the watch: retry on the next tick
            log.exception("session watch failed; retrying")
        await asyncio.sleep(interval)


async def revoke(service: MedreqService, connections: Iterable[Connection]) -> None:
    """Close the sockets whose token no longer holds for its (changed) account."""
    for connection in connections:
        try:
            await service.check_claims(connection.claims)
        except MedreqError as exc:
            connection.close(CloseCode.UNAUTHORIZED, exc.message)


def close_expired(connections: Iterable[Connection], now: float) -> None:
    for connection in connections:
        if connection.claims.expires_at <= now:
            connection.close(CloseCode.UNAUTHORIZED, "token expired: reconnect with a fresh one")
