"""The Redis hub's publishing (medreq/hub/redis.py), against the real Redis of the tests: events
published concurrently go out together, in order, to every worker, and a publish Redis refuses
is delivered here at once and nudged to the others once Redis answers again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from medreq.hub.redis import RedisHub

from .conftest import REDIS_URL


class Inbox:
    """A sink that records what it is delivered and when it is told to catch up."""

    def __init__(self) -> None:
        self.events: list[tuple[int | None, str]] = []
        self.caught_up = 0
        self.changed = asyncio.Event()

    def deliver(self, event_id: int | None, text: str) -> None:
        self.events.append((event_id, text))
        self.changed.set()

    def catch_up(self, after: int | None) -> None:
        self.caught_up += 1
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.events) < count:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def hubs() -> AsyncIterator[tuple[RedisHub, RedisHub]]:
    """Two workers' hubs sharing a namespace no other test uses."""
    namespace = f"test-hub-{uuid.uuid4().hex[:8]}"
    here, there = RedisHub(REDIS_URL, namespace=namespace), RedisHub(REDIS_URL, namespace=namespace)
    await here.start()
    await there.start()
    yield here, there
    await here.close()
    await there.close()


class CountedScript:
    """The hub's PUBLISH script, counting its calls and the events each carried."""

    def __init__(self, script: Any, *, fail: int = 0) -> None:
        self.script = script
        self.events_per_call: list[int] = []
        self.fail = fail  # the first `fail` calls raise as a lost connection would

    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
        self.events_per_call.append(len(keys))
        if len(self.events_per_call) <= self.fail:
            raise RedisConnectionError("Redis is gone")
        return await self.script(keys=keys, args=args)


async def test_concurrent_publishes_share_script_calls_and_arrive_in_order(hubs: tuple[RedisHub, RedisHub]) -> None:
    here, there = hubs
    first, second = Inbox(), Inbox()
    await there.subscribe(1, first)
    await there.subscribe(2, second)
    counted = CountedScript(here._publish)
    here._publish = counted

    async def change(n: int) -> None:  # one change's two events, as PendingEvents publishes them
        await here.publish_all([(1, 2 * n + 1, f"a{n}"), (2, 2 * n + 1, f"b{n}")])

    await asyncio.gather(*(change(n) for n in range(20)))
    await first.wait_for(20)
    await second.wait_for(20)
    assert first.events == [(2 * n + 1, f"a{n}") for n in range(20)]
    assert second.events == [(2 * n + 1, f"b{n}") for n in range(20)]
    # the 20 changes queued before the sender task first ran: one script call carried them all
    assert counted.events_per_call == [40]
    assert await here._redis.get(here._last_event_key(1)) == b"39"  # type: ignore[union-attr]


async def test_a_publish_redis_refuses_is_delivered_here_and_nudged_to_the_others(
    hubs: tuple[RedisHub, RedisHub],
) -> None:
    here, there = hubs
    local, remote = Inbox(), Inbox()
    await here.subscribe(7, local)
    await there.subscribe(7, remote)
    here._publish = CountedScript(here._publish, fail=1)

    await here.publish_all([(7, 1, "one"), (7, 2, "two")])
    assert local.events == [(1, "one"), (2, "two")]  # at once, not through Redis
    assert here._unsent == {7: 2}

    # Redis is back: the next publish (a typing event, another account's) sends the nudge
    # behind it, and the other worker's socket catches up from the store
    await here.publish(8, None, "typing")
    async with asyncio.timeout(5):
        while remote.caught_up == 0:
            remote.changed.clear()
            await remote.changed.wait()
    assert remote.events == []
    assert here._unsent == {}
    assert await here._redis.get(here._last_event_key(7)) == b"2"  # type: ignore[union-attr]
