"""The Redis hub: events cross processes and hosts through Redis pub/sub.

Each process keeps its own live sinks in a `MemoryHub` and subscribes to one channel per
account that has a live connection here; `publish` goes to Redis, and the listener task
fans out what arrives. Pub/sub may reorder or (on a Redis restart) drop messages between
processes; connections fill any gap from the store (`web.websocket`), so delivery stays
complete and in order. Channels are namespaced by `namespace` (the database), so servers
that share a Redis but not a database never see each other's events.

Presence (who is online on any worker) lives in Redis too, with a TTL: see `presence`.
A heartbeat task renews this worker's claims every ttl/3 and sweeps crashed workers'.

Failover (``redis+sentinel://`` URLs, docs/deploy.md "Failover"): the client asks the Sentinels
for the master after every lost connection, and fails fast meanwhile (the event is stored; a
publish that fails is delivered to this process's sockets only). So that no socket elsewhere
waits for a next event to learn of one it missed while Redis changed hands:

- each publish also records the account's latest event id in Redis (``last-event:{account}``,
  kept `LAST_EVENT_MS`); when the pub/sub connection is back (and its subscriptions in force:
  a PING sent behind them has come back), accounts whose recorded id is past the last one this
  process fanned out have their sockets catch up from the store (`CatchesUp`);
- a publish that failed is sent again once Redis answers, as a *nudge* (the event id alone:
  receivers catch up from the store; event texts are not kept anywhere by the hub).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Sequence
from typing import Any, Protocol, runtime_checkable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from ..config.urls import SENTINEL_SCHEME, parse_sentinel_url
from ..telemetry import metrics
from .base import PresenceListener, Published, Sink
from .memory import MemoryHub, notify
from .presence import CHUNK, RedisPresence

log = logging.getLogger("medreq.hub")
RECONNECT_SECONDS = 1.0
LAST_EVENT_MS = 10 * 60 * 1000  # how long an account's latest event id is kept for resyncs
RESYNC_MARK = b"medreq-resync"
# Fail fast: a command waits at most ~2 s for a server that is gone, then the hub's own
# fallbacks take over (local delivery, nudges, presence by TTL) instead of requests hanging.
CLIENT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 2.0,
    "socket_timeout": 5.0,
    "socket_keepalive": True,
    "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), 2),
}

# KEYS: each event's account's last-event key. ARGV: keep ms, then per event its channel, message
# and event id ('' for typing): every event queued while the previous call was in flight goes in
# one call (`RedisHub._send_queued`). A script writes, so a demoted master refuses it (READONLY)
# and the client asks the Sentinels.
PUBLISH = """
for i, key in ipairs(KEYS) do
  local at = 2 + (i - 1) * 3
  redis.call('PUBLISH', ARGV[at], ARGV[at + 1])
  local id = ARGV[at + 2]
  if id ~= '' and tonumber(id) > tonumber(redis.call('GET', key) or '0') then
    redis.call('SET', key, id, 'PX', ARGV[1])
  end
end
return #KEYS
"""


@runtime_checkable
class CatchesUp(Protocol):
    """A sink that can send what the store holds past what it sent (web.connection.Connection)."""

    def catch_up(self, after: int | None) -> None: ...


class _PubSub(aioredis.client.PubSub):
    """Pub/sub that, after every reconnection, sends a PING behind its re-subscriptions: its
    reply (`RESYNC_MARK`) says they are in force, and the hub then resyncs (`RedisHub._resync`)."""

    async def on_connect(self, connection: Any) -> None:
        await super().on_connect(connection)
        await connection.send_command("PING", RESYNC_MARK, check_health=False)


def connect(url: str) -> tuple[aioredis.Redis, Sentinel | None]:
    """A client for `url`: ``redis+sentinel://`` through its Sentinels, anything else directly."""
    if not url.startswith(f"{SENTINEL_SCHEME}://"):
        return aioredis.from_url(url, **CLIENT_OPTIONS), None
    target = parse_sentinel_url(url)
    sentinel_options = {
        "socket_connect_timeout": CLIENT_OPTIONS["socket_connect_timeout"],
        "socket_timeout": CLIENT_OPTIONS["socket_timeout"],
    }
    if target.sentinel_password is not None:
        sentinel_options["password"] = target.sentinel_password
    sentinel = Sentinel(
        target.sentinels,
        sentinel_kwargs=sentinel_options,
        db=target.db,
        username=target.username,
        password=target.password,
        **CLIENT_OPTIONS,
    )
    return sentinel.master_for(target.service), sentinel


