"""The hub interface."""

from __future__ import annotations

from typing import Protocol


class Sink(Protocol):
    """A live connection's inbox. `deliver` must not block: it queues."""

    def deliver(self, event_id: int | None, text: str) -> None: ...


class Hub(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def subscribe(self, account_id: int, sink: Sink) -> None: ...

    async def unsubscribe(self, account_id: int, sink: Sink) -> None: ...

    async def publish(self, account_id: int, event_id: int | None, text: str) -> None:
        """Deliver to every sink of `account_id` (typing events have no event_id)."""
        ...
