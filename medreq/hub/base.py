"""The hub interface."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Protocol

#: called with (account id, online) when an account's presence changes across every worker
PresenceListener = Callable[[int, bool], Awaitable[None]]

#: an event to publish: (account id, event id or None for typing and presence, text)
Published = tuple[int, int | None, str]


class Sink(Protocol):
    """A live connection's inbox. `deliver` must not block: it queues."""

    def deliver(self, event_id: int | None, text: str) -> None: ...


class Hub(Protocol):
    """Fans events out to live connections, and knows which accounts have one (presence).

    Guarantees every implementation keeps:

    - `publish` reaches every sink subscribed to the account when it is called, on any worker
      sharing the hub (best effort across processes: the store fills gaps, docs/protocol.md §5);
    - `online` answers for every worker: an account is online while at least one of its
      sockets is subscribed somewhere; a worker that dies without unsubscribing stops
      counting within the presence TTL;
    - the presence listener is called once per change (offline → online, online → offline),
      by the one worker that saw it, never for an account that did not change (a crashed
      worker's accounts are reported offline by a surviving worker within about the TTL).
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def subscribe(self, account_id: int, sink: Sink) -> None: ...

    async def unsubscribe(self, account_id: int, sink: Sink) -> None: ...

    async def publish(self, account_id: int, event_id: int | None, text: str) -> None:
        """Deliver to every sink of `account_id` (typing events have no event_id)."""
        ...

    async def publish_all(self, events: Sequence[Published]) -> None:
        """`publish` each of `events`, in order (one change's events: a hub over the network
        sends them together)."""
        ...

    async def online(self, account_ids: Collection[int]) -> set[int]:
        """Those of `account_ids` with a live connection on any worker."""
        ...

    def connected_here(self, account_id: int) -> bool:
        """Whether this worker holds a live connection of the account (no I/O)."""
        ...

    def on_presence(self, listener: PresenceListener) -> None:
        """Call `listener` on every presence change this worker detects."""
        ...