class RedisHub:
    def __init__(self, url: str, *, namespace: str = "medreq", presence_ttl: float = 30.0) -> None:
        self._url = url
        self._namespace = namespace
        self._prefix = f"{namespace}:account:"
        self._local = MemoryHub(announce=False)
        self._redis: aioredis.Redis | None = None
        self._sentinel: Sentinel | None = None
        self._pubsub: aioredis.client.PubSub | None = None
        self._publish: Any = None  # the PUBLISH script
        # what `publish_all` callers queued for the sender task, each with the future they await
        self._queued: list[tuple[Sequence[Published], asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None
        # account → the latest event id fanned out here; and the latest whose publish failed
        self._seen: dict[int, int] = {}
        self._unsent: dict[int, int] = {}
        self._unsubscribed: set[int] = set()  # accounts online here whose SUBSCRIBE failed
        self._listener: asyncio.Task[None] | None = None
        self._presence_ttl = presence_ttl
        self._presence: RedisPresence | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._on_presence: PresenceListener | None = None

    def _channel(self, account_id: int) -> str:
        return f"{self._prefix}{account_id}"

    def _last_event_key(self, account_id: int) -> str:
        return f"{self._namespace}:last-event:{account_id}"

    async def start(self) -> None:
        self._redis, self._sentinel = connect(self._url)
        await self._redis.ping()
        self._publish = self._redis.register_script(PUBLISH)
        self._pubsub = _PubSub(self._redis.connection_pool, ignore_subscribe_messages=True)
        self._listener = asyncio.create_task(self._listen(), name="medreq-redis-hub")
        self._presence = RedisPresence(self._redis, f"{self._namespace}:", ttl=self._presence_ttl)
        await self._presence.renew(())  # this worker's heartbeat, before any claim
        self._heartbeat = asyncio.create_task(self._beat(), name="medreq-redis-presence")

    async def close(self) -> None:
        for task in (self._listener, self._heartbeat, self._sender):
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
        if self._sentinel is not None:
            await self._sentinel.aclose()
        await self._local.close()

    async def subscribe(self, account_id: int, sink: Sink) -> None:
        first = not self._local.is_online(account_id)
        await self._local.subscribe(account_id, sink)
        if first and self._pubsub is not None:
            try:
                await self._pubsub.subscribe(self._channel(account_id))
            except (RedisError, ConnectionError) as exc:  # the listener subscribes once Redis is back
                log.warning("redis subscribe failed (%s); retrying", exc)
                self._unsubscribed.add(account_id)
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
        self._seen.pop(account_id, None)
        self._unsubscribed.discard(account_id)
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
        await self.publish_all([(account_id, event_id, text)])

    async def publish_all(self, events: Sequence[Published]) -> None:
        """Queue `events` for the sender and wait until they went out (or, Redis failing, were
        delivered here). One script call carries every event queued while the previous one was
        in flight. A plain cycle's 3 events took 3 calls (redis-cli MONITOR, issue 29), and
        redis-py's Python around each call was the largest part of what the cycle costs the
        server more on PostgreSQL + Redis than on SQLite (a cProfile of the cycle, issue 29)."""
        assert self._publish is not None, "hub not started"
        if not events:
            return
        sent = asyncio.get_running_loop().create_future()
        self._queued.append((events, sent))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_queued(), name="medreq-redis-publish")
        await sent

    async def _send_queued(self) -> None:
        """Send what is queued, one script call at a time, in the order it was queued (so an
        account's events reach Redis in order), until nothing is left."""
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                try:
                    await self._deliver([event for events, _ in batch for event in events])
                except BaseException as exc:
                    for _, sent in batch + self._queued:
                        _settle(sent, exc)
                    self._queued = []
                    raise
                for _, sent in batch:
                    _settle(sent, None)
        finally:
            self._sender = None

    async def _deliver(self, events: list[Published]) -> None:
        try:
            await self._send(events)
        except (RedisError, ConnectionError) as exc:
            # The events are stored: deliver them here at once, and nudge the other processes
            # once Redis answers again (`_send_unsent`).
            log.warning("redis publish failed (%s); delivering locally, nudging the others later", exc)
            for account_id, event_id, text in events:
                self._fan_out(account_id, event_id, text)
                if event_id is not None:
                    self._unsent[account_id] = max(event_id, self._unsent.get(account_id, 0))
            return
        if self._unsent:
            await self._send_unsent()

    async def _send(self, events: Sequence[Published]) -> None:
        assert self._publish is not None
        keys = []
        args: list[str | int] = [LAST_EVENT_MS]
        for account_id, event_id, text in events:
            keys.append(self._last_event_key(account_id))
            mark = "" if event_id is None else event_id
            args += (self._channel(account_id), f"{mark}\n{text}", mark)
        await self._publish(keys=keys, args=args)

    async def _send_unsent(self) -> None:
        """Nudge the other processes about events whose publish failed (the id alone)."""
        nudges = list(self._unsent.items())
        try:
            await self._send([(account_id, event_id, "") for account_id, event_id in nudges])
        except (RedisError, ConnectionError):
            return  # still down: the listener tries again
        for account_id, event_id in nudges:
            if self._unsent.get(account_id) == event_id:
                del self._unsent[account_id]

    def _fan_out(self, account_id: int, event_id: int | None, text: str) -> None:
        if (
            event_id is not None
            and event_id > self._seen.get(account_id, 0)
            and self._local.is_online(account_id)
        ):
            self._seen[account_id] = event_id
        self._local.fan_out(account_id, event_id, text)

    def _catch_up(self, account_id: int, event_id: int) -> None:
        """Sockets of the account catch up from the store, if `event_id` is past what went out here."""
        if event_id <= self._seen.get(account_id, 0) or not self._local.is_online(account_id):
            return
        self._seen[account_id] = event_id
        for sink in self._local.sinks(account_id):
            if isinstance(sink, CatchesUp):
                sink.catch_up(None)

    async def _resync(self) -> None:
        """After a reconnection: catch up the accounts that had events while we were away."""
        assert self._redis is not None
        accounts = self._local.accounts()
        for start in range(0, len(accounts), CHUNK):
            chunk = accounts[start : start + CHUNK]
            latest = await self._redis.mget([self._last_event_key(a) for a in chunk])
            for account_id, value in zip(chunk, latest, strict=True):
                if value is not None:
                    self._catch_up(account_id, int(value))

    async def _subscribe_again(self) -> None:
        """Subscribe the accounts whose SUBSCRIBE failed; the PING behind it resyncs them."""
        assert self._pubsub is not None
        accounts = [a for a in self._unsubscribed if self._local.is_online(a)]
        if accounts:
            await self._pubsub.subscribe(*(self._channel(a) for a in accounts))
            await self._pubsub.ping(RESYNC_MARK)
        self._unsubscribed.difference_update(accounts)
        self._unsubscribed.intersection_update(self._local.accounts())

    async def _listen(self) -> None:
        assert self._pubsub is not None
        while True:
            try:
                if self._unsent:
                    await self._send_unsent()
                if self._unsubscribed:
                    await self._subscribe_again()
                if not self._pubsub.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                message = await self._pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "pong" and message["data"] == RESYNC_MARK:
                    await self._resync()
                    continue
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
            if not text:  # a nudge: the event is in the store
                self._catch_up(account_id, int(head))
            else:
                self._fan_out(account_id, int(head) if head else None, text)


def _settle(sent: asyncio.Future[None], error: BaseException | None) -> None:
    """End a `publish_all` caller's wait (unless it gave up waiting: cancelled)."""
    if sent.done():
        return
    if isinstance(error, asyncio.CancelledError):
        sent.cancel()
    elif error is not None:
        sent.set_exception(error)
    else:
        sent.set_result(None)
