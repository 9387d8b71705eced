"""The in-process hub: a dict of account id → live sinks."""

from __future__ import annotations

from .base import Sink


class MemoryHub:
    def __init__(self) -> None:
        self._sinks: dict[int, set[Sink]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._sinks.clear()

    async def subscribe(self, account_id: int, sink: Sink) -> None:
        self._sinks.setdefault(account_id, set()).add(sink)

    async def unsubscribe(self, account_id: int, sink: Sink) -> None:
        sinks = self._sinks.get(account_id)
        if sinks is not None:
            sinks.discard(sink)
            if not sinks:
                del self._sinks[account_id]

    async def publish(self, account_id: int, event_id: int | None, text: str) -> None:
        self.fan_out(account_id, event_id, text)

    def fan_out(self, account_id: int, event_id: int | None, text: str) -> None:
        for sink in tuple(self._sinks.get(account_id, ())):
            sink.deliver(event_id, text)

    def is_online(self, account_id: int) -> bool:
        return account_id in self._sinks
