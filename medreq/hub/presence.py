"""Presence across workers in Redis: who has a live connection anywhere (docs/protocol.md §4).

Keys (under the hub's namespace):

- ``presence:{account}``: a sorted set of the workers holding a socket of the account, each
  scored with the time (Redis's clock, in ms) its claim expires;
- ``presence-workers``: every worker, scored with the expiry of its heartbeat;
- ``presence-worker:{worker}``: the accounts a worker holds, so a crashed one can be swept.

An account is online while some member of its set has not expired: a worker killed with
`kill -9` stops counting `ttl` seconds after its last heartbeat at the latest, without anyone
doing anything. Each live worker renews its claims every ttl/3 seconds, and sweeps workers whose
heartbeat expired, reporting the accounts that thereby went offline. Every change is decided
inside one Lua script, so exactly one worker sees each one (two workers accepting the same
account's first sockets at once: only one of them finds the set empty). Redis's clock, not the
workers', so hosts whose clocks disagree still agree on expiry.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable

import redis.asyncio as aioredis

_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "
_KEEP = "local function keep(k, ms) if redis.call('PTTL', k) < ms then redis.call('PEXPIRE', k, ms) end end "

# KEYS: account set, workers, this worker's accounts. ARGV: worker, ttl ms, account id.
# Returns the live claims on the account before this one (0: it just came online).
JOIN = (
    _NOW
    + _KEEP
    + """
local live = redis.call('ZCOUNT', KEYS[1], now, '+inf')
redis.call('ZADD', KEYS[1], now + ARGV[2], ARGV[1])
keep(KEYS[1], 2 * ARGV[2])
redis.call('ZADD', KEYS[2], now + ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[3])
keep(KEYS[3], 86400000)
return live
"""
)

# KEYS: account set, this worker's accounts. ARGV: worker, account id.
# Returns the live claims left (0: it just went offline).
LEAVE = (
    _NOW
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
return redis.call('ZCOUNT', KEYS[1], now, '+inf')
"""
)

# KEYS: workers, this worker's accounts, then account sets. ARGV: worker, ttl ms, then the
# account ids of those sets. Renews every claim; returns the accounts that had no live claim
# (this worker was swept while it stalled: they are online again).
HEARTBEAT = (
    _NOW
    + _KEEP
    + """
local back = {}
redis.call('ZADD', KEYS[1], now + ARGV[2], ARGV[1])
for i = 3, #KEYS do
  if redis.call('ZCOUNT', KEYS[i], now, '+inf') == 0 then table.insert(back, ARGV[i]) end
  redis.call('ZADD', KEYS[i], now + ARGV[2], ARGV[1])
  keep(KEYS[i], 2 * ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[i])
end
keep(KEYS[2], 86400000)
return back
"""
)

# KEYS: workers. ARGV: key prefix. Removes workers whose heartbeat expired and their claims;
# returns the accounts left with no live claim. (Keys built here: one Redis, not a cluster.)
SWEEP = (
    _NOW
    + """
local gone, seen = {}, {}
for _, w in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  local wkey = ARGV[1] .. 'presence-worker:' .. w
  for _, a in ipairs(redis.call('SMEMBERS', wkey)) do
    local akey = ARGV[1] .. 'presence:' .. a
    redis.call('ZREM', akey, w)
    if not seen[a] and redis.call('ZCOUNT', akey, now, '+inf') == 0 then
      seen[a] = true
      table.insert(gone, a)
    end
  end
  redis.call('DEL', wkey)
  redis.call('ZREM', KEYS[1], w)
end
return gone
"""
)

# KEYS: account sets. Returns the number of live claims on each.
COUNT = (
    _NOW
    + """
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('ZCOUNT', k, now, '+inf') end
return out
"""
)

# KEYS: workers, this worker's accounts. ARGV: worker, key prefix. A worker shutting down
# drops its claims at once and marks itself expired: the next sweep of a surviving worker
# reports those of its accounts that went offline.
RETIRE = """
for _, a in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('ZREM', ARGV[2] .. 'presence:' .. a, ARGV[1]) end
redis.call('ZADD', KEYS[1], 0, ARGV[1])
return 1
"""

CHUNK = 500  # keys per script call: bounded work per call, so Redis never stalls on one


class RedisPresence:
    def __init__(self, redis: aioredis.Redis, prefix: str, *, ttl: float) -> None:
        self.worker = uuid.uuid4().hex
        self.ttl_ms = max(1, int(ttl * 1000))
        self._prefix = prefix
        self._redis = redis
        self._workers = f"{prefix}presence-workers"
        self._mine = f"{prefix}presence-worker:{self.worker}"
        self._join = redis.register_script(JOIN)
        self._leave = redis.register_script(LEAVE)
        self._heartbeat = redis.register_script(HEARTBEAT)
        self._sweep = redis.register_script(SWEEP)
        self._count = redis.register_script(COUNT)
        self._retire = redis.register_script(RETIRE)

    def _key(self, account_id: int) -> str:
        return f"{self._prefix}presence:{account_id}"

    async def join(self, account_id: int) -> bool:
        """Claim the account for this worker; True when it was offline everywhere."""
        keys = [self._key(account_id), self._workers, self._mine]
        live = await self._join(keys=keys, args=[self.worker, self.ttl_ms, account_id])
        return int(live) == 0

    async def leave(self, account_id: int) -> bool:
        """Drop this worker's claim; True when no live claim is left anywhere."""
        left = await self._leave(keys=[self._key(account_id), self._mine], args=[self.worker, account_id])
        return int(left) == 0

    async def renew(self, account_ids: Iterable[int]) -> list[int]:
        """Renew this worker's claims (and its heartbeat); the accounts that had none live."""
        ids = list(account_ids)
        back: list[int] = []
        for start in range(0, max(len(ids), 1), CHUNK):
            chunk = ids[start : start + CHUNK]
            keys = [self._workers, self._mine, *(self._key(a) for a in chunk)]
            result = await self._heartbeat(keys=keys, args=[self.worker, self.ttl_ms, *chunk])
            back.extend(int(a) for a in result)
        return back

    async def sweep(self) -> list[int]:
        """Remove expired workers' claims; the accounts that thereby went offline."""
        return [int(a) for a in await self._sweep(keys=[self._workers], args=[self._prefix])]

    async def online(self, account_ids: Collection[int]) -> set[int]:
        ids = list(account_ids)
        found: set[int] = set()
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            counts = await self._count(keys=[self._key(a) for a in chunk])
            found.update(a for a, n in zip(chunk, counts, strict=True) if int(n) > 0)
        return found

    async def retire(self) -> None:
        await self._retire(keys=[self._workers, self._mine], args=[self.worker, self._prefix])
