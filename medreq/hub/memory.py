"""The in-process hub: a dict of account id → live sinks."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

from .base import PresenceListener, Published, Sink

log = logging.getLogger("medreq.hub")


class MemoryHub:
    """One process: presence is exactly "has a sink here"."""

    def __init__(self, *, announce: bool = True) -> None:
        self._sinks: dict[int, set[Sink]] = {}
        self._listener: PresenceListener | None = None
        # a RedisHub's local part does not announce: presence there is cluster-wide
        self._announce = announce

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._sinks.clear()

    async def subscribe(self, account_id: int, sink: Sink) -> None:
        first = account_id not in self._sinks
        self._sinks.setdefault(account_id, set()).add(sink)
        if first:
            await self._changed(account_id, True)

    async def unsubscribe(self, account_id: int, sink: Sink) -> None:
        sinks = self._sinks.get(account_id)
        if sinks is not None:
            sinks.discard(sink)
            if not sinks:
                del self._sinks[account_id]
                await self._changed(account_id, False)

    async def publish(self, account_id: int, event_id: int | None, text: str) -> None:
        self.fan_out(account_id, event_id, text)

    async def publish_all(self, events: Sequence[Published]) -> None:
        for account_id, event_id, text in events:
            self.fan_out(account_id, event_id, text)

    def fan_out(self, account_id: int, event_id: int | None, text: str) -> None:
        for sink in tuple(self._sinks.get(account_id, ())):
            sink.deliver(event_id, text)

    def sinks(self, account_id: int) -> tuple[Sink, ...]:
        """The account's sinks here."""
        return tuple(self._sinks.get(account_id, ()))

    def is_online(self, account_id: int) -> bool:
        return account_id in self._sinks

    def accounts(self) -> list[int]:
        """Every account with a sink here."""
        return list(self._sinks)

    async def online(self, account_ids: Collection[int]) -> set[int]:
        return {account_id for account_id in account_ids if account_id in self._sinks}

    def connected_here(self, account_id: int) -> bool:
        return account_id in self._sinks

    def on_presence(self, listener: PresenceListener) -> None:
        self._listener = listener

    async def _changed(self, account_id: int, online: bool) -> None:
        if self._announce and self._listener is not None:
            await notify(self._listener, account_id, online)


async def notify(listener: PresenceListener, account_id: int, online: bool) -> None:
    """Run a presence listener; its failure must not break a socket's subscribe/unsubscribe."""
    try:
        await listener(account_id, online)
    except Exception:
        log.exception("presence listener failed for account %s", account_id)
