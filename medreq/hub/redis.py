"""The Redis hub: events cross processes and hosts through Redis pub/sub.

Each process keeps its own live sinks in a `MemoryHub` and subscribes to one channel per
account that has a live connection here; `publish` goes to Redis, and the listener task
fans out what arrives. Pub/sub may reorder or (on a Redis restart) drop messages between
processes; connections fill any gap from the store (`web.websocket`), so delivery stays
complete and in order. Channels are namespaced by `namespace` (the database), so servers
that share a Redis but not a database never see each other's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .. import metrics
from .base import Sink
from .memory import MemoryHub

log = logging.getLogger("medreq.hub")
RECONNECT_SECONDS = 1.0


class RedisHub:
    def __init__(self, url: str, *, namespace: str = "medreq") -> None:
        self._url = url
        self._prefix = f"{namespace}:account:"
        self._local = MemoryHub()
        self._redis: aioredis.Redis | None = None
        self._pubsub: aioredis.client.PubSub | None = None
        self._listener: asyncio.Task[None] | None = None

    def _channel(self, account_id: int) -> str:
        return f"{self._prefix}{account_id}"

    async def start(self) -> None:
        self._redis = aioredis.from_url(self._url)
        await self._redis.ping()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._listener = asyncio.create_task(self._listen(), name="medreq-redis-hub")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        if self._redis is not None:
            await self._redis.aclose()
        await self._local.close()

    async def subscribe(self, account_id: int, sink: Sink) -> None:
        first = not self._local.is_online(account_id)
        await self._local.subscribe(account_id, sink)
        if first and self._pubsub is not None:
            await self._pubsub.subscribe(self._channel(account_id))

    async def unsubscribe(self, account_id: int, sink: Sink) -> None:
        await self._local.unsubscribe(account_id, sink)
        if not self._local.is_online(account_id) and self._pubsub is not None:
            with contextlib.suppress(RedisError, ConnectionError):
                await self._pubsub.unsubscribe(self._channel(account_id))

    async def publish(self, account_id: int, event_id: int | None, text: str) -> None:
        assert self._redis is not None, "hub not started"
        message = f"{'' if event_id is None else event_id}\n{text}"
        try:
            await self._redis.publish(self._channel(account_id), message)
        except (RedisError, ConnectionError) as exc:
            # The event is stored: a live connection will fill the gap with the next event
            # or on resume. Deliver locally so this process's clients do not wait for that.
            log.warning("redis publish failed (%s); delivering locally only", exc)
            self._local.fan_out(account_id, event_id, text)

    async def _listen(self) -> None:
        assert self._pubsub is not None
        while True:
            try:
                if not self._pubsub.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisError, ConnectionError) as exc:
                log.warning("redis hub listener: %s; retrying", exc)
                metrics.hub_reconnect()
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"].decode()
            head, _, text = message["data"].decode().partition("\n")
            account_id = int(channel.removeprefix(self._prefix))
            self._local.fan_out(account_id, int(head) if head else None, text)
