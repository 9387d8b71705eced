"""The Redis hub: events cross processes and hosts through Redis pub/sub.

Each process keeps its own live sinks in a `MemoryHub` and subscribes to one channel per
account that has a live connection here; `publish` goes to Redis, and the listener task
fans out what arrives. Pub/sub may reorder or (on a Redis restart) drop messages between
processes; connections fill any gap from the store (`web.websocket`), so delivery stays
complete and in order. Channels are namespaced by `namespace` (the database), so servers
that share a Redis but not a database never see each other's events.

Presence (who is online on any worker) lives in Redis too, with a TTL: see `presence`.
A heartbeat task renews this worker's claims every ttl/3 and sweeps crashed workers'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .. import metrics
from .base import PresenceListener, Sink
from .memory import MemoryHub, notify
from .presence import RedisPresence

log = logging.getLogger("medreq.hub")
RECONNECT_SECONDS = 1.0


class RedisHub:
    def __init__(self, url: str, *, namespace: str = "medreq", presence_ttl: float = 30.0) -> None:
        self._url = url
        self._namespace = namespace
        self._prefix = f"{namespace}:account:"
        self._local = MemoryHub(announce=False)
        self._redis: aioredis.Redis | None = None
        self._pubsub: aioredis.client.PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._presence_ttl = presence_ttl
        self._presence: RedisPresence | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._on_presence: PresenceListener | None = None

    def _channel(self, account_id: int) -> str:
        return f"{self._prefix}{account_id}"

    async def start(self) -> None:
        self._redis = aioredis.from_url(self._url)
        await self._redis.ping()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._listener = asyncio.create_task(self._listen(), name="medreq-redis-hub")
        self._presence = RedisPresence(self._redis, f"{self._namespace}:", ttl=self._presence_ttl)
        await self._presence.renew(())  # this worker's heartbeat, before any claim
        self._heartbeat = asyncio.create_task(self._beat(), name="medreq-redis-presence")

    async def close(self) -> None:
        for task in (self._listener, self._heartbeat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._presence is not None:
            with contextlib.suppress(RedisError, ConnectionError):
                await self._presence.retire()
        if self._pubsub is not None:
            await self._pubsub.aclose()
        if self._redis is not None:
            await self._redis.aclose()
        await self._local.close()

    async def subscribe(self, account_id: int, sink: Sink) -> None:
        first = not self._local.is_online(account_id)
        await self._local.subscribe(account_id, sink)
        if first and self._pubsub is not None:
            await self._pubsub.subscribe(self._channel(account_id))
        if first and self._presence is not None:
            try:
                came_online = await self._presence.join(account_id)
            except (RedisError, ConnectionError) as exc:  # the next heartbeat claims it
                log.warning("presence join failed (%s)", exc)
                return
            if came_online:
                await self._changed(account_id, True)

    async def unsubscribe(self, account_id: int, sink: Sink) -> None:
        await self._local.unsubscribe(account_id, sink)
        if self._local.is_online(account_id):
            return
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, ConnectionError):
                await self._pubsub.unsubscribe(self._channel(account_id))
        if self._presence is not None:
            try:
                went_offline = await self._presence.leave(account_id)
            except (RedisError, ConnectionError) as exc:  # the claim expires with the TTL
                log.warning("presence leave failed (%s)", exc)
                return
            if went_offline:
                await self._changed(account_id, False)

    async def online(self, account_ids: Collection[int]) -> set[int]:
        here = await self._local.online(account_ids)
        if self._presence is None:
            return here
        try:
            return here | await self._presence.online(account_ids)
        except (RedisError, ConnectionError) as exc:
            log.warning("presence lookup failed (%s); answering for this worker only", exc)
            return here

    def connected_here(self, account_id: int) -> bool:
        return self._local.is_online(account_id)

    def on_presence(self, listener: PresenceListener) -> None:
        self._on_presence = listener

    async def _changed(self, account_id: int, online: bool) -> None:
        if self._on_presence is not None:
            await notify(self._on_presence, account_id, online)

    async def _beat(self) -> None:
        """Renew this worker's claims and sweep crashed workers', every ttl/3."""
        assert self._presence is not None
        while True:
            await asyncio.sleep(self._presence_ttl / 3)
            try:
                for account_id in await self._presence.renew(self._local.accounts()):
                    await self._changed(account_id, True)
                for account_id in await self._presence.sweep():
                    await self._changed(account_id, False)
            except (RedisError, ConnectionError) as exc:
                log.warning("presence heartbeat failed (%s); retrying", exc)

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
